// The lm_head computes only the tokens with a loss (engine/mistral/model.ts, kernels/xent.ts HeadRows): on tiny-mistral,
// a micro-batch under the instruct layout (prompts without a loss, padding, each sequence's last token) trains the same
// loss and the same LoRA gradients as the head over every token, and a packed validation pass scores the same loss.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHyperparams } from '../../src/config/index.ts';
import { TrainingData } from '../../src/data/batches.ts';
import type { Example } from '../../src/data/layout.ts';
import { destroyLora, downloadLoraGrads, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import type { HeadMode } from '../../src/engine/mistral/sizing.ts';
import { runnerShape } from '../../src/run/trainer.ts';
import { tinyTrainer, type TinyTrainer } from '../helpers/tiny-trainer.ts';

const HP = parseHyperparams({
  num_train_epochs: 1,
  train_batch_size: 3,
  micro_batch_size: 3,
  validation_batch_size: 1,
  lora_rank: 2,
  lora_alpha: 4,
  lora_dropout: 0.1, // a training pass draws its masks from the step: both heads see the same
  lora_target_modules: 'q_proj,v_proj,down_proj',
  max_seq_len: 24,
  padding_free: false, // padded rows: padding without a loss too
});

/** A row of `len` ids whose loss starts at `lossStart` (an instruct prompt before it). */
const row = (k: number, len: number, lossStart: number): Example => ({ line: k + 1, ids: Uint32Array.from({ length: len }, (_, t) => 200 + 31 * k + 7 * t), lossStart, truncated: 0 });

describe('the lm_head on the counted tokens only', () => {
  let t: TinyTrainer;
  beforeAll(async () => {
    t = await tinyTrainer(HP);
  });
  afterAll(() => t.tokenizer.dispose());

  it('trains the loss and LoRA gradients of the whole head, and validates to the same loss', async () => {
    const data = new TrainingData([row(0, 20, 14), row(1, 9, 6), row(2, 13, 10)], [row(3, 11, 8), row(4, 6, 2), row(5, 15, 12)], HP);
    const batch = data.step(0).microBatches[0];
    const counted = Array.from(batch.targets).filter((x) => x !== -100).length;
    // Most of the micro-batch has no loss: a head of the counted tokens computes under a third of it.
    expect(counted).toBeLessThan((batch.B * batch.T) / 3);
    const pass = [...data.validationPasses()][0];
    const results = [];
    for (const head of ['all', 'counted'] as HeadMode[]) {
      const lora = uploadLora(t.ctx, t.weights.dims, t.start);
      const runner = new MistralRunner(t.ctx, t.weights, lora, { ...runnerShape(data), seed: HP.seed, head });
      try {
        runner.zeroGrads();
        runner.resetLoss();
        runner.setBatch(batch);
        runner.forwardBackward(1 / counted, 1 / counted, 'train', 0);
        const loss = await runner.readLoss();
        const grads = await downloadLoraGrads(t.ctx, lora);
        runner.resetLoss();
        runner.setBatch(pass);
        runner.evaluateWeighted(pass.lossWeights);
        results.push({ loss, grads, valLoss: await runner.readLoss() });
      } finally {
        runner.destroy();
        destroyLora(t.ctx, lora);
      }
    }
    const [all, only] = results;
    expect(all.loss).toBeGreaterThan(0);
    expect(Math.abs(only.loss - all.loss) / all.loss).toBeLessThan(1e-6);
    expect(Math.abs(only.valLoss - all.valLoss) / all.valLoss).toBeLessThan(1e-6);
    // Each counted row's dh has the same bits, and the rows without a loss get 0 either way: the same gradients.
    let compared = 0;
    all.grads.forEach((layer, l) => {
      for (const [name, g] of Object.entries(layer)) {
        const o = only.grads[l][name as keyof typeof layer]!;
        expect(Buffer.from(o.dA.buffer).equals(Buffer.from(g.dA.buffer))).toBe(true);
        expect(Buffer.from(o.dB.buffer).equals(Buffer.from(g.dB.buffer))).toBe(true);
        expect(g.dB.some((x) => x !== 0)).toBe(true);
        compared++;
      }
    });
    expect(compared).toBe(3 * t.weights.dims.L);
  });
});
