// The fused NF4 products on the register-tiled kernel (shaders/matmul_tiled.wgsl with NF4) against float64: the
// forward Y = X · deq(W)ᵀ and the input gradient dX = dY · deq(W), plain and double-quantised scales, both blocks,
// ragged and divisible shapes, accumulation, sizes compiled in, and the switch; the gradient also against the basic
// kernel (shaders/nf4_matmul.wgsl) on the same inputs.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { nf4_destroy, nf4_upload } from '../../src/engine/kernels/nf4.ts';
import { nf4_matmul_backward, nf4_matmul_forward, nf4BackwardBasic } from '../../src/engine/kernels/nf4_matmul.ts';
import { nf4MatmulBackwardTiled, nf4MatmulForwardTiled, tiledVariant, type TiledBlock, type TiledOptions } from '../../src/engine/kernels/matmul_tiled.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { nf4MatmulBackwardRef, nf4MatmulForwardRef, quantizeRef } from '../../src/engine/reference/nf4.ts';
import { gpuContext } from './context.ts';
import { nf4TestWeights } from '../helpers/nf4-inputs.ts';

const TOL = 1e-5; // as the basic NF4 kernel's test

interface Case {
  N: number;
  K: number;
  M: number;
  doubleQuant: boolean;
  accumulate?: boolean;
  alpha?: number;
  options?: TiledOptions;
}

async function run(ctx: GpuContext, c: Case): Promise<number> {
  const { N, K, M } = c;
  const host = quantizeRef(nf4TestWeights(N, K, N * 31 + K + (c.doubleQuant ? 1 : 0)), N, K, c.doubleQuant);
  const W = nf4_upload(ctx, host, 'W');
  const X = randomArray(M * K, M * 7 + K);
  const Y0 = c.accumulate ? randomArray(M * N, M + N) : new Float32Array(M * N).fill(NaN); // NaN: Y must not be read
  const bX = ctx.upload('X', X, 'scratch');
  const bY = ctx.upload('Y', Y0, 'scratch');
  nf4MatmulForwardTiled(ctx, bY, bX, W, M, { accumulate: c.accumulate, alpha: c.alpha }, c.options);
  const alpha = c.alpha ?? 1;
  const want = nf4MatmulForwardRef(X, host, M).map((v, i) => alpha * v + (c.accumulate ? Y0[i] : 0));
  const err = maxRelError(await ctx.readF32(bY), want);
  for (const b of [bX, bY]) ctx.destroy(b);
  nf4_destroy(ctx, W);
  return err;
}

/**
 * dX = alpha · dY · deq(W) (+ dX) on the tiled kernel: its error against float64, and its largest difference from the
 * basic kernel's result on the same inputs (relative to the basic result's largest magnitude).
 */
async function runBackward(ctx: GpuContext, c: Case): Promise<{ err: number; vsBasic: number }> {
  const { N, K, M } = c;
  const host = quantizeRef(nf4TestWeights(N, K, N * 29 + K + (c.doubleQuant ? 1 : 0)), N, K, c.doubleQuant);
  const W = nf4_upload(ctx, host, 'W');
  const dY = randomArray(M * N, M * 5 + N);
  const dX0 = c.accumulate ? randomArray(M * K, M + K + 1) : new Float32Array(M * K).fill(NaN); // NaN: dX must not be read
  const bdY = ctx.upload('dY', dY, 'scratch');
  const bdX = ctx.upload('dX', dX0, 'scratch');
  const bBasic = ctx.upload('dX basic', dX0, 'scratch');
  const o = { accumulate: c.accumulate, alpha: c.alpha };
  nf4MatmulBackwardTiled(ctx, bdX, bdY, W, M, o, c.options);
  nf4BackwardBasic(ctx, bBasic, bdY, W, M, o);
  const alpha = c.alpha ?? 1;
  const want = nf4MatmulBackwardRef(dY, host, M).map((v, i) => alpha * v + (c.accumulate ? dX0[i] : 0));
  const got = await ctx.readF32(bdX);
  const result = { err: maxRelError(got, want), vsBasic: maxRelError(got, await ctx.readF32(bBasic)) };
  for (const b of [bdY, bdX, bBasic]) ctx.destroy(b);
  nf4_destroy(ctx, W);
  return result;
}

