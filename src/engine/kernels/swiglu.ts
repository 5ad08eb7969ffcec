// SwiGLU forward and backward (shaders/swiglu.wgsl): h = silu(gate) · up, elementwise over the MLP's
// (BT, intermediate) activations.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { grid1d, requireBytes } from './elementwise.ts';

function params(n: number): ArrayBuffer {
  const u = new ArrayBuffer(16);
  new Uint32Array(u)[0] = n;
  return u;
}

/** h (n) = silu(gate (n)) · up (n). h must be a new buffer (the backward needs gate and up). */
export function swiglu_forward(ctx: GpuContext, h: GPUBuffer, gate: GPUBuffer, up: GPUBuffer, n: number): void {
  if (n === 0) return;
  if (h === gate || h === up) throw new FinetuneError('internal', 'swiglu_forward: h must not alias gate or up');
  for (const b of [h, gate, up]) requireBytes(b, n * 4, 'swiglu_forward');
  ctx.dispatch({ shader: 'swiglu' }, [h, gate, up], params(n), grid1d(n));
}

/**
 * dgate (n) = dh · up · σ(g)(1 + g(1 − σ(g))), dup (n) = dh · silu(g), from dh, gate, up (n). Overwrites (these
 * feed the frozen projections' input gradients). dgate may be dh itself (in place: each element's dh is read before
 * its dgate is written, and the runner needs dh no more), which saves the MLP's backward one N × I buffer; otherwise
 * dgate and dup are distinct from each other and from every input.
 */
export function swiglu_backward(ctx: GpuContext, dgate: GPUBuffer, dup: GPUBuffer, dh: GPUBuffer, gate: GPUBuffer, up: GPUBuffer, n: number): void {
  if (n === 0) return;
  const inPlace = dgate === dh;
  const inputs = new Set([dh, gate, up]);
  if (dgate === dup || inputs.has(dup) || dgate === gate || dgate === up) {
    throw new FinetuneError('internal', 'swiglu_backward: dgate and dup must be distinct from each other and from the inputs (dgate may be dh: in place)');
  }
  for (const b of [dgate, dup, dh, gate, up]) requireBytes(b, n * 4, 'swiglu_backward');
  // WebGPU forbids binding one buffer both writable and read-only in a dispatch: the in-place variant binds dh once, writable.
  const buffers = inPlace ? [dh, dup, gate, up] : [dgate, dup, dh, gate, up];
  ctx.dispatch({ shader: 'swiglu', defines: { BACKWARD: true, IN_PLACE: inPlace } }, buffers, params(n), grid1d(n));
}
