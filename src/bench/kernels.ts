// `finetune bench kernels`: the kernels around the matmuls at Mistral-7B shapes — bandwidth-bound ones in GB/s
// (bytes that must move at least once), the lm_head + cross-entropy in GFLOP/s — each run next to the plain tiled
// fp32 matmul measured in the same process (T × C × C), so a reader can weigh them against the matmul time. The lm_head
// lines' vsPlain (issue #9: ≥ 0.9) comes from rounds timed alternately with that matmul (engine/timing.ts timePaired).

import { PROJECTIONS } from '../core/mistral.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { adamw_step } from '../engine/kernels/adamw.ts';
import { embedding_forward } from '../engine/kernels/embedding.ts';
import { gemm } from '../engine/kernels/matmul.ts';
import { rmsnorm_backward, rmsnorm_forward } from '../engine/kernels/norm.ts';
import { fill_uniform } from '../engine/kernels/random.ts';
import { rope_forward, ropeTable } from '../engine/kernels/rope.ts';
import { swiglu_backward, swiglu_forward } from '../engine/kernels/swiglu.ts';
import { createLmheadXentScratch, destroyLmheadXentScratch, lmhead_xent_forward_backward } from '../engine/kernels/xent.ts';
import { loraChunkLimit } from '../engine/mistral/lora-layout.ts';
import { defaultXentChunk } from '../engine/mistral/sizing.ts';
import { linearShape, type Dims } from '../engine/mistral/dims.ts';
import { benchTiming, rateRatio, timeGpu, timePaired } from '../engine/timing.ts';

export interface KernelBenchResult {
  bench: 'kernel';
  kernel: string;
  T: number;
  ms: number;
  /** For bandwidth-bound kernels: minimum bytes moved / time. */
  gbps?: number;
  /** For FLOP-bound kernels. */
  gflops?: number;
  /**
   * gflops relative to the plain fp32 matmul of this run; for the lm_head lines the median of three rounds timed one
   * right after the other (`vsPlainRounds`).
   */
  vsPlain?: number;
  vsPlainRounds?: number[];
  /** This kernel's time as a share of the plain matmul's time at (T × C × C). */
  timeVsPlainMatmul: number;
}

/**
 * `chunks`: the lm_head + cross-entropy's tokens per chunk to time, each on a line of its own; by default the runner's
 * (sizing.ts: defaultXentChunk) beside the 256 it used until 2026-12-01.
 */