async function expectBackward(ctx: GpuContext, c: Case, what = ''): Promise<void> {
  const { err, vsBasic } = await runBackward(ctx, c);
  expect(err, `${what} ${label(c)} against float64`).toBeLessThan(TOL);
  expect(vsBasic, `${what} ${label(c)} against the basic kernel`).toBeLessThan(TOL);
}

const label = (c: Case): string => `W [${c.N}, ${c.K}]${c.doubleQuant ? ' double-quantised' : ''}, M = ${c.M}`;

describe('register-tiled NF4 forward against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  // [N (out, rows), K (in, cols)]: N ragged, odd (scalar access) or tiny; K over one to several 64-blocks and tiles.
  const RAGGED: [number, number][] = [
    [7, 256],
    [32, 128],
    [200, 192],
    [65, 64],
  ];
  const BLOCKS: TiledBlock[] = ['wide', 'narrow'];
  for (const doubleQuant of [false, true]) {
    for (const block of BLOCKS) {
      it(`${block} block, ragged shapes${doubleQuant ? ', double-quantised' : ''}, M = 1, 17, 130`, async () => {
        for (const [N, K] of RAGGED) {
          for (const M of [1, 17, 130]) {
            const c: Case = { N, K, M, doubleQuant, options: { block } };
            expect(await run(ctx, c), label(c)).toBeLessThan(TOL);
          }
        }
      });
    }
  }

  it('divisible shapes: edge tests compiled out, and forced in, give the same products', async () => {
    for (const doubleQuant of [false, true]) {
      for (const [block, N] of [
        ['wide', 128],
        ['narrow', 64],
        ['narrow', 192],
      ] as [TiledBlock, number][]) {
        const [M, K] = [128, 128];
        expect(tiledVariant({ A: null!, B: null!, C: null!, M, N, K, transB: true }, { block })).toMatchObject({ check: false, aligned: true });
        for (const check of [undefined, true]) {
          const c: Case = { N, K, M, doubleQuant, options: { block, check } };
          expect(await run(ctx, c), `${block} ${label(c)} check=${check}`).toBeLessThan(TOL);
        }
      }
    }
  });

  it('accumulates and scales (alpha); sizes compiled in on request', async () => {
    for (const doubleQuant of [false, true]) {
      for (const c of [
        { N: 70, K: 128, M: 19, accumulate: true, alpha: 2 },
        { N: 128, K: 64, M: 128, accumulate: true, alpha: -0.5 },
        { N: 70, K: 128, M: 19, options: { fixedShape: true } },
        { N: 128, K: 64, M: 128, accumulate: true, options: { fixedShape: true } },
      ] as Omit<Case, 'doubleQuant'>[]) {
        const cc: Case = { ...c, doubleQuant };
        expect(await run(ctx, cc), label(cc)).toBeLessThan(TOL);
      }
    }
  });

  it('is what nf4_matmul_forward runs when the context asks for the tiled GEMM', async () => {
    const before = ctx.gemmKernel;
    const spy = vi.spyOn(ctx, 'dispatch');
    const [N, K, M] = [48, 128, 9];
    const host = quantizeRef(nf4TestWeights(N, K, 3), N, K, true);
    const W = nf4_upload(ctx, host, 'W');
    const X = randomArray(M * K, 4);
    const bX = ctx.upload('X', X, 'scratch');
    const bY = ctx.createBuffer('Y', M * N * 4, 'scratch');
    try {
      ctx.gemmKernel = 'tiled';
      nf4_matmul_forward(ctx, bY, bX, W, M);
      expect(maxRelError(await ctx.readF32(bY), nf4MatmulForwardRef(X, host, M))).toBeLessThan(TOL);
      const specs = spy.mock.calls.map(([spec]) => spec);
      expect(specs.map((s) => [s.shader, s.defines?.NF4, s.defines?.DQ])).toEqual([['matmul_tiled', true, true]]);
    } finally {
      ctx.gemmKernel = before;
      spy.mockRestore();
      for (const b of [bX, bY]) ctx.destroy(b);
      nf4_destroy(ctx, W);
    }
  });


  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});

