// Weights the NF4 matmul tests quantise (basic and tiled kernels alike).
import { mulberry32 } from '../../src/engine/reference/common.ts';

/** Rows of different magnitudes, so block scales differ (and double quantisation has something to do). */
export function nf4TestWeights(rows: number, cols: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const s = 0.01 + r() * 0.2;
    for (let j = 0; j < cols; j++) w[i * cols + j] = (r() * 2 - 1) * s;
  }
  return w;
}
