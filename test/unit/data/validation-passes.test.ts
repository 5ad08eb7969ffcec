import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planValidationPasses, type ValidationPassPlan } from '../../../src/data/validation-passes.ts';

const fillOf = (lengths: readonly number[], row: number[]): number => row.reduce((a, i) => a + lengths[i], 0);

/** First-fit decreasing by a plain scan of the rows, fullest rows first, `perPass` a pass: what the tree must find. */
function reference(lengths: number[], perPass: number, capacity: number): ValidationPassPlan[] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  const rows: number[][] = [];
  const fill: number[] = [];
  for (const i of order) {
    let r = fill.findIndex((f) => f + lengths[i] <= capacity);
    if (r < 0) {
      r = rows.length;
      rows.push([]);
      fill.push(0);
    }
    rows[r].push(i);
    fill[r] += lengths[i];
  }
  const byFill = rows.map((_, r) => r).sort((a, b) => fill[b] - fill[a] || a - b);
  const passes: ValidationPassPlan[] = [];
  for (let p = 0; p < byFill.length; p += perPass) {
    const mine = byFill.slice(p, p + perPass);
    passes.push({ rows: mine.map((r) => [...rows[r]].sort((a, b) => a - b)), longestRow: Math.max(...mine.map((r) => fill[r])) });
  }
  return passes;
}

describe('validation passes (planValidationPasses)', () => {
  it('lays sequences end to end into rows of the capacity, micro-batch rows a pass, fullest rows first', () => {
    // 50 rows of Replicate's default batch of 1 in one row each would be 5 passes of 10 tokens: here 2 passes.
    expect(planValidationPasses([12, 5, 9, 3, 6], 2, 12)).toEqual([
      { rows: [[0], [2, 3]], longestRow: 12 },
      { rows: [[1, 4]], longestRow: 11 },
    ]);
    // One row a pass (micro_batch_size 1): each pass is one row.
    expect(planValidationPasses([4, 4, 4], 1, 8)).toEqual([
      { rows: [[0, 1]], longestRow: 8 },
      { rows: [[2]], longestRow: 4 },
    ]);
    // Sequences as long as the capacity each take a row of their own.
    expect(planValidationPasses([7, 7, 7], 4, 7)).toEqual([{ rows: [[0], [1], [2]], longestRow: 7 }]);
    expect(planValidationPasses([], 4, 7)).toEqual([]);
  });

  it('refuses a sequence longer than the capacity, and a pass of no rows', () => {
    expect(() => planValidationPasses([3, 9], 2, 8)).toThrow(RangeError);
    expect(() => planValidationPasses([3], 0, 8)).toThrow(RangeError);
  });

  it('lays a pass out again where first fit filled its rows unevenly', () => {
    // First fit: [9], [3] (2 rows × 9); the same four sequences as [6], [6] cost 12.
    expect(planValidationPasses([3, 3, 3, 3], 2, 11)).toEqual([{ rows: [[0, 2], [1, 3]], longestRow: 6 }]);
    // Into more rows than first fit's two of 441 (882): five rows of at most 168 (840). The property test once bounded
    // the rows of a pass laid out again by first fit's, and failed on this one.
    expect(planValidationPasses([92, 47, 160, 121, 47, 168, 113, 47], 5, 441)).toEqual([{ rows: [[0, 1], [2], [3, 7], [4, 6], [5]], longestRow: 168 }]);
  });

  it('with rows of a fixed length, lays a pass out again only into fewer rows', () => {
    // By their longest row, three rows of 4 (12) beat first fit's [4, 4], [4] (16); padded to 8 they would cost 24.
    expect(planValidationPasses([4, 4, 4], 3, 8)).toEqual([{ rows: [[0], [1], [2]], longestRow: 4 }]);
    expect(planValidationPasses([4, 4, 4], 3, 8, { fixedRowLength: true })).toEqual([{ rows: [[0, 1], [2]], longestRow: 8 }]);
  });

  it('places every sequence once within the capacity, each pass holding what a plain first-fit scan puts there (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 1, max: 6 }),
        (lengths, extra, perPass) => {
          const capacity = Math.max(1, ...lengths) + extra;
          const passes = planValidationPasses(lengths, perPass, capacity);
          // The sequences of each pass are first fit's; laid out again only where that costs less.
          const firstFit = reference(lengths, perPass, capacity);
          expect(passes.map((p) => p.rows.flat().sort((a, b) => a - b))).toEqual(firstFit.map((p) => p.rows.flat().sort((a, b) => a - b)));
          passes.forEach((p, i) => expect(p.rows.length * p.longestRow).toBeLessThanOrEqual(firstFit[i].rows.length * firstFit[i].longestRow));
          expect(passes.flatMap((p) => p.rows.flat()).sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
          const total = lengths.reduce((a, b) => a + b, 0);
          const rows = passes.flatMap((p) => p.rows);
          for (const p of passes) {
            expect(p.rows.length).toBeGreaterThan(0);
            expect(p.rows.length).toBeLessThanOrEqual(perPass);
            expect(p.longestRow).toBe(Math.max(...p.rows.map((r) => fillOf(lengths, r))));
            expect(p.longestRow).toBeLessThanOrEqual(capacity);
          }
          // First fit leaves at most one row half empty or less: never more than twice the rows the tokens need. (Not
          // a bound on the passes laid out again: more, shorter rows can cost less, as in the test above this one.)
          expect(firstFit.flatMap((p) => p.rows).length).toBeLessThanOrEqual(Math.max(1, 2 * Math.ceil(total / capacity)));
          expect(passes).toHaveLength(firstFit.length);
          for (const p of passes) for (const r of p.rows) expect(r).toEqual([...r].sort((a, b) => a - b));
          expect(planValidationPasses([...lengths], perPass, capacity)).toEqual(passes);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('plans a large validation set at once (n log n, not a scan of every row)', () => {
    const lengths = Array.from({ length: 200_000 }, (_, i) => 1 + ((i * 7919) % 500));
    const started = performance.now();
    const passes = planValidationPasses(lengths, 4, 2048);
    expect(performance.now() - started).toBeLessThan(3000);
    const total = lengths.reduce((a, b) => a + b, 0);
    const rows = passes.reduce((a, p) => a + p.rows.length, 0);
    // Within a percent of the rows the tokens need.
    expect(rows).toBeLessThanOrEqual(Math.ceil(total / 2048) * 1.01);
  });
});
