// The dataset panel's texts (src/ui/dataset-panel.ts): the summary's facts and the verdict's error count, which must
// match what the file and its problem list show.
import { describe, expect, it } from 'vitest';
import { errorsText, summaryFacts } from '../../../src/ui/dataset-panel.ts';
import type { DatasetSummary } from '../../../src/worker/api.ts';

function summary(over: Partial<DatasetSummary>): DatasetSummary {
  return {
    rows: 0,
    rejectedRows: 0,
    lines: 0,
    bytes: 0,
    shape: null,
    layout: 'replicate',
    maxSeqLen: 256,
    tokens: { total: 0, min: 0, median: 0, max: 0, lossTokens: 0, histogram: { binWidth: 1, fits: [0], truncated: [0] } },
    rowsTruncated: 0,
    tokensLost: 0,
    errors: 0,
    warnings: 0,
    notText: false,
    ...over,
  };
}

const facts = (s: DatasetSummary, fileBytes: number): Record<string, string> => Object.fromEntries(summaryFacts(s, fileBytes));

describe('dataset summary facts', () => {
  it('gives the size of the file itself, also for a binary file the reader stopped reading at once', () => {
    const f = facts(summary({ notText: true, errors: 1, bytes: 0 }), 2048);
    expect(f.size).toBe('2.0 KiB');
    expect(f.content).toBe('not a JSONL text file (binary data)');
    // Nothing was read as lines: no line or row counts that look like facts about the file.
    expect(Object.keys(f)).toEqual(['content', 'size']);
  });

  it('leaves out the per-row token statistics and truncation of a file without usable rows', () => {
    const f = facts(summary({ rows: 0, rejectedRows: 20, lines: 20, bytes: 350, errors: 20 }), 350);
    expect(f.tokens).toBe('no usable rows');
    for (const k of ['per row', 'loss tokens', 'truncated rows']) expect(f).not.toHaveProperty(k);
    expect(f.rows).toBe('0');
    expect(f['rejected rows']).toBe('20');
    expect(f.size).toBe('350 B');
  });

  it('keeps them, with thousands separators, for a file with rows', () => {
    const s = summary({ rows: 3, lines: 3, bytes: 5000, tokens: { total: 1_234_567, min: 5, median: 12, max: 999_747, lossTokens: 1_000, histogram: { binWidth: 50_000, fits: [2], truncated: [1] } }, rowsTruncated: 1, tokensLost: 999_747 });
    const f = facts(s, 5000);
    expect(f.tokens).toBe('1,234,567');
    expect(f['per row']).toBe('min 5 · median 12 · max 999,747');
    expect(f['truncated rows']).toBe('1 at 256 tokens (999,747 tokens lost)');
    expect(f.size).toBe('4.9 KiB');
  });
});

describe('dataset verdict', () => {
  it('counts the errors in rows and says in words that no row is usable, without counting that as one more', () => {
    expect(errorsText(summary({ rows: 0, rejectedRows: 20, errors: 20 }))).toBe('20 errors · no usable rows');
    expect(errorsText(summary({ rows: 0, rejectedRows: 1, errors: 1 }))).toBe('1 error · no usable rows');
  });

  it('gives the plain count when some rows are usable, or when the error is the file itself', () => {
    expect(errorsText(summary({ rows: 3, rejectedRows: 4, errors: 4 }))).toBe('4 errors');
    expect(errorsText(summary({ rows: 0, rejectedRows: 0, errors: 1 }))).toBe('1 error');
    expect(errorsText(summary({ rows: 1, rejectedRows: 1500, errors: 1500 }))).toBe('1,500 errors');
  });
});
