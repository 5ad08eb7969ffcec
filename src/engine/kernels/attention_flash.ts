// The register-tiled, GQA-grouped attention forward (shaders/attention_flash.wgsl): FlashAttention-2's forward in
// WGSL under WebGPU's default limits (≤ 16 KiB of workgroup memory, 128 invocations). Same contract as
// attention_forward in attention.ts (same buffers, same lse), so attention_backward consumes its output unchanged.
// Its backward (attention_flash_backward: a dK/dV kernel over key blocks and a dQ kernel over query blocks, both
// recomputing P from lse) sits beside it and follows the same contract as attention.wgsl's dk/dv and dq passes.
// Selected by GpuContextOptions.attention = 'tiled', which a run on a GPU chooses where its kernel measurement says so
// (14× the row-split forward on the H200, docs/benchmarks.md); not the default, which must run on any adapter first.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';

const MAX_HD = 128;
/** Query rows per workgroup (shader constant R): positions × the heads of one KV group; also keys per dk/dv block. */
const ROWS = 32;
/** f32 slots of the shared region a V chunk goes through (shader: `U`). */
const V_CHUNK_FLOATS = 1664;
const TILE_KEYS = 64;

export interface FlashLayout {
  /** Query heads per KV head. */
  G: number;
  /** Query positions per workgroup (QP·G ≤ 32). */
  QP: number;
  /** Keys per V chunk: a power of two ≤ 64 with VK·hd ≤ 1664. */
  VK: number;
}

/** The workgroup's shape for a head layout; throws for shapes the kernel does not cover. */
export function flashLayout(nH: number, nKV: number, hd: number): FlashLayout {
  if (hd % 4 !== 0 || hd < 4 || hd > MAX_HD) throw new FinetuneError('internal', `attention: head_dim ${hd} must be a multiple of 4 in [4, ${MAX_HD}]`);
  if (nKV < 1 || nH % nKV !== 0) throw new FinetuneError('internal', `attention: ${nH} query heads are not a multiple of ${nKV} kv heads`);
  const G = nH / nKV;
  if (G > ROWS) throw new FinetuneError('internal', `attention (tiled): ${G} query heads per KV head, at most ${ROWS}`);
  let VK = TILE_KEYS;
  while (VK * hd > V_CHUNK_FLOATS) VK /= 2;
  return { G, QP: Math.floor(ROWS / G), VK };
}

/**
 * out (BT, nH·hd), lse (BT·nH f32, in nats, saved for backward) = causal GQA attention of q (BT, nH·hd), k, v
 * (BT, nKV·hd) under the segment mask seg (BT u32). Same result as attention_forward up to rounding.
 */
export function attention_forward_tiled(
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
  const l = flashLayout(nH, nKV, hd);
  if (B < 1 || T < 1) throw new FinetuneError('internal', `attention: empty batch (B ${B}, T ${T})`);
  // With subgroups, the row max of the online softmax is shuffled within subgroups instead of going through
  // workgroup memory (the same bits: shaders/attention_flash.wgsl).
  const defines = { SUBGROUPS: ctx.subgroupsInUse };
  ctx.dispatch({ shader: 'attention_flash', entry: 'forward', defines, constants: constants(l, hd) }, [q, k, v, seg, out, lse], params(B, T, nH, nKV, hd), [
    Math.ceil(T / l.QP),
    nKV,
    B,
  ]);
}

/**
 * Floats of dS the tiled backward keeps for one KV head's group of query heads (DS_SPILL in the shader): per batch row
 * and head the causal lower triangle in whole 32-key blocks, 512·c·(c + 1) floats for c = ⌈T/32⌉ blocks of queries
 * (T²/2 + 16·T when T is a multiple of 32).
 */
export function attentionSpillGroupFloats(B: number, T: number, nH: number, nKV: number): number {
  const c = Math.ceil(T / 32);
  return B * (nH / nKV) * 512 * c * (c + 1);
}

