// A quick correctness check of the matmul family on whatever GPU we are given, against the float64 reference.
// The page runs it in the worker and the CLI in `gpu-info`, so a user sees whether their driver computes right.

import type { GpuContext } from '../engine/gpu.ts';
import { matmul_backward, matmul_forward } from '../engine/kernels/matmul.ts';
import { maxRelError, randomArray } from '../engine/reference/common.ts';
import { gemmRef } from '../engine/reference/matmul.ts';

export interface MatmulCheck {
  M: number;
  N: number;
  K: number;
  forward: number;
  backwardInput: number;
  backwardWeight: number;
  ok: boolean;
}

export const SELFTEST_TOLERANCE = 1e-5;

export async function checkMatmul(ctx: GpuContext, M: number, N: number, K: number, seed = 1): Promise<MatmulCheck> {
  const X = randomArray(M * K, seed);
  const W = randomArray(N * K, seed + 1);
  const dY = randomArray(M * N, seed + 2);
  const bX = ctx.upload('selftest X', X, 'scratch');
  const bW = ctx.upload('selftest W', W, 'scratch');
  const bdY = ctx.upload('selftest dY', dY, 'scratch');
  const bY = ctx.createBuffer('selftest Y', M * N * 4, 'scratch');
  const bdX = ctx.createBuffer('selftest dX', M * K * 4, 'scratch');
  const bdW = ctx.createBuffer('selftest dW', N * K * 4, 'scratch');
  try {
    matmul_forward(ctx, bY, bX, bW, M, N, K);
    matmul_backward(ctx, bdX, bdW, bdY, bX, bW, M, N, K);
    const [Y, dX, dW] = [await ctx.readF32(bY), await ctx.readF32(bdX), await ctx.readF32(bdW)];
    const forward = maxRelError(Y, gemmRef(X, W, M, N, K, false, true));
    const backwardInput = maxRelError(dX, gemmRef(dY, W, M, K, N));
    const backwardWeight = maxRelError(dW, gemmRef(dY, X, N, K, M, true, false));
    const ok = Math.max(forward, backwardInput, backwardWeight) <= SELFTEST_TOLERANCE;
    return { M, N, K, forward, backwardInput, backwardWeight, ok };
  } finally {
    for (const b of [bX, bW, bdY, bY, bdX, bdW]) ctx.destroy(b);
  }
}
