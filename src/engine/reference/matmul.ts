// Float64 reference of the matmul family (shaders/matmul.wgsl).

import type { Vec } from './common.ts';

/** C (M, N) = op(A) · op(B), A (M, K) or (K, M) if transA, B (K, N) or (N, K) if transB; float64. */
export function gemmRef(A: Vec, B: Vec, M: number, N: number, K: number, transA = false, transB = false): Float64Array {
  const C = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      const a = transA ? A[k * M + m] : A[m * K + k];
      if (a === 0) continue;
      const row = m * N;
      for (let n = 0; n < N; n++) C[row + n] += a * (transB ? B[n * K + k] : B[k * N + n]);
    }
  }
  return C;
}

