// RMSNorm forward and backward (shaders/norm.wgsl), llm.c style. The norm weight is frozen in QLoRA: no dw.

import type { GpuContext } from '../gpu.ts';
import { grid1d, requireBytes } from './elementwise.ts';

function params(BT: number, C: number, eps: number): ArrayBuffer {
  const u = new ArrayBuffer(16);
  const u32 = new Uint32Array(u);
  u32[0] = BT;
  u32[1] = C;
  new Float32Array(u)[2] = eps;
  return u;
}

/**
 * out (BT, C) = x · rstd · w, with rstd (BT) = 1 / sqrt(mean(x²) + eps) saved for the backward.
 * out must not be x (the backward needs x).
 */
export function rmsnorm_forward(ctx: GpuContext, out: GPUBuffer, rstd: GPUBuffer, x: GPUBuffer, w: GPUBuffer, BT: number, C: number, eps: number): void {
  if (BT === 0) return;
  requireBytes(out, BT * C * 4, 'rmsnorm_forward out');
  requireBytes(rstd, BT * 4, 'rmsnorm_forward rstd');
  requireBytes(x, BT * C * 4, 'rmsnorm_forward x');
  requireBytes(w, C * 4, 'rmsnorm_forward w');
  ctx.dispatch({ shader: 'norm' }, [out, rstd, x, w], params(BT, C, eps), grid1d(BT, 1));
}

export interface RmsnormBackwardOptions {
  /** dx += instead of dx = (the residual stream's gradient accumulates). */
  accumulate?: boolean;
}

/**
 * dx (BT, C) (+)= d(out)/d(x)ᵀ · dout (BT, C), from x (BT, C), w (C) and the forward's rstd (BT).
 * dx must be a different buffer from dout and x.
 */
export function rmsnorm_backward(
  ctx: GpuContext,
  dx: GPUBuffer,
  dout: GPUBuffer,
  x: GPUBuffer,
  w: GPUBuffer,
  rstd: GPUBuffer,
  BT: number,
  C: number,
  o: RmsnormBackwardOptions = {},
): void {
  if (BT === 0) return;
  for (const [b, n, name] of [
    [dx, BT * C, 'dx'],
    [dout, BT * C, 'dout'],
    [x, BT * C, 'x'],
    [w, C, 'w'],
    [rstd, BT, 'rstd'],
  ] as const) {
    requireBytes(b, n * 4, `rmsnorm_backward ${name}`);
  }
  ctx.dispatch(
    { shader: 'norm', defines: { BACKWARD: true, ACCUMULATE: Boolean(o.accumulate) } },
    [dx, dout, x, w, rstd],
    params(BT, C, 0),
    grid1d(BT, 1),
  );
}
