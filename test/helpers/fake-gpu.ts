// A stand-in GPU context for unit tests that load a model unquantised (which only uploads, reads back and frees):
// each buffer is a byte array, upload copies, read gives the bytes back, and the ledger counts nothing.
import type { BufferSlice } from '../../src/engine/buffer-slice.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';

/** The context, and the labels of the buffers uploaded to it, in order. */
export function byteArrayGpu(): { ctx: GpuContext; made: string[] } {
  const bytes = new Map<object, Uint8Array>();
  const made: string[] = [];
  const ctx = {
    ledger: { snapshot: () => ({ byCategory: { weights: { currentBytes: 0 } } }) },
    upload(label: string, data: ArrayBufferView) {
      made.push(label);
      const b = { size: data.byteLength, label };
      bytes.set(b, new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice());
      return b;
    },
    async read(b: object) {
      return bytes.get(b)!.slice().buffer;
    },
    destroy(b: object) {
      bytes.delete(b);
    },
    flush() {},
    async sync() {},
  };
  return { ctx: ctx as unknown as GpuContext, made };
}

/**
 * A GPU context whose buffers are byte arrays, written and read at offsets: enough to upload an adapter, write a training
 * state into it and read it back. `made` lists the buffers created and uploaded, `destroyed` those freed, by label.
 */
export function bufferBytesGpu(): { ctx: GpuContext; made: string[]; destroyed: string[] } {
  const bytes = new Map<object, Uint8Array>();
  const made: string[] = [];
  const destroyed: string[] = [];
  const whole = (t: BufferSlice): { buffer: object; offset: number } => ('offset' in t && 'buffer' in t ? { buffer: t.buffer, offset: t.offset } : { buffer: t, offset: 0 });
  const buffer = (label: string, size: number): object => {
    made.push(label);
    const b = { size, label };
    bytes.set(b, new Uint8Array(size));
    return b;
  };
  const ctx = {
    device: { limits: { maxBufferSize: 1 << 28, maxStorageBufferBindingSize: 1 << 28 } },
    ledger: { snapshot: () => ({ currentBytes: 0, byCategory: { weights: { currentBytes: 0 } } }) },
    upload(label: string, data: ArrayBufferView) {
      const b = buffer(label, data.byteLength);
      bytes.get(b)!.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      return b;
    },
    createBuffer: (label: string, size: number) => buffer(label, size),
    write(target: BufferSlice, data: ArrayBufferView, offset = 0) {
      const { buffer: b, offset: at } = whole(target);
      bytes.get(b)!.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at + offset);
    },
    clear() {},
    async read(source: BufferSlice, offset = 0, size?: number) {
      const { buffer: b, offset: at } = whole(source);
      const all = bytes.get(b)!;
      const length = size ?? ('size' in source ? source.size : all.byteLength) - offset;
      return all.slice(at + offset, at + offset + length).buffer;
    },
    async readF32(source: BufferSlice) {
      return new Float32Array(await ctx.read(source));
    },
    destroy(b: { label: string }) {
      destroyed.push(b.label);
      bytes.delete(b);
    },
    checkHealthy() {},
    flush() {},
    async sync() {},
  };
  return { ctx: ctx as unknown as GpuContext, made, destroyed };
}
