import { f16ArrayToF32, f32ToF16Bits } from '../../src/core/dtypes.ts';
import { describe, expect, it, beforeAll, vi } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import type { GemmArgs } from '../../src/engine/kernels/gemm_args.ts';
import { gemm, gemmBasic, matmul_backward, matmul_forward } from '../../src/engine/kernels/matmul.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { gemmRef } from '../../src/engine/reference/matmul.ts';
import { gpuContext } from './context.ts';
import { DROP_KEY, dropLabel, gemmDropoutError, type DropCase } from './gemm-dropout.ts';
import { loraGemmDropout } from '../../src/engine/kernels/lora.ts';

const TOL = 1e-5;
// Odd shapes on purpose: nothing is a multiple of the 64×64×16 tile.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [17, 33, 65],
  [130, 7, 300],
  [64, 64, 16],
  [3, 129, 5],
  [97, 70, 1],
];

function toBf16Bits(x: Float32Array): { packed: Uint16Array; rounded: Float32Array } {
  const u = new Uint32Array(x.buffer.slice(0));
  const packed = new Uint16Array(x.length);
  const rounded = new Float32Array(x.length);
  const r32 = new Uint32Array(rounded.buffer);
  for (let i = 0; i < x.length; i++) {
    const v = u[i];
    const r = (v + 0x7fff + ((v >>> 16) & 1)) >>> 16; // round to nearest even
    packed[i] = r;
    r32[i] = r << 16;
  }
  return { packed, rounded };
}

