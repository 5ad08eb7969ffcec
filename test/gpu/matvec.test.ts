// matvec_forward (a linear layer's forward for the few rows of a generation step) against the float64 GEMM reference
// on odd shapes: one row and several, f32, bf16- and f16-packed weights, overwrite and accumulate, N over one workgroup; and
// nf4_matvec_forward against the float64 NF4 reference (plain and double-quantised block scales).
import { beforeAll, describe, expect, it } from 'vitest';
import { f16ArrayToF32, f32ToF16Bits } from '../../src/core/dtypes.ts';
import { FinetuneError } from '../../src/core/errors.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { matvec_forward, nf4_matvec_forward } from '../../src/engine/kernels/matvec.ts';
import { nf4_destroy, nf4_quantize } from '../../src/engine/kernels/nf4.ts';
import { nf4MatmulForwardRef, quantizeRef } from '../../src/engine/reference/nf4.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { gemmRef } from '../../src/engine/reference/matmul.ts';
import { gpuContext } from './context.ts';

const TOL = 1e-5;

/** bf16 by truncation: the packed bits and the exact f32 values they stand for. */
function bf16(x: Float32Array): { packed: Uint16Array; values: Float32Array } {
  const u = new Uint32Array(x.buffer.slice(0));
  const packed = Uint16Array.from(u, (v) => v >>> 16);
  return { packed, values: new Float32Array(Uint32Array.from(packed, (h) => h << 16).buffer) };
}

/** f16 by rounding, every 5th value scaled into the subnormal range: the packed bits and the exact f32 values. */
function f16(x: Float32Array): { packed: Uint16Array; values: Float32Array } {
  const packed = Uint16Array.from(x, (v, i) => f32ToF16Bits(i % 5 === 0 ? v * 2 ** -16 : v));
  return { packed, values: f16ArrayToF32(packed) };
}

describe('matvec_forward', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  for (const [M, N, K, storage, accumulate] of [
    [1, 37, 45, 'f32', false],
    [1, 1001, 130, 'bf16', false],
    [3, 21, 17, 'f32', true],
    [8, 9, 66, 'bf16', true],
    [1, 1001, 130, 'f16', false],
    [5, 13, 31, 'f16', true],
  ] as const) {
    it(`${M}×${K} · (${N}×${K})ᵀ, ${storage} weights${accumulate ? ', accumulating' : ''}`, async () => {
      const X = randomArray(M * K, M + N);
      const raw = randomArray(N * K, K);
      const Y0 = randomArray(M * N, 3);
      const w = storage === 'bf16' ? bf16(raw) : storage === 'f16' ? f16(raw) : { packed: raw, values: raw };
      const bX = ctx.upload('X', X, 'scratch');
      const bW = ctx.upload('W', w.packed, 'scratch');
      const bY = ctx.upload('Y', Y0, 'scratch');
      matvec_forward(ctx, bY, bX, bW, M, N, K, { wStorage: storage, accumulate, alpha: 0.5 });
      const got = await ctx.readF32(bY);
      const ref = gemmRef(X, w.values, M, N, K, false, true).map((v, i) => 0.5 * v + (accumulate ? Y0[i] : 0));
      expect(maxRelError(got, ref)).toBeLessThan(TOL);
      for (const b of [bX, bW, bY]) ctx.destroy(b);
    });
  }

  for (const [M, N, K, doubleQuant, accumulate] of [
    [1, 200, 192, false, false],
    [3, 7, 256, true, true],
    [1, 65, 64, true, false],
  ] as const) {
    it(`NF4: ${M}×${K} · deq(${N}×${K})ᵀ${doubleQuant ? ', double-quantised' : ''}${accumulate ? ', accumulating' : ''}`, async () => {
      const Wf = randomArray(N * K, N + K, 0.1);
      const bWf = ctx.upload('W f32', Wf, 'scratch');
      const W = nf4_quantize(ctx, bWf, 'f32', N, K, { doubleQuant, label: 'W' });
      const X = randomArray(M * K, M * 5 + K);
      const Y0 = randomArray(M * N, 4);
      const bX = ctx.upload('X', X, 'scratch');
      const bY = ctx.upload('Y', Y0, 'scratch');
      nf4_matvec_forward(ctx, bY, bX, W, M, { accumulate, alpha: 2 });
      const ref = nf4MatmulForwardRef(X, quantizeRef(Wf, N, K, doubleQuant), M).map((v, i) => 2 * v + (accumulate ? Y0[i] : 0));
      expect(maxRelError(await ctx.readF32(bY), ref)).toBeLessThan(TOL);
      nf4_destroy(ctx, W);
      for (const b of [bWf, bX, bY]) ctx.destroy(b);
    });
  }

  it('refuses more rows than it holds partial sums for', () => {
    const b = ctx.createBuffer('b', 4096, 'scratch');
    try {
      expect(() => matvec_forward(ctx, b, b, b, 9, 4, 4)).toThrow(FinetuneError);
    } finally {
      ctx.destroy(b);
    }
  });
});