/**
 * The tiled backward's two kernels: dk, dv (BT, nKV·hd), then dq (BT, nH·hd), all overwritten, from dout, the
 * row statistics `stats` = [lse | D | seg] (the forward's lse and D = rowsum(dout·out), BT·nH f32 each, then the
 * segment ids, BT u32, written by the caller: attention_backward's first pass and a copy).
 * One workgroup per 32 keys of a KV head for dk/dv, per query block (as the forward) for dq: no atomics.
 * With `spill` (a scratch of at least attentionSpillGroupFloats floats) the dk/dv kernel also writes dS there and dq
 * reads it back instead of recomputing S, P and dP: 5 products instead of 7, dq the same bits. The two kernels then
 * run once per chunk of as many KV heads as the scratch holds.
 */
export function attention_flash_backward(
  ctx: GpuContext,
  dq: GPUBuffer, // (BT, nH·hd)
  dk: GPUBuffer, // (BT, nKV·hd)
  dv: GPUBuffer, // (BT, nKV·hd)
  dout: GPUBuffer, // (BT, nH·hd)
  stats: GPUBuffer, // (2, BT, nH): lse, then D
  q: GPUBuffer,
  k: GPUBuffer,
  v: GPUBuffer,
  seg: GPUBuffer, // (BT) u32
  B: number,
  T: number,
  nH: number,
  nKV: number,
  hd: number,
  spill?: GPUBuffer,
): void {
  const l = flashLayout(nH, nKV, hd);
  if (B < 1 || T < 1) throw new FinetuneError('internal', `attention: empty batch (B ${B}, T ${T})`);
  const groupBytes = 4 * attentionSpillGroupFloats(B, T, nH, nKV);
  // Every dS index is a u32 count of floats: a chunk stays below 2³² of them.
  const chunk = spill ? Math.min(nKV, Math.floor(spill.size / groupBytes), Math.floor((2 ** 32 - 1) / (groupBytes / 4))) : 0;
  if (chunk > 0 && spill) {
    const spec = { shader: 'attention_flash', defines: { DS_SPILL: true }, constants: constants(l, hd) };
    for (let kv0 = 0; kv0 < nKV; kv0 += chunk) {
      const n = Math.min(chunk, nKV - kv0);
      const u = params(B, T, nH, nKV, hd, kv0, chunk);
      ctx.dispatch({ ...spec, entry: 'backward_dkv' }, [q, k, v, spill, dout, stats, dk, dv], u, [Math.ceil(T / ROWS), n, B]);
      ctx.dispatch({ ...spec, entry: 'backward_dq' }, [spill, k, dq, seg], u, [Math.ceil(T / l.QP), n, B]);
    }
    return;
  }
  const u = params(B, T, nH, nKV, hd);
  ctx.dispatch({ shader: 'attention_flash', entry: 'backward_dkv', constants: constants(l, hd) }, [q, k, v, seg, dout, stats, dk, dv], u, [
    Math.ceil(T / ROWS),
    nKV,
    B,
  ]);
  ctx.dispatch({ shader: 'attention_flash', entry: 'backward_dq', constants: constants(l, hd) }, [q, k, v, seg, dout, stats, dq], u, [
    Math.ceil(T / l.QP),
    nKV,
    B,
  ]);
}

function constants(l: FlashLayout, hd: number): Record<string, number> {
  return { HD: hd, G: l.G, QP: l.QP, VK: l.VK };
}

/**
 * The shader's Params: B, T, nH, nKV, log2(e)/√hd (scores in the log2 domain), 1/√hd (dq and dk), and the backward's
 * KV chunk when dS is spilled (first KV head, KV heads the scratch holds).
 */
function params(B: number, T: number, nH: number, nKV: number, hd: number, kv0 = 0, chunkKV = nKV): ArrayBuffer {
  const u = new ArrayBuffer(32);
  const u32 = new Uint32Array(u);
  const f32 = new Float32Array(u);
  u32[0] = B;
  u32[1] = T;
  u32[2] = nH;
  u32[3] = nKV;
  f32[4] = Math.LOG2E / Math.sqrt(hd);
  f32[5] = 1 / Math.sqrt(hd);
  u32[6] = kv0;
  u32[7] = chunkKV;
  return u;
}
