// How a step's loss and a validation pass's loss average their tokens (src/run/trainer.ts), on tiny-mistral with rows
// made by hand: a step is the mean of its micro-batches' token means over those with a token to learn from (a
// micro-batch whose completion was cut off counted in the mean and diluted it to 0.75), and a validation pass is
// transformers' eval_loss, the batches' token means weighted by their rows (it was a mean over every token, which
// weighted long rows more). The references are each batch's loss alone, read from the same runner.
import { beforeAll, describe, expect, it } from 'vitest';
import { parseHyperparams } from '../../src/config/index.ts';
import { TrainingData, type MicroBatch } from '../../src/data/batches.ts';
import type { Example } from '../../src/data/layout.ts';
import { destroyLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { evaluate, runnerShape, train, type SkipReport } from '../../src/run/trainer.ts';
import { tinyTrainer, type TinyTrainer } from '../helpers/tiny-trainer.ts';

const HP = parseHyperparams({
  num_train_epochs: 1,
  train_batch_size: 4,
  micro_batch_size: 1,
  validation_batch_size: 2,
  learning_rate: 1e-3,
  warmup_ratio: 0,
  lora_rank: 2,
  lora_alpha: 4,
  lora_dropout: 0, // the step's forward is then the validation forward: its loss can be read alone
  lora_target_modules: 'q_proj,v_proj',
  max_seq_len: 16,
});

/** A row of `len` token ids (distinct per row) whose loss starts at `lossStart` (≥ len: none counted). */
const row = (k: number, len: number, lossStart = 0): Example => ({ line: k + 1, ids: Uint32Array.from({ length: len }, (_, t) => 100 + 37 * k + 5 * t), lossStart, truncated: 0 });

describe('how losses average their tokens', () => {
  let t: TinyTrainer;
  beforeAll(async () => {
    t = await tinyTrainer(HP);
  });

  it("a step means its micro-batches with tokens only, and validation is transformers' eval_loss (batch means weighted by rows)", async () => {
    // One step of four micro-batches, one of them with nothing to learn from; three validation rows of 2, 11 and 5
    // counted tokens in batches of two and one.
    const data = new TrainingData([row(0, 6), row(1, 9), row(2, 7), row(3, 5, 99)], [row(4, 3), row(5, 12), row(6, 6)], HP);
    expect(data.stats.totalSteps).toBe(1);
    const lora = uploadLora(t.ctx, t.weights.dims, t.start);
    // Rows enough for a validation batch of two alone (the references); the run's own passes need one.
    expect(runnerShape(data)).toEqual({ B: 1, T: 12 });
    const runner = new MistralRunner(t.ctx, t.weights, lora, { B: 2, T: 12, seed: HP.seed });
    const meanOf = async (b: MicroBatch): Promise<number> => {
      runner.resetLoss();
      runner.setBatch(b);
      runner.evaluate(1 / b.lossTokens);
      return runner.readLoss();
    };
    try {
      const micro = data.step(0).microBatches;
      expect(micro.map((m) => m.lossTokens).filter((n) => n === 0)).toHaveLength(1);
      const means = [];
      for (const m of micro) if (m.lossTokens > 0) means.push(await meanOf(m));
      const stepWant = means.reduce((a, b) => a + b, 0) / means.length;

      const steps: number[] = [];
      const vals: number[] = [];
      const skips: SkipReport[] = [];
      await train(t.ctx, runner, data, HP, { onStep: (r) => void steps.push(r.loss), onEval: (r) => void vals.push(r.valLoss), onSkip: (r) => void skips.push(r) });
      expect(skips).toEqual([]);
      expect(steps).toHaveLength(1);
      expect(Math.abs(steps[0] - stepWant) / stepWant).toBeLessThan(1e-5);

      // After the step, the adapter is what the pass read: each validation batch's mean alone, weighted by its rows.
      const batches = [...data.validationBatches()];
      expect(batches.map((b) => b.B)).toEqual([2, 1]);
      let weighted = 0;
      let byToken = 0;
      let tokens = 0;
      for (const b of batches) {
        const m = await meanOf(b);
        weighted += b.B * m;
        byToken += b.lossTokens * m;
        tokens += b.lossTokens;
      }
      const valWant = weighted / 3;
      expect(vals).toHaveLength(1);
      expect(Math.abs(vals[0] - valWant) / valWant).toBeLessThan(1e-5);
      // The two averages differ here by far more than rounding: the test tells them apart.
      expect(Math.abs(byToken / tokens - valWant) / valWant).toBeGreaterThan(1e-3);
    } finally {
      runner.destroy();
      destroyLora(t.ctx, lora);
    }
  });

  it('computes the validation batches packed into fewer forward passes, to the same loss as a pass per batch', async () => {
    // Five validation rows in batches of one (Replicate's default): one pass of two rows of up to 12 tokens holds them.
    const hp = { ...HP, micro_batch_size: 2, validation_batch_size: 1 };
    const val = [row(4, 3), row(5, 9, 4), row(6, 6), row(7, 12), row(8, 5, 2)];
    const data = new TrainingData([row(0, 6), row(1, 9), row(2, 7), row(3, 5)], val, hp);
    expect(data.stats.validation).toMatchObject({ batches: 5, passes: 2, rows: 3, scoredSequences: 5 });
    expect(runnerShape(data)).toEqual({ B: 2, T: 12 });
    const lora = uploadLora(t.ctx, t.weights.dims, t.start);
    const runner = new MistralRunner(t.ctx, t.weights, lora, { ...runnerShape(data), seed: HP.seed });
    try {
      const progress: number[] = [];
      const packed = await evaluate(t.ctx, runner, data, { onProgress: (p) => void progress.push(p.done) });
      expect(progress).toEqual([0, 1, 2]);
      // The references: each batch (one row) alone, as a pass per batch computed it.
      let sum = 0;
      for (const b of data.validationBatches()) {
        runner.resetLoss();
        runner.setBatch(b);
        runner.evaluate(1 / b.lossTokens);
        sum += await runner.readLoss();
      }
      const want = sum / 5;
      expect(Math.abs(packed.loss - want) / want).toBeLessThan(1e-5);
      expect(packed.tokens).toBe(data.stats.validation.lossTokens);
    } finally {
      runner.destroy();
      destroyLora(t.ctx, lora);
    }
  });

  it('skips a step with no token to learn from at all, as a skip that is no bad step in a row', async () => {
    // Two steps of two micro-batches: the first has no counted token, the second has.
    const hp = { ...HP, train_batch_size: 2, run_validation: false };
    const data = new TrainingData([row(0, 6, 99), row(1, 5, 99), row(2, 7), row(3, 8)], [], { ...hp, seed: 6 });
    const lora = uploadLora(t.ctx, t.weights.dims, t.start);
    const runner = new MistralRunner(t.ctx, t.weights, lora, { ...runnerShape(data), seed: HP.seed });
    try {
      const emptyAt = [0, 1].filter((i) => data.step(i).microBatches.every((m) => m.lossTokens === 0));
      // This seed's order puts the two cut rows in one step.
      expect(emptyAt).toHaveLength(1);
      const steps: number[] = [];
      const skips: SkipReport[] = [];
      const result = await train(t.ctx, runner, data, hp, { onStep: (r) => void steps.push(r.step), onSkip: (r) => void skips.push(r) });
      expect(skips.map((s) => s.step)).toEqual(emptyAt.map((i) => i + 1));
      for (const s of skips) expect(s).toMatchObject({ reason: 'the step has no token to learn from (its rows lost their completions to max_seq_len)', consecutive: 0 });
      expect(steps.length + skips.length).toBe(2);
      expect(result.skipped).toBe(emptyAt.length);
    } finally {
      runner.destroy();
      destroyLora(t.ctx, lora);
    }
  });
});
