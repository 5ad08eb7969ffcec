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
import { destroyLora, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import type { LoraAdapter } from '../model/lora-adapter.ts';
import { accumulateStep, runnerShape } from '../run/trainer.ts';

export interface PaddingBenchLine {
  bench: 'padding';
  paddingFree: boolean;
  steps: number;
  microBatchSize: number;
  /** Tokens of the timed steps: real (the rows' own), and what the GPU computed (rows × their length). */
  tokens: number;
  computedTokens: number;
  /** Rows of the timed micro-batches (sequences, with padding_free several to a row). */
  rows: number;
  /** Milliseconds of the timed steps, the median round, and every round in order. */
  ms: number;
  msEach: number[];
  tokensPerSecond: number;
  /** The loss of the first step from the fresh adapter. */
  firstLoss: number;
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

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Times the first `steps` steps of each layout's plan, `rounds` times each, alternating. `plan(paddingFree)` makes
 * the run's data; `adapter` is the fresh adapter both start from. Yields one line per layout, then the summary.
 */
export async function* benchPadding(
  ctx: GpuContext,
  weights: MistralWeights,
  adapter: LoraAdapter,
  hp: Hyperparams,
  plan: (paddingFree: boolean) => Promise<TrainingData>,
  o: { steps: number; rounds: number },
): AsyncGenerator<PaddingBenchLine | PaddingBenchSummary> {
  const layouts = [false, true].map(async (paddingFree) => ({ paddingFree, data: await plan(paddingFree) }));
  const sides = await Promise.all(layouts);
  const results: PaddingBenchLine[] = [];
  const timed = sides.map(() => [] as number[]);
  const firstLoss = sides.map(() => NaN);
  let peakBytes = 0;
  ctx.ledger.resetPeaks();
  // Each side its own runner and adapter for the whole bench (sized alike: runnerShape is the same for both layouts).
  const runs = sides.map(({ data }) => {
    const lora = uploadLora(ctx, weights.dims, adapter);
    return { lora, runner: new MistralRunner(ctx, weights, lora, { ...runnerShape(data), seed: hp.seed }) };
  });
  try {
    const stepsOf = sides.map(({ data }) => Array.from({ length: Math.min(o.steps, data.stats.totalSteps) }, (_, i) => data.step(i)));
    const trainSteps = async (side: number): Promise<number> => {
      const { runner } = runs[side];
      let first = NaN;
      for (const step of stepsOf[side]) {
        runner.zeroGrads();
        runner.resetLoss();
        accumulateStep(runner, step.microBatches, 0);
        runner.optimizerStep({ lr: hp.learning_rate, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: hp.weight_decay, maxGradNorm: hp.max_grad_norm });
        const loss = await runner.readLoss(); // fences the step
        if (Number.isNaN(first)) first = loss;
      }
      return first;
    };
    // A warm-up round each (pipelines compiled, buffers touched), which also gives the first step's loss from the
    // fresh adapter; then timed rounds, alternating.
    for (let s = 0; s < sides.length; s++) firstLoss[s] = await trainSteps(s);
    for (let round = 0; round < o.rounds; round++) {
      for (let s = 0; s < sides.length; s++) {
        const t0 = performance.now();
        await trainSteps(s);
        timed[s].push(performance.now() - t0);
      }
    }
    peakBytes = ctx.ledger.snapshot().peakBytes;
    for (let s = 0; s < sides.length; s++) {
      const batches = stepsOf[s].flatMap((st) => st.microBatches);
      const tokens = batches.reduce((a, m) => a + m.tokens, 0);
      const ms = median(timed[s]);
      const line: PaddingBenchLine = {
        bench: 'padding',
        paddingFree: sides[s].paddingFree,
        steps: stepsOf[s].length,
        microBatchSize: hp.micro_batch_size,
        tokens,
        computedTokens: batches.reduce((a, m) => a + m.B * m.T, 0),
        rows: batches.reduce((a, m) => a + m.B, 0),
        ms,
        msEach: timed[s],
        tokensPerSecond: tokens / (ms / 1000),
        firstLoss: firstLoss[s],
      };
      results.push(line);
      yield line;
    }
  } finally {
    for (const { lora, runner } of runs) {
      runner.destroy();
      destroyLora(ctx, lora);
    }
  }
  const [padded, free] = results;
  yield {
    bench: 'padding-summary',
    speedup: free.tokensPerSecond / padded.tokensPerSecond,
    computedRatio: padded.computedTokens / free.computedTokens,
    firstLossRelativeDifference: Math.abs(free.firstLoss - padded.firstLoss) / Math.abs(padded.firstLoss),
    rounds: o.rounds,
    peakBytes,
  };
}
