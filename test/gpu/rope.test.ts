import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { rope_backward, rope_backward_qk, rope_forward, rope_forward_qk, ropeTable } from '../../src/engine/kernels/rope.ts';
import { maxRelError, mulberry32, randomArray } from '../../src/engine/reference/common.ts';
import { ropeRef, ropeTableHfFp32 } from '../../src/engine/reference/rope.ts';
import { gpuContext } from './context.ts';

const TOL = 1e-5;
const THETA = 1e6;
// [BT, nHeads, hd]: the tiny model's q (8×16) and k (2×16), an odd head count, Mistral's head_dim 128.
const SHAPES: [number, number, number][] = [
  [5, 8, 16],
  [7, 2, 16],
  [3, 3, 6],
  [4, 4, 128],
];

function positions(BT: number, maxPos: number, seed: number): Uint32Array {
  // Packed rows: positions restart at random points, and reach the end of the table.
  const r = mulberry32(seed);
  const pos = new Uint32Array(BT);
  for (let t = 0; t < BT; t++) pos[t] = r() < 0.3 ? 0 : Math.floor(r() * maxPos);
  pos[BT - 1] = maxPos - 1;
  return pos;
}

describe('rope against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('ropeTable is cos then sin of p·theta^(−2i/hd), [maxPos][half] each', () => {
    const [maxPos, hd, theta] = [5, 8, 1e4];
    const t = ropeTable(maxPos, hd, theta);
    expect(t.length).toBe(2 * maxPos * (hd / 2));
    expect(t[3 * 4 + 2]).toBeCloseTo(Math.cos(3 * theta ** (-4 / 8)), 7);
    expect(t[(maxPos + 3) * 4 + 2]).toBeCloseTo(Math.sin(3 * theta ** (-4 / 8)), 7);
    expect(t[0]).toBe(1);
    expect(t[maxPos * 4]).toBe(0);
  });

  it('measures the float64 table against HF fp32 angles (documented in ropeTable)', () => {
    const [maxPos, hd] = [2048, 128];
    const a = ropeTable(maxPos, hd, THETA);
    const b = ropeTableHfFp32(maxPos, hd, THETA);
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    console.log(`RoPE table, float64 vs HF fp32 angles, maxPos ${maxPos}, hd ${hd}: max |diff| = ${maxDiff.toExponential(2)}`);
    // Two fp32 roundings of an angle up to maxPos: at most ~2 · maxPos · 2⁻²⁴ apart (and not zero: they do differ).
    expect(maxDiff).toBeGreaterThan(0);
    expect(maxDiff).toBeLessThan(2 * maxPos * 2 ** -24);
  });

  for (const [BT, nHeads, hd] of SHAPES) {
    it(`forward and backward at BT=${BT} heads=${nHeads} hd=${hd}, out of place and in place`, async () => {
      const maxPos = 3001;
      const n = BT * nHeads * hd;
      const x = randomArray(n, n + 1);
      const d = randomArray(n, n + 2);
      const pos = positions(BT, maxPos, BT * 31 + hd);
      const bTable = ctx.upload('rope table', ropeTable(maxPos, hd, THETA), 'scratch');
      const bPos = ctx.upload('pos', pos, 'scratch');
      const bx = ctx.upload('x', x, 'scratch');
      const bd = ctx.upload('dout', d, 'scratch');
      const bOut = ctx.createBuffer('out', n * 4, 'scratch');
      const bdx = ctx.createBuffer('dx', n * 4, 'scratch');
      rope_forward(ctx, bOut, bx, bPos, bTable, BT, nHeads, hd);
      rope_backward(ctx, bdx, bd, bPos, bTable, BT, nHeads, hd);
      const fwd = ropeRef(x, pos, BT, nHeads, hd, THETA, 1);
      const bwd = ropeRef(d, pos, BT, nHeads, hd, THETA, -1);
      expect(maxRelError(await ctx.readF32(bOut), fwd)).toBeLessThan(TOL);
      expect(maxRelError(await ctx.readF32(bdx), bwd)).toBeLessThan(TOL);
      // In place: x and dout are overwritten with the same results.
      rope_forward(ctx, bx, bx, bPos, bTable, BT, nHeads, hd);
      rope_backward(ctx, bd, bd, bPos, bTable, BT, nHeads, hd);
      expect(maxRelError(await ctx.readF32(bx), fwd)).toBeLessThan(TOL);
      expect(maxRelError(await ctx.readF32(bd), bwd)).toBeLessThan(TOL);
      for (const b of [bTable, bPos, bx, bd, bOut, bdx]) ctx.destroy(b);
    });
  }

  it('the backward is the adjoint of the forward: <rope(x), d> = <x, ropeᵀ(d)>, and backward∘forward = identity', async () => {
    const [BT, nHeads, hd, maxPos] = [6, 3, 32, 100];
    const n = BT * nHeads * hd;
    const x = randomArray(n, 5);
    const d = randomArray(n, 6);
    const pos = positions(BT, maxPos, 7);
    const bTable = ctx.upload('rope table', ropeTable(maxPos, hd, THETA), 'scratch');
    const bPos = ctx.upload('pos', pos, 'scratch');
    const bx = ctx.upload('x', x, 'scratch');
    const bd = ctx.upload('d', d, 'scratch');
    const by = ctx.createBuffer('y', n * 4, 'scratch');
    rope_forward(ctx, by, bx, bPos, bTable, BT, nHeads, hd);
    rope_backward(ctx, bd, bd, bPos, bTable, BT, nHeads, hd);
    const [y, rd] = [await ctx.readF32(by), await ctx.readF32(bd)];
    let lhs = 0;
    let rhs = 0;
    for (let i = 0; i < n; i++) {
      lhs += y[i] * d[i];
      rhs += x[i] * rd[i];
    }
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * Math.sqrt(n));
    rope_backward(ctx, by, by, bPos, bTable, BT, nHeads, hd);
    expect(maxRelError(await ctx.readF32(by), x)).toBeLessThan(TOL);
    for (const b of [bTable, bPos, bx, bd, by]) ctx.destroy(b);
  });

  it('position 0 is the identity, and a position past the table gives NaN', async () => {
    const [BT, nHeads, hd, maxPos] = [3, 2, 8, 4];
    const n = BT * nHeads * hd;
    const x = randomArray(n, 9);
    const bTable = ctx.upload('rope table', ropeTable(maxPos, hd, THETA), 'scratch');
    const bPos = ctx.upload('pos', new Uint32Array([0, maxPos, 0]), 'scratch');
    const bx = ctx.upload('x', x, 'scratch');
    const by = ctx.createBuffer('y', n * 4, 'scratch');
    rope_forward(ctx, by, bx, bPos, bTable, BT, nHeads, hd);
    const y = await ctx.readF32(by);
    const row = nHeads * hd;
    expect(Array.from(y.subarray(0, row))).toEqual(Array.from(x.subarray(0, row)));
    expect(y.subarray(row, 2 * row).every(Number.isNaN)).toBe(true);
    expect(Array.from(y.subarray(2 * row))).toEqual(Array.from(x.subarray(2 * row)));
    for (const b of [bTable, bPos, bx, by]) ctx.destroy(b);
  });

  // The runner rotates a layer's q and k in one dispatch: the same bits as two single calls, NaN past the table too.
  for (const [BT, nQ, nK, hd] of [[5, 8, 2, 16], [7, 3, 1, 6], [2, 4, 4, 128]] as const) {
    it(`q and k in one dispatch = two single calls, bit for bit (BT=${BT}, ${nQ}/${nK} heads, hd=${hd})`, async () => {
      const maxPos = 9;
      const pos = positions(BT, maxPos, 5);
      pos[0] = maxPos; // past the table: NaN in both
      const q = randomArray(BT * nQ * hd, 6);
      const k = randomArray(BT * nK * hd, 7);
      const bTable = ctx.upload('rope table', ropeTable(maxPos, hd, THETA), 'scratch');
      const bPos = ctx.upload('pos', pos, 'scratch');
      const bufs = ['q1', 'k1', 'q2', 'k2'].map((l, i) => ctx.upload(l, i % 2 ? k : q, 'scratch'));
      const [q1, k1, q2, k2] = bufs;
      for (const dir of ['forward', 'backward'] as const) {
        const d0 = ctx.dispatchCount;
        if (dir === 'forward') rope_forward_qk(ctx, q1, k1, bPos, bTable, BT, nQ, nK, hd);
        else rope_backward_qk(ctx, q1, k1, bPos, bTable, BT, nQ, nK, hd);
        expect(ctx.dispatchCount - d0).toBe(1);
        const single = dir === 'forward' ? rope_forward : rope_backward;
        single(ctx, q2, q2, bPos, bTable, BT, nQ, hd);
        single(ctx, k2, k2, bPos, bTable, BT, nK, hd);
        for (const [a, b] of [[q1, q2], [k1, k2]]) {
          const [x, y] = [new Uint8Array(await ctx.read(a)), new Uint8Array(await ctx.read(b))];
          expect(Buffer.from(x).equals(Buffer.from(y))).toBe(true);
        }
      }
      expect(Number.isNaN((await ctx.readF32(q1))[0])).toBe(true);
      // And the pair is really rotated (not left alone): forward then backward is the identity, elsewhere ≠ input.
      expect(maxRelError((await ctx.readF32(k1)).subarray(nK * hd), k.subarray(nK * hd))).toBeLessThan(TOL);
      expect(() => rope_forward_qk(ctx, q1, q1, bPos, bTable, BT, nQ, nK, hd)).toThrow(/different buffers/);
      for (const b of [bTable, bPos, ...bufs]) ctx.destroy(b);
    });
  }

  it('leaves no buffers behind in the ledger', () => {
    expect(ctx.ledger.liveBuffers().map((b) => b.label).sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
