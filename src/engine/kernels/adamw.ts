// The optimizer on the GPU (shaders/adamw.wgsl): global gradient-norm clipping as torch.nn.utils.clip_grad_norm_
// and torch.optim.AdamW, with nothing read back per step. A step is
//   grad_norm_sq(ctx, partials, grads)       Σ g² of every trainable gradient, one partial per 4096 elements
//   clip_scale(ctx, clip, partials, maxNorm) clip = [scale, norm] on the GPU (read `norm` back only to report it)
//   adamw_step(ctx, p, g, m, v, clip, n, …)  per parameter buffer, or once over each chunk of an arena
// Dispatch count matters with hundreds of LoRA tensors: GpuLora (mistral/lora.ts) keeps all LoRA parameters,
// gradients and moments in chunked arenas, so each phase is one dispatch per chunk (GradSlice.offset still addresses
// a tensor inside a buffer for callers that want one).

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { grid1d, requireBytes, WG } from './elementwise.ts';

/** Elements summed per workgroup (one partial each) by grad_norm_sq. */
export const NORM_CHUNK = 4096;

/** A gradient tensor: n f32 elements starting at element `offset` (default 0) of `buffer`. */
export interface GradSlice {
  buffer: GPUBuffer;
  n: number;
  offset?: number;
}

/** Where grad_norm_sq leaves its partial sums: `slots` f32 values in `buffer`, laid out for one list of gradients. */
export interface GradNormPartials {
  buffer: GPUBuffer;
  slots: number;
}

/** Partial slots needed for `grads`: one per NORM_CHUNK elements of each. */
export function gradNormSlots(grads: readonly GradSlice[]): number {
  return grads.reduce((s, g) => s + Math.ceil(g.n / NORM_CHUNK), 0);
}

/** Allocates the partials buffer for this list of gradients (category 'optimizer'). */
export function createGradNormPartials(ctx: GpuContext, grads: readonly GradSlice[]): GradNormPartials {
  const slots = gradNormSlots(grads);
  return { buffer: ctx.createBuffer('grad norm partials', Math.max(1, slots) * 4, 'optimizer'), slots };
}

/**
 * Writes Σ g² over all `grads` into partials (one slot per NORM_CHUNK elements, in list order): the sum of all
 * slots is the squared global L2 norm. `partials` must have been made for the same list (its slot count is checked).
 */
export function grad_norm_sq(ctx: GpuContext, partials: GradNormPartials, grads: readonly GradSlice[]): void {
  const slots = gradNormSlots(grads);
  if (slots !== partials.slots) {
    throw new FinetuneError('internal', `grad_norm_sq: partials hold ${partials.slots} slots, these gradients need ${slots}`);
  }
  requireBytes(partials.buffer, slots * 4, 'grad_norm_sq partials');
  let slot0 = 0;
  for (const g of grads) {
    if (g.n === 0) continue;
    const offset = g.offset ?? 0;
    requireBytes(g.buffer, (offset + g.n) * 4, 'grad_norm_sq gradient');
    const u = new Uint32Array([g.n, offset, slot0, 0]);
    ctx.dispatch({ shader: 'adamw', defines: { SUMSQ: true } }, [partials.buffer, g.buffer], u, grid1d(g.n, NORM_CHUNK));
    slot0 += Math.ceil(g.n / NORM_CHUNK);
  }
}

/**
 * clip (2 f32) = [scale, norm]: norm = sqrt(Σ partials), scale = min(1, maxNorm / (norm + 1e-6)) as
 * torch.nn.utils.clip_grad_norm_ (maxNorm ≤ 0 disables clipping: scale 1, the norm is still computed).
 */
export function clip_scale(ctx: GpuContext, clip: GPUBuffer, partials: GradNormPartials, maxNorm: number): void {
  requireBytes(clip, 8, 'clip_scale output');
  requireBytes(partials.buffer, partials.slots * 4, 'clip_scale partials');
  const u = new ArrayBuffer(16);
  new Uint32Array(u)[0] = partials.slots;
  new Float32Array(u)[1] = maxNorm;
  ctx.dispatch({ shader: 'adamw', defines: { CLIP: true } }, [clip, partials.buffer], u, [1]);
}

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The 1-based step number t of the bias corrections 1 − β^t. */
  step: number;
}

/**
 * One torch.optim.AdamW step over n elements: param, m, v (n f32, m and v start at zero) updated in place from
 * grad (n f32) multiplied by clip[0] (the clip_scale output; null = no clipping). All four buffers distinct.
 */
export function adamw_step(ctx: GpuContext, param: GPUBuffer, grad: GPUBuffer, m: GPUBuffer, v: GPUBuffer, clip: GPUBuffer | null, n: number, o: AdamWOptions): void {
  if (!(Number.isInteger(o.step) && o.step >= 1)) throw new FinetuneError('internal', `adamw_step: step must be an integer ≥ 1, got ${o.step}`);
  if (new Set([param, grad, m, v]).size !== 4) throw new FinetuneError('internal', 'adamw_step: param, grad, m and v must be distinct buffers');
  if (n === 0) return;
  for (const b of [param, grad, m, v]) requireBytes(b, n * 4, 'adamw_step');
  if (clip) requireBytes(clip, 4, 'adamw_step clip');
  const u = new ArrayBuffer(32);
  new Uint32Array(u)[0] = n;
  const f = new Float32Array(u);
  f[1] = 1 - o.lr * o.weightDecay;
  f[2] = 1 - o.beta1;
  f[3] = o.beta2;
  f[4] = 1 - o.beta2;
  f[5] = o.lr / (1 - o.beta1 ** o.step);
  f[6] = Math.sqrt(1 - o.beta2 ** o.step);
  f[7] = o.eps;
  const buffers = clip ? [param, m, v, grad, clip] : [param, m, v, grad];
  ctx.dispatch({ shader: 'adamw', defines: clip ? { SCALE: true } : undefined }, buffers, u, grid1d(n, WG));
}
