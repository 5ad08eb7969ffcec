// Attention benchmark: the flash-style causal GQA kernels at one sequence (B = 1, one segment), forward and backward.
// FLOPs counted as the causal half of the two (T×T×hd) products per head: 2·2·T²/2·nH·hd forward, 2.5× that backward
// (the nominal flash-attention-2 count; our backward does 7 such products instead of 5, so its real work is higher).
// Both forwards run in the same process on the same inputs: the row-split one (shaders/attention.wgsl, the default)
// and the tiled one (shaders/attention_flash.wgsl), with the tiled one's rate as a multiple of the row-split one's.

import type { GpuContext } from '../engine/gpu.ts';
import { attention_backward, attention_forward_rows, attentionBackwardScratchBytes } from '../engine/kernels/attention.ts';
import { attention_forward_tiled } from '../engine/kernels/attention_flash.ts';
import { randomArray } from '../engine/reference/common.ts';
import { timeGpu } from './timing.ts';

export interface AttentionBenchOptions {
  T: number;
  nH: number;
  nKV: number;
  hd: number;
  minMs?: number;
}

export interface AttentionBenchResult {
  bench: 'attention';
  /** 'forward': the row-split kernel (the default); 'forward-tiled': the tiled one; 'backward': the one backward. */
  variant: 'forward' | 'forward-tiled' | 'backward';
  T: number;
  ms: number;
  gflops: number;
  /** forward-tiled only: its GFLOP/s over the row-split forward's, measured in this run. */
  vsRows?: number;
}

export async function* benchAttention(ctx: GpuContext, o: AttentionBenchOptions): AsyncGenerator<AttentionBenchResult> {
  const { T, nH, nKV, hd } = o;
  const B = 1;
  const qn = T * nH * hd;
  const kvn = T * nKV * hd;
  const q = ctx.upload('bench attn q', randomArray(qn, 1), 'scratch');
  const k = ctx.upload('bench attn k', randomArray(kvn, 2), 'scratch');
  const v = ctx.upload('bench attn v', randomArray(kvn, 3), 'scratch');
  const dout = ctx.upload('bench attn dout', randomArray(qn, 4), 'scratch');
  const seg = ctx.upload('bench attn seg', new Uint32Array(T).fill(1), 'scratch');
  const out = ctx.createBuffer('bench attn out', qn * 4, 'scratch');
  const lse = ctx.createBuffer('bench attn lse', T * nH * 4, 'scratch');
  const dq = ctx.createBuffer('bench attn dq', qn * 4, 'scratch');
  const dk = ctx.createBuffer('bench attn dk', kvn * 4, 'scratch');
  const dv = ctx.createBuffer('bench attn dv', kvn * 4, 'scratch');
  const scratch = ctx.createBuffer('bench attn scratch', attentionBackwardScratchBytes(B, T, nH), 'scratch');
  const fwdFlop = ((2 * 2 * T * T) / 2) * nH * hd;
  try {
    const fwd = await timeGpu(ctx, () => attention_forward_rows(ctx, out, lse, q, k, v, seg, B, T, nH, nKV, hd), { minMs: o.minMs });
    const rows = fwdFlop / (fwd.ms * 1e6);
    yield { bench: 'attention', variant: 'forward', T, ms: fwd.ms, gflops: rows };
    const tiled = await timeGpu(ctx, () => attention_forward_tiled(ctx, out, lse, q, k, v, seg, B, T, nH, nKV, hd), { minMs: o.minMs });
    const tiledRate = fwdFlop / (tiled.ms * 1e6);
    yield { bench: 'attention', variant: 'forward-tiled', T, ms: tiled.ms, gflops: tiledRate, vsRows: tiledRate / rows };
    const bwd = await timeGpu(ctx, () => attention_backward(ctx, dq, dk, dv, dout, out, lse, q, k, v, seg, B, T, nH, nKV, hd, scratch), {
      minMs: o.minMs,
    });
    yield { bench: 'attention', variant: 'backward', T, ms: bwd.ms, gflops: (2.5 * fwdFlop) / (bwd.ms * 1e6) };
  } finally {
    for (const b of [q, k, v, dout, seg, out, lse, dq, dk, dv, scratch]) ctx.destroy(b);
  }
}
