// Where every LoRA tensor lives in the adapter's arenas. GpuLora (./lora.ts) keeps four arenas of one layout —
// parameters, gradients, exp_avg, exp_avg_sq — so each optimizer phase is one dispatch per chunk instead of one per
// tensor (Mistral-7B, all seven projections: 448 tensors). The layout is a pure function of the shapes and the chunk
// limit, so the memory planner (src/run/planner.ts, ./sizing.ts) adds up exactly what uploadLora allocates.
//
// Order: layer by layer, projections in PROJECTIONS order, A (r, in) then B (out, r). Each tensor starts on a
// 256-byte boundary (the largest minStorageBufferOffsetAlignment WebGPU allows, so any tensor may be bound as a slice
// on any device); the gaps are zeros and stay zero (AdamW leaves g = m = v = p = 0 at 0). One buffer may not exceed
// maxBufferSize, nor be bound past maxStorageBufferBindingSize, so an arena is split into chunks (separate buffers),
// greedily in order, never splitting a tensor: for a fixed order that gives the fewest chunks.

import { PROJECTIONS, type Projection } from '../../core/mistral.ts';
import { NORM_CHUNK } from '../kernels/adamw.ts';
import { linearShape, type Dims } from './dims.ts';

/** Byte alignment of every tensor's start inside a chunk. */
export const ARENA_ALIGN = 256;

export type LoraFactor = 'A' | 'B';

export interface ArenaTensor {
  layer: number;
  name: Projection;
  factor: LoraFactor;
  /** Which chunk (buffer) of each arena holds it. */
  chunk: number;
  /** Byte offset in that chunk, a multiple of ARENA_ALIGN. */
  offset: number;
  /** f32 elements: r·in for A, out·r for B. */
  floats: number;
}

export interface LoraArenaLayout {
  /** The chunk limit the layout was made for (bytes, a multiple of 4). */
  maxChunkBytes: number;
  /** Every tensor, in arena order. */
  tensors: ArenaTensor[];
  /** Bytes of each chunk: up to the end of its last tensor (a multiple of 4). */
  chunkBytes: number[];
}

/** The largest chunk a device allows: one buffer, bound whole by the optimizer kernels. */
export function loraChunkLimit(limits: { maxBufferSize: number; maxStorageBufferBindingSize: number }): number {
  return Math.floor(Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize) / 4) * 4;
}

/**
 * The arena layout of an adapter of rank r on every layer's `targets`. A tensor larger than maxChunkBytes gets a chunk
 * of its own, over the limit: the planner reports it as a buffer that does not fit, uploadLora refuses it.
 */
export function loraArenaLayout(d: Dims, r: number, targets: readonly Projection[], maxChunkBytes: number): LoraArenaLayout {
  const tensors: ArenaTensor[] = [];
  const chunkBytes: number[] = [];
  if (r <= 0) return { maxChunkBytes, tensors, chunkBytes };
  const adapted = PROJECTIONS.filter((p) => targets.includes(p));
  let cursor = 0;
  for (let layer = 0; layer < d.L; layer++) {
    for (const name of adapted) {
      const s = linearShape(d, name);
      for (const [factor, floats] of [['A', r * s.in], ['B', s.out * r]] as const) {
        const bytes = floats * 4;
        let offset = Math.ceil(cursor / ARENA_ALIGN) * ARENA_ALIGN;
        if (chunkBytes.length === 0 || offset + bytes > maxChunkBytes) {
          chunkBytes.push(0);
          offset = 0;
        }
        cursor = offset + bytes;
        chunkBytes[chunkBytes.length - 1] = cursor;
        tensors.push({ layer, name, factor, chunk: chunkBytes.length - 1, offset, floats });
      }
    }
  }
  return { maxChunkBytes, tensors, chunkBytes };
}

/** Bytes of one arena (every chunk, padding included): the ledger charges this four times (two 'lora', two 'optimizer'). */
export function arenaBytes(layout: LoraArenaLayout): number {
  return layout.chunkBytes.reduce((a, b) => a + b, 0);
}

/** Partial slots grad_norm_sq needs over the gradient arena: one per NORM_CHUNK elements of each chunk. */
export function arenaGradNormSlots(layout: LoraArenaLayout): number {
  return layout.chunkBytes.reduce((a, b) => a + Math.ceil(b / 4 / NORM_CHUNK), 0);
}
