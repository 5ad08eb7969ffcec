// The lines a person reads on stderr while `finetune train` runs (src/cli/train-progress.ts).
import { describe, expect, it } from 'vitest';
import { trainDoneLine, trainEventLine, trainProgressPrinter } from '../../../src/cli/train-progress.ts';
import type { TrainEvent } from '../../../src/run/session.ts';

const step = (n: number, total = 10): TrainEvent => ({ type: 'step', step: n, totalSteps: total, epoch: 0, loss: 2.34567, lr: 1e-4, gradNorm: 0.98765, tokens: 512, tokensPerSecond: 812.34, elapsedSeconds: n, etaSeconds: 125 });

describe('trainEventLine', () => {
  it('says a step, a validation pass, its loss, a checkpoint, a skipped step and a pause in words', () => {
    expect(trainEventLine(step(3))).toBe('step 3 / 10 (epoch 1) · loss 2.3457 · lr 1.00e-4 · grad norm 0.988 · 812.3 tokens/s · 2 min 5 s left');
    expect(trainEventLine(step(10))).toBe('step 10 / 10 (epoch 1) · loss 2.3457 · lr 1.00e-4 · grad norm 0.988 · 812.3 tokens/s');
    expect(trainEventLine({ type: 'validating', step: 4, passes: 50, done: 20, fraction: 20 / 50, seconds: 12, etaSeconds: 30 })).toBe('validating after step 4: 20 / 50 passes · 30 s left');
    expect(trainEventLine({ type: 'validating', step: 4, passes: 1, done: 0, fraction: 0 / 1, seconds: 0, etaSeconds: null })).toBe('validating after step 4: 0 / 1 pass');
    expect(trainEventLine({ type: 'eval', step: 4, valLoss: 1.5, valTokens: 12345, seconds: 42.1 })).toBe('step 4: validation loss 1.5000 (12,345 tokens, 43 s)');
    expect(trainEventLine({ type: 'checkpoint', step: 1200, savedAt: '2025-01-15T09:30:00.000Z' })).toBe('checkpoint saved at step 1,200');
    expect(trainEventLine({ type: 'skipped', step: 5, totalSteps: 10, epoch: 0, reason: 'the loss is NaN', consecutive: 2 })).toBe('step 5 skipped: the loss is NaN (2 in a row); its update was not applied');
    expect(trainEventLine({ type: 'paused', step: 5 })).toBe('paused at step 5');
    expect(trainEventLine({ type: 'status', text: 'x' })).toBeNull();
  });

  // A resume given --base-matmul int8 changed a fp32 run's numbers while stderr said "as the saved run was trained
  // with": the sentence that said otherwise went to stdout alone, as a JSON status line.
  it('says the run\'s notes (a status with note) on stderr, and leaves progress statuses to the JSON lines', () => {
    const note = "the saved run's base products ran in fp32; it continues in int8 as asked, so its numbers change from here";
    expect(trainEventLine({ type: 'status', text: note, note: true })).toBe(`note: ${note}`);
    expect(trainEventLine({ type: 'status', text: 'measured 3 kernel combinations on one layer of this model…' })).toBeNull();
  });

  it('says the plan before the first step: steps, rows, batch, tokens and the padding left beside the padded one', () => {
    const stats = { totalSteps: 14, epochs: 1, trainExamples: 56, validationExamples: 6, trainBatchSize: 4, microBatchSize: 4, gradientAccumulationSteps: 1, tokensPerEpoch: 2881, paddingFraction: 0.0954, paddingFractionPadded: 0.26 };
    const plan = (over: object, resumedAt = 0): TrainEvent => ({ type: 'plan', stats: { ...stats, ...over }, resumedAt }) as unknown as TrainEvent;
    expect(trainEventLine(plan({}))).toBe('plan: 14 steps over 1 epoch of 56 rows, 6 rows to validate on · batch 4 = 4 × 1 · 2,881 tokens an epoch, 9.5 % padding (26 % without padding_free)');
    expect(trainEventLine(plan({ validationExamples: 0, paddingFraction: 0.26, epochs: 3, totalSteps: 42 }, 17))).toBe('plan: 42 steps over 3 epochs of 56 rows · batch 4 = 4 × 1 · 2,881 tokens an epoch, 26 % padding · resuming after step 17');
    expect(trainEventLine(plan({ paddingFraction: 0, paddingFractionPadded: 0 }))).toContain('0 % padding');
  });

  it('quotes user text so that a control character in a prompt or a sample cannot reach the terminal, and shortens a long sample', () => {
    const line = trainEventLine({ type: 'sample', step: 2, prompt: 'Q\u001b[2J: hi', text: `${'é'.repeat(300)}` });
    expect(line).toBe(`sample at step 2: "Q\\u001b[2J: hi" → "${'é'.repeat(200)}…"`);
    expect(line).not.toContain('\u001b');
  });
});

