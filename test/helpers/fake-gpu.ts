// A stand-in GPU context for unit tests that load a model unquantised (which only uploads, reads back and frees):
// each buffer is a byte array, upload copies, read gives the bytes back, and the ledger counts nothing.
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
