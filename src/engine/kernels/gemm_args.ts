// The contract both GEMM kernels share (shaders/matmul.wgsl and shaders/matmul_tiled.wgsl): the arguments of one
// product and the uniform block both shaders read. `gemm` (matmul.ts) picks the kernel.

import type { BufferSlice } from '../buffer-slice.ts';

/** How the B operand (the weight) is stored. */
export type WeightStorage = 'f32' | 'bf16' | 'f16';

/** C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b], all row-major. */
export interface GemmArgs {
  // Any operand may be a slice (the LoRA factors and their gradients live in arenas); element 0 is the slice's start.
  C: BufferSlice; // (batch, M, N)
  A: BufferSlice; // (batch, M, K) or (batch, K, M) with transA
  B: BufferSlice; // (batch, K, N) or (batch, N, K) with transB
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** 0 overwrites C (without reading it), 1 accumulates into it. */
  beta?: number;
  batch?: number;
  /** Elements between consecutive batch entries of each operand. */
  strideA?: number;
  strideB?: number;
  strideC?: number;
  bStorage?: WeightStorage;
}

/** The `Params` block of both shaders: sizes, batch strides, alpha, beta (48 bytes). */
export function gemmUniforms(a: GemmArgs): ArrayBuffer {
  const u = new ArrayBuffer(48);
  const u32 = new Uint32Array(u);
  const f32 = new Float32Array(u);
  u32[0] = a.M;
  u32[1] = a.N;
  u32[2] = a.K;
  u32[4] = a.strideA ?? 0;
  u32[5] = a.strideB ?? 0;
  u32[6] = a.strideC ?? 0;
  f32[8] = a.alpha ?? 1;
  f32[9] = a.beta ?? 0;
  return u;
}
