import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRng, epochPermutation, shuffleInPlace } from '../../../src/core/prng.ts';

// Reference values from prng_reference.py (an independent Python model of the same generator): the order of the
// rows must be identical in Node, in every browser and across versions, or a seed would not reproduce a run.
describe('seeded PRNG (xoshiro128** seeded by splitmix32)', () => {
  it('matches the independent reference bit for bit', () => {
    const draw = (seed: number, stream: number, n: number) => {
      const r = createRng(seed, stream);
      return Array.from({ length: n }, () => r.nextU32());
    };
    expect(draw(42, 0, 6)).toEqual([2752539865, 2434408709, 4263079433, 1175534314, 107857386, 3543864860]);
    expect(draw(-7, 3, 4)).toEqual([2352819012, 1106394185, 1149106407, 3968491043]);
    expect(draw(2 ** 53 - 1, 2 ** 40, 4)).toEqual([793769921, 3546785079, 935316396, 1251686393]);
    expect(Array.from(epochPermutation(10, 1, 5))).toEqual([6, 3, 8, 0, 7, 1, 5, 2, 4, 9]);
  });

  it('refuses seeds that are not safe integers', () => {
    expect(() => createRng(1.5)).toThrow(RangeError);
    expect(() => createRng(2 ** 60)).toThrow(RangeError);
  });

  it('draws floats in [0, 1) and unbiased integers in [0, n)', () => {
    const r = createRng(1);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 60_000; i++) {
      const f = r.next();
      expect(f >= 0 && f < 1).toBe(true);
      counts[r.int(6)]++;
    }
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    expect(() => r.int(0)).toThrow(RangeError);
    expect(createRng(3).int(1)).toBe(0);
  });

  it('shuffles into a permutation, reproducibly per (seed, stream) (property)', () => {
    fc.assert(
      fc.property(fc.nat(200), fc.integer(), fc.nat(1000), (n, seed, epoch) => {
        const p = epochPermutation(n, seed, epoch);
        expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
        expect(epochPermutation(n, seed, epoch)).toEqual(p);
        const items = Array.from({ length: n }, (_, i) => `row${i}`);
        shuffleInPlace(items, createRng(seed, epoch));
        expect(items).toEqual(Array.from(p, (i) => `row${i}`));
      }),
      { numRuns: 200 },
    );
  });
});
