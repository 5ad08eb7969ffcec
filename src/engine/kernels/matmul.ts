// Linear-layer products on the GPU, llm.c style: matmul_forward and matmul_backward side by side,
// outputs first, then what backward needs, then inputs, then dimensions.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';

/** How the B operand (the weight) is stored. */
export type WeightStorage = 'f32' | 'bf16' | 'f16';

export interface GemmArgs {
  C: GPUBuffer; // (batch, M, N)
  A: GPUBuffer; // (batch, M, K) or (batch, K, M) with transA
  B: GPUBuffer; // (batch, K, N) or (batch, N, K) with transB
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** 0 overwrites C, 1 accumulates into it. */
  beta?: number;
  batch?: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  bStorage?: WeightStorage;
}

const BLOCK = 64;

export function gemm(ctx: GpuContext, a: GemmArgs): void {
  const storage = a.bStorage ?? 'f32';
  if (storage === 'f16' && !ctx.hasF16) {
    throw new FinetuneError('internal', 'f16 weight storage needs the shader-f16 feature, which this GPU does not offer');
  }
  const batch = a.batch ?? 1;
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
  ctx.dispatch(
    {
      shader: 'matmul',
      defines: storage === 'f32' ? undefined : { B_F16: storage === 'f16', B_BF16: storage === 'bf16' },
      constants: { TRANS_A: Boolean(a.transA), TRANS_B: Boolean(a.transB) },
    },
    [a.A, a.B, a.C],
    u,
    [Math.ceil(a.N / BLOCK), Math.ceil(a.M / BLOCK), batch],
  );
}

export interface MatmulOptions {
  /** Add into the output instead of overwriting it (gradient accumulation, residual adds). */
  accumulate?: boolean;
  alpha?: number;
  wStorage?: WeightStorage;
}

/** Y (M, N) = alpha · X (M, K) · W (N, K)ᵀ */
export function matmul_forward(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: GPUBuffer, M: number, N: number, K: number, o: MatmulOptions = {}): void {
  gemm(ctx, { C: Y, A: X, B: W, M, N, K, transB: true, alpha: o.alpha, beta: o.accumulate ? 1 : 0, bStorage: o.wStorage });
}

/**
 * dX (M, K) = alpha · dY (M, N) · W (N, K);  dW (N, K) = alpha · dY (M, N)ᵀ · X (M, K).
 * Pass null for a gradient that is not needed (a frozen weight has no dW).
 */
export function matmul_backward(
  ctx: GpuContext,
  dX: GPUBuffer | null,
  dW: GPUBuffer | null,
  dY: GPUBuffer,
  X: GPUBuffer,
  W: GPUBuffer,
  M: number,
  N: number,
  K: number,
  o: MatmulOptions = {},
): void {
  const beta = o.accumulate ? 1 : 0;
  if (dX) gemm(ctx, { C: dX, A: dY, B: W, M, N: K, K: N, alpha: o.alpha, beta, bStorage: o.wStorage });
  if (dW) gemm(ctx, { C: dW, A: dY, B: X, M: N, N: K, K: M, transA: true, alpha: o.alpha, beta });
}
