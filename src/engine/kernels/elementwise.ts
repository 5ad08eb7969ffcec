// Elementwise kernels between the big products of a transformer block (shaders/elementwise.wgsl), plus the
// launch helpers the other elementwise families share: a 2-D grid for any element count, and size checks.

import { FinetuneError } from '../../core/errors.ts';
import { sliceBuffer, sliceBytes, type BufferSlice } from '../buffer-slice.ts';
import type { GpuContext } from '../gpu.ts';

/** Threads per workgroup of every 1-D elementwise kernel in this folder. */
export const WG = 256;
const MAX_WG_PER_AXIS = 65535;

/**
 * Workgroups for `n` independent items, `perGroup` per workgroup, as an (x, y) grid with each axis ≤ 65535.
 * The shader recovers the flat workgroup index as wg.y · num_workgroups.x + wg.x (and must bounds-check it:
 * the grid may hold a few more workgroups than needed).
 */
export function grid1d(n: number, perGroup = WG): [number, number] {
  const groups = Math.ceil(n / perGroup);
  if (groups <= MAX_WG_PER_AXIS) return [groups, 1];
  const y = Math.ceil(groups / MAX_WG_PER_AXIS);
  if (y > MAX_WG_PER_AXIS) throw new FinetuneError('internal', `${n} items need more than 65535² workgroups`);
  return [Math.ceil(groups / y), y];
}

/**
 * Throws unless `buf` (a buffer or a slice of one) holds at least `bytes` bytes: a short buffer would be read or
 * written out of range silently (and a short slice would spill into its arena neighbour).
 */
export function requireBytes(buf: BufferSlice, bytes: number, what: string): void {
  if (sliceBytes(buf) < bytes) {
    const kind = buf === sliceBuffer(buf) ? 'buffer' : 'slice of';
    throw new FinetuneError('internal', `${what}: ${kind} "${sliceBuffer(buf).label}" has ${sliceBytes(buf)} bytes, needs ${bytes}`);
  }
}

/**
 * Throws unless M is a row count whose blocks of `block` rows fit one grid axis (65535 workgroups): the products that
 * put M's blocks on the grid's y axis (nf4_matmul, int8_matmul).
 */
export function requireRowBlocks(M: number, block: number, what: string): void {
  if (!Number.isInteger(M) || M < 0) throw new FinetuneError('internal', `${what}: M = ${M} is not a row count`);
  if (Math.ceil(M / block) > MAX_WG_PER_AXIS) throw new FinetuneError('internal', `${what}: M = ${M} is over ${MAX_WG_PER_AXIS * block} rows`);
}

function params(n: number, alpha: number): ArrayBuffer {
  const u = new ArrayBuffer(16);
  new Uint32Array(u)[0] = n;
  new Float32Array(u)[1] = alpha;
  return u;
}

function run(ctx: GpuContext, entry: string, buffers: GPUBuffer[], n: number, alpha: number): void {
  if (n === 0) return;
  for (const b of buffers) requireBytes(b, n * 4, `elementwise ${entry}`);
  ctx.dispatch({ shader: 'elementwise', entry }, buffers, params(n, alpha), grid1d(n));
}

/** out (n) = a (n) + b (n). Any of the three may be the same buffer (out === a is the in-place residual add). */
export function add(ctx: GpuContext, out: GPUBuffer, a: GPUBuffer, b: GPUBuffer, n: number): void {
  if (out === a && out === b) scale(ctx, out, out, 2, n);
  else if (out === a) run(ctx, 'axpy', [out, b], n, 1);
  else if (out === b) run(ctx, 'axpy', [out, a], n, 1);
  else run(ctx, 'add', [out, a, b], n, 0);
}

/** out (n) += alpha · x (n): gradient accumulation and residual adds. out and x must differ. */
export function axpy(ctx: GpuContext, out: GPUBuffer, x: GPUBuffer, alpha: number, n: number): void {
  if (out === x) scale(ctx, out, out, 1 + alpha, n);
  else run(ctx, 'axpy', [out, x], n, alpha);
}

/** out (n) = alpha · x (n); in place when out === x. */
export function scale(ctx: GpuContext, out: GPUBuffer, x: GPUBuffer, alpha: number, n: number): void {
  if (out === x) run(ctx, 'scale_inplace', [out], n, alpha);
  else run(ctx, 'scale', [out, x], n, alpha);
}

/** out (n) = value. (ctx.clear is cheaper for zeros.) */
export function fill(ctx: GpuContext, out: GPUBuffer, value: number, n: number): void {
  run(ctx, 'fill', [out], n, value);
}

/** out[outOffset .. +n) = x[xOffset .. +n), offsets and n in f32 elements (a buffer copy, recorded in order). */
export function copy(ctx: GpuContext, out: GPUBuffer, x: GPUBuffer, n: number, outOffset = 0, xOffset = 0): void {
  if (n === 0) return;
  if (out === x) throw new FinetuneError('internal', 'elementwise copy: source and destination are the same buffer');
  requireBytes(out, (outOffset + n) * 4, 'elementwise copy');
  requireBytes(x, (xOffset + n) * 4, 'elementwise copy');
  ctx.copy(x, xOffset * 4, out, outOffset * 4, n * 4);
}
