// A frozen base linear layer, dense or NF4: the forward product and the input gradient (no weight gradient).

import { MLP_PROJECTIONS, type Projection } from '../../core/mistral.ts';
import type { BaseMatmul, GpuContext } from '../gpu.ts';
import { lowRankGemm, matmul_backward, matmul_forward, type LowRankAdd } from '../kernels/matmul.ts';
import { LOW_RANK_BUFFERS, nf4TiledBufferCount } from '../kernels/matmul_tiled.ts';
import { nf4_matmul_backward, nf4_matmul_forward } from '../kernels/nf4_matmul.ts';
import type { BaseLinear } from './weights.ts';

/**
 * Whether a projection's NF4 products run in int8 under the context's choice (GpuContext.baseMatmul). Products
 * named by no projection (generation) stay fp32.
 */
export function int8For(choice: BaseMatmul, projection: Projection | undefined): boolean {
  if (projection === undefined) return false;
  return choice === 'int8' || (choice === 'int8-mlp' && MLP_PROJECTIONS.includes(projection));
}

/**
 * Whether a low-rank term (LoRA's up-projection or input gradient) can ride on this base product's epilogue: the
 * context wants it, the product runs in fp32 on the tiled kernel, and the device binds the two extra buffers (an NF4
 * weight with double-quantised scales already binds 7 storage buffers, 8 with the K step of 32's code book; WebGPU
 * guarantees 8).
 */
export function lowRankFuses(ctx: GpuContext, W: BaseLinear, projection: Projection | undefined): boolean {
  if (!ctx.loraEpilogue || ctx.gemmKernel === 'basic' || int8For(ctx.baseMatmul, projection)) return false;
  const own = W.kind === 'dense' ? 3 : nf4TiledBufferCount(ctx, W.weight);
  return own + LOW_RANK_BUFFERS <= ctx.device.limits.maxStorageBuffersPerShaderStage;
}

/**
 * Y (M, out) (+)= X (M, in) · Wᵀ (+ the low-rank term `add`, in the product's epilogue where `lowRankFuses`, else as
 * a product of its own after it: the same bits); `projection` (the training runner's) lets the int8 choice apply.
 */
export function base_linear_forward(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: BaseLinear, M: number, accumulate = false, projection?: Projection, add?: LowRankAdd): void {
  const lowRank = add && lowRankFuses(ctx, W, projection) ? add : undefined;
  if (W.kind === 'dense') matmul_forward(ctx, Y, X, W.buffer, M, W.out, W.in, { accumulate, wStorage: W.storage, lowRank });
  else nf4_matmul_forward(ctx, Y, X, W.weight, M, { accumulate, int8: int8For(ctx.baseMatmul, projection), lowRank });
  if (add && !lowRank) lowRankGemm(ctx, Y, add, M, W.kind === 'dense' ? W.out : W.weight.rows);
}

/** dX (M, in) (+)= dY (M, out) · W (+ the low-rank term `add`, as in base_linear_forward). */
export function base_linear_backward(ctx: GpuContext, dX: GPUBuffer, dY: GPUBuffer, W: BaseLinear, M: number, accumulate = false, projection?: Projection, add?: LowRankAdd): void {
  const lowRank = add && lowRankFuses(ctx, W, projection) ? add : undefined;
  if (W.kind === 'dense') matmul_backward(ctx, dX, null, dY, dY, W.buffer, M, W.out, W.in, { accumulate, wStorage: W.storage, lowRank });
  else nf4_matmul_backward(ctx, dX, dY, W.weight, M, { accumulate, int8: int8For(ctx.baseMatmul, projection), lowRank });
  if (add && !lowRank) lowRankGemm(ctx, dX, add, M, W.kind === 'dense' ? W.in : W.weight.cols);
}
