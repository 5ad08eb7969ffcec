// Uniform random fill on the GPU (shaders/random.wgsl), for benchmark weights. Not used in training.

import type { GpuContext } from '../gpu.ts';
import { grid1d } from './elementwise.ts';

/** out (n) f32 = uniform in [-scale, scale), a pure function of (seed, index). */
export function fill_uniform(ctx: GpuContext, out: GPUBuffer, n: number, scale: number, seed: number): void {
  const [x, y] = grid1d(n);
  const u = new ArrayBuffer(32);
  new Uint32Array(u).set([n, seed >>> 0, x]);
  new Float32Array(u)[4] = scale;
  ctx.dispatch({ shader: 'random' }, [out], u, [x, y]);
}

/** out (n/2 u32) = n uniform values in [-scale, scale) as bf16 pairs (low half first); n even. */
export function fill_uniform_bf16(ctx: GpuContext, out: GPUBuffer, n: number, scale: number, seed: number): void {
  const [x, y] = grid1d(n / 2);
  const u = new ArrayBuffer(32);
  new Uint32Array(u).set([n, seed >>> 0, x]);
  new Float32Array(u)[4] = scale;
  ctx.dispatch({ shader: 'random', entry: 'bf16_pairs' }, [out], u, [x, y]);
}
