// `finetune bench padding`: real training steps on a real dataset, padded and padding-free (src/data/repack.ts), in
// alternating rounds in one process on the same weights: the yardstick (the padded layout, Replicate's) beside the
// figure every round. A round trains the plan's first steps (forward, backward and AdamW of every micro-batch) from
// the same adapter; tokens/s counts real tokens, as a run reports them, and each line says how many the GPU computed.
// LoRA dropout is off, so both layouts' first-step losses must agree up to rounding (the summary says by how much).

import type { Hyperparams } from '../config/hyperparams.ts';
import { uniformSource } from '../core/prng.ts';
import type { TrainingData } from '../data/batches.ts';
import type { Example } from '../data/layout.ts';
import type { GpuContext } from '../engine/gpu.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import type { LoraAdapter } from '../model/lora-adapter.ts';
import { timeStepRounds, type StepSideResult } from './step-rounds.ts';

/** One layout's timed steps (step-rounds.ts StepSideResult, less its batches). */
export interface PaddingBenchLine extends Omit<StepSideResult, 'batches'> {
  bench: 'padding';
  paddingFree: boolean;
  microBatchSize: number;
}

export interface PaddingBenchSummary {
  bench: 'padding-summary';
  /** Padding-free real tokens/s over padded, from the median rounds. */
  speedup: number;
  /** Padded computed tokens over padding-free: what the layout saves in work. */
  computedRatio: number;
  /** |first-step loss, padding-free − padded| / padded. */
  firstLossRelativeDifference: number;
  rounds: number;
  /**
   * The ledger's peak over the bench: both layouts' runners and adapters at once (each runner has the same shape, so
   * either layout alone needs the same memory; padding_free changes the work, not the allocation).
   */
  peakBytes: number;
}

/** How `syntheticRows` spreads its lengths: log-normal (as real prompt/completion lengths roughly are), cut to `max`. */
export interface SyntheticLengths {
  count: number;
  /** Median length in tokens, and σ of its logarithm. */
  median: number;
  sigma: number;
  max: number;
  vocab: number;
  seed: number;
}

/**
 * Rows of random token ids (loss on every token) whose lengths are log-normal: a stand-in for a dataset where no real
 * one can be had (a GPU machine with no network). Seeded: the same rows every run.
 */
export function syntheticRows(o: SyntheticLengths): Example[] {
  const random = uniformSource(o.seed);
  return Array.from({ length: o.count }, (_, k) => {
    // Box–Muller: a standard normal from two uniforms in (0, 1].
    const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    const len = Math.max(2, Math.min(o.max, Math.round(o.median * Math.exp(o.sigma * z))));
    return { line: k + 1, ids: Uint32Array.from({ length: len }, () => 3 + Math.floor(random() * (o.vocab - 3))), lossStart: 0, truncated: 0 };
  });
}


/**
 * Times the first `steps` steps of each layout's plan, `rounds` times each, alternating (step-rounds.ts). `plan(paddingFree)`
 * makes the run's data; `adapter` is the fresh adapter both start from. Yields one line per layout, then the summary.
 */
export async function* benchPadding(
  ctx: GpuContext,
  weights: MistralWeights,
  adapter: LoraAdapter,
  hp: Hyperparams,
  plan: (paddingFree: boolean) => Promise<TrainingData>,
  o: { steps: number; rounds: number },
): AsyncGenerator<PaddingBenchLine | PaddingBenchSummary> {
  const layouts = [false, true];
  const sides = await Promise.all(layouts.map(async (paddingFree) => ({ data: await plan(paddingFree) })));
  // Each side has the same runner shape (runnerShape depends on the data's longest row, not on its layout).
  const { results, peakBytes } = await timeStepRounds(ctx, weights, adapter, hp, sides, o);
  const lines = results.map(({ batches: _, ...r }, s): PaddingBenchLine => ({ bench: 'padding', paddingFree: layouts[s], microBatchSize: hp.micro_batch_size, ...r }));
  for (const line of lines) yield line;
  const [padded, free] = lines;
  yield {
    bench: 'padding-summary',
    speedup: free.tokensPerSecond / padded.tokensPerSecond,
    computedRatio: padded.computedTokens / free.computedTokens,
    firstLossRelativeDifference: Math.abs(free.firstLoss - padded.firstLoss) / Math.abs(padded.firstLoss),
    rounds: o.rounds,
    peakBytes,
  };
}
