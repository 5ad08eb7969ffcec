// `finetune bench head`: real training steps with the lm_head computed on every token (as until 2026-12-05) and on
// the tokens with a loss alone (what a run does: engine/mistral/model.ts, kernels/xent.ts HeadRows), in alternating
// rounds in one process on the same weights, data and adapter (step-rounds.ts). A token without a loss (a prompt under
// the instruct layout, each sequence's last token, padding) needs neither logits nor gradient; at a vocabulary of
// 32,000 the head is most of a small model's step. Both sides train the same numbers: the first-step losses agree up
// to rounding (the summary says by how much).

import type { Hyperparams } from '../config/hyperparams.ts';
import type { TrainingData } from '../data/batches.ts';
import { IGNORE_INDEX } from '../data/layout.ts';
import type { GpuContext } from '../engine/gpu.ts';
import type { HeadMode } from '../engine/mistral/sizing.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import type { LoraAdapter } from '../model/lora-adapter.ts';
import { timeStepRounds, type StepSideResult } from './step-rounds.ts';

/** One head mode's timed steps (step-rounds.ts StepSideResult, less its batches). */
export interface HeadBenchLine extends Omit<StepSideResult, 'batches'> {
  bench: 'head';
  head: HeadMode;
  layout: string;
  microBatchSize: number;
  /** Tokens the lm_head computed: every one the layers computed, or the counted ones. */
  headTokens: number;
}

export interface HeadBenchSummary {
  bench: 'head-summary';
  layout: string;
  /** Counted-rows real tokens/s over every-row, from the median rounds. */
  speedup: number;
  /** The share of the computed tokens the head computes now. */
  countedShare: number;
  firstLossRelativeDifference: number;
  rounds: number;
  /** The ledger's peak over the bench: both sides' runners and adapters at once. */
  peakBytes: number;
}

const HEADS: readonly HeadMode[] = ['all', 'counted'];

/** Times the plan's first `steps` steps with each head mode, `rounds` times each, alternating; one line each, then the summary. */
export async function* benchHead(
  ctx: GpuContext,
  weights: MistralWeights,
  adapter: LoraAdapter,
  hp: Hyperparams,
  data: TrainingData,
  o: { steps: number; rounds: number },
): AsyncGenerator<HeadBenchLine | HeadBenchSummary> {
  const sides = HEADS.map((head) => ({ data, runner: { head } }));
  const { results, peakBytes } = await timeStepRounds(ctx, weights, adapter, hp, sides, o);
  const lines = results.map(({ batches, ...r }, s): HeadBenchLine => {
    let counted = 0;
    for (const m of batches) for (const t of m.targets) if (t !== IGNORE_INDEX) counted++;
    return { bench: 'head', head: HEADS[s], layout: hp.layout, microBatchSize: hp.micro_batch_size, ...r, headTokens: HEADS[s] === 'all' ? r.computedTokens : counted };
  });
  for (const line of lines) yield line;
  const [all, counted] = lines;
  yield {
    bench: 'head-summary',
    layout: hp.layout,
    speedup: counted.tokensPerSecond / all.tokensPerSecond,
    countedShare: counted.headTokens / counted.computedTokens,
    firstLossRelativeDifference: Math.abs(counted.firstLoss - all.firstLoss) / Math.abs(all.firstLoss),
    rounds: o.rounds,
    peakBytes,
  };
}
