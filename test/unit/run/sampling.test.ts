// Choosing the next token: greedy is the argmax, top-p keeps only the nucleus, temperature flattens or sharpens, and
// a seeded generator makes the draws reproducible.
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { createRng } from '../../../src/core/prng.ts';
import { argmax, checkSampling, pickToken } from '../../../src/run/sampling.ts';

/** Logits whose softmax is exactly `p` (up to a constant). */
const logitsOf = (p: number[]): Float32Array => Float32Array.from(p, (x) => Math.log(x));

function counts(logits: Float32Array, temperature: number, topP: number, draws: number, seed = 1): number[] {
  const rng = createRng(seed);
  const c = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < draws; i++) c[pickToken(logits, { temperature, topP }, rng)]++;
  return c;
}

describe('pickToken', () => {
  it('temperature 0 is the argmax (the first on a tie) and draws nothing', () => {
    const rng = createRng(3);
    const before = createRng(3).nextU32();
    expect(pickToken([0.1, 2, 2, -1], { temperature: 0, topP: 0.5 }, rng)).toBe(1);
    expect(rng.nextU32()).toBe(before);
    expect(argmax([-3, -1, -2])).toBe(1);
  });

  it('top-p keeps the smallest set of most likely tokens reaching p', () => {
    // Probabilities 0.5, 0.3, 0.15, 0.05: p = 0.7 keeps the first two, p = 0.85 the first three.
    const l = logitsOf([0.15, 0.5, 0.05, 0.3]);
    const c7 = counts(l, 1, 0.7, 2000);
    expect(c7[0]).toBe(0);
    expect(c7[2]).toBe(0);
    expect(c7[1] + c7[3]).toBe(2000);
    expect(c7[1] / 2000).toBeCloseTo(0.5 / 0.8, 1);
    const c85 = counts(l, 1, 0.85, 2000);
    expect(c85[2]).toBe(0);
    expect(c85[0]).toBeGreaterThan(0);
    // A tiny p still keeps the most likely token.
    expect(counts(l, 1, 1e-6, 50)[1]).toBe(50);
  });

  it('samples in proportion to softmax(logits / temperature)', () => {
    const l = logitsOf([0.25, 0.75]);
    expect(counts(l, 1, 1, 4000)[1] / 4000).toBeCloseTo(0.75, 1);
    // Temperature 0.5 squares the odds: 0.75² / (0.75² + 0.25²) = 0.9.
    expect(counts(l, 0.5, 1, 4000)[1] / 4000).toBeCloseTo(0.9, 1);
  });

  it('the same seed gives the same draws; another seed others', () => {
    const l = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
    const a = counts(l, 1.2, 0.9, 200, 5);
    expect(counts(l, 1.2, 0.9, 200, 5)).toEqual(a);
    expect(counts(l, 1.2, 0.9, 200, 6)).not.toEqual(a);
  });
});

describe('checkSampling', () => {
  it('names the setting that is out of range', () => {
    expect(() => checkSampling({ temperature: -1, topP: 1 })).toThrow(/temperature/);
    expect(() => checkSampling({ temperature: Number.NaN, topP: 1 })).toThrow(FinetuneError);
    expect(() => checkSampling({ temperature: 1, topP: 0 })).toThrow(/top_p/);
    expect(() => checkSampling({ temperature: 1, topP: 1.5 })).toThrow(/top_p/);
    expect(() => checkSampling({ temperature: 0, topP: 1 })).not.toThrow();
  });
});

describe('pickToken with logits that are not finite', () => {
  /** softmax(logits / T) in float64, -Infinity giving 0: the reference the draws are compared with. */
  function softmax64(logits: readonly number[], T: number): number[] {
    const finite = logits.filter((x) => x !== -Infinity);
    const m = Math.max(...finite);
    const e = logits.map((x) => (x === -Infinity ? 0 : Math.exp((x - m) / T)));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / s);
  }

  it('refuses a NaN or +Infinity logit, greedy or sampled, naming the token, instead of answering token 0', () => {
    // Token 0 (<unk>, printed ⁇) came back for every one of these: at temperature 1 a NaN made every draw token 0, the
    // least likely of the finite ones, and greedy answered 0 whenever logits[0] was the NaN.
    const cases: [number[], number, string][] = [
      [[1, Number.NaN, 2, 3], 1, 'NaN at token 1'],
      [[Number.NaN, 1, 2, 3], 1, 'NaN at token 0'],
      [[Number.NaN, 1, 2, 3], 0, 'NaN at token 0'],
      [[1, 2, 3, Number.NaN], 0, 'NaN at token 3'],
      [[1, Infinity, 2, 3], 0.7, 'Infinity at token 1'],
      [[1, 2, Infinity, 3], 0, 'Infinity at token 2'],
    ];
    for (const [logits, temperature, what] of cases) {
      let err: unknown = null;
      try {
        pickToken(Float32Array.from(logits), { temperature, topP: 0.9 }, createRng(1));
      } catch (e) {
        err = e;
      }
      expect(err, `${logits} at temperature ${temperature}`).toBeInstanceOf(FinetuneError);
      expect((err as FinetuneError).kind).toBe('mismatch');
      expect((err as FinetuneError).message).toContain(what);
    }
  });

  it('refuses logits that are all -Infinity (no token has any probability)', () => {
    for (const temperature of [0, 1]) {
      expect(() => pickToken([-Infinity, -Infinity, -Infinity], { temperature, topP: 1 }, createRng(1))).toThrow(/no token/);
    }
    expect(() => pickToken([], { temperature: 1, topP: 1 }, createRng(1))).toThrow(FinetuneError);
  });

  it('a -Infinity logit is a token of probability 0: never drawn, the others in proportion to the float64 softmax', () => {
    const logits = [1, -Infinity, 2, 3, -Infinity];
    const draws = 6000;
    const c = counts(Float32Array.from(logits), 0.8, 1, draws, 7);
    const p = softmax64(logits, 0.8);
    expect(c[1]).toBe(0);
    expect(c[4]).toBe(0);
    for (const j of [0, 2, 3]) expect(Math.abs(c[j] / draws - p[j])).toBeLessThan(4 * Math.sqrt((p[j] * (1 - p[j])) / draws));
    expect(pickToken([-Infinity, -5, -Infinity], { temperature: 0, topP: 1 }, createRng(1))).toBe(1);
  });
});
