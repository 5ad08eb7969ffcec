// Causal grouped-query attention (shaders/attention.wgsl), flash style: attention_forward and attention_backward side
// by side, outputs first, then what backward needs, then inputs, then dimensions.
//
// Layout: tokens flattened row-major, BT = B·T. q (BT, nH·hd) already rotated by RoPE; k, v (BT, nKV·hd);
// seg (BT u32) per-token segment ids (packed examples differ, padding is 0). Query i of row b attends key j of the same
// row iff j ≤ i, seg[b·T+j] == seg[b·T+i] and seg[b·T+i] != 0. Scale 1/sqrt(hd). lse (BT, nH) f32, in nats, 0 for
// padding queries (whose output is zero and which receive and pass no gradient).
//
// Backward runs three passes (see the shader): the row statistics [lse | D] with D = rowsum(dout·out), then dk/dv
// with one workgroup per key block of a kv head looping over all query heads of its group (each dk/dv row has one
// writer: no races, no atomics), then dq with one workgroup per query block. Results overwrite dq, dk, dv. With
// ctx.attention 'tiled' the last two passes are attention_flash.wgsl's register-tiled ones (same buffers, same
// statistics); the statistics pass and the scratch are shared.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { attention_flash_backward, attention_forward_tiled } from './attention_flash.ts';

const MAX_HD = 128;

interface Layout {
  HD: number;
  DPT: number;
  WG: number;
  rows: number;
}

/** Largest dims-per-thread ≤ maxDpt (a multiple of 4) dividing hd. */
function dimsPerThread(hd: number, maxDpt: number): number {
  for (let d = Math.min(maxDpt, hd); d >= 4; d -= 4) if (hd % d === 0) return d;
  return 4;
}

/** Forward and dq: up to 32 dims per thread, at most 128 threads, at most 64 query rows per workgroup. */
function queryLayout(hd: number): Layout {
  const DPT = dimsPerThread(hd, 32);
  const parts = hd / DPT;
  const rows = Math.min(64, Math.floor(128 / parts));
  return { HD: hd, DPT, WG: rows * parts, rows };
}

/** dk/dv: four register arrays per thread, so up to 16 dims per thread, at most 256 threads, 64 key rows. */
function keyLayout(hd: number): Layout {
  const DPT = dimsPerThread(hd, 16);
  const parts = hd / DPT;
  const rows = Math.min(64, Math.floor(256 / parts));
  return { HD: hd, DPT, WG: rows * parts, rows };
}

function check(B: number, T: number, nH: number, nKV: number, hd: number): void {
  if (hd % 4 !== 0 || hd < 4 || hd > MAX_HD) throw new FinetuneError('internal', `attention: head_dim ${hd} must be a multiple of 4 in [4, ${MAX_HD}]`);
  if (nKV < 1 || nH % nKV !== 0) throw new FinetuneError('internal', `attention: ${nH} query heads are not a multiple of ${nKV} kv heads`);
  if (B < 1 || T < 1) throw new FinetuneError('internal', `attention: empty batch (B ${B}, T ${T})`);
}

function params(B: number, T: number, nH: number, nKV: number, hd: number, n = 0, nx = 0): ArrayBuffer {
  const u = new ArrayBuffer(32);
  const u32 = new Uint32Array(u);
  const f32 = new Float32Array(u);
  u32[0] = B;
  u32[1] = T;
  u32[2] = nH;
  u32[3] = nKV;
  f32[4] = Math.LOG2E / Math.sqrt(hd);
  f32[5] = 1 / Math.sqrt(hd);
  u32[6] = n;
  u32[7] = nx;
  return u;
}

function constants(l: Layout): Record<string, number> {
  return { HD: l.HD, DPT: l.DPT, WG: l.WG };
}

/**
 * out (BT, nH·hd), lse (BT·nH f32, saved for backward) = causal GQA attention of q (BT, nH·hd), k, v (BT, nKV·hd)
 * under the segment mask seg (BT u32), by the kernel the context selects (`ctx.attention`: this file's 'rows', or
 * 'tiled' in attention_flash.ts). Both write the same out and lse, so attention_backward follows either.
 */
export function attention_forward(
  ctx: GpuContext,
  out: GPUBuffer,
  lse: GPUBuffer,
  q: GPUBuffer,
  k: GPUBuffer,
  v: GPUBuffer,
  seg: GPUBuffer,
  B: number,
  T: number,
  nH: number,
  nKV: number,
  hd: number,
): void {
  const forward = ctx.attention === 'tiled' ? attention_forward_tiled : attention_forward_rows;
  forward(ctx, out, lse, q, k, v, seg, B, T, nH, nKV, hd);
}

/** The row-split forward of shaders/attention.wgsl (`ctx.attention` 'rows', the default). */
export function attention_forward_rows(
  ctx: GpuContext,
  out: GPUBuffer, // (BT, nH·hd)
  lse: GPUBuffer, // (BT, nH)
  q: GPUBuffer, // (BT, nH·hd)
  k: GPUBuffer, // (BT, nKV·hd)
  v: GPUBuffer, // (BT, nKV·hd)
  seg: GPUBuffer, // (BT) u32
  B: number,
  T: number,
  nH: number,
  nKV: number,
  hd: number,
): void {
  check(B, T, nH, nKV, hd);
  const l = queryLayout(hd);
  ctx.dispatch({ shader: 'attention', entry: 'forward', constants: constants(l) }, [q, k, v, seg, out, lse], params(B, T, nH, nKV, hd), [
    Math.ceil(T / l.rows),
    nH,
    B,
  ]);
}

