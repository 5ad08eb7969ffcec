// The experimental int8 base path (docs/int8.md) against its CPU reference (src/engine/reference/int8.ts): the
// quantiser, the plain int8 GEMM (exact integer sums), and the NF4 forward and input gradient with their weight codes
// formed in-kernel, on odd shapes; then the routing of nf4_matmul_* through it.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { int8_gemm, int8Words, nf4_int8_backward, nf4_int8_forward, quantize_rows_i8 } from '../../src/engine/kernels/int8_matmul.ts';
import { nf4_destroy, nf4_upload } from '../../src/engine/kernels/nf4.ts';
import { nf4_matmul_backward, nf4_matmul_forward } from '../../src/engine/kernels/nf4_matmul.ts';
import { maxRelError, mulberry32, randomArray } from '../../src/engine/reference/common.ts';
import {
  int8GemmRef,
  int8WeightBackwardRef,
  int8WeightForwardRef,
  packInt8Rows,
  quantizeRowsRef,
  relFrobenius,
  unpackInt8Rows,
  groupsOf,
  type Int8Rows,
} from '../../src/engine/reference/int8.ts';
import { nf4MatmulBackwardRef, nf4MatmulForwardRef, quantizeRef } from '../../src/engine/reference/nf4.ts';
import { nf4TestWeights } from '../helpers/nf4-inputs.ts';
import { gpuContext } from './context.ts';

/** Runs the GPU quantiser and reads back its codes and scales. */
async function gpuQuantize(ctx: GpuContext, x: Float32Array, rows: number, cols: number): Promise<{ rows: Int8Rows; q: GPUBuffer; s: GPUBuffer }> {
  const bx = ctx.upload('x', x, 'scratch');
  const q = ctx.createBuffer('q', Math.max(4, rows * int8Words(cols) * 4), 'scratch');
  const s = ctx.createBuffer('s', Math.max(4, rows * groupsOf(cols) * 4), 'scratch');
  quantize_rows_i8(ctx, q, s, bx, rows, cols);
  const codes = unpackInt8Rows(new Uint32Array(await ctx.read(q)), rows, cols);
  const scales = Float64Array.from(await ctx.readF32(s, 0, rows * groupsOf(cols)));
  ctx.destroy(bx);
  return { rows: { rows, cols, codes, scales }, q, s };
}

/**
 * GPU output against the reference from the same A codes. The B codes the kernel forms may differ from the
 * reference's by one where a product lands within a few ULP of a rounding tie (WGSL's f32 division is not correctly
 * rounded): each output may be off by 2 such codes' worth, and at most 1 % of outputs by more than 1e-5.
 */
function expectCloseInt8(gpu: Float32Array, ref: Float64Array, a: Int8Rows, b: Int8Rows, what: string, alpha = 1): void {
  const N = b.rows;
  const G = groupsOf(a.cols);
  let maxRef = 0;
  for (const v of ref) maxRef = Math.max(maxRef, Math.abs(v));
  let loose = 0;
  for (let i = 0; i < ref.length; i++) {
    const m = Math.floor(i / N);
    const n = i % N;
    const d = Math.abs(gpu[i] - ref[i]);
    let unit = 0;
    for (let g = 0; g < G; g++) unit += a.scales[m * G + g] * b.scales[n * G + g];
    const slack = Math.abs(alpha) * 2 * 127 * unit + 1e-5 * maxRef;
    if (!(d <= slack)) throw new Error(`${what}: element ${i} is ${gpu[i]}, reference ${ref[i]}`);
    if (d > 1e-5 * maxRef) loose++;
  }
  expect(loose / ref.length, `${what}: share of outputs off by more than 1e-5`).toBeLessThanOrEqual(0.01);
}

