// Attention benchmark: the flash-style causal GQA kernels at one sequence (B = 1, one segment), forward and backward.
// FLOPs counted as the causal half of the two (T×T×hd) products per head: 2·2·T²/2·nH·hd forward, 2.5× that backward
// (the nominal flash-attention-2 count; our backward does 7 such products instead of 5, so its real work is higher).
// Both forwards and both backwards run in the same process on the same inputs: the row-split ones
// (shaders/attention.wgsl, the default) and the tiled ones (shaders/attention_flash.wgsl), each tiled rate also given
// as a multiple of its row-split counterpart's; where the device has subgroups, the tiled forward is timed a second
// time without them (its row max through workgroup memory). The tiled backward does the same 5 products as
// FlashAttention-2 plus the recomputation of S in both of its kernels (7 in all, as the row-split one); the nominal
// 2.5× count is kept. 'backward-tiled-spill' is the tiled backward passing dS through a scratch (5 products: the one
// a training run uses, when its dS scratch holds every KV head), timed beside 'backward-tiled' (`vsTiled`), which it
// equals to the bit (`sameBits`). The two a training run uses ('forward-tiled', 'backward-tiled-spill') are also timed
// in alternating rounds beside the plain fp32 product on the context's GEMM kernel at q_proj's shape for these tokens
// (T × nH·hd × nH·hd): `vsPlainMatmul`, issue #9's yardstick for attention (forward ≥ 0.40, backward ≥ 0.25), measured
// beside it rather than taken from another step's matmul line.

import type { GpuContext } from '../engine/gpu.ts';
import { attention_backward_rows, attention_backward_tiled, attention_forward_rows, attentionBackwardScratchBytes } from '../engine/kernels/attention.ts';
import { attention_forward_tiled, attentionSpillGroupFloats } from '../engine/kernels/attention_flash.ts';
import { gemm } from '../engine/kernels/matmul.ts';
import { randomArray } from '../engine/reference/common.ts';
import { benchTiming, rateRatio, timeGpu, timePaired, type Timing } from '../engine/timing.ts';

export interface AttentionBenchOptions {
  T: number;
  nH: number;
  nKV: number;
  hd: number;
  minMs?: number;
}

