// A tensor the kernels read or write: a whole GPU buffer, or a slice of one (the LoRA arenas keep every module's
// parameters, gradients and moments in a few large buffers, so each optimizer phase is one dispatch per buffer).
// A slice is a GPUBufferBinding with both offset and size set, so ctx.dispatch binds it as is; its offset must be a
// multiple of the device's minStorageBufferOffsetAlignment (the arenas align to 256, the largest the spec allows).

import { FinetuneError } from '../core/errors.ts';

/** `size` bytes of `buffer` from byte `offset`. */
export interface TensorSlice {
  readonly buffer: GPUBuffer;
  readonly offset: number;
  readonly size: number;
}

/** What a kernel wrapper accepts where it may be handed part of a buffer. */
export type BufferSlice = GPUBuffer | TensorSlice;

function isSlice(b: BufferSlice): b is TensorSlice {
  return 'buffer' in b;
}

/** The buffer underneath (for labels, aliasing checks and copies). */
export function sliceBuffer(b: BufferSlice): GPUBuffer {
  return isSlice(b) ? b.buffer : b;
}

/** Byte offset of the slice in its buffer (0 for a whole buffer). */
export function sliceOffset(b: BufferSlice): number {
  return isSlice(b) ? b.offset : 0;
}

/** Bytes a kernel may touch through this binding. */
export function sliceBytes(b: BufferSlice): number {
  // A slice's `size` is its own length; a buffer's is the whole buffer.
  return b.size;
}

/** A checked slice: 4-byte granular (storage bindings need it) and inside the buffer. */
export function tensorSlice(buffer: GPUBuffer, offset: number, size: number): TensorSlice {
  if (!(Number.isSafeInteger(offset) && offset >= 0 && offset % 4 === 0 && Number.isSafeInteger(size) && size > 0 && size % 4 === 0 && offset + size <= buffer.size)) {
    throw new FinetuneError('internal', `slice [${offset}, +${size}) of buffer "${buffer.label}" (${buffer.size} bytes) is not 4-byte aligned or not inside it`);
  }
  return { buffer, offset, size };
}
