// Padding-free micro-batches (src/data/repack.ts) on tiny-mistral: a micro-batch whose sequences are laid end to end
// in fewer rows gives the padded layout's loss and LoRA gradients (up to rounding: the sums run in another order),
// while the GPU computes fewer tokens. A validation packs its batches the same way whatever padding_free says
// (data/validation-passes.ts; loss-averaging.test.ts checks it against a pass per batch), so its loss agrees too. LoRA dropout is off, so both layouts draw no masks; B starts
// random so that every gradient is nonzero.
import { beforeAll, describe, expect, it } from 'vitest';
import { parseHyperparams } from '../../src/config/index.ts';
import { TrainingData } from '../../src/data/batches.ts';
import type { Example } from '../../src/data/layout.ts';
import { destroyLora, downloadLoraGrads, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { mulberry32 } from '../../src/engine/reference/common.ts';
import type { LoraAdapter } from '../../src/model/lora-adapter.ts';
import { accumulateStep, evaluate, runnerShape } from '../../src/run/trainer.ts';
import { tinyTrainer, type TinyTrainer } from '../helpers/tiny-trainer.ts';

const HP = parseHyperparams({
  num_train_epochs: 1,
  train_batch_size: 4,
  micro_batch_size: 4,
  validation_batch_size: 3,
  lora_rank: 2,
  lora_alpha: 4,
  lora_dropout: 0,
  lora_target_modules: 'q_proj,v_proj,down_proj',
  max_seq_len: 16,
  seed: 3,
});

/** A row of `len` token ids (distinct per row), its loss from `lossStart` on. */
const row = (k: number, len: number, lossStart = 0): Example => ({ line: k + 1, ids: Uint32Array.from({ length: len }, (_, t) => 100 + 37 * k + 5 * t), lossStart, truncated: 0 });

// Uneven rows: the longest (13) sets the row capacity, the short ones share rows.
const TRAIN = [row(0, 13), row(1, 3), row(2, 5, 2), row(3, 4), row(4, 6), row(5, 2), row(6, 7, 3), row(7, 3)];
const VALIDATION = [row(8, 4), row(9, 9), row(10, 3), row(11, 5, 1), row(12, 2)];

/** `start` with every B filled with small seeded values (a fresh adapter's B is 0, and so would be every dA). */
function withRandomB(start: LoraAdapter): LoraAdapter {
  const random = mulberry32(11);
  const tensors = start.tensors.map((layer) =>
    Object.fromEntries(Object.entries(layer).map(([name, pair]) => [name, { A: pair.A, B: Float32Array.from(pair.B, () => (random() - 0.5) * 0.2) }])),
  ) as LoraAdapter['tensors'];
  return { ...start, tensors };
}

describe('padding-free micro-batches', () => {
  let t: TinyTrainer;
  let adapter: LoraAdapter;
  beforeAll(async () => {
    t = await tinyTrainer(HP);
    adapter = withRandomB(t.start);
  });

  /** One optimizer step's loss and gradients (no update), the validation loss, and the tokens the GPU computed. */
  async function stepOf(paddingFree: boolean) {
    const hp = { ...HP, padding_free: paddingFree };
    const data = new TrainingData(TRAIN, VALIDATION, hp);
    const lora = uploadLora(t.ctx, t.weights.dims, adapter);
    const runner = new MistralRunner(t.ctx, t.weights, lora, { ...runnerShape(data), seed: hp.seed });
    try {
      const step = data.step(0);
      runner.zeroGrads();
      runner.resetLoss();
      expect(accumulateStep(runner, step.microBatches, 0)).toBe(step.microBatches.length);
      const loss = await runner.readLoss();
      const grads = await downloadLoraGrads(t.ctx, lora);
      const val = await evaluate(t.ctx, runner, data);
      const batches = step.microBatches;
      return {
        data,
        loss,
        grads,
        valLoss: val.loss,
        computed: batches.reduce((a, m) => a + m.B * m.T, 0),
        rows: batches.map((m) => m.B),
        lines: step.microBatches.map((m) => m.lines.flat().sort((a, b) => a - b)),
      };
    } finally {
      runner.destroy();
      destroyLora(t.ctx, lora);
    }
  }

  it('gives the padded loss, gradients and validation loss while computing fewer tokens', async () => {
    const padded = await stepOf(false);
    const free = await stepOf(true);
    // The same examples in each micro-batch, in fewer rows.
    expect(free.lines).toEqual(padded.lines);
    expect(free.rows.reduce((a, b) => a + b, 0)).toBeLessThan(padded.rows.reduce((a, b) => a + b, 0));
    expect(free.computed).toBeLessThan(padded.computed);
    expect(free.data.stats.run.paddedTokens).toBeLessThan(padded.data.stats.run.paddedTokens);
    expect(free.data.stats.validation).toEqual(padded.data.stats.validation);

    expect(Math.abs(free.loss - padded.loss) / padded.loss).toBeLessThan(1e-5);
    expect(Math.abs(free.valLoss - padded.valLoss) / padded.valLoss).toBeLessThan(1e-5);
    let worst = 0;
    let largest = 0;
    let compared = 0;
    padded.grads.forEach((layer, l) => {
      for (const [name, g] of Object.entries(layer)) {
        const h = free.grads[l][name as keyof typeof layer];
        if (!g || !h) throw new Error(`layer ${l} ${name}: a gradient is missing`);
        for (const [a, b] of [[g.dA, h.dA], [g.dB, h.dB]] as const) {
          for (let i = 0; i < a.length; i++) {
            worst = Math.max(worst, Math.abs(a[i] - b[i]));
            largest = Math.max(largest, Math.abs(a[i]));
            compared++;
          }
        }
      }
    });
    expect(compared).toBeGreaterThan(0);
    expect(largest).toBeGreaterThan(0);
    expect(worst / largest).toBeLessThan(1e-4);
  });
});
