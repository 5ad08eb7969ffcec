import { describe, expect, it } from 'vitest';
import { parseHyperparams } from '../../../src/config/hyperparams.ts';
import { loadRunData } from '../../../src/data/training-data.ts';
import { isFinetuneError } from '../../../src/core/errors.ts';
import { fixtureBytes, mistralTokenizer } from './helpers.ts';

describe('loadRunData: files + hyperparameters → the data of a run', () => {
  it('plans the sample dataset with the schema defaults and a smaller validation split', async () => {
    const tokenizer = await mistralTokenizer();
    const hp = parseHyperparams({ num_validation_samples: 6, train_batch_size: 8, micro_batch_size: 2, layout: 'instruct' });
    const { readFileSync } = await import('node:fs');
    const run = await loadRunData({ train: new Uint8Array(readFileSync('public/datasets/sample.jsonl')) }, tokenizer, hp);
    expect(run.train.summary.rows).toBeGreaterThanOrEqual(55);
    const s = run.data.stats;
    expect(s.validationExamples).toBe(6);
    expect(s.trainExamples).toBe(run.train.summary.rows - 6);
    expect(s.stepsPerEpoch).toBe(Math.ceil(s.trainExamples / 8));
    expect(s.totalSteps).toBe(3 * s.stepsPerEpoch);
    expect(s.gradientAccumulationSteps).toBe(4);
    // The demo needs rows of at most ~120 tokens.
    expect(run.train.summary.tokens?.max).toBeLessThanOrEqual(128);
    expect(run.data.step(0).microBatches).toHaveLength(4);
  });

  it('refuses a training file with errors, listing its problems', async () => {
    const tokenizer = await mistralTokenizer();
    try {
      await loadRunData({ train: fixtureBytes('problems.jsonl'), trainName: 'problems.jsonl' }, tokenizer, parseHyperparams({ run_validation: false }));
      expect.unreachable();
    } catch (e) {
      expect(isFinetuneError(e, 'bad-input')).toBe(true);
      expect((e as Error).message).toMatch(/^problems\.jsonl has 10 errors:\nline 2, column 48: invalid JSON/);
    }
  });

  it('reads validation_data when given and validation runs', async () => {
    const tokenizer = await mistralTokenizer();
    const hp = parseHyperparams({ num_validation_samples: 2, train_batch_size: 1, micro_batch_size: 1 });
    const run = await loadRunData({ train: fixtureBytes('text_crlf_bom.jsonl'), validation: fixtureBytes('prompt_completion.jsonl') }, tokenizer, hp);
    expect(run.data.stats.trainExamples).toBe(3);
    expect(run.data.stats.validationExamples).toBe(2);
    await expect(loadRunData({ train: fixtureBytes('text_crlf_bom.jsonl'), validation: fixtureBytes('bad_utf8.jsonl') }, tokenizer, hp)).rejects.toThrow(/the validation data has 1 error/);
  });
});
