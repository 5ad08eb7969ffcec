// The bit-for-bit comparison that decides whether the subgroup-matrix int8 kernel may be used on a device
// (src/engine/int8-kernel-check.ts; the GPU side runs in test/gpu/int8_matmul_sm.test.ts).
import { describe, expect, it } from 'vitest';
import { compareBits, int8KernelDisagreements } from '../../../src/engine/int8-kernel-check.ts';

describe('compareBits', () => {
  it('counts outputs that differ in any bit: one ULP, the sign of zero, NaN', () => {
    const ref = Float32Array.from([1, 0, 2.5, -3, 7]);
    const same = compareBits('p', ref, Float32Array.from(ref));
    expect(same).toEqual({ product: 'p', outputs: 5, differing: 0, maxAbsDiff: 0, referenceMaxAbs: 7 });

    const other = Float32Array.from(ref);
    new Uint32Array(other.buffer)[0] += 1; // 1 + one ULP
    other[1] = -0;
    const r = compareBits('p', ref, other);
    expect(r.differing).toBe(2);
    expect(r.maxAbsDiff).toBe(2 ** -23);

    other[4] = NaN;
    const n = compareBits('p', ref, other);
    expect(n.differing).toBe(3);
    expect(n.maxAbsDiff).toBeNaN();
  });

  it('refuses arrays of different lengths', () => {
    expect(() => compareBits('p', new Float32Array(3), new Float32Array(4))).toThrow(/4 outputs against 3/);
  });
});

describe('int8KernelDisagreements', () => {
  it('is empty when every product agrees, and names each one that does not', () => {
    const ok = { outputs: 10, differing: 0, maxAbsDiff: 0, referenceMaxAbs: 1 };
    expect(int8KernelDisagreements([{ product: 'a', ...ok }, { product: 'b', ...ok }])).toBe('');
    const text = int8KernelDisagreements([{ product: 'a', ...ok }, { product: 'NF4 forward', outputs: 10, differing: 3, maxAbsDiff: 0.5, referenceMaxAbs: 1 }]);
    expect(text).toBe('NF4 forward: 3 of 10 outputs differ (largest difference 0.5)');
  });
});
