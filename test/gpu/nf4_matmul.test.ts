import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { nf4_destroy, nf4_quantize, nf4_upload, type Nf4Weight } from '../../src/engine/kernels/nf4.ts';
import { nf4_matmul_backward, nf4_matmul_forward } from '../../src/engine/kernels/nf4_matmul.ts';
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

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