describe('matmul (tiled fp32) against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('has a real adapter', () => {
    expect(ctx.report.vendor + ctx.report.architecture + ctx.report.description).not.toBe('');
  });

  for (const [M, N, K] of SHAPES) {
    it(`forward and backward at M=${M} N=${N} K=${K}`, async () => {
      const X = randomArray(M * K, M * 7 + K);
      const W = randomArray(N * K, N * 11 + K);
      const dY = randomArray(M * N, M + N);
      const bX = ctx.upload('X', X, 'scratch');
      const bW = ctx.upload('W', W, 'scratch');
      const bdY = ctx.upload('dY', dY, 'scratch');
      const bY = ctx.createBuffer('Y', M * N * 4, 'scratch');
      const bdX = ctx.createBuffer('dX', M * K * 4, 'scratch');
      const bdW = ctx.createBuffer('dW', N * K * 4, 'scratch');
      matmul_forward(ctx, bY, bX, bW, M, N, K);
      matmul_backward(ctx, bdX, bdW, bdY, bX, bW, M, N, K);
      expect(maxRelError(await ctx.readF32(bY), gemmRef(X, W, M, N, K, false, true))).toBeLessThan(TOL);
      expect(maxRelError(await ctx.readF32(bdX), gemmRef(dY, W, M, K, N))).toBeLessThan(TOL);
      expect(maxRelError(await ctx.readF32(bdW), gemmRef(dY, X, N, K, M, true))).toBeLessThan(TOL);
      for (const b of [bX, bW, bdY, bY, bdX, bdW]) ctx.destroy(b);
    });
  }

  it('accumulates with beta = 1 and scales with alpha (gradient accumulation)', async () => {
    const [M, N, K] = [19, 23, 41];
    const X = randomArray(M * K, 3);
    const W = randomArray(N * K, 4);
    const bX = ctx.upload('X', X, 'scratch');
    const bW = ctx.upload('W', W, 'scratch');
    const bY = ctx.upload('Y', new Float32Array(M * N).fill(0.5), 'scratch');
    matmul_forward(ctx, bY, bX, bW, M, N, K, { accumulate: true, alpha: 2 });
    const ref = gemmRef(X, W, M, N, K, false, true).map((v) => 2 * v + 0.5);
    expect(maxRelError(await ctx.readF32(bY), ref)).toBeLessThan(TOL);
    for (const b of [bX, bW, bY]) ctx.destroy(b);
  });

  it('runs batched products with strides', async () => {
    const [B, M, N, K] = [3, 9, 13, 21];
    const A = randomArray(B * M * K, 5);
    const Bm = randomArray(B * K * N, 6);
    const bA = ctx.upload('A', A, 'scratch');
    const bB = ctx.upload('B', Bm, 'scratch');
    const bC = ctx.createBuffer('C', B * M * N * 4, 'scratch');
    gemm(ctx, { C: bC, A: bA, B: bB, M, N, K, batch: B, strideA: M * K, strideB: K * N, strideC: M * N });
    const got = await ctx.readF32(bC);
    for (let b = 0; b < B; b++) {
      const ref = gemmRef(A.subarray(b * M * K), Bm.subarray(b * K * N), M, N, K);
      expect(maxRelError(got.subarray(b * M * N, (b + 1) * M * N), ref)).toBeLessThan(TOL);
    }
    for (const b of [bA, bB, bC]) ctx.destroy(b);
  });

  it('reads bf16-packed weights (the Hub format) exactly as their float values', async () => {
    const [M, N, K] = [33, 17, 45];
    const X = randomArray(M * K, 8);
    const { packed, rounded } = toBf16Bits(randomArray(N * K, 9));
    const bX = ctx.upload('X', X, 'scratch');
    const bW = ctx.upload('W bf16', packed, 'scratch');
    const bY = ctx.createBuffer('Y', M * N * 4, 'scratch');
    const bdY = ctx.upload('dY', randomArray(M * N, 10), 'scratch');
    const bdX = ctx.createBuffer('dX', M * K * 4, 'scratch');
    matmul_forward(ctx, bY, bX, bW, M, N, K, { wStorage: 'bf16' });
    matmul_backward(ctx, bdX, null, bdY, bX, bW, M, N, K, { wStorage: 'bf16' });
    expect(maxRelError(await ctx.readF32(bY), gemmRef(X, rounded, M, N, K, false, true))).toBeLessThan(TOL);
    expect(maxRelError(await ctx.readF32(bdX), gemmRef(await ctx.readF32(bdY), rounded, M, K, N))).toBeLessThan(TOL);
    for (const b of [bX, bW, bY, bdY, bdX]) ctx.destroy(b);
  });

  it('reads f16-packed weights exactly as their float values on any adapter, subnormals and large values included', async () => {
    // The basic kernel whatever the context's choice (matmul_tiled.test.ts covers the tiled one).
    const [M, N, K] = [33, 17, 45];
    const X = randomArray(M * K, 11);
    // Every 5th weight in f16's subnormal range (a driver that flushes subnormal f16 inputs would lose them), every
    // 7th near its largest normal.
    const bits = Uint16Array.from(randomArray(N * K, 12), (v, i) => f32ToF16Bits(i % 5 === 0 ? v * 2 ** -16 : i % 7 === 0 ? v * 6e4 : v));
    const values = f16ArrayToF32(bits);
    const bX = ctx.upload('X', X, 'scratch');
    const bW = ctx.upload('W f16', bits, 'scratch');
    const bY = ctx.createBuffer('Y', M * N * 4, 'scratch');
    const dY = randomArray(M * N, 13);
    const bdY = ctx.upload('dY', dY, 'scratch');
    const bdX = ctx.createBuffer('dX', M * K * 4, 'scratch');
    gemmBasic(ctx, { C: bY, A: bX, B: bW, M, N, K, transB: true, bStorage: 'f16' });
    gemmBasic(ctx, { C: bdX, A: bdY, B: bW, M, N: K, K: N, bStorage: 'f16' });
    expect(maxRelError(await ctx.readF32(bY), gemmRef(X, values, M, N, K, false, true))).toBeLessThan(TOL);
    expect(maxRelError(await ctx.readF32(bdX), gemmRef(dY, values, M, K, N))).toBeLessThan(TOL);
    // Products of one subnormal weight alone: exact (a flushed subnormal would give 0).
    const one = ctx.upload('x one', Float32Array.of(1), 'scratch');
    const sub = ctx.upload('w subnormal', Uint16Array.of(0x0001, 0x83ff), 'scratch'); // 2^-24 and -(1023 · 2^-24)
    const out = ctx.createBuffer('y two', 8, 'scratch');
    gemmBasic(ctx, { C: out, A: one, B: sub, M: 1, N: 2, K: 1, bStorage: 'f16' });
    expect([...(await ctx.readF32(out))]).toEqual([2 ** -24, -1023 * 2 ** -24]);
    for (const b of [bX, bW, bY, bdY, bdX, one, sub, out]) ctx.destroy(b);
  });

  // The LoRA dropout variants (GemmDropout), on the basic kernel whatever the context's choice.
  const TRANSPOSES: [boolean, boolean][] = [
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ];
  for (const on of ['A', 'B', 'out'] as const) {
    it(`dropout on ${on === 'out' ? 'the output' : `operand ${on}`} vs float64 with the CPU mask: odd shapes, every transpose`, async () => {
      for (const [M, N, K] of [
        [37, 8, 200],
        [8, 200, 37],
        [130, 64, 4],
        [1, 65, 17],
      ] as [number, number, number][]) {
        for (const [transA, transB] of TRANSPOSES) {
          for (const p of [0.1, 0.5]) {
            const c: DropCase = { M, N, K, on, p, transA, transB, beta: on === 'out' ? 1 : 0 };
            expect(await gemmDropoutError(ctx, c, (a) => gemmBasic(ctx, a)), dropLabel(c)).toBeLessThan(TOL);
          }
        }
      }
      // alpha, beta 0 (the output variant overwrites), and a batch (the same mask in every entry).
      for (const c of [
        { M: 19, N: 23, K: 41, on, p: 0.3, alpha: -1.5 },
        { M: 19, N: 23, K: 41, on, p: 0.3, alpha: 2, beta: 1 },
        { M: 9, N: 13, K: 21, on, p: 0.2, batch: 3 },
      ] as DropCase[]) {
        expect(await gemmDropoutError(ctx, c, (a) => gemmBasic(ctx, a)), dropLabel(c)).toBeLessThan(TOL);
      }
    });
  }

  it('runs at most 16 output rows on 16×64 blocks, bit for bit the 64-row block: transposes, bf16 and f16 B, dropout, alpha and beta, a batch', async () => {
    // The short block only skips the 64-row block's FMAs on zero rows; every output sums in the same k order.
    const bits = async (a: GemmArgs, block: 'short' | 'square', c0: Float32Array): Promise<Uint32Array> => {
      const C = ctx.upload('C', c0, 'scratch');
      gemmBasic(ctx, { ...a, C }, block);
      const out = new Uint32Array((await ctx.readF32(C)).buffer);
      ctx.destroy(C);
      return out;
    };
    // Each load path once: the four transposes of f32 operands, bf16 and f16 B (each layout), dropout on A, B and the
    // output (its beta-1 epilogue). The 64-row pipelines are the ones the tests above compiled.
    const variants: { transA: boolean; transB: boolean; storage: 'f32' | 'bf16' | 'f16'; drop?: 'A' | 'B' | 'out' }[] = [
      ...TRANSPOSES.map(([transA, transB]) => ({ transA, transB, storage: 'f32' as const })),
      { transA: false, transB: true, storage: 'bf16' },
      { transA: false, transB: false, storage: 'f16' },
      { transA: true, transB: false, storage: 'f32', drop: 'A' },
      { transA: false, transB: true, storage: 'f32', drop: 'B' },
      { transA: false, transB: false, storage: 'f32', drop: 'out' },
    ];
    // 16×70×33 and 7×129×200 as a training step has them; 37×8×200 forced onto three short row blocks; 1×65×17.
    for (const [M, N, K] of [[16, 70, 33], [7, 129, 200], [37, 8, 200], [1, 65, 17]] as [number, number, number][]) {
      for (const { transA, transB, storage, drop } of variants) {
        const seed = M * 3 + N * 5 + K * 7;
        const A = ctx.upload('A', randomArray(M * K, seed), 'scratch');
        const Bv = randomArray(N * K, seed + 1);
        const B = ctx.upload('B', storage === 'f32' ? Bv : storage === 'bf16' ? toBf16Bits(Bv).packed : Uint16Array.from(Bv, f32ToF16Bits), 'scratch');
        const beta = drop === 'out' ? 1 : 0.5;
        const args: GemmArgs = { C: A, A, B, M, N, K, transA, transB, alpha: -1.25, beta, bStorage: storage, dropout: drop ? loraGemmDropout({ p: 0.3, key: DROP_KEY }, drop) : undefined };
        const c0 = randomArray(M * N, seed + 2);
        const label = `${M}×${N}×${K}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''} ${storage}${drop ? ` drop ${drop}` : ''}`;
        expect(await bits(args, 'short', c0), label).toEqual(await bits(args, 'square', c0));
        ctx.destroy(A);
        ctx.destroy(B);
      }
    }
    // Batched: each entry's rows in its own short blocks.
    const [Bn, M, N, K] = [3, 9, 13, 21];
    const A = ctx.upload('A', randomArray(Bn * M * K, 5), 'scratch');
    const B = ctx.upload('B', randomArray(Bn * K * N, 6), 'scratch');
    const batched: GemmArgs = { C: A, A, B, M, N, K, batch: Bn, strideA: M * K, strideB: K * N, strideC: M * N };
    const c0 = new Float32Array(Bn * M * N);
    expect(await bits(batched, 'short', c0)).toEqual(await bits(batched, 'square', c0));
    ctx.destroy(A);
    ctx.destroy(B);
  });

  it('picks the 16-row block by itself for at most 16 output rows, and only there', () => {
    const [A, B, C] = [37 * 4, 4 * 100, 37 * 100].map((n) => ctx.createBuffer('operand', 4 * n, 'scratch'));
    const spy = vi.spyOn(ctx, 'dispatch');
    try {
      for (const M of [1, 16, 17]) gemmBasic(ctx, { C, A, B, M, N: 100, K: 4 });
      gemmBasic(ctx, { C, A, B, M: 37, N: 100, K: 4 }, 'short');
      expect(spy.mock.calls.map((c) => [Boolean(c[0].defines?.SHORT), c[3]])).toEqual([
        [true, [2, 1, 1]],
        [true, [2, 1, 1]],
        [false, [2, 1, 1]],
        [true, [2, 3, 1]],
      ]);
    } finally {
      spy.mockRestore();
      for (const b of [A, B, C]) ctx.destroy(b);
    }
  });

  it('refuses dropout on a non-f32 B and an output dropout with beta other than 0 or 1', () => {
    const b = ctx.createBuffer('b', 64, 'scratch');
    const dropout = (on: 'A' | 'B' | 'out') => loraGemmDropout({ p: 0.1, key: DROP_KEY }, on);
    expect(() => gemm(ctx, { C: b, A: b, B: b, M: 2, N: 2, K: 2, bStorage: 'bf16', dropout: dropout('B') })).toThrow(/f32 storage/);
    expect(() => gemm(ctx, { C: b, A: b, B: b, M: 2, N: 2, K: 2, beta: 0.5, dropout: dropout('out') })).toThrow(/beta/);
    ctx.destroy(b);
  });

  it('refuses a batch whose C entries overlap (strideC under M·N) on every GEMM kernel: their workgroups would race on C', async () => {
    const b = ctx.createBuffer('b', 4096, 'scratch');
    const args = (o: Partial<GemmArgs>): GemmArgs => ({ C: b, A: b, B: b, M: 4, N: 8, K: 2, batch: 2, strideA: 8, strideB: 16, ...o });
    const { gemmTiled } = await import('../../src/engine/kernels/matmul_tiled.ts');
    const { gemmSkinny } = await import('../../src/engine/kernels/matmul_skinny.ts');
    for (const [name, run] of [['basic', (a: GemmArgs) => gemmBasic(ctx, a)], ['tiled', (a: GemmArgs) => gemmTiled(ctx, a)], ['skinny', (a: GemmArgs) => gemmSkinny(ctx, { ...a, N: 8, M: 4 })]] as const) {
      expect(() => run(args({})), name).toThrow('gemm: a batch of 2 with strideC 0 (under M·N = 32) writes the entries\' outputs over each other, a race: give strideC ≥ M·N');
      expect(() => run(args({ strideC: 31 })), name).toThrow(/strideC 31/);
    }
    // Entries side by side are fine (the product itself is tested above).
    expect(() => gemmBasic(ctx, args({ strideC: 32 }))).not.toThrow();
    ctx.flush();
    ctx.destroy(b);
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
