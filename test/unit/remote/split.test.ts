// Replicate's validation split as remote mode judges it before sending (CLI and page alike): refused when nothing
// would be trained on, a warning when fewer rows are trained on than validated on, and the tokens the estimate counts.
import { describe, expect, it } from 'vitest';
import { remoteSplit, trainedTokens } from '../../../src/remote/split.ts';

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

  it('counts the share of tokens of the rows trained on', () => {
    expect(trainedTokens(6200, 62, remoteSplit(62, defaults, false))).toBe(1200);
    expect(trainedTokens(6200, 62, remoteSplit(62, defaults, true))).toBe(6200);
    expect(trainedTokens(0, 0, { trainRows: 0 })).toBe(0);
  });
});
