// `finetune bench validation`: a run's validation computed both ways, in alternating rounds in one process on the
// same weights and adapter: the yardstick, a forward pass per validation batch (as transformers, and this engine until
// 2026-12-05, computed it; Replicate's validation_batch_size of 1 makes that a pass per sequence), beside the packed
// passes a run now makes (data/validation-passes.ts). Both give the same validation loss up to rounding (the summary
// says by how much); tokens/s counts the validation's real tokens.

import type { TrainingData } from '../data/batches.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { destroyLora, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import { median } from '../engine/timing.ts';
import type { LoraAdapter } from '../model/lora-adapter.ts';
import { runnerShape } from '../run/trainer.ts';

export type ValidationLayout = 'per-batch' | 'packed';

export interface ValidationBenchLine {
  bench: 'validation';
  layout: ValidationLayout;
  /** Forward passes, their rows, and the tokens they compute (rows × their length) for the validation's real ones. */
  passes: number;
  rows: number;
  computedTokens: number;
  tokens: number;
  /** Milliseconds of the whole validation, the median round, and every round in order. */
  ms: number;
  msEach: number[];
  tokensPerSecond: number;
  loss: number;
}

export interface ValidationBenchSummary {
  bench: 'validation-summary';
  /** Packed over per-batch real tokens/s, from the median rounds. */
  speedup: number;
  /** |packed − per-batch| / per-batch validation loss. */
  lossRelativeDifference: number;
  rounds: number;
  /** The ledger's peak over the bench: one runner of the run's shape (rows enough for a validation batch alone). */
  peakBytes: number;
}

/** Times the validation of `data` both ways, `rounds` times each after a warm-up, alternating. */
export async function* benchValidation(
  ctx: GpuContext,
  weights: MistralWeights,
  adapter: LoraAdapter,
  data: TrainingData,
  o: { rounds: number; seed: number },
): AsyncGenerator<ValidationBenchLine | ValidationBenchSummary> {
  const batches = [...data.validationBatches()].filter((b) => b.lossTokens > 0);
  const passes = [...data.validationPasses()].filter((p) => p.lossTokens > 0);
  const shape = runnerShape(data);
  ctx.ledger.resetPeaks();
  const lora = uploadLora(ctx, weights.dims, adapter);
  // A validation batch alone may have more rows than a micro-batch (validation_batch_size > micro_batch_size).
  const runner = new MistralRunner(ctx, weights, lora, { B: Math.max(shape.B, ...batches.map((b) => b.B)), T: shape.T, seed: o.seed });
  const scored = data.stats.validation.scoredSequences;
  const validate = async (layout: ValidationLayout): Promise<number> => {
    runner.resetLoss();
    if (layout === 'per-batch') {
      for (const b of batches) {
        runner.setBatch(b);
        runner.evaluate(b.sequences / b.lossTokens);
      }
    } else {
      for (const p of passes) {
        runner.setBatch(p);
        runner.evaluateWeighted(p.lossWeights);
      }
    }
    return (await runner.readLoss()) / scored; // fences the validation
  };
  const layouts: ValidationLayout[] = ['per-batch', 'packed'];
  const loss = new Map<ValidationLayout, number>();
  const timed = new Map<ValidationLayout, number[]>(layouts.map((l) => [l, []]));
  const results: ValidationBenchLine[] = [];
  let peakBytes = 0;
  try {
    // A warm-up round each (pipelines compiled at each shape), which also gives each layout's loss.
    for (const l of layouts) loss.set(l, await validate(l));
    for (let round = 0; round < o.rounds; round++) {
      for (const l of layouts) {
        const t0 = performance.now();
        await validate(l);
        timed.get(l)!.push(performance.now() - t0);
      }
    }
    peakBytes = ctx.ledger.snapshot().peakBytes;
    const tokens = data.stats.validation.tokens;
    for (const l of layouts) {
      const work = l === 'per-batch' ? batches : passes;
      const ms = median(timed.get(l)!);
      const line: ValidationBenchLine = {
        bench: 'validation',
        layout: l,
        passes: work.length,
        rows: work.reduce((a, m) => a + m.B, 0),
        computedTokens: work.reduce((a, m) => a + m.B * m.T, 0),
        tokens,
        ms,
        msEach: timed.get(l)!,
        tokensPerSecond: tokens / (ms / 1000),
        loss: loss.get(l)!,
      };
      results.push(line);
      yield line;
    }
  } finally {
    runner.destroy();
    destroyLora(ctx, lora);
  }
  const [perBatch, packed] = results;
  yield {
    bench: 'validation-summary',
    speedup: packed.tokensPerSecond / perBatch.tokensPerSecond,
    lossRelativeDifference: Math.abs(packed.loss - perBatch.loss) / Math.abs(perBatch.loss),
    rounds: o.rounds,
    peakBytes,
  };
}
