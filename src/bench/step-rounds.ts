// Real training steps of two (or more) set-ups timed in alternating rounds in one process on the same weights, from
// the same adapter: what `bench padding` (padded against padding-free rows) and `bench head` (the lm_head on every
// token against the counted ones) compare. A round trains a side's first steps (forward, backward and AdamW of every
// micro-batch); one warm-up round a side first (pipelines compiled, buffers touched), which also gives the first
// step's loss from the fresh adapter. LoRA dropout should be off, so that the sides' losses agree up to rounding.

import type { Hyperparams } from '../config/hyperparams.ts';
import type { MicroBatch, TrainingData } from '../data/batches.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { median } from '../engine/timing.ts';
import { destroyLora, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner, type RunnerOptions } from '../engine/mistral/model.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import type { LoraAdapter } from '../model/lora-adapter.ts';
import { accumulateStep, runnerShape } from '../run/trainer.ts';

/** One set-up: its data, and runner options beyond the data's shape. */
export interface StepSide {
  data: TrainingData;
  runner?: Partial<RunnerOptions>;
}

export interface StepSideResult {
  steps: number;
  /** The timed steps' micro-batches. */
  batches: MicroBatch[];
  /** Real tokens of the timed steps (the rows' own), and what the GPU computed (rows × their length). */
  tokens: number;
  computedTokens: number;
  rows: number;
  /** Milliseconds of the timed steps, the median round, and every round in order. */
  ms: number;
  msEach: number[];
  /** Real tokens/s at the median round. */
  tokensPerSecond: number;
  /** The loss of the first step from the fresh adapter. */
  firstLoss: number;
}


/**
 * Times each side's first `steps` steps, `rounds` times, alternating. Returns each side's result and the ledger's peak
 * over the bench (every side's runner and adapter at once).
 */
export async function timeStepRounds(
  ctx: GpuContext,
  weights: MistralWeights,
  adapter: LoraAdapter,
  hp: Hyperparams,
  sides: readonly StepSide[],
  o: { steps: number; rounds: number },
): Promise<{ results: StepSideResult[]; peakBytes: number }> {
  ctx.ledger.resetPeaks();
  // Each side its own runner and adapter for the whole bench.
  const runs = sides.map((side) => {
    const lora = uploadLora(ctx, weights.dims, adapter);
    return { lora, runner: new MistralRunner(ctx, weights, lora, { ...runnerShape(side.data), seed: hp.seed, ...side.runner }) };
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
    const firstLoss: number[] = [];
    for (let s = 0; s < sides.length; s++) firstLoss.push(await trainSteps(s));
    const timed = sides.map(() => [] as number[]);
    for (let round = 0; round < o.rounds; round++) {
      for (let s = 0; s < sides.length; s++) {
        const t0 = performance.now();
        await trainSteps(s);
        timed[s].push(performance.now() - t0);
      }
    }
    const peakBytes = ctx.ledger.snapshot().peakBytes;
    const results = sides.map((_, s) => {
      const batches = stepsOf[s].flatMap((st) => st.microBatches);
      const tokens = batches.reduce((a, m) => a + m.tokens, 0);
      const ms = median(timed[s]);
      return {
        steps: stepsOf[s].length,
        batches,
        tokens,
        computedTokens: batches.reduce((a, m) => a + m.B * m.T, 0),
        rows: batches.reduce((a, m) => a + m.B, 0),
        ms,
        msEach: timed[s],
        tokensPerSecond: tokens / (ms / 1000),
        firstLoss: firstLoss[s],
      };
    });
    return { results, peakBytes };
  } finally {
    for (const { lora, runner } of runs) {
      runner.destroy();
      destroyLora(ctx, lora);
    }
  }
}