describe('the validation before training (eval_on_start, step 0)', () => {
  it('says "before training" where a step would be named, for the pass, its loss and its sample', () => {
    expect(trainEventLine({ type: 'validating', step: 0, passes: 7, done: 3, fraction: 3 / 7, seconds: 5, etaSeconds: null })).toBe('validating before training: 3 / 7 passes');
    expect(trainEventLine({ type: 'eval', step: 0, valLoss: 3.74051, valTokens: 2527, seconds: 90 })).toBe('before training: validation loss 3.7405 (2,527 tokens, 1 min 30 s)');
    expect(trainEventLine({ type: 'sample', step: 0, prompt: 'Q', text: 'A' })).toBe('sample before training: "Q" → "A"');
  });

  it('puts the loss before training beside the final one, or alone when the run validated nothing after it', () => {
    expect(trainDoneLine({ steps: 9, skipped: 0, stopped: false, finalLoss: 3.8, finalValLoss: 3.7351, baselineValLoss: 3.7405, seconds: 407 }, 'o/adapter')).toBe(
      'finished 9 steps in 6 min 47 s · loss 3.8000 · validation loss 3.7351 (3.7405 before training) · adapter in "o/adapter"',
    );
    expect(trainDoneLine({ steps: 2, skipped: 0, stopped: true, finalLoss: 3.8, finalValLoss: null, baselineValLoss: 3.7405, seconds: 40 }, null)).toBe(
      'stopped after 2 steps in 40 s · loss 3.8000 · validation loss 3.7405 before training · no adapter written',
    );
  });
});

describe('trainProgressPrinter', () => {
  it('prints the first and last step always, others at most every 2 s, and every other event as it comes', () => {
    let t = 0;
    const lines: string[] = [];
    const say = trainProgressPrinter((l) => lines.push(l), { now: () => t });
    for (let n = 1; n <= 10; n++) {
      t = n * 700;
      say(step(n));
      if (n === 5) say({ type: 'checkpoint', step: 5, savedAt: '2025-01-15T09:30:00.000Z' });
    }
    expect(lines.map((l) => l.split(' · ')[0])).toEqual(['step 1 / 10 (epoch 1)', 'step 4 / 10 (epoch 1)', 'checkpoint saved at step 5', 'step 7 / 10 (epoch 1)', 'step 10 / 10 (epoch 1)']);
  });
});

describe('trainDoneLine', () => {
  it('says how the run ended, its losses and where the adapter is', () => {
    expect(trainDoneLine({ steps: 8, skipped: 0, stopped: false, finalLoss: 1.23456, finalValLoss: 1.5, seconds: 75 }, 'out/adapter')).toBe('finished 8 steps in 1 min 15 s · loss 1.2346 · validation loss 1.5000 · adapter in "out/adapter"');
    expect(trainDoneLine({ steps: 1, skipped: 1, stopped: true, finalLoss: null, finalValLoss: null, seconds: 3 }, null)).toBe('stopped after 1 step in 3 s · 1 skipped · no adapter written');
  });
});
