// The length histogram's words (src/ui/length-histogram.ts): what a screen reader hears instead of the bars, which must
// say where most rows are and what max_seq_len truncates.
import { describe, expect, it } from 'vitest';
import { lengthHistogram } from '../../../src/data/dataset.ts';
import { histogramLabel, histogramRestingLegend } from '../../../src/ui/length-histogram.ts';

describe('length histogram label', () => {
  it('names the fullest bin and the rows max_seq_len truncates', () => {
    const h = lengthHistogram([12, 30, 31, 33, 34, 35, 90, 200], 64);
    // 200 / 40 = 5 a bin: 31–35 holds four rows.
    expect(histogramLabel(h, 64)).toBe('Rows by length in tokens: most rows (4) have 31–35 tokens; 2 of 8 rows are longer than max_seq_len 64 and are truncated.');
  });

  it('counts bin 0 from one token (every row has its <s>)', () => {
    expect(histogramLabel(lengthHistogram([1, 2, 3, 9, 200], 4096), 4096)).toBe('Rows by length in tokens: most rows (3) have 1–5 tokens; every row fits max_seq_len 4,096.');
  });

  it('says when every row fits, and a one-token bin as one length', () => {
    const h = lengthHistogram([3, 3, 7], 4096);
    expect(histogramLabel(h, 4096)).toBe('Rows by length in tokens: most rows (2) have 3 tokens; every row fits max_seq_len 4,096.');
  });
});

// What the legend says while the pointer is off the bars: uPlot's own "—" read as a broken chart.
describe('length histogram resting legend', () => {
  it('gives the totals over all lengths: rows truncated and rows that fit', () => {
    expect(histogramRestingLegend(lengthHistogram([12, 30, 31, 33, 34, 35, 90, 200], 64))).toEqual(['all lengths', '2', '6']);
    expect(histogramRestingLegend(lengthHistogram(Array.from({ length: 1500 }, () => 10), 4096))).toEqual(['all lengths', '0', '1,500']);
  });
});
