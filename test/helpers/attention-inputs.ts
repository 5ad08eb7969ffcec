// Inputs and error measure the attention tests share (row-split and tiled kernels alike).
import { maxRelError, mulberry32 } from '../../src/engine/reference/common.ts';

/** Packed segments of random lengths 1..maxLen with ids 1, 2, 3, …, then `pad` trailing padding tokens. */
export function packedSegments(B: number, T: number, seed: number, maxLen: number, pad: number): Uint32Array {
  const r = mulberry32(seed);
  const seg = new Uint32Array(B * T);
  for (let b = 0; b < B; b++) {
    let id = 1;
    let i = 0;
    while (i < T - pad) {
      const len = 1 + Math.floor(r() * maxLen);
      for (let n = 0; n < len && i < T - pad; n++) seg[b * T + i++] = id;
      id++;
    }
  }
  return seg;
}

/** maxRelError, except that an exactly-zero reference (dq, dk at T = 1: one key, P = 1) needs |got| ≤ 1e-6. */
export function attentionRelError(got: Float32Array, ref: Float64Array, tol: number): number {
  const refMax = ref.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  if (refMax === 0) return got.reduce((m, x) => Math.max(m, Math.abs(x)), 0) * (tol / 1e-6);
  return maxRelError(got, ref);
}
