import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packSequences, sequenceLength, type Sequence } from '../../../src/data/pack.ts';

const identity = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Every (example, token) pair the sequences cover, in order. */
function coverage(seqs: Sequence[]): [number, number][] {
  const out: [number, number][] = [];
  for (const s of seqs) for (const seg of s) for (let t = seg.start; t < seg.end; t++) out.push([seg.example, t]);
  return out;
}

describe('packing (Replicate semantics, last partial pack kept)', () => {
  it('without packing: one example per sequence, in the given order', () => {
    expect(packSequences([3, 5, 2], [2, 0, 1], { pack: false, wrap: false, chunkSize: 4 })).toEqual([
      [{ example: 2, start: 0, end: 2 }],
      [{ example: 0, start: 0, end: 3 }],
      [{ example: 1, start: 0, end: 5 }],
    ]);
  });

  it('greedy: whole examples while the pack stays ≤ chunk_size; an oversized example alone; the last pack kept', () => {
    const seqs = packSequences([3, 4, 2, 9, 1, 1], identity(6), { pack: true, wrap: false, chunkSize: 6 });
    expect(seqs.map((s) => s.map((g) => g.example))).toEqual([[0], [1, 2], [3], [4, 5]]);
    expect(seqs.map(sequenceLength)).toEqual([3, 6, 9, 2]);
  });

  it('wrap: concatenate and cut every chunk_size tokens, examples split across packs, the last pack kept', () => {
    const seqs = packSequences([3, 4, 2], identity(3), { pack: true, wrap: true, chunkSize: 4 });
    expect(seqs).toEqual([
      [
        { example: 0, start: 0, end: 3 },
        { example: 1, start: 0, end: 1 },
      ],
      [{ example: 1, start: 1, end: 4 }, { example: 2, start: 0, end: 1 }],
      [{ example: 2, start: 1, end: 2 }],
    ]);
  });

  it('loses and duplicates no token, keeps the order, and respects chunk_size (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 60 }),
        fc.integer({ min: 1, max: 64 }),
        fc.boolean(),
        fc.boolean(),
        fc.nat(),
        (lengths, chunkSize, pack, wrap, seed) => {
          // Any order of the examples (a rotation stands in for a shuffle here).
          const order = identity(lengths.length).map((i) => (i + seed) % Math.max(1, lengths.length));
          const seqs = packSequences(lengths, order, { pack, wrap, chunkSize });
          const expected = order.flatMap((e) => Array.from({ length: lengths[e] }, (_, t) => [e, t] as [number, number]));
          expect(coverage(seqs)).toEqual(expected);
          for (const s of seqs) {
            expect(s.length).toBeGreaterThan(0);
            for (const seg of s) expect(seg.end).toBeGreaterThan(seg.start);
          }
          if (pack && wrap) {
            seqs.slice(0, -1).forEach((s) => expect(sequenceLength(s)).toBe(chunkSize));
            if (seqs.length) expect(sequenceLength(seqs[seqs.length - 1])).toBeLessThanOrEqual(chunkSize);
          }
          if (pack && !wrap) {
            for (let i = 0; i < seqs.length; i++) {
              const s = seqs[i];
              // Whole examples only; over chunk_size only when one example alone is.
              for (const seg of s) expect([seg.start, seg.end]).toEqual([0, lengths[seg.example]]);
              if (sequenceLength(s) > chunkSize) expect(s).toHaveLength(1);
              // Greedy: the next pack's first example would not have fit.
              if (i + 1 < seqs.length) expect(sequenceLength(s) + lengths[seqs[i + 1][0].example]).toBeGreaterThan(chunkSize);
            }
          }
          if (!pack) expect(seqs).toHaveLength(lengths.length);
        },
      ),
      { numRuns: 500 },
    );
  });
});
