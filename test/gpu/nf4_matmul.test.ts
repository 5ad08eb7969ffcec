import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { nf4_destroy, nf4_quantize, nf4_upload, type Nf4Weight } from '../../src/engine/kernels/nf4.ts';
import { nf4_matmul_backward, nf4_matmul_forward, nf4BackwardBasic, nf4ForwardBasic } from '../../src/engine/kernels/nf4_matmul.ts';
import type { RowBlock } from '../../src/engine/kernels/matmul.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { nf4MatmulBackwardRef, nf4MatmulForwardRef, quantizeRef } from '../../src/engine/reference/nf4.ts';
import { gpuContext } from './context.ts';
import { nf4TestWeights } from '../helpers/nf4-inputs.ts';

const TOL = 1e-5;

// [N (out, rows), K (in, cols)]: N ragged (not a multiple of 64) and K over several blocks and tiles.
const WEIGHT_SHAPES: [number, number][] = [
  [64, 64],
  [32, 128],
  [200, 192],
  [7, 256],
];
const TOKENS = [1, 17, 130];

describe('nf4 matmul (fused dequantisation) against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  for (const doubleQuant of [false, true]) {
    for (const [N, K] of WEIGHT_SHAPES) {
      it(`forward and backward, W [${N}, ${K}]${doubleQuant ? ' double-quantised' : ''}, M = ${TOKENS.join(', ')}`, async () => {
        const Wf = nf4TestWeights(N, K, N * 31 + K + (doubleQuant ? 1 : 0));
        const bWf = ctx.upload('W f32', Wf, 'scratch');
        const W = nf4_quantize(ctx, bWf, 'f32', N, K, { doubleQuant, label: 'W' });
        const host = quantizeRef(Wf, N, K, doubleQuant);
        for (const M of TOKENS) {
          const X = randomArray(M * K, M * 7 + K);
          const dY = randomArray(M * N, M + N);
          const bX = ctx.upload('X', X, 'scratch');
          const bdY = ctx.upload('dY', dY, 'scratch');
          const bY = ctx.createBuffer('Y', M * N * 4, 'scratch');
          const bdX = ctx.createBuffer('dX', M * K * 4, 'scratch');
          nf4_matmul_forward(ctx, bY, bX, W, M);
          nf4_matmul_backward(ctx, bdX, bdY, W, M);
          expect(maxRelError(await ctx.readF32(bY), nf4MatmulForwardRef(X, host, M)), `Y at M=${M}`).toBeLessThan(TOL);
          expect(maxRelError(await ctx.readF32(bdX), nf4MatmulBackwardRef(dY, host, M)), `dX at M=${M}`).toBeLessThan(TOL);
          for (const b of [bX, bdY, bY, bdX]) ctx.destroy(b);
        }
        nf4_destroy(ctx, W);
        ctx.destroy(bWf);
      });
    }
  }

  it('accumulates and scales (alpha), forward and backward', async () => {
    const [M, N, K] = [19, 70, 128];
    const host = quantizeRef(nf4TestWeights(N, K, 9), N, K, false);
    const W: Nf4Weight = nf4_upload(ctx, host, 'W');
    const X = randomArray(M * K, 10);
    const dY = randomArray(M * N, 11);
    const bX = ctx.upload('X', X, 'scratch');
    const bdY = ctx.upload('dY', dY, 'scratch');
    const bY = ctx.upload('Y', new Float32Array(M * N).fill(0.5), 'scratch');
    const bdX = ctx.upload('dX', new Float32Array(M * K).fill(-0.25), 'scratch');
    nf4_matmul_forward(ctx, bY, bX, W, M, { accumulate: true, alpha: 2 });
    nf4_matmul_backward(ctx, bdX, bdY, W, M, { accumulate: true, alpha: -3 });
    expect(maxRelError(await ctx.readF32(bY), nf4MatmulForwardRef(X, host, M).map((v) => 2 * v + 0.5))).toBeLessThan(TOL);
    expect(maxRelError(await ctx.readF32(bdX), nf4MatmulBackwardRef(dY, host, M).map((v) => -3 * v - 0.25))).toBeLessThan(TOL);
    // Without accumulate the old contents are overwritten.
    nf4_matmul_forward(ctx, bY, bX, W, M);
    expect(maxRelError(await ctx.readF32(bY), nf4MatmulForwardRef(X, host, M))).toBeLessThan(TOL);
    for (const b of [bX, bdY, bY, bdX]) ctx.destroy(b);
    nf4_destroy(ctx, W);
  });

  it('runs at most 16 rows on 16-row blocks, bit for bit the 64-row block: ragged N, both scale formats, alpha and accumulate', async () => {
    // The short block skips only the 64-row block's FMAs on zero rows: each output sums the same dequantised values
    // in the same k order.
    const bits = async (run: (out: GPUBuffer) => void, c0: Float32Array): Promise<Uint32Array> => {
      const out = ctx.upload('out', c0, 'scratch');
      run(out);
      const result = new Uint32Array((await ctx.readF32(out)).buffer);
      ctx.destroy(out);
      return result;
    };
    // M = 16, 5 and 1 as a training step or a generation has them; 37 forced onto three short row blocks.
    for (const doubleQuant of [false, true]) {
      for (const [M, N, K] of [[16, 200, 192], [5, 7, 256], [1, 70, 128], [37, 64, 320]] as [number, number, number][]) {
        const host = quantizeRef(nf4TestWeights(N, K, N + K + M), N, K, doubleQuant);
        const W = nf4_upload(ctx, host, 'W');
        const bX = ctx.upload('X', randomArray(M * K, M + 3 * K), 'scratch');
        const bdY = ctx.upload('dY', randomArray(M * N, M + 5 * N), 'scratch');
        for (const o of [{}, { accumulate: true, alpha: -1.5 }]) {
          const label = `${M}×${N}×${K}${doubleQuant ? ' dq' : ''}${o.accumulate ? ' accumulate' : ''}`;
          const [c0, dx0] = [randomArray(M * N, 1), randomArray(M * K, 2)];
          const forward = (block: RowBlock) => bits((Y) => nf4ForwardBasic(ctx, Y, bX, W, M, o, block), c0);
          const backward = (block: RowBlock) => bits((dX) => nf4BackwardBasic(ctx, dX, bdY, W, M, o, block), dx0);
          expect(await forward('short'), `forward ${label}`).toEqual(await forward('square'));
          expect(await backward('short'), `backward ${label}`).toEqual(await backward('square'));
        }
        for (const b of [bX, bdY]) ctx.destroy(b);
        nf4_destroy(ctx, W);
      }
    }
  });

  it('picks the 16-row block by itself for at most 16 rows, and only there', () => {
    const [N, K] = [100, 128];
    const W = nf4_upload(ctx, quantizeRef(nf4TestWeights(N, K, 3), N, K, false), 'W');
    const [X, Y] = [37 * K, 37 * N].map((n) => ctx.createBuffer('operand', 4 * n, 'scratch'));
    const spy = vi.spyOn(ctx, 'dispatch');
    try {
      for (const M of [1, 16, 17]) {
        nf4ForwardBasic(ctx, Y, X, W, M);
        nf4BackwardBasic(ctx, X, Y, W, M);
      }
      nf4ForwardBasic(ctx, Y, X, W, 37, {}, 'short');
      expect(spy.mock.calls.map((c) => [c[0].entry, Boolean(c[0].defines?.SHORT), c[3]])).toEqual([
        ['forward', true, [2, 1]],
        ['backward', true, [2, 1]],
        ['forward', true, [2, 1]],
        ['backward', true, [2, 1]],
        ['forward', false, [2, 1]],
        ['backward', false, [2, 1]],
        ['forward', true, [2, 3]],
      ]);
    } finally {
      spy.mockRestore();
      for (const b of [X, Y]) ctx.destroy(b);
      nf4_destroy(ctx, W);
    }
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
