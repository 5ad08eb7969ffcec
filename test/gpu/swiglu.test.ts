import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { swiglu_backward, swiglu_forward } from '../../src/engine/kernels/swiglu.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { swigluBackwardRef, swigluForwardRef } from '../../src/engine/reference/swiglu.ts';
import { gpuContext } from './context.ts';

const TOL = 1e-5;

describe('swiglu against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('the float64 backward reference agrees with finite differences', () => {
    const g = randomArray(20, 1, 6);
    const u = randomArray(20, 2, 2);
    const dh = randomArray(20, 3);
    const { dgate, dup } = swigluBackwardRef(dh, g, u);
    const h = 1e-6;
    for (let i = 0; i < 20; i++) {
      const f = (gi: number, ui: number): number => swigluForwardRef([gi], [ui])[0] * dh[i];
      expect((f(g[i] + h, u[i]) - f(g[i] - h, u[i])) / (2 * h)).toBeCloseTo(dgate[i], 6);
      expect((f(g[i], u[i] + h) - f(g[i], u[i] - h)) / (2 * h)).toBeCloseTo(dup[i], 6);
    }
  });

  for (const n of [1, 255, 257, 3 * 448 + 1, 5 * 1001]) {
    it(`forward and backward at n=${n}`, async () => {
      const gate = randomArray(n, n, 8); // wide range: both tails of σ
      const up = randomArray(n, n + 1, 2);
      const dh = randomArray(n, n + 2);
      const bg = ctx.upload('gate', gate, 'scratch');
      const bu = ctx.upload('up', up, 'scratch');
      const bdh = ctx.upload('dh', dh, 'scratch');
      const bh = ctx.createBuffer('h', n * 4, 'scratch');
      const bdg = ctx.createBuffer('dgate', n * 4, 'scratch');
      const bdu = ctx.createBuffer('dup', n * 4, 'scratch');
      swiglu_forward(ctx, bh, bg, bu, n);
      swiglu_backward(ctx, bdg, bdu, bdh, bg, bu, n);
      const ref = swigluBackwardRef(dh, gate, up);
      expect(maxRelError(await ctx.readF32(bh), swigluForwardRef(gate, up))).toBeLessThan(TOL);
      expect(maxRelError(await ctx.readF32(bdg), ref.dgate)).toBeLessThan(TOL);
      expect(maxRelError(await ctx.readF32(bdu), ref.dup)).toBeLessThan(TOL);
      for (const b of [bg, bu, bdh, bh, bdg, bdu]) ctx.destroy(b);
    });
  }

  it('is finite at extreme gates (exp overflow gives the right limits)', async () => {
    const gate = new Float32Array([-1000, -100, -88.8, 0, 88.8, 100, 1000]);
    const n = gate.length;
    const up = new Float32Array(n).fill(1.5);
    const dh = new Float32Array(n).fill(1);
    const bg = ctx.upload('gate', gate, 'scratch');
    const bu = ctx.upload('up', up, 'scratch');
    const bdh = ctx.upload('dh', dh, 'scratch');
    const bh = ctx.createBuffer('h', n * 4, 'scratch');
    const bdg = ctx.createBuffer('dgate', n * 4, 'scratch');
    const bdu = ctx.createBuffer('dup', n * 4, 'scratch');
    swiglu_forward(ctx, bh, bg, bu, n);
    swiglu_backward(ctx, bdg, bdu, bdh, bg, bu, n);
    const [h, dg, du] = [await ctx.readF32(bh), await ctx.readF32(bdg), await ctx.readF32(bdu)];
    const ref = swigluBackwardRef(dh, gate, up);
    for (const arr of [h, dg, du]) expect(arr.every(Number.isFinite)).toBe(true);
    expect(maxRelError(h, swigluForwardRef(gate, up))).toBeLessThan(TOL);
    expect(maxRelError(dg, ref.dgate)).toBeLessThan(TOL);
    expect(maxRelError(du, ref.dup)).toBeLessThan(TOL);
    for (const b of [bg, bu, bdh, bh, bdg, bdu]) ctx.destroy(b);
  });

  for (const n of [1, 257, 5 * 1001]) {
    it(`backward in place (dgate over dh) at n=${n}: the out-of-place result, bit for bit`, async () => {
      const gate = randomArray(n, 7 * n, 8);
      const up = randomArray(n, 7 * n + 1, 2);
      const dh = randomArray(n, 7 * n + 2);
      const bg = ctx.upload('gate', gate, 'scratch');
      const bu = ctx.upload('up', up, 'scratch');
      const bdh = ctx.upload('dh', dh, 'scratch');
      const bdg = ctx.createBuffer('dgate', n * 4, 'scratch');
      const bdu = ctx.createBuffer('dup', n * 4, 'scratch');
      swiglu_backward(ctx, bdg, bdu, bdh, bg, bu, n);
      const [outOfPlaceDg, outOfPlaceDu] = [await ctx.readF32(bdg), await ctx.readF32(bdu)];
      ctx.clear(bdu);
      // The MLP's backward (engine/mistral/model.ts): dgate overwrites dh, which nothing reads afterwards.
      swiglu_backward(ctx, bdh, bdu, bdh, bg, bu, n);
      const [dg, du] = [await ctx.readF32(bdh), await ctx.readF32(bdu)];
      const ref = swigluBackwardRef(dh, gate, up);
      expect(maxRelError(dg, ref.dgate)).toBeLessThan(TOL);
      expect(maxRelError(du, ref.dup)).toBeLessThan(TOL);
      expect(Buffer.from(dg.buffer).equals(Buffer.from(outOfPlaceDg.buffer))).toBe(true);
      expect(Buffer.from(du.buffer).equals(Buffer.from(outOfPlaceDu.buffer))).toBe(true);
      for (const b of [bg, bu, bdh, bdg, bdu]) ctx.destroy(b);
    });
  }

  it('refuses aliased outputs', () => {
    const b = ctx.createBuffer('b', 64, 'scratch');
    const c = ctx.createBuffer('c', 64, 'scratch');
    expect(() => swiglu_forward(ctx, b, b, c, 4)).toThrow(/alias/);
    expect(() => swiglu_backward(ctx, b, b, c, c, c, 4)).toThrow(/distinct/);
    // In place means dgate over dh only: dup over dh, or dgate over gate or up, would destroy an input still read.
    expect(() => swiglu_backward(ctx, b, c, c, b, b, 4)).toThrow(/distinct/);
    expect(() => swiglu_backward(ctx, c, b, c, c, b, 4)).toThrow(/distinct/);
    ctx.destroy(b);
    ctx.destroy(c);
  });

  it('leaves no buffers behind in the ledger', () => {
    expect(ctx.ledger.liveBuffers().map((b) => b.label).sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
