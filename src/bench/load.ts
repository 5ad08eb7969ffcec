// `finetune bench load`: the two rates a model load runs at once its bytes are here — NF4 quantisation on the GPU
// (GB/s of bf16 weights in, what a first load of Mistral-7B spends its GPU time on) and loading from the weight cache
// (GB/s of cached parts hashed and uploaded, an in-memory store: the disk's read speed comes on top).

import type { GpuContext } from '../engine/gpu.ts';
import { nf4_destroy, nf4_quantize } from '../engine/kernels/nf4.ts';
import { fill_uniform_bf16 } from '../engine/kernels/random.ts';
import type { Dims } from '../engine/mistral/dims.ts';
import { destroyMistralWeights } from '../engine/mistral/weights.ts';
import { weightsManifest } from '../engine/mistral/weight-parts.ts';
import { memoryWeightCache, readCacheEntry, WEIGHT_CACHE_FORMAT, writeCacheEntry, type CacheIdentity } from '../run/weight-cache.ts';
import { randomMistral } from './model.ts';
import { timeGpu } from '../engine/timing.ts';

export interface QuantizeBenchResult {
  bench: 'nf4-quantize';
  rows: number;
  cols: number;
  doubleQuant: boolean;
  ms: number;
  /** bf16 input bytes per second, in GB/s. */
  gbPerSecondIn: number;
}

export async function benchQuantize(ctx: GpuContext, rows: number, cols: number, doubleQuant: boolean, minMs: number): Promise<QuantizeBenchResult> {
  const src = ctx.createBuffer('bench bf16 weight', rows * cols * 2, 'scratch');
  fill_uniform_bf16(ctx, src, rows * cols, 0.02, 7);
  const t = await timeGpu(
    ctx,
    () => {
      const w = nf4_quantize(ctx, src, 'bf16', rows, cols, { doubleQuant, label: 'bench' });
      // Submitted before it is freed, as the loader does.
      ctx.flush();
      nf4_destroy(ctx, w);
    },
    { minMs, maxReps: 50 },
  );
  ctx.destroy(src);
  return { bench: 'nf4-quantize', rows, cols, doubleQuant, ms: t.ms, gbPerSecondIn: (rows * cols * 2) / (t.ms / 1000) / 1e9 };
}

export interface CacheLoadBenchResult {
  bench: 'load-from-cache';
  layers: number;
  hidden: number;
  bytes: number;
  seconds: number;
  gbPerSecond: number;
}


/** Random NF4-double weights of shape `d` written to a cache entry, then timed loading back from it. */
export async function benchCacheLoad(ctx: GpuContext, d: Dims): Promise<CacheLoadBenchResult> {
  const original = await randomMistral(ctx, d, true);
  const bytes = weightsManifest(original).parts.reduce((a, p) => a + p.bytes, 0);
  const cache = memoryWeightCache();
  const identity: CacheIdentity = { format: WEIGHT_CACHE_FORMAT, source: 'bench', quantization: 'nf4-double', files: [] };
  await writeCacheEntry(ctx, cache, 'bench', original, identity);
  destroyMistralWeights(ctx, original);
  await ctx.sync();
  const t0 = performance.now();
  const loaded = await readCacheEntry(ctx, cache, 'bench', identity);
  await ctx.sync();
  const seconds = (performance.now() - t0) / 1000;
  destroyMistralWeights(ctx, loaded);
  return { bench: 'load-from-cache', layers: d.L, hidden: d.C, bytes, seconds, gbPerSecond: bytes / seconds / 1e9 };
}
