// A frozen base linear layer, dense or NF4: the forward product and the input gradient (no weight gradient).

import type { GpuContext } from '../gpu.ts';
import { matmul_backward, matmul_forward } from '../kernels/matmul.ts';
import { nf4_matmul_backward, nf4_matmul_forward } from '../kernels/nf4_matmul.ts';
import type { BaseLinear } from './weights.ts';

/** Y (M, out) (+)= X (M, in) · Wᵀ */
export function base_linear_forward(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: BaseLinear, M: number, accumulate = false): void {
  if (W.kind === 'dense') matmul_forward(ctx, Y, X, W.buffer, M, W.out, W.in, { accumulate, wStorage: W.storage });
  else nf4_matmul_forward(ctx, Y, X, W.weight, M, { accumulate });
}

/** dX (M, in) (+)= dY (M, out) · W */
export function base_linear_backward(ctx: GpuContext, dX: GPUBuffer, dY: GPUBuffer, W: BaseLinear, M: number, accumulate = false): void {
  if (W.kind === 'dense') matmul_backward(ctx, dX, null, dY, dY, W.buffer, M, W.out, W.in, { accumulate, wStorage: W.storage });
  else nf4_matmul_backward(ctx, dX, dY, W.weight, M, { accumulate });
}