describe('int8 quantiser and products against the CPU reference', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('quantises rows in groups of 64: odd widths, a zero row, a ragged tail, NaN and infinity', async () => {
    for (const [rows, cols] of [[1, 1], [3, 7], [37, 130], [5, 4099]] as const) {
      const x = randomArray(rows * cols, rows * 13 + cols, 3);
      if (rows >= 3) x.fill(0, cols, 2 * cols); // row 1 all zeros
      const { rows: got, q, s } = await gpuQuantize(ctx, x, rows, cols);
      const ref = quantizeRowsRef(x, rows, cols);
      let off = 0;
      for (let i = 0; i < ref.codes.length; i++) {
        const d = Math.abs(got.codes[i] - ref.codes[i]);
        expect(d, `code ${i} of [${rows}, ${cols}]`).toBeLessThanOrEqual(1);
        off += d;
      }
      expect(off / ref.codes.length, `[${rows}, ${cols}]: codes off by one`).toBeLessThan(0.002);
      expect(maxRelError(got.scales, ref.scales), `scales of [${rows}, ${cols}]`).toBeLessThan(1e-6);
      if (rows >= 3) {
        const G = groupsOf(cols);
        expect(Array.from(got.scales.subarray(G, 2 * G)).every((v) => v === 0)).toBe(true);
        expect(Array.from(got.codes.subarray(cols, 2 * cols)).every((c) => c === 0)).toBe(true);
      }
      // The padding bytes of a ragged row are zero, so a product over whole words adds nothing from them.
      const bytes = new Uint8Array(await ctx.read(q));
      const words = int8Words(cols);
      for (let r = 0; r < rows; r++) for (let c = cols; c < words * 4; c++) expect(bytes[r * words * 4 + c]).toBe(0);
      ctx.destroy(q);
      ctx.destroy(s);
    }
    // 300 values: groups of 64, 64, 64, 64, 44. A bad value poisons its own group's scale, no other.
    const x = randomArray(3 * 300, 5);
    x[300 + 17] = Number.NaN;
    x[600 + 299] = Number.NEGATIVE_INFINITY;
    const { rows: got, q, s } = await gpuQuantize(ctx, x, 3, 300);
    const finite = Array.from(got.scales, Number.isFinite);
    expect(finite).toEqual([true, true, true, true, true, false, true, true, true, true, true, true, true, true, false]);
    ctx.destroy(q);
    ctx.destroy(s);
  });

  it('plain int8 GEMM: exact integer sums on odd shapes, ragged K, alpha and accumulate', async () => {
    for (const [M, N, K] of [[1, 7, 4], [37, 70, 130], [130, 64, 256], [65, 129, 3]] as const) {
      const rand = mulberry32(M * 1000 + N * 10 + K);
      const mk = (rows: number): Int8Rows => ({
        rows,
        cols: K,
        codes: Int8Array.from({ length: rows * K }, () => Math.floor(rand() * 255) - 127),
        scales: Float64Array.from({ length: rows * groupsOf(K) }, () => Math.fround(0.001 + rand() * 0.01)),
      });
      const a = mk(M);
      const b = mk(N);
      const C0 = randomArray(M * N, K);
      const bA = ctx.upload('A', packInt8Rows(a), 'scratch');
      const bB = ctx.upload('B', packInt8Rows(b), 'scratch');
      const sa = ctx.upload('sa', Float32Array.from(a.scales), 'scratch');
      const sb = ctx.upload('sb', Float32Array.from(b.scales), 'scratch');
      const C = ctx.upload('C', C0, 'scratch');
      int8_gemm(ctx, C, bA, sa, bB, sb, M, N, K, { alpha: 0.75, accumulate: true });
      // Exact integers and one f32 epilogue: agreement to f32 rounding.
      expect(maxRelError(await ctx.readF32(C), int8GemmRef(a, b, 0.75, C0)), `[${M}, ${N}, ${K}]`).toBeLessThan(2e-6);
      int8_gemm(ctx, C, bA, sa, bB, sb, M, N, K);
      expect(maxRelError(await ctx.readF32(C), int8GemmRef(a, b)), `[${M}, ${N}, ${K}] overwrite`).toBeLessThan(2e-6);
      for (const buf of [bA, bB, sa, sb, C]) ctx.destroy(buf);
    }
  });

  for (const doubleQuant of [false, true]) {
    for (const [N, K] of [[64, 64], [200, 192], [7, 256], [130, 128]] as const) {
      it(`NF4 forward and input gradient in int8, W [${N}, ${K}]${doubleQuant ? ' double-quantised' : ''}, M = 1, 17, 130`, async () => {
        const Wf = nf4TestWeights(N, K, N * 7 + K + (doubleQuant ? 3 : 0));
        const host = quantizeRef(Wf, N, K, doubleQuant);
        const W = nf4_upload(ctx, host, 'W');
        const wf = int8WeightForwardRef(host);
        const wb = int8WeightBackwardRef(host);
        for (const M of [1, 17, 130]) {
          const X = randomArray(M * K, M * 3 + K, 2);
          const dY = randomArray(M * N, M * 5 + N, 0.01);
          const xq = await gpuQuantize(ctx, X, M, K);
          const dyq = await gpuQuantize(ctx, dY, M, N);
          const Y = ctx.createBuffer('Y', M * N * 4, 'scratch');
          const dX = ctx.createBuffer('dX', M * K * 4, 'scratch');
          nf4_int8_forward(ctx, Y, xq.q, xq.s, W, M);
          nf4_int8_backward(ctx, dX, dyq.q, dyq.s, W, M);
          const y = await ctx.readF32(Y);
          const dx = await ctx.readF32(dX);
          expectCloseInt8(y, int8GemmRef(xq.rows, wf), xq.rows, wf, `Y at M=${M}`);
          expectCloseInt8(dx, int8GemmRef(dyq.rows, wb), dyq.rows, wb, `dX at M=${M}`);
          // And what int8 costs against the exact product: about 1 % for uniform inputs (docs/int8.md).
          expect(relFrobenius(y, nf4MatmulForwardRef(X, host, M)), `Y error at M=${M}`).toBeLessThan(0.015);
          expect(relFrobenius(dx, nf4MatmulBackwardRef(dY, host, M)), `dX error at M=${M}`).toBeLessThan(0.015);
          for (const b of [xq.q, xq.s, dyq.q, dyq.s, Y, dX]) ctx.destroy(b);
        }
        nf4_destroy(ctx, W);
      });
    }
  }

  it("routes nf4_matmul_forward/backward through int8 when the context's baseMatmul is 'int8', with alpha and accumulate", async () => {
    const [M, N, K] = [19, 70, 128];
    const host = quantizeRef(nf4TestWeights(N, K, 21), N, K, true);
    const W = nf4_upload(ctx, host, 'W');
    const X = randomArray(M * K, 22);
    const dY = randomArray(M * N, 23);
    const Y0 = randomArray(M * N, 24);
    const dX0 = randomArray(M * K, 25);
    const bX = ctx.upload('X', X, 'scratch');
    const bdY = ctx.upload('dY', dY, 'scratch');
    const Y = ctx.upload('Y', Y0, 'scratch');
    const dX = ctx.upload('dX', dX0, 'scratch');
    const before = ctx.baseMatmul;
    ctx.baseMatmul = 'int8';
    try {
      nf4_matmul_forward(ctx, Y, bX, W, M, { alpha: 0.5, accumulate: true });
      nf4_matmul_backward(ctx, dX, bdY, W, M, { alpha: 2, accumulate: true });
    } finally {
      ctx.baseMatmul = before;
    }
    const xr = quantizeRowsRef(X, M, K);
    const dyr = quantizeRowsRef(dY, M, N);
    expectCloseInt8(await ctx.readF32(Y), int8GemmRef(xr, int8WeightForwardRef(host), 0.5, Y0), xr, int8WeightForwardRef(host), 'routed Y', 0.5);
    expectCloseInt8(await ctx.readF32(dX), int8GemmRef(dyr, int8WeightBackwardRef(host), 2, dX0), dyr, int8WeightBackwardRef(host), 'routed dX', 2);
    // The fp32 path again once the choice is back: not the int8 numbers.
    nf4_matmul_forward(ctx, Y, bX, W, M);
    expect(maxRelError(await ctx.readF32(Y), nf4MatmulForwardRef(X, host, M))).toBeLessThan(1e-5);
    for (const b of [bX, bdY, Y, dX]) ctx.destroy(b);
    ctx.releaseScratch();
    nf4_destroy(ctx, W);
  });
});
