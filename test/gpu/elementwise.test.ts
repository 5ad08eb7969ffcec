import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { add, axpy, copy, fill, grid1d, scale } from '../../src/engine/kernels/elementwise.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { addRef, axpyRef, scaleRef } from '../../src/engine/reference/elementwise.ts';
import { gpuContext } from './context.ts';

const TOL = 1e-6;

describe('elementwise kernels', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('grid1d keeps each axis ≤ 65535 and covers every item', () => {
    expect(grid1d(1)).toEqual([1, 1]);
    expect(grid1d(256 * 65535)).toEqual([65535, 1]);
    for (const n of [256 * 65535 + 1, 4096 * 14336 * 4, 1e9]) {
      const [x, y] = grid1d(n);
      expect(x).toBeLessThanOrEqual(65535);
      expect(y).toBeLessThanOrEqual(65535);
      expect(x * y * 256).toBeGreaterThanOrEqual(n);
      expect((x * y - x) * 256).toBeLessThan(n); // no wasted row of workgroups
    }
  });

  for (const n of [1, 255, 256, 1000, 4099]) {
    it(`add, axpy, scale, fill, copy at n=${n}, out of place and in place`, async () => {
      const a = randomArray(n, n);
      const b = randomArray(n, n + 1);
      const ba = ctx.upload('a', a, 'scratch');
      const bb = ctx.upload('b', b, 'scratch');
      const bo = ctx.createBuffer('out', n * 4, 'scratch');
      add(ctx, bo, ba, bb, n);
      expect(maxRelError(await ctx.readF32(bo), addRef(a, b))).toBeLessThan(TOL);
      scale(ctx, bo, ba, -0.75, n);
      expect(maxRelError(await ctx.readF32(bo), scaleRef(a, -0.75))).toBeLessThan(TOL);
      axpy(ctx, bo, bb, 3, n); // bo = -0.75 a + 3 b
      const ab = axpyRef(scaleRef(a, -0.75), b, 3);
      expect(maxRelError(await ctx.readF32(bo), ab)).toBeLessThan(TOL);
      add(ctx, bo, bo, ba, n); // in place, out === a
      const ab2 = addRef(ab, a);
      expect(maxRelError(await ctx.readF32(bo), ab2)).toBeLessThan(TOL);
      add(ctx, bo, bb, bo, n); // in place, out === b
      const ab3 = addRef(ab2, b);
      expect(maxRelError(await ctx.readF32(bo), ab3)).toBeLessThan(TOL);
      scale(ctx, bo, bo, 0.5, n);
      expect(maxRelError(await ctx.readF32(bo), scaleRef(ab3, 0.5))).toBeLessThan(TOL);
      fill(ctx, bo, 2.5, n);
      expect((await ctx.readF32(bo)).every((v) => v === 2.5)).toBe(true);
      copy(ctx, bo, ba, n);
      expect(Array.from(await ctx.readF32(bo))).toEqual(Array.from(a));
      for (const buf of [ba, bb, bo]) ctx.destroy(buf);
    });
  }

  it('copy with offsets, and commands run in the order recorded', async () => {
    const a = randomArray(10, 5);
    const ba = ctx.upload('a', a, 'scratch');
    const bo = ctx.createBuffer('out', 40, 'scratch');
    fill(ctx, bo, 1, 10);
    copy(ctx, bo, ba, 4, 3, 6); // out[3..7) = a[6..10)
    scale(ctx, bo, bo, 2, 10);
    const expected = Array.from({ length: 10 }, (_, i) => (i >= 3 && i < 7 ? 2 * a[i + 3] : 2));
    expect(Array.from(await ctx.readF32(bo))).toEqual(expected.map((v) => Math.fround(v)));
    expect(() => copy(ctx, bo, ba, 8, 3)).toThrow(/needs/);
    ctx.destroy(ba);
    ctx.destroy(bo);
  });

  it('reaches every element on a 2-D grid (n > 65535 · 256)', async () => {
    const n = 65535 * 256 + 777;
    const bo = ctx.createBuffer('big', n * 4, 'scratch');
    expect(grid1d(n)[1]).toBe(2);
    ctx.clear(bo);
    fill(ctx, bo, 3, n);
    const out = await ctx.readF32(bo);
    let bad = 0;
    for (let i = 0; i < n; i++) if (out[i] !== 3) bad++;
    expect(bad).toBe(0);
    ctx.destroy(bo);
  });

  it('refuses buffers shorter than n', () => {
    const small = ctx.createBuffer('small', 16, 'scratch');
    expect(() => fill(ctx, small, 0, 5)).toThrow(/needs 20/);
    ctx.destroy(small);
  });

  it('leaves no buffers behind in the ledger', () => {
    expect(ctx.ledger.liveBuffers().map((b) => b.label).sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
