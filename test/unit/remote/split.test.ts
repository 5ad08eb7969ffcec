// Replicate's validation split as remote mode judges it before sending (CLI and page alike): refused when nothing
// would be trained on, a warning when fewer rows are trained on than validated on, and the tokens the estimate counts.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseHyperparams } from '../../../src/config/hyperparams.ts';
import { loadDataset } from '../../../src/data/dataset.ts';
import { loadRunData } from '../../../src/data/training-data.ts';
import { remoteSplit, trainedTokens } from '../../../src/remote/split.ts';
import { mistralTokenizer } from '../data/helpers.ts';

const defaults = { run_validation: true, num_validation_samples: 50 };

describe('remoteSplit', () => {
  it('refuses a file with no more rows than num_validation_samples: the trainer would train on nothing', () => {
    for (const rows of [20, 50]) {
      const s = remoteSplit(rows, defaults, false);
      expect(s.trainRows).toBe(0);
      expect(s.refusal).toMatch(new RegExp(`has ${rows} rows and num_validation_samples is 50: .*leaves nothing to train on`));
      expect(s.refusal).toMatch(/choose a smaller num_validation_samples, give a validation file, or set run_validation false/);
    }
    expect(remoteSplit(1, defaults, false).refusal).toMatch(/has 1 row and/);
  });

  it('warns when fewer rows are trained on than validated on (62 rows, 50 held out: 12 trained)', () => {
    const s = remoteSplit(62, defaults, false);
    expect(s).toMatchObject({ trainRows: 12, heldOut: 50, refusal: null });
    expect(s.warning).toMatch(/last 50 of the training data's 62 rows .* leaves 12 to train on, fewer than it validates on/);
  });

  it('says nothing when most rows are trained on, and holds none out with a validation file or without validation', () => {
    expect(remoteSplit(100, defaults, false)).toEqual({ trainRows: 50, heldOut: 50, refusal: null, warning: null });
    expect(remoteSplit(20, defaults, true)).toEqual({ trainRows: 20, heldOut: 0, refusal: null, warning: null });
    expect(remoteSplit(20, { run_validation: false, num_validation_samples: 50 }, false)).toEqual({ trainRows: 20, heldOut: 0, refusal: null, warning: null });
  });

  it("counts the tokens of the rows trained on, each cut at 4096 as Replicate's trainer cuts it", () => {
    // Each row's tokens before truncation, in file order; the last two are held out (the file's total share was 2 050).
    const lengths = Uint32Array.from([10, 20, 5000, 30, 40]);
    const two = { run_validation: true, num_validation_samples: 2 };
    expect(trainedTokens(lengths, remoteSplit(5, two, false))).toBe(10 + 20 + 4096);
    expect(trainedTokens(lengths, remoteSplit(5, two, true))).toBe(10 + 20 + 4096 + 30 + 40);
    expect(trainedTokens(lengths, remoteSplit(5, { ...two, run_validation: false }, false))).toBe(10 + 20 + 4096 + 30 + 40);
    expect(trainedTokens(lengths, remoteSplit(5, { ...two, num_validation_samples: 5 }, false))).toBe(0);
    expect(trainedTokens(new Uint32Array(0), { trainRows: 0 })).toBe(0);
  });

  it("on the sample dataset, counts the tokens local training counts for the same rows (the page's report, one epoch)", async () => {
    const tokenizer = await mistralTokenizer();
    const bytes = new Uint8Array(readFileSync('public/datasets/sample.jsonl'));
    // As the page's dataset panel reads it with the form's defaults (layout replicate, max_seq_len 4096).
    const report = await loadDataset(bytes, { tokenizer, keepExamples: false });
    // The default 50 rows held out, and 6 (where the file's share said 2,831 and the Training panel 2,881).
    for (const n of [50, 6]) {
      const hp = parseHyperparams({ num_train_epochs: 1, num_validation_samples: n });
      const split = remoteSplit(report.summary.rows, hp, false);
      expect(split.heldOut).toBe(n);
      const local = await loadRunData({ train: bytes }, tokenizer, hp);
      expect(local.data.stats.trainExamples).toBe(split.trainRows);
      expect(trainedTokens(report.lengths, split)).toBe(local.data.stats.run.tokens);
    }
  });
});
