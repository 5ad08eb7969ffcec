// The fused NF4 forward Y = X · deq(W)ᵀ on the register-tiled kernel (shaders/matmul_tiled.wgsl with NF4) against
// float64: plain and double-quantised scales, both blocks, ragged and divisible shapes, accumulation, and the switch.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { nf4_destroy, nf4_upload } from '../../src/engine/kernels/nf4.ts';
import { nf4_matmul_forward } from '../../src/engine/kernels/nf4_matmul.ts';
import { nf4MatmulForwardTiled, tiledVariant, type TiledBlock, type TiledOptions } from '../../src/engine/kernels/matmul_tiled.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { nf4MatmulForwardRef, quantizeRef } from '../../src/engine/reference/nf4.ts';
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