/**
 * Bytes of the scratch buffer attention_backward needs: the row statistics, lse and D (one f32 each per token and
 * head) side by side, then room for the segment ids (one u32 per token). lse is copied there beside D so that the key
 * pass binds one buffer for both and stays within the 8 storage buffers WebGPU guarantees; the tiled backward that
 * spills dS copies the segment ids there too, for the same reason (its key pass binds the dS scratch as well).
 */
export function attentionBackwardScratchBytes(B: number, T: number, nH: number): number {
  return (2 * nH + 1) * B * T * 4;
}

/**
 * dq (BT, nH·hd), dk, dv (BT, nKV·hd) — overwritten — from dout (BT, nH·hd) and the forward's out and lse, by the
 * backward the context selects (`ctx.attention`: this file's row-split passes for 'rows', attention_flash.wgsl's
 * tiled ones for 'tiled'). `scratch` (≥ attentionBackwardScratchBytes, the same for both) holds lse and D; without it a
 * temporary buffer is made, and the work recorded so far is submitted so that it can be freed. `spill`, a scratch for
 * the tiled backward's dS (attention_flash_backward: at least attentionSpillGroupFloats floats, else unused), saves it
 * two of its seven products; the row-split backward ignores it.
 */
export function attention_backward(
  ctx: GpuContext,
  dq: GPUBuffer, // (BT, nH·hd)
  dk: GPUBuffer, // (BT, nKV·hd)
  dv: GPUBuffer, // (BT, nKV·hd)
  dout: GPUBuffer, // (BT, nH·hd)
  out: GPUBuffer, // (BT, nH·hd)
  lse: GPUBuffer, // (BT, nH)
  q: GPUBuffer,
  k: GPUBuffer,
  v: GPUBuffer,
  seg: GPUBuffer, // (BT) u32
  B: number,
  T: number,
  nH: number,
  nKV: number,
  hd: number,
  scratch?: GPUBuffer,
  spill?: GPUBuffer,
): void {
  const backward = ctx.attention === 'tiled' ? attention_backward_tiled : attention_backward_rows;
  backward(ctx, dq, dk, dv, dout, out, lse, q, k, v, seg, B, T, nH, nKV, hd, scratch, spill);
}

type Backward = typeof attention_backward;

/** The row-split backward of shaders/attention.wgsl (`ctx.attention` 'rows', the default). */
export const attention_backward_rows: Backward = (ctx, dq, dk, dv, dout, out, lse, q, k, v, seg, B, T, nH, nKV, hd, scratch) => {
  withStats(ctx, dout, out, lse, B, T, nH, nKV, hd, scratch, (stats) => {
    const kl = keyLayout(hd);
    ctx.dispatch({ shader: 'attention', entry: 'backward_dkv', constants: constants(kl) }, [q, k, v, seg, dout, stats, dk, dv], params(B, T, nH, nKV, hd), [
      Math.ceil(T / kl.rows),
      nKV,
      B,
    ]);
    const ql = queryLayout(hd);
    ctx.dispatch({ shader: 'attention', entry: 'backward_dq', constants: constants(ql) }, [q, k, v, seg, dout, stats, dq], params(B, T, nH, nKV, hd), [
      Math.ceil(T / ql.rows),
      nH,
      B,
    ]);
  });
};

/**
 * The tiled backward of shaders/attention_flash.wgsl (`ctx.attention` 'tiled'): same buffers, same scratch; with
 * `spill` (and `ctx.attentionSpill` on), dS goes through it (5 products instead of 7) and the segment ids are copied
 * beside lse and D.
 */
export const attention_backward_tiled: Backward = (ctx, dq, dk, dv, dout, out, lse, q, k, v, seg, B, T, nH, nKV, hd, scratch, spill) => {
  withStats(ctx, dout, out, lse, B, T, nH, nKV, hd, scratch, (stats) => {
    const ds = ctx.attentionSpill ? spill : undefined;
    if (ds) ctx.copy(seg, 0, stats, 2 * B * T * nH * 4, B * T * 4);
    attention_flash_backward(ctx, dq, dk, dv, dout, stats, q, k, v, seg, B, T, nH, nKV, hd, ds);
  });
};

/**
 * Checks the shape, writes the row statistics [lse | D] (D = rowsum(dout·out)) into `scratch` (or a temporary), runs
 * `passes` with them.
 */
function withStats(
  ctx: GpuContext,
  dout: GPUBuffer,
  out: GPUBuffer,
  lse: GPUBuffer,
  B: number,
  T: number,
  nH: number,
  nKV: number,
  hd: number,
  scratch: GPUBuffer | undefined,
  passes: (stats: GPUBuffer) => void,
): void {
  check(B, T, nH, nKV, hd);
  const need = attentionBackwardScratchBytes(B, T, nH);
  if (scratch && scratch.size < need) throw new FinetuneError('internal', `attention_backward: scratch of ${scratch.size} bytes, needs ${need}`);
  const stats = scratch ?? ctx.createBuffer('attention lse and D', need, 'scratch');

  const n = B * T * nH;
  const groups = Math.ceil(n / 64);
  const nx = Math.min(groups, 65535);
  ctx.dispatch({ shader: 'attention', entry: 'dot_rows', constants: { HD: hd } }, [dout, out, lse, stats], params(B, T, nH, nKV, hd, n, nx), [
    nx,
    Math.ceil(groups / nx),
  ]);
  passes(stats);

  if (!scratch) {
    ctx.flush();
    ctx.destroy(stats);
  }
}
