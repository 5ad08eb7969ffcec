import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { repackRows, repackSequences } from '../../../src/data/repack.ts';
import { sequenceLength, type Sequence } from '../../../src/data/pack.ts';

const cost = (lengths: readonly number[], rows: number[][]): number => rows.length * Math.max(...rows.map((r) => r.reduce((a, i) => a + lengths[i], 0)));

describe('padding-free rows (repackRows)', () => {
  it('puts short sequences together under the longest, and leaves a micro-batch without padding as it is', () => {
    // Padded: 4 × 114 = 456 tokens for 231; the longest alone, the two that fit beside each other together: 342.
    expect(repackRows([114, 46, 40, 31], 114)).toEqual([[0], [1], [2, 3]]);
    // Two rows of 10 hold all 20 tokens: no padding at all.
    expect(repackRows([3, 10, 3, 3, 1], 10)).toEqual([[0, 2, 3, 4], [1]]);
    // A capacity above the micro-batch's own longest (the run's longest sequence) lets one row hold everything.
    expect(repackRows([5, 7, 2, 6], 20)).toEqual([[0, 1, 2, 3]]);
    // Equal lengths cost the same in any number of rows: the padded layout stays.
    expect(repackRows([30, 30, 30, 30], 114)).toEqual([[0], [1], [2], [3]]);
    expect(repackRows([9], 9)).toEqual([[0]]);
    expect(repackRows([], 9)).toEqual([]);
  });

  it('refuses a sequence longer than the capacity', () => {
    expect(() => repackRows([4, 12], 10)).toThrow(RangeError);
  });

  it('places every sequence once, within the capacity, never costing more than padding (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 400 }), (lengths, extra) => {
        const capacity = Math.max(...lengths) + extra;
        const rows = repackRows(lengths, capacity);
        expect(rows.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
        for (const r of rows) {
          expect(r.length).toBeGreaterThan(0);
          expect(r).toEqual([...r].sort((a, b) => a - b));
          expect(r.reduce((a, i) => a + lengths[i], 0)).toBeLessThanOrEqual(capacity);
        }
        expect(rows.map((r) => r[0])).toEqual(rows.map((r) => r[0]).sort((a, b) => a - b));
        const total = lengths.reduce((a, b) => a + b, 0);
        const c = cost(lengths, rows);
        expect(c).toBeLessThanOrEqual(lengths.length * Math.max(...lengths));
        expect(c).toBeGreaterThanOrEqual(total);
        // The same lengths, the same rows: a resumed run rebuilds the interrupted run's batches.
        expect(repackRows([...lengths], capacity)).toEqual(rows);
      }),
    );
  });

  it('chooses what trying every row count with a plain least-filled scan chooses (property)', () => {
    // The reference: for every k, longest first into the first least-filled row; the cheapest k, more rows on a tie.
    const reference = (lengths: number[], capacity: number): number[][] => {
      const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
      let best: { cost: number; rows: number[][] } | null = null;
      for (let k = 1; k <= lengths.length; k++) {
        const rows: number[][] = Array.from({ length: k }, () => []);
        const fill = new Array<number>(k).fill(0);
        for (const i of order) {
          const r = fill.indexOf(Math.min(...fill));
          rows[r].push(i);
          fill[r] += lengths[i];
        }
        if (Math.max(...fill) > capacity) continue;
        const c = k * Math.max(...fill);
        if (best === null || c <= best.cost) best = { cost: c, rows };
      }
      return (best as { rows: number[][] }).rows.filter((r) => r.length > 0).map((r) => [...r].sort((a, b) => a - b)).sort((a, b) => a[0] - b[0]);
    };
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 60 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 200 }), (lengths, extra) => {
        const capacity = Math.max(...lengths) + extra;
        expect(repackRows(lengths, capacity)).toEqual(reference(lengths, capacity));
      }),
    );
  });

  it('lays out the segments of the sequences a row holds, in order, packs kept whole', () => {
    const seqs: Sequence[] = [
      [{ example: 0, start: 0, end: 8 }],
      [{ example: 1, start: 0, end: 2 }, { example: 2, start: 0, end: 3 }], // a pack of two examples
      [{ example: 3, start: 4, end: 7 }], // the rest of a wrapped example
    ];
    const rows = repackSequences(seqs, 8);
    expect(rows).toEqual([[{ example: 0, start: 0, end: 8 }], [{ example: 1, start: 0, end: 2 }, { example: 2, start: 0, end: 3 }, { example: 3, start: 4, end: 7 }]]);
    expect(rows.map(sequenceLength)).toEqual([8, 8]);
  });
});
