import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { rmsnorm_backward, rmsnorm_forward } from '../../src/engine/kernels/norm.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { rmsnormBackwardRef, rmsnormForwardRef } from '../../src/engine/reference/norm.ts';
import { gpuContext } from './context.ts';

const TOL = 1e-5;
const EPS = 1e-5;
// Odd widths on purpose: below, at and above the 256-thread workgroup, and Mistral's 4096. (C = 1 is left out: there
// dx = r·w·dout·eps/(x²+eps) is a cancellation that f32 cannot resolve, whatever the kernel.)
const SHAPES: [number, number][] = [
  [1, 3],
  [3, 37],
  [5, 128],
  [7, 300],
  [2, 4096],
];

describe('rmsnorm against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('the float64 backward reference agrees with finite differences of the forward', () => {
    const [BT, C] = [2, 9];
    const x = randomArray(BT * C, 1);
    const w = randomArray(C, 2);
    const dout = randomArray(BT * C, 3);
    const loss = (xs: Float64Array): number => rmsnormForwardRef(xs, w, BT, C, EPS).out.reduce((s, v, i) => s + v * dout[i], 0);
    const dx = rmsnormBackwardRef(dout, x, w, BT, C, EPS);
    const h = 1e-6;
    for (let i = 0; i < BT * C; i++) {
      const xp = Float64Array.from(x);
      const xm = Float64Array.from(x);
      xp[i] += h;
      xm[i] -= h;
      expect((loss(xp) - loss(xm)) / (2 * h)).toBeCloseTo(dx[i], 6);
    }
  });

  for (const [BT, C] of SHAPES) {
    it(`forward and backward at BT=${BT} C=${C}`, async () => {
      const x = randomArray(BT * C, BT * 13 + C, 3);
      const w = randomArray(C, C + 5);
      const dout = randomArray(BT * C, BT + C * 3);
      const bx = ctx.upload('x', x, 'scratch');
      const bw = ctx.upload('w', w, 'scratch');
      const bdout = ctx.upload('dout', dout, 'scratch');
      const bout = ctx.createBuffer('out', BT * C * 4, 'scratch');
      const brstd = ctx.createBuffer('rstd', BT * 4, 'scratch');
      const bdx = ctx.upload('dx', new Float32Array(BT * C).fill(Number.NaN), 'scratch');
      rmsnorm_forward(ctx, bout, brstd, bx, bw, BT, C, EPS);
      rmsnorm_backward(ctx, bdx, bdout, bx, bw, brstd, BT, C);
      const ref = rmsnormForwardRef(x, w, BT, C, EPS);
      expect(maxRelError(await ctx.readF32(bout), ref.out)).toBeLessThan(TOL);
      expect(maxRelError(await ctx.readF32(brstd), ref.rstd)).toBeLessThan(TOL);
      expect(maxRelError(await ctx.readF32(bdx), rmsnormBackwardRef(dout, x, w, BT, C, EPS))).toBeLessThan(TOL);
      for (const b of [bx, bw, bdout, bout, brstd, bdx]) ctx.destroy(b);
    });
  }

  it('accumulates into dx when asked, and eps matters for tiny rows', async () => {
    const [BT, C] = [4, 65];
    const x = randomArray(BT * C, 21, 1e-3); // mean(x²) ≈ 3e-7, comparable to eps
    const w = randomArray(C, 22);
    const dout = randomArray(BT * C, 23);
    const prior = randomArray(BT * C, 24);
    const bx = ctx.upload('x', x, 'scratch');
    const bw = ctx.upload('w', w, 'scratch');
    const bdout = ctx.upload('dout', dout, 'scratch');
    const bout = ctx.createBuffer('out', BT * C * 4, 'scratch');
    const brstd = ctx.createBuffer('rstd', BT * 4, 'scratch');
    const bdx = ctx.upload('dx', prior, 'scratch');
    rmsnorm_forward(ctx, bout, brstd, bx, bw, BT, C, EPS);
    rmsnorm_backward(ctx, bdx, bdout, bx, bw, brstd, BT, C, { accumulate: true });
    expect(maxRelError(await ctx.readF32(bout), rmsnormForwardRef(x, w, BT, C, EPS).out)).toBeLessThan(TOL);
    expect(maxRelError(await ctx.readF32(bout), rmsnormForwardRef(x, w, BT, C, 0).out)).toBeGreaterThan(1e-2);
    const ref = rmsnormBackwardRef(dout, x, w, BT, C, EPS).map((v, i) => v + prior[i]);
    expect(maxRelError(await ctx.readF32(bdx), ref)).toBeLessThan(TOL);
    for (const b of [bx, bw, bdout, bout, brstd, bdx]) ctx.destroy(b);
  });

  it('leaves no buffers behind in the ledger', () => {
    expect(ctx.ledger.liveBuffers().map((b) => b.label).sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
