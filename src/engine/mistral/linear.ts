// A frozen base linear layer, dense or NF4: the forward product and the input gradient (no weight gradient).

import { MLP_PROJECTIONS, type Projection } from '../../core/mistral.ts';
import type { BaseMatmul, GpuContext } from '../gpu.ts';
import { matmul_backward, matmul_forward } from '../kernels/matmul.ts';
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

/** Y (M, out) (+)= X (M, in) · Wᵀ; `projection` (the training runner's) lets the int8 choice apply. */
export function base_linear_forward(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: BaseLinear, M: number, accumulate = false, projection?: Projection): void {
  if (W.kind === 'dense') matmul_forward(ctx, Y, X, W.buffer, M, W.out, W.in, { accumulate, wStorage: W.storage });
  else nf4_matmul_forward(ctx, Y, X, W.weight, M, { accumulate, int8: int8For(ctx.baseMatmul, projection) });
}

/** dX (M, in) (+)= dY (M, out) · W */
export function base_linear_backward(ctx: GpuContext, dX: GPUBuffer, dY: GPUBuffer, W: BaseLinear, M: number, accumulate = false, projection?: Projection): void {
  if (W.kind === 'dense') matmul_backward(ctx, dX, null, dY, dY, W.buffer, M, W.out, W.in, { accumulate, wStorage: W.storage });
  else nf4_matmul_backward(ctx, dX, dY, W.weight, M, { accumulate, int8: int8For(ctx.baseMatmul, projection) });
}