describe('register-tiled NF4 input gradient dX = dY · deq(W) against float64 and the basic kernel', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  // [N (out, rows: the reduction here), K (in, cols: the output columns)]. N: a multiple of 128 or not (192, 64, 200),
  // odd (7: dY rows not a multiple of 4, scalar access); K: one 64-block, a wide block and a half (320), several.
  const RAGGED: [number, number][] = [
    [192, 64],
    [64, 320],
    [7, 128],
    [200, 256],
  ];
  for (const doubleQuant of [false, true]) {
    for (const block of ['wide', 'narrow'] as TiledBlock[]) {
      it(`${block} block, ragged shapes${doubleQuant ? ', double-quantised' : ''}, M = 1, 37, 130`, async () => {
        for (const [N, K] of RAGGED) {
          for (const M of [1, 37, 130]) await expectBackward(ctx, { N, K, M, doubleQuant, options: { block } }, block);
        }
      });
    }
  }

  it('divisible shapes: edge tests compiled out, and forced in, give the same products', async () => {
    for (const doubleQuant of [false, true]) {
      for (const [block, N, K] of [
        ['wide', 64, 128],
        ['wide', 192, 256],
        ['narrow', 128, 64],
        ['narrow', 48, 192],
      ] as [TiledBlock, number, number][]) {
        const M = 128;
        // As a GEMM: output columns are W's K, the reduction is W's N, B = deq(W) as stored.
        expect(tiledVariant({ A: null!, B: null!, C: null!, M, N: K, K: N }, { block })).toMatchObject({ check: false, aligned: true });
        for (const check of [undefined, true]) await expectBackward(ctx, { N, K, M, doubleQuant, options: { block, check } }, `${block} check=${check}`);
      }
    }
  });

  it("Mistral's projections scaled down (q/o, k/v, gate/up, down), in the block tiledVariant picks (narrow at this size)", async () => {
    // Mistral-7B's W [rows, cols] ÷ 16: q/o [4096, 4096], k/v [1024, 4096], gate/up [14336, 4096], down [4096, 14336].
    for (const [N, K] of [
      [256, 256],
      [64, 256],
      [896, 256],
      [256, 896],
    ]) {
      for (const M of [37, 128]) await expectBackward(ctx, { N, K, M, doubleQuant: true });
    }
  });

  it('accumulates and scales (alpha); sizes compiled in on request (tiled-fixed)', async () => {
    for (const doubleQuant of [false, true]) {
      for (const c of [
        { N: 70, K: 128, M: 19, accumulate: true, alpha: 2 },
        { N: 128, K: 128, M: 128, accumulate: true, alpha: -0.5 },
        { N: 70, K: 320, M: 37, options: { fixedShape: true } },
        { N: 64, K: 128, M: 130, accumulate: true, alpha: -3, options: { fixedShape: true } },
        { N: 128, K: 128, M: 128, accumulate: true, options: { fixedShape: true } },
      ] as Omit<Case, 'doubleQuant'>[]) {
        await expectBackward(ctx, { ...c, doubleQuant });
      }
    }
  });

  it("is what nf4_matmul_backward runs for 'tiled' and 'tiled-fixed', and not for 'basic'", async () => {
    const before = ctx.gemmKernel;
    const spy = vi.spyOn(ctx, 'dispatch');
    const [N, K, M] = [48, 128, 9];
    const host = quantizeRef(nf4TestWeights(N, K, 5), N, K, true);
    const W = nf4_upload(ctx, host, 'W');
    const dY = randomArray(M * N, 6);
    const bdY = ctx.upload('dY', dY, 'scratch');
    const bdX = ctx.createBuffer('dX', M * K * 4, 'scratch');
    try {
      for (const kernel of ['tiled', 'tiled-fixed', 'basic'] as const) {
        spy.mockClear();
        ctx.gemmKernel = kernel;
        nf4_matmul_backward(ctx, bdX, bdY, W, M);
        expect(maxRelError(await ctx.readF32(bdX), nf4MatmulBackwardRef(dY, host, M)), kernel).toBeLessThan(TOL);
        const specs = spy.mock.calls.map(([spec]) => spec);
        if (kernel === 'basic') {
          expect(specs.map((s) => [s.shader, s.entry])).toEqual([['nf4_matmul', 'backward']]);
        } else {
          expect(specs.map((s) => [s.shader, s.defines?.NF4, s.defines?.DQ, s.constants?.TRANS_B, s.constants?.FIXED_K])).toEqual([
            ['matmul_tiled', true, true, false, kernel === 'tiled-fixed' ? N : undefined],
          ]);
        }
      }
    } finally {
      ctx.gemmKernel = before;
      spy.mockRestore();
      for (const b of [bdY, bdX]) ctx.destroy(b);
      nf4_destroy(ctx, W);
    }
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});

describe('register-tiled NF4 products: where a K step is dequantised', () => {
  // Both products, plain and double-quantised scales, both blocks, ragged and divisible shapes, one stage: the
  // output's bits. A step's weights are dequantised into registers before the barrier (DEQ_BEFORE_BARRIER, the
  // default) or at the store, as before 2026-12-04 (late): the same values in the same tile slots, so the same bits.
  const CASES: Case[] = [
    { N: 200, K: 192, M: 17, doubleQuant: false, options: { block: 'wide' } },
    { N: 65, K: 64, M: 130, doubleQuant: true, options: { block: 'narrow' } },
    { N: 128, K: 256, M: 128, doubleQuant: true, options: { block: 'wide' } },
    { N: 7, K: 320, M: 1, doubleQuant: false, options: { block: 'narrow' } },
  ];
  async function bits(ctx: GpuContext, dequantAtStore: boolean): Promise<Uint32Array[]> {
    const out: Uint32Array[] = [];
    for (const [n, c] of CASES.entries()) {
      const host = quantizeRef(nf4TestWeights(c.N, c.K, 70 + n), c.N, c.K, c.doubleQuant);
      const W = nf4_upload(ctx, host, 'W');
      const X = ctx.upload('X', randomArray(c.M * c.K, 80 + n), 'scratch');
      const dY = ctx.upload('dY', randomArray(c.M * c.N, 90 + n), 'scratch');
      const Y = ctx.createBuffer('Y', c.M * c.N * 4, 'scratch');
      const dX = ctx.createBuffer('dX', c.M * c.K * 4, 'scratch');
      nf4MatmulForwardTiled(ctx, Y, X, W, c.M, {}, { ...c.options, dequantAtStore });
      nf4MatmulBackwardTiled(ctx, dX, dY, W, c.M, {}, { ...c.options, dequantAtStore });
      out.push(new Uint32Array((await ctx.readF32(Y)).buffer), new Uint32Array((await ctx.readF32(dX)).buffer));
      for (const b of [X, dY, Y, dX]) ctx.destroy(b);
      nf4_destroy(ctx, W);
    }
    return out;
  }

  it('gives the same bits dequantising ahead of the barrier (the default) as at the store (dequantAtStore)', async () => {
    const ctx = await gpuContext();
    const early = await bits(ctx, false);
    const late = await bits(ctx, true);
    // Compared as one verdict: a failing toEqual on these arrays would spend minutes printing their difference.
    const same = early.length === late.length && early.every((b, i) => b.length === late[i].length && b.every((x, j) => x === late[i][j]));
    expect(same).toBe(true);
    // And they are products, not zeros.
    expect(late.every((b) => b.some((x) => x !== 0))).toBe(true);
  });
});
