// The int8 path's accuracy gates and loss-curve comparison (src/run/int8-agreement.ts, src/run/int8-ab.ts): the
// arithmetic that decides whether int8 may be turned on.
import { describe, expect, it } from 'vitest';
import { compareInt8, cosine, INT8_GATES } from '../../../src/run/int8-agreement.ts';
import { compareCurves } from '../../../src/run/int8-ab.ts';

const grads = (entries: [string, number[]][]): Map<string, Float32Array> => new Map(entries.map(([k, v]) => [k, Float32Array.from(v)]));

describe('int8 accuracy gates', () => {
  it('cosine: parallel 1, opposite -1, orthogonal 0, both zero 1, one zero 0', () => {
    expect(cosine([1, 2, 3], [2, 4, 6])).toBeCloseTo(1, 12);
    expect(cosine([1, 2], [-1, -2])).toBeCloseTo(-1, 12);
    expect(cosine([1, 0], [0, 3])).toBe(0);
    expect(cosine([0, 0], [0, 0])).toBe(1);
    expect(cosine([0, 0], [1, 0])).toBe(0);
    expect(() => cosine([1], [1, 2])).toThrow(/differ/);
  });

  it('passes identical passes and fails on the loss gate, the worst tensor or the whole gradient', () => {
    const g = grads([
      ['a', [1, 2, 3]],
      ['b', [0.5, -1]],
    ]);
    const same = compareInt8({ loss: 2, grads: g }, { loss: 2, grads: g });
    expect(same).toMatchObject({ ok: true, loss: { relError: 0 }, gradCosine: { worst: 1, all: 1, tensors: 2 } });

    // Loss off by 2e-3: fails the 1e-3 gate although the gradients agree.
    expect(compareInt8({ loss: 2, grads: g }, { loss: 2.004, grads: g })).toMatchObject({ ok: false, loss: { relError: expect.closeTo(2e-3, 9) } });

    // One small tensor turned: the worst-tensor gate catches it even where the whole vector barely moves.
    const turned = grads([
      ['a', [1, 2, 3]],
      ['b', [0.5, -0.8]],
    ]);
    const r = compareInt8({ loss: 2, grads: g }, { loss: 2, grads: turned });
    expect(r.gradCosine.where).toBe('b');
    expect(r.gradCosine.worst).toBeLessThan(INT8_GATES.gradCosine);
    expect(r.gradCosine.all).toBeGreaterThan(r.gradCosine.worst);
    expect(r.ok).toBe(false);
  });

  it('a NaN gradient or loss fails the gates', () => {
    const g = grads([['a', [1, 2]]]);
    expect(compareInt8({ loss: 1, grads: g }, { loss: 1, grads: grads([['a', [Number.NaN, 2]]]) }).ok).toBe(false);
    expect(compareInt8({ loss: 1, grads: g }, { loss: Number.NaN, grads: g }).ok).toBe(false);
    expect(() => compareInt8({ loss: 1, grads: g }, { loss: 1, grads: grads([]) })).toThrow(/no gradient a/);
  });
});

describe('int8 loss-curve A/B', () => {
  it('compares step by step and over the last quarter', () => {
    const { steps, summary } = compareCurves([4, 3, 2, 1], [4, 3.3, 2, 1.01], { fp32: 1.5, int8: 1.6 });
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(steps[1].relDiff).toBeCloseTo(0.1, 12);
    expect(summary).toMatchObject({ steps: 4, maxRelDiff: expect.closeTo(0.1, 12), tailFp32: 1, tailInt8: 1.01, finalValLoss: { fp32: 1.5, int8: 1.6 } });
    expect(summary.tailRelDiff).toBeCloseTo(0.01, 12);
    expect(summary.meanRelDiff).toBeCloseTo((0 + 0.1 + 0 + 0.01) / 4, 12);
  });

  it('a skipped (NaN) int8 step counts as an infinite difference; unequal runs are refused', () => {
    expect(compareCurves([2, 1], [2, Number.NaN], { fp32: null, int8: null }).summary.maxRelDiff).toBe(Infinity);
    expect(() => compareCurves([1, 2], [1], { fp32: null, int8: null })).toThrow(/2 and 1 steps/);
  });
});
