// `finetune bench generate`: tokens/s of generation with the KV cache (engine/mistral/decode.ts: the prompt once, then
// one row per token) against recomputing the whole sequence for every token (MistralRunner's forward pass, as
// generation worked before the cache), in the same process on the same random model and LoRA adapter. Both read the
// logits back after every token (the sampler needs them) through the same lm_head kernel. What differs is the cache
// and what it allows: a step is a few rows, run by the few-row kernels (matvec), where recomputation runs the whole
// prefix through the tiled products. The tokens fed are fixed pseudo-random ids: a step's cost does not depend on them.

import { PROJECTIONS } from '../core/mistral.ts';
import { uniformSource } from '../core/prng.ts';
import { unpackedBatch } from '../core/token-batch.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { matvec_forward } from '../engine/kernels/matvec.ts';
import { MistralDecoder } from '../engine/mistral/decode.ts';
import type { Dims } from '../engine/mistral/dims.ts';
import { destroyLora, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import { destroyMistralWeights } from '../engine/mistral/weights.ts';
import { createAdapter } from '../model/lora-adapter.ts';
import { configOf, randomMistral } from './model.ts';

export interface GenerateBenchResult {
  bench: 'generate';
  variant: 'kv-cache' | 'full-recompute';
  layers: number;
  promptTokens: number;
  newTokens: number;
  /** The prompt's pass (kv-cache only). */
  prefillMs?: number;
  /** New tokens per second, prompt included (the whole generation's wall time). */
  tokensPerSecond: number;
  /** New tokens per second of the per-token loop alone (kv-cache only). */
  stepTokensPerSecond?: number;
  /** kv-cache only: its tokens/s over full recompute's, both prompt included. */
  speedup?: number;
  kvCacheBytes?: number;
}

const now = (): number => performance.now();

export async function* benchGenerate(ctx: GpuContext, o: { dims: Dims; promptTokens: number; newTokens: number; r?: number }): AsyncGenerator<GenerateBenchResult> {
  const d = o.dims;
  const r = o.r ?? 8;
  const weights = await randomMistral(ctx, d, true);
  const lora = uploadLora(ctx, d, createAdapter(configOf(d), { r, alpha: 2 * r, dropout: 0, targetModules: [...PROJECTIONS], random: uniformSource(1) }));
  const rand = uniformSource(3);
  const ids = Array.from({ length: o.promptTokens + o.newTokens }, () => 3 + Math.floor(rand() * (d.V - 3)));
  const P = o.promptTokens;
  const N = o.newTokens;
  const base = { bench: 'generate', layers: d.L, promptTokens: P, newTokens: N } as const;
  try {
    // A warm-up generation of two tokens each way compiles every pipeline before anything is timed.
    await kvCache(ctx, weights, lora, ids.slice(0, P + 2), P);
    await recompute(ctx, weights, lora, ids.slice(0, P + 2), P);
    const kv = await kvCache(ctx, weights, lora, ids, P);
    const full = await recompute(ctx, weights, lora, ids, P);
    const kvRate = N / ((kv.prefillMs + kv.stepMs) / 1000);
    const fullRate = N / (full / 1000);
    yield {
      ...base,
      variant: 'kv-cache',
      prefillMs: kv.prefillMs,
      tokensPerSecond: kvRate,
      stepTokensPerSecond: N > 1 ? (N - 1) / (kv.stepMs / 1000) : undefined,
      speedup: kvRate / fullRate,
      kvCacheBytes: kv.cacheBytes,
    };
    yield { ...base, variant: 'full-recompute', tokensPerSecond: fullRate };
  } finally {
    destroyLora(ctx, lora);
    destroyMistralWeights(ctx, weights);
  }
}

type Weights = Awaited<ReturnType<typeof randomMistral>>;
type Lora = ReturnType<typeof uploadLora>;

/** Prefill ids[0..P), then ids[P], ids[P+1], … one at a time, reading the logits after each (N readbacks in all). */
async function kvCache(ctx: GpuContext, w: Weights, lora: Lora, ids: number[], P: number): Promise<{ prefillMs: number; stepMs: number; cacheBytes: number }> {
  const before = ctx.ledger.snapshot().byCategory['kv-cache'].currentBytes;
  const dec = new MistralDecoder(ctx, w, lora, { maxT: ids.length - 1 });
  const cacheBytes = ctx.ledger.snapshot().byCategory['kv-cache'].currentBytes - before;
  try {
    const t0 = now();
    dec.feed(ids.slice(0, P));
    await dec.readLogits();
    const t1 = now();
    for (let i = P; i < ids.length - 1; i++) {
      dec.feed([ids[i]]);
      await dec.readLogits();
    }
    return { prefillMs: t1 - t0, stepMs: now() - t1, cacheBytes };
  } finally {
    dec.destroy();
  }
}

/** The whole prefix through the runner for every new token: prefixes of P, P+1, … tokens, the last row's logits read. */
async function recompute(ctx: GpuContext, w: Weights, lora: Lora, ids: number[], P: number): Promise<number> {
  const d = w.dims;
  const runner = new MistralRunner(ctx, w, lora, { B: 1, T: ids.length - 1 });
  const last = ctx.createBuffer('bench generate last row', d.C * 4, 'scratch');
  const logits = ctx.createBuffer('bench generate logits', d.V * 4, 'scratch');
  try {
    const t0 = now();
    for (let T = P; T < ids.length; T++) {
      runner.setBatch(unpackedBatch(1, T, ids.slice(0, T), new Int32Array(T).fill(-100)));
      runner.forwardHidden('eval');
      ctx.copy(runner.xf, (T - 1) * d.C * 4, last, 0, d.C * 4);
      matvec_forward(ctx, logits, last, w.lmHead.buffer, 1, d.V, d.C, { wStorage: 'bf16' });
      await ctx.readF32(logits);
    }
    return now() - t0;
  } finally {
    runner.destroy();
    ctx.destroy(last);
    ctx.destroy(logits);
  }
}
