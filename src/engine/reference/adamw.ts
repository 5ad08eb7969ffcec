// Float64 reference of gradient clipping and AdamW (shaders/adamw.wgsl), written from torch's documented algorithm.

import type { Vec } from './common.ts';

/** torch.nn.utils.clip_grad_norm_'s coefficient: [scale, norm]; maxNorm ≤ 0 means no clipping. */
export function clipScaleRef(grads: readonly Vec[], maxNorm: number): { scale: number; norm: number } {
  let ss = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) ss += g[i] * g[i];
  const norm = Math.sqrt(ss);
  return { norm, scale: maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1 };
}

export interface AdamWRefOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

/** One AdamW step in place on float64 param, m, v, with the gradient multiplied by `scale`. */
export function adamwStepRef(param: Float64Array, grad: Vec, m: Float64Array, v: Float64Array, o: AdamWRefOptions, scale = 1): void {
  const bc1 = 1 - o.beta1 ** o.step;
  const bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i] * scale;
    param[i] *= 1 - o.lr * o.weightDecay;
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * g;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * g * g;
    param[i] -= (o.lr / bc1) * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + o.eps));
  }
}