export interface AttentionBenchResult {
  bench: 'attention';
  /**
   * 'forward' / 'backward': the row-split kernels (the default); 'forward-tiled' / 'backward-tiled': the tiled ones;
   * 'forward-tiled-without-subgroups' (only where the device has subgroups): the tiled forward with its row max
   * through workgroup memory instead of subgroup shuffles; 'backward-tiled-spill': the tiled backward with dS through a
   * scratch of every KV head (5 products instead of 7).
   */
  variant: 'forward' | 'forward-tiled' | 'forward-tiled-without-subgroups' | 'backward' | 'backward-tiled' | 'backward-tiled-spill';
  T: number;
  ms: number;
  gflops: number;
  /** The tiled variants only: GFLOP/s over the row-split counterpart's (forward or backward), measured in this run. */
  vsRows?: number;
  /** The tiled forward lines: whether its row max used subgroup shuffles. */
  subgroups?: boolean;
  /** 'forward-tiled-without-subgroups': its GFLOP/s over the 'forward-tiled' line's (with subgroups), this run. */
  vsSubgroups?: number;
  /** 'backward-tiled-spill': its GFLOP/s over the 'backward-tiled' line's, this run; its dS scratch in bytes. */
  vsTiled?: number;
  spillBytes?: number;
  /** 'backward-tiled-spill': whether its dq, dk and dv equal the 'backward-tiled' ones bit for bit. */
  sameBits?: boolean;
  /**
   * 'forward-tiled' and 'backward-tiled-spill': GFLOP/s over the plain fp32 product's (T × nH·hd × nH·hd on the
   * context's GEMM kernel, `plainMatmulKernel`), the median of three rounds timed one right after the other
   * (`vsPlainMatmulRounds`).
   */
  vsPlainMatmul?: number;
  vsPlainMatmulRounds?: number[];
  plainMatmulKernel?: string;
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
  // The yardstick: the plain product at q_proj's shape for these tokens.
  const C = nH * hd;
  const mmA = ctx.upload('bench attn matmul A', randomArray(T * C, 5), 'scratch');
  const mmB = ctx.upload('bench attn matmul B', randomArray(C * C, 6), 'scratch');
  const mmC = ctx.createBuffer('bench attn matmul C', T * C * 4, 'scratch');
  const mmFlop = 2 * T * C * C;
  /** The candidate timed beside the plain product: its Timing, and its rate over the product's (rounds and median). */
  const besideMatmul = async (record: () => void, flop: number): Promise<{ t: Timing; line: Partial<AttentionBenchResult> }> => {
    const p = await timePaired(ctx, () => gemm(ctx, { C: mmC, A: mmA, B: mmB, M: T, N: C, K: C }), record, benchTiming(o.minMs ?? 300));
    const { ratio, ratios } = rateRatio(p, flop, mmFlop);
    return { t: p.candidate, line: { vsPlainMatmul: ratio, vsPlainMatmulRounds: ratios, plainMatmulKernel: ctx.gemmKernel } };
  };
  try {
    const fwd = await timeGpu(ctx, () => attention_forward_rows(ctx, out, lse, q, k, v, seg, B, T, nH, nKV, hd), { minMs: o.minMs });
    const rows = fwdFlop / (fwd.ms * 1e6);
    yield { bench: 'attention', variant: 'forward', T, ms: fwd.ms, gflops: rows };
    // The tiled forward twice where the device has subgroups: row max by shuffles, then through workgroup memory (the
    // same bits; GpuContext.useSubgroups says which a run uses). The context's own setting is put back after.
    const useSubgroups = ctx.useSubgroups;
    try {
      ctx.useSubgroups = true;
      const subgroups = ctx.subgroupsInUse;
      const { t: tiled, line: vsMatmul } = await besideMatmul(() => attention_forward_tiled(ctx, out, lse, q, k, v, seg, B, T, nH, nKV, hd), fwdFlop);
      const tiledRate = fwdFlop / (tiled.ms * 1e6);
      yield { bench: 'attention', variant: 'forward-tiled', T, ms: tiled.ms, gflops: tiledRate, vsRows: tiledRate / rows, subgroups, ...vsMatmul };
      if (subgroups) {
        ctx.useSubgroups = false;
        const plain = await timeGpu(ctx, () => attention_forward_tiled(ctx, out, lse, q, k, v, seg, B, T, nH, nKV, hd), { minMs: o.minMs });
        const rate = fwdFlop / (plain.ms * 1e6);
        yield { bench: 'attention', variant: 'forward-tiled-without-subgroups', T, ms: plain.ms, gflops: rate, vsRows: rate / rows, subgroups: false, vsSubgroups: rate / tiledRate };
      }
    } finally {
      ctx.useSubgroups = useSubgroups;
    }
    // Both backwards consume the tiled forward's out and lse (the last one run); they agree with the row-split one's.
    const bwd = await timeGpu(ctx, () => attention_backward_rows(ctx, dq, dk, dv, dout, out, lse, q, k, v, seg, B, T, nH, nKV, hd, scratch), {
      minMs: o.minMs,
    });
    const bwdRows = (2.5 * fwdFlop) / (bwd.ms * 1e6);
    yield { bench: 'attention', variant: 'backward', T, ms: bwd.ms, gflops: bwdRows };
    const bwdTiled = await timeGpu(ctx, () => attention_backward_tiled(ctx, dq, dk, dv, dout, out, lse, q, k, v, seg, B, T, nH, nKV, hd, scratch), {
      minMs: o.minMs,
    });
    const bwdTiledRate = (2.5 * fwdFlop) / (bwdTiled.ms * 1e6);
    yield { bench: 'attention', variant: 'backward-tiled', T, ms: bwdTiled.ms, gflops: bwdTiledRate, vsRows: bwdTiledRate / bwdRows };
    const want = await gradients(ctx, [dq, dk, dv]);
    const spillBytes = 4 * nKV * attentionSpillGroupFloats(B, T, nH, nKV);
    const spill = ctx.createBuffer('bench attn dS', spillBytes, 'scratch');
    try {
      const { t: bwdSpill, line: vsMatmul } = await besideMatmul(
        () => attention_backward_tiled(ctx, dq, dk, dv, dout, out, lse, q, k, v, seg, B, T, nH, nKV, hd, scratch, spill),
        2.5 * fwdFlop,
      );
      const got = await gradients(ctx, [dq, dk, dv]);
      const sameBits = got.every((g, i) => g.length === want[i].length && g.every((x, j) => Object.is(x, want[i][j])));
      const rate = (2.5 * fwdFlop) / (bwdSpill.ms * 1e6);
      yield { bench: 'attention', variant: 'backward-tiled-spill', T, ms: bwdSpill.ms, gflops: rate, vsRows: rate / bwdRows, vsTiled: rate / bwdTiledRate, spillBytes, sameBits, ...vsMatmul };
    } finally {
      ctx.destroy(spill);
    }
  } finally {
    for (const b of [q, k, v, dout, seg, out, lse, dq, dk, dv, scratch, mmA, mmB, mmC]) ctx.destroy(b);
  }
}

async function gradients(ctx: GpuContext, bufs: GPUBuffer[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const b of bufs) out.push(await ctx.readF32(b));
  return out;
}
