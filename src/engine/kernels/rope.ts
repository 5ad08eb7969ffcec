// Rotary position embedding (shaders/rope.wgsl), HF's non-interleaved rotate_half convention, forward and backward.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { grid1d, requireBytes } from './elementwise.ts';

/**
 * The cos/sin table of RoPE, computed in float64 and stored f32: `2 · maxPos · half` values, half = hd/2,
 *   table[p·half + i]                  = cos(p · f_i)
 *   table[maxPos·half + p·half + i]    = sin(p · f_i),      f_i = theta^(−2i/hd),  0 ≤ p < maxPos, 0 ≤ i < half.
 * HF computes inv_freq and the angles in fp32 instead (inv_freq = 1/theta^(float(2i)/hd), angle = fp32(p · inv_freq),
 * then cos/sin in fp32). That rounds the angle to an fp32 ulp of p·f_i, so the two tables drift apart as p grows:
 * for hd = 128, theta = 1e6 the largest |difference| of a table entry (HF emulated with Math.fround, see
 * ropeTableHfFp32 and test/gpu/rope.test.ts) is 1.4e-4 for p < 2048 and 2.3e-3 for p < 32768, i.e. of the order of
 * the angle's fp32 rounding, maxPos · 2⁻²⁴ (cos/sin values of magnitude ≤ 1). The float64 table is the exact function;
 * the goldens in test/fixtures were computed in float64, so they agree with it rather than with HF's fp32 run.
 */
export function ropeTable(maxPos: number, hd: number, theta: number): Float32Array {
  if (hd % 2 !== 0) throw new FinetuneError('internal', `RoPE needs an even head_dim, got ${hd}`);
  const half = hd / 2;
  const table = new Float32Array(2 * maxPos * half);
  const freq = Array.from({ length: half }, (_, i) => theta ** ((-2 * i) / hd));
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * freq[i];
      table[p * half + i] = Math.cos(a);
      table[(maxPos + p) * half + i] = Math.sin(a);
    }
  }
  return table;
}

/** The uniform block both variants read: sizes, the table's length in positions, the sine's sign (checked first). */
function ropeUniforms(table: GPUBuffer, pos: GPUBuffer, BT: number, hd: number, sinSign: number, what: string): { u: ArrayBuffer; u32: Uint32Array; half: number } {
  if (hd % 2 !== 0) throw new FinetuneError('internal', `${what}: head_dim ${hd} is odd`);
  requireBytes(pos, BT * 4, `${what} pos`);
  const maxPos = Math.floor(table.size / (hd * 4));
  if (maxPos === 0) throw new FinetuneError('internal', `${what}: the table "${table.label}" is too small for head_dim ${hd}`);
  const u = new ArrayBuffer(32);
  const u32 = new Uint32Array(u);
  u32[2] = hd / 2;
  u32[3] = maxPos;
  new Float32Array(u)[4] = sinSign;
  return { u, u32, half: hd / 2 };
}

function launch(ctx: GpuContext, sinSign: number, out: GPUBuffer, x: GPUBuffer, pos: GPUBuffer, table: GPUBuffer, BT: number, nHeads: number, hd: number, what: string): void {
  const { u, u32, half } = ropeUniforms(table, pos, BT, hd, sinSign, what);
  const pairs = BT * nHeads * half;
  if (pairs === 0) return;
  requireBytes(out, BT * nHeads * hd * 4, `${what} out`);
  requireBytes(x, BT * nHeads * hd * 4, `${what} x`);
  u32[0] = pairs;
  u32[1] = nHeads;
  const inplace = out === x;
  ctx.dispatch({ shader: 'rope', defines: { INPLACE: inplace } }, inplace ? [out, pos, table] : [out, x, pos, table], u, grid1d(pairs));
}

/**
 * q (BT, nQ·hd) and k (BT, nK·hd) rotated in place at the same positions, in one dispatch (a layer's query and key
 * projections): the same bits as two rope_forward / rope_backward calls (sinSign +1 forward, −1 backward).
 */
function launchPair(ctx: GpuContext, sinSign: number, q: GPUBuffer, k: GPUBuffer, pos: GPUBuffer, table: GPUBuffer, BT: number, nQ: number, nK: number, hd: number, what: string): void {
  if (q === k) throw new FinetuneError('internal', `${what}: q and k must be different buffers`);
  const { u, u32, half } = ropeUniforms(table, pos, BT, hd, sinSign, what);
  const pairsQ = BT * nQ * half;
  const pairs = pairsQ + BT * nK * half;
  if (pairs === 0) return;
  requireBytes(q, BT * nQ * hd * 4, `${what} q`);
  requireBytes(k, BT * nK * hd * 4, `${what} k`);
  u32[0] = pairs;
  u32[1] = nQ;
  u32[5] = nK;
  u32[6] = pairsQ;
  ctx.dispatch({ shader: 'rope', defines: { PAIR: true } }, [q, k, pos, table], u, grid1d(pairs));
}

/** q and k (BT, nQ·hd), (BT, nK·hd) = rope of themselves at positions pos, in place, one dispatch. */
export function rope_forward_qk(ctx: GpuContext, q: GPUBuffer, k: GPUBuffer, pos: GPUBuffer, table: GPUBuffer, BT: number, nQ: number, nK: number, hd: number): void {
  launchPair(ctx, 1, q, k, pos, table, BT, nQ, nK, hd, 'rope_forward_qk');
}

/** dq and dk through the transposed rotation, in place, one dispatch. */
export function rope_backward_qk(ctx: GpuContext, dq: GPUBuffer, dk: GPUBuffer, pos: GPUBuffer, table: GPUBuffer, BT: number, nQ: number, nK: number, hd: number): void {
  launchPair(ctx, -1, dq, dk, pos, table, BT, nQ, nK, hd, 'rope_backward_qk');
}

/**
 * out (BT, nHeads·hd) = rope(x (BT, nHeads·hd)) at positions pos (BT, u32); table from ropeTable(maxPos, hd, theta)
 * (maxPos is read from the table's size). out === x works in place. A position ≥ maxPos yields NaN.
 */
export function rope_forward(ctx: GpuContext, out: GPUBuffer, x: GPUBuffer, pos: GPUBuffer, table: GPUBuffer, BT: number, nHeads: number, hd: number): void {
  launch(ctx, 1, out, x, pos, table, BT, nHeads, hd, 'rope_forward');
}

/** dx (BT, nHeads·hd) = the transposed rotation of dout (BT, nHeads·hd); dx === dout works in place. */
export function rope_backward(ctx: GpuContext, dx: GPUBuffer, dout: GPUBuffer, pos: GPUBuffer, table: GPUBuffer, BT: number, nHeads: number, hd: number): void {
  launch(ctx, -1, dx, dout, pos, table, BT, nHeads, hd, 'rope_backward');
}