export async function* benchKernels(ctx: GpuContext, d: Dims, T: number, minMs = 300, chunks?: number[]): AsyncGenerator<KernelBenchResult> {
  const bufs: GPUBuffer[] = [];
  const rnd = (label: string, n: number, seed: number, scale = 1): GPUBuffer => {
    const b = ctx.createBuffer(label, n * 4, 'scratch');
    fill_uniform(ctx, b, n, scale, seed);
    bufs.push(b);
    return b;
  };
  try {
    const X = rnd('x', T * d.C, 1);
    const W = rnd('w', d.C * d.C, 2, 1 / 64);
    const Y = rnd('y', T * d.C, 3);
    const plainProduct = (): void => gemm(ctx, { C: Y, A: X, B: W, M: T, N: d.C, K: d.C });
    const plain = await timeGpu(ctx, plainProduct, benchTiming(minMs));
    const plainGflops = (2 * T * d.C * d.C) / (plain.ms * 1e6);
    const res = (kernel: string, ms: number, bytes: number | null, flops: number | null): KernelBenchResult => ({
      bench: 'kernel',
      kernel,
      T,
      ms,
      ...(bytes !== null ? { gbps: bytes / (ms * 1e6) } : {}),
      ...(flops !== null ? { gflops: flops / (ms * 1e6), vsPlain: flops / (ms * 1e6) / plainGflops } : {}),
      timeVsPlainMatmul: ms / plain.ms,
    });
    yield res('plain fp32 matmul (T×C×C)', plain.ms, null, 2 * T * d.C * d.C);

    const w = rnd('norm w', d.C, 4);
    const rstd = rnd('rstd', T, 5);
    const out = rnd('out', T * d.C, 6);
    let t = await timeGpu(ctx, () => rmsnorm_forward(ctx, out, rstd, X, w, T, d.C, d.eps), { minMs });
    yield res('rmsnorm forward', t.ms, 2 * T * d.C * 4, null);
    t = await timeGpu(ctx, () => rmsnorm_backward(ctx, Y, out, X, w, rstd, T, d.C), { minMs });
    yield res('rmsnorm backward', t.ms, 3 * T * d.C * 4, null);

    const Q = d.nH * d.hd;
    const q = rnd('q', T * Q, 7);
    const pos = ctx.upload('pos', Uint32Array.from({ length: T }, (_, i) => i), 'scratch');
    const table = ctx.upload('rope table', ropeTable(T, d.hd, d.theta), 'scratch');
    bufs.push(pos, table);
    t = await timeGpu(ctx, () => rope_forward(ctx, q, q, pos, table, T, d.nH, d.hd), { minMs });
    yield res('rope (q, in place)', t.ms, 2 * T * Q * 4, null);

    const g = rnd('gate', T * d.I, 8);
    const u = rnd('up', T * d.I, 9);
    const h = rnd('h', T * d.I, 10);
    const dg = rnd('dgate', T * d.I, 11);
    const du = rnd('dup', T * d.I, 12);
    t = await timeGpu(ctx, () => swiglu_forward(ctx, h, g, u, T * d.I), { minMs });
    yield res('swiglu forward', t.ms, 3 * T * d.I * 4, null);
    t = await timeGpu(ctx, () => swiglu_backward(ctx, dg, du, h, g, u, T * d.I), { minMs });
    yield res('swiglu backward', t.ms, 5 * T * d.I * 4, null);

    const table16 = rnd('embedding (bf16 pairs)', (d.V * d.C) / 2, 13, 0.01);
    const ids = ctx.upload('ids', Uint32Array.from({ length: T }, (_, i) => (i * 7919) % d.V), 'scratch');
    bufs.push(ids);
    t = await timeGpu(ctx, () => embedding_forward(ctx, out, ids, table16, T, d.C, { storage: 'bf16', V: d.V }), { minMs });
    yield res('embedding gather (bf16)', t.ms, T * d.C * 6, null);

    // LoRA r = 8 on all seven projections of 32 layers: the optimizer's whole parameter set.
    let n = 0;
    for (const m of PROJECTIONS) {
      const s = linearShape(d, m);
      n += 8 * (s.in + s.out);
    }
    n *= d.L;
    const p = rnd('params', n, 14, 0.01);
    const gr = rnd('grads', n, 15, 0.01);
    const m1 = rnd('m', n, 16, 0);
    const v1 = rnd('v', n, 17, 0);
    let step = 0;
    t = await timeGpu(ctx, () => adamw_step(ctx, p, gr, m1, v1, null, n, { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: ++step }), { minMs });
    yield res(`adamw (LoRA r=8, all projections, ${d.L} layers: ${n} params)`, t.ms, 7 * n * 4, null);

    const lmHead = rnd('lm_head (bf16 pairs)', (d.V * d.C) / 2, 18, 0.01);
    const targets = ctx.upload('targets', Int32Array.from({ length: T }, (_, i) => (i * 31) % d.V), 'scratch');
    const lossSum = rnd('loss', 1, 19, 0);
    const lse = rnd('lse', T, 20);
    const dh = rnd('dh', T * d.C, 21);
    bufs.push(targets);
    const runnerChunk = Math.min(T, defaultXentChunk(d.V, loraChunkLimit(ctx.device.limits)));
    for (const chunkTokens of [...new Set(chunks ?? [runnerChunk, Math.min(T, 256)])]) {
      const scratch = createLmheadXentScratch(ctx, T, d.C, d.V, chunkTokens);
      try {
        const flops = 4 * T * d.C * d.V;
        const paired = await timePaired(
          ctx,
          plainProduct,
          () =>
            lmhead_xent_forward_backward(ctx, { dh, lossSum, lse, h: X, W: lmHead, wStorage: 'bf16', targets, BT: T, C: d.C, V: d.V, gradScale: 1 / T, chunkTokens, scratch }),
          benchTiming(minMs),
        );
        const { ratio, ratios } = rateRatio(paired, flops, 2 * T * d.C * d.C);
        const tag = chunkTokens === runnerChunk ? ', what a run uses' : '';
        yield {
          ...res(`lm_head + cross-entropy, forward and backward (chunks of ${chunkTokens}${tag})`, paired.candidate.ms, null, flops),
          vsPlain: ratio,
          vsPlainRounds: ratios,
          timeVsPlainMatmul: paired.candidate.ms / paired.yardstick.ms,
        };
      } finally {
        ctx.flush();
        destroyLmheadXentScratch(ctx, scratch);
      }
    }
  } finally {
    ctx.flush();
    for (const b of bufs) ctx.destroy(b);
  }
}
