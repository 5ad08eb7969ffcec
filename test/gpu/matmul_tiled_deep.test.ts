// The tiled GEMM with a K step of 32 (shaders/matmul_tiled.wgsl, DEEP_K; the GEMM kernels 'tiled-k32' and
// 'tiled-warp-k32'): against float64 on odd and divisible shapes (every transpose, both blocks, edge tests on and off,
// the NF4 forward and input gradient with plain and double-quantised scales), and against the 16-step kernel's bits on
// every variant (scalar and 128-bit access, a bf16 B, fused dropout, a batch, sizes compiled in, LoRA's term in the
// epilogue, the warp map, dequantisation at the store). Each output sums its products one fma at a time in increasing
// k in both, and the 32-step tile only adds more zero products past K, so the bits must be the same: a tile row
// stored under the wrong swizzle, a code word fetched for the wrong row, a scale carried one step too far, or a
// second half of the K step skipped shows here.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { loraGemmDropout } from '../../src/engine/kernels/lora.ts';
import { gemm } from '../../src/engine/kernels/matmul.ts';
import { nf4MatmulBackwardTiled, nf4MatmulForwardTiled, nf4TiledVariant, nf4ForwardArgs, releaseNf4Table, tiledVariant, tiledWorkgroupBytes, type TiledBlock } from '../../src/engine/kernels/matmul_tiled.ts';
import { nf4_destroy, nf4_upload } from '../../src/engine/kernels/nf4.ts';
import { nf4_matmul_forward } from '../../src/engine/kernels/nf4_matmul.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { nf4MatmulBackwardRef, nf4MatmulForwardRef, quantizeRef } from '../../src/engine/reference/nf4.ts';
import { gpuContext } from './context.ts';
import { DROP_KEY } from './gemm-dropout.ts';
import { gemmProduct, nf4Product, outputDifference, TRANSPOSES, type TiledProduct } from './tiled-products.ts';
import { nf4TestWeights } from '../helpers/nf4-inputs.ts';

const TOL = 1e-5; // as the 16-step kernel's tests
const BLOCKS: TiledBlock[] = ['wide', 'narrow'];
const t = (transA: boolean, transB: boolean): string => `${transA ? 'Aᵀ' : 'A'}·${transB ? 'Bᵀ' : 'B'}`;

const asF32 = (bits: Uint32Array): Float32Array => new Float32Array(bits.buffer, bits.byteOffset, bits.length);

/** Largest error of float32 results against float64 ones, relative to the largest reference magnitude. */
function relError(got: Float32Array, want: Float64Array): number {
  const scale = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0) || 1;
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]) / scale);
  return err;
}

describe('tiled GEMM with a K step of 32 against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('sizes its workgroup memory and edge tests by the K step', () => {
    // 32 K rows of both tiles: 32 KiB wide, 24 KiB narrow; the NF4 code book leaves workgroup memory at this step.
    expect(tiledWorkgroupBytes('wide', 1, false, 32)).toBe(32_768);
    expect(tiledWorkgroupBytes('narrow', 1, true, 32)).toBe(24_576);
    expect(tiledWorkgroupBytes('wide', 1, true, 16)).toBe(16_448);
    const v = (K: number, kStep: 16 | 32) => tiledVariant({ A: null!, B: null!, C: null!, M: 128, N: 128, K }, { kStep, block: 'wide' });
    expect(v(48, 16)).toMatchObject({ check: false, kStep: 16 });
    expect(v(48, 32)).toMatchObject({ check: true, kStep: 32 });
    expect(v(64, 32)).toMatchObject({ check: false, kStep: 32 });
    expect(() => tiledVariant({ A: null!, B: null!, C: null!, M: 128, N: 128, K: 48 }, { kStep: 32, check: false })).toThrow(/K step 32/);
  });

  // M, N, K that divide nothing (K = 41: one full 32-step and a part), T = 1, a long K, and 128-bit access with edges.
  const ODD: [number, number, number][] = [
    [1, 1, 1],
    [3, 17, 41],
    [1, 129, 1031],
    [129, 257, 17],
    [132, 68, 100],
  ];
  for (const block of BLOCKS) {
    it(`${block} block, odd shapes, every transpose`, async () => {
      for (const [M, N, K] of ODD) {
        for (const [transA, transB] of TRANSPOSES) {
          const p = gemmProduct(`${block} ${M}×${N}×${K} ${t(transA, transB)}`, { M, N, K, transA, transB, alpha: 1.5, beta: 1 }, { block, kStep: 32 });
          expect(relError(asF32(await p.run(ctx)), p.reference!()), p.name).toBeLessThan(TOL);
        }
      }
    });
  }

  it('divisible shapes: without and with edge tests, every transpose', async () => {
    for (const [block, M, N, K] of [
      ['wide', 128, 128, 64],
      ['wide', 256, 128, 96],
      ['narrow', 128, 64, 32],
      ['narrow', 128, 192, 128],
    ] as [TiledBlock, number, number, number][]) {
      for (const [transA, transB] of TRANSPOSES) {
        for (const check of [undefined, true]) {
          const o = { block, check, kStep: 32 as const };
          expect(tiledVariant({ A: null!, B: null!, C: null!, M, N, K, transA, transB }, o)).toMatchObject({ check: check ?? false, aligned: true });
          const p = gemmProduct(`${block} ${M}×${N}×${K} ${t(transA, transB)} check=${check}`, { M, N, K, transA, transB }, o);
          expect(relError(asF32(await p.run(ctx)), p.reference!()), p.name).toBeLessThan(TOL);
        }
      }
    }
  });

  /** An NF4 product with a K step of 32 against float64: the forward Y = X·deq(W)ᵀ or the input gradient dY·deq(W). */
  async function nf4Error(N: number, K: number, M: number, doubleQuant: boolean, backward: boolean, block: TiledBlock): Promise<number> {
    const host = quantizeRef(nf4TestWeights(N, K, N * 13 + K), N, K, doubleQuant);
    const W = nf4_upload(ctx, host, 'W');
    const inp = randomArray(M * (backward ? N : K), M + N + K);
    const bIn = ctx.upload('in', inp, 'scratch');
    const bOut = ctx.upload('out', new Float32Array(M * (backward ? K : N)).fill(NaN), 'scratch'); // NaN: not read
    const f = backward ? nf4MatmulBackwardTiled : nf4MatmulForwardTiled;
    f(ctx, bOut, bIn, W, M, {}, { block, kStep: 32 });
    const want = backward ? nf4MatmulBackwardRef(inp, host, M) : nf4MatmulForwardRef(inp, host, M);
    const err = maxRelError(await ctx.readF32(bOut), want);
    for (const b of [bIn, bOut]) ctx.destroy(b);
    nf4_destroy(ctx, W);
    return err;
  }

  for (const backward of [false, true]) {
    it(`NF4 ${backward ? 'input gradient' : 'forward'}, plain and double-quantised scales, both blocks, ragged and divisible`, async () => {
      // [N (rows), K (cols)]: a forward K of one 64-block (two 32-steps sharing a scale) to several; N ragged and odd.
      const shapes: [number, number][] = [
        [7, 256],
        [200, 192],
        [65, 64],
        [128, 128],
        [192, 320],
      ];
      // One kind of scales per block, swapped between the forward and the input gradient: each direction reads plain
      // and double-quantised scales (on one block each), and each block both (over the two directions). The kinds
      // differ in how a block's absmax is decoded, not in where the K step fetches it; each block × kind is three
      // pipelines to compile (slow on SwiftShader), and the full cross product was twice these.
      for (const block of BLOCKS) {
        const doubleQuant = (block === 'narrow') !== backward;
        for (const [N, K] of shapes) {
          for (const M of [1, 37, 128]) {
            const what = `${block} W [${N}, ${K}]${doubleQuant ? ' DQ' : ''} M=${M}`;
            expect(await nf4Error(N, K, M, doubleQuant, backward, block), what).toBeLessThan(TOL);
          }
        }
      }
    });
  }
});

describe('tiled GEMM with a K step of 32: the 16-step kernel\'s bits', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  const PRODUCTS: TiledProduct[] = [
    gemmProduct('plain, ragged, unaligned', { M: 37, N: 70, K: 41 }),
    gemmProduct('Aᵀ·Bᵀ, ragged, narrow, accumulating', { M: 130, N: 36, K: 200, transA: true, transB: true, alpha: -1.5, beta: 1 }, { block: 'narrow' }),
    gemmProduct('X·Wᵀ, divisible, wide, no edge tests', { M: 256, N: 256, K: 64, transB: true }, { block: 'wide', check: false }),
    gemmProduct('Aᵀ·B, K = 48: divisible at 16, edge tests at 32', { M: 128, N: 128, K: 48, transA: true }, { block: 'wide' }),
    gemmProduct('scalar access on an aligned shape', { M: 128, N: 128, K: 64 }, { aligned: false }),
    gemmProduct('plain, a batch of 2', { M: 64, N: 132, K: 52, batch: 2, beta: 1 }),
    gemmProduct('sizes compiled in', { M: 129, N: 257, K: 17, transB: true }, { fixedShape: true }),
    gemmProduct('X·Wᵀ with a bf16 W', { M: 40, N: 96, K: 80, transB: true, bStorage: 'bf16' }),
    gemmProduct('dropout on A', { M: 45, N: 64, K: 96, transB: true, dropout: loraGemmDropout({ p: 0.1, key: DROP_KEY }, 'A') }),
    gemmProduct('dropout on B', { M: 8, N: 200, K: 37, transA: true, dropout: loraGemmDropout({ p: 0.3, key: DROP_KEY }, 'B') }),
    gemmProduct('dropout on the output', { M: 130, N: 64, K: 36, beta: 1, dropout: loraGemmDropout({ p: 0.2, key: DROP_KEY }, 'out') }),
    gemmProduct("LoRA's term in the epilogue, wide", { M: 136, N: 160, K: 64, transB: true }, { block: 'wide' }, 3),
    gemmProduct("LoRA's term in the epilogue, narrow", { M: 37, N: 64, K: 100 }, { block: 'narrow' }, 8),
    gemmProduct('warp map, wide', { M: 256, N: 256, K: 96, transB: true }, { block: 'wide', map: 'warp' }),
    gemmProduct('warp map, narrow, ragged', { M: 130, N: 70, K: 41, transA: true }, { block: 'narrow', map: 'warp' }),
    nf4Product('NF4 forward, narrow', 192, 128, 37, false, false, { block: 'narrow' }),
    nf4Product("NF4 forward, double-quantised, wide, LoRA's term", 256, 192, 130, true, false, { block: 'wide' }, 2),
    nf4Product('NF4 forward, dequantised at the store', 200, 192, 17, true, false, { block: 'wide', dequantAtStore: true }),
    nf4Product('NF4 forward, warp map', 128, 320, 128, false, false, { block: 'wide', map: 'warp' }),
    nf4Product('NF4 input gradient, narrow', 200, 128, 37, false, true, { block: 'narrow' }),
    nf4Product("NF4 input gradient, double-quantised, divisible, LoRA's term", 256, 256, 128, true, true, { block: 'wide' }, 4),
    nf4Product('NF4 input gradient, dequantised at the store', 65, 320, 130, false, true, { block: 'narrow', dequantAtStore: true }),
  ];

  for (const p of PRODUCTS) {
    it(`${p.name}`, async () => {
      const sixteen = await p.run(ctx, { kStep: 16 });
      const deep = await p.run(ctx, { kStep: 32 });
      expect(outputDifference(p, sixteen, deep, ['16-step', '32-step'])).toBe('');
      // Products, not zeros.
      expect(deep.some((x) => x !== 0)).toBe(true);
    });
  }

  it("compiles the K step the context's GEMM kernel asks for into the GEMM and both NF4 products", async () => {
    const before = ctx.gemmKernel;
    const spy = vi.spyOn(ctx, 'dispatch');
    const A = ctx.upload('A', new Float32Array(64 * 64).fill(1), 'scratch');
    const C = ctx.upload('C', new Float32Array(64 * 64), 'scratch');
    const [N, K, M] = [48, 128, 9];
    const host = quantizeRef(nf4TestWeights(N, K, 3), N, K, true);
    const W = nf4_upload(ctx, host, 'W');
    const X = randomArray(M * K, 4);
    const bX = ctx.upload('X', X, 'scratch');
    const bY = ctx.createBuffer('Y', M * N * 4, 'scratch');
    try {
      for (const kernel of ['tiled-k32', 'tiled-warp-k32', 'tiled'] as const) {
        ctx.gemmKernel = kernel;
        gemm(ctx, { A, B: A, C, M: 64, N: 64, K: 64 });
        expect(Array.from(await ctx.readF32(C)).every((v) => v === 64)).toBe(true);
        nf4_matmul_forward(ctx, bY, bX, W, M);
        expect(maxRelError(await ctx.readF32(bY), nf4MatmulForwardRef(X, host, M)), kernel).toBeLessThan(TOL);
        expect(nf4TiledVariant(ctx, nf4ForwardArgs(bY, bX, W, M)).kStep).toBe(kernel === 'tiled' ? 16 : 32);
      }
      const specs = spy.mock.calls.filter(([s]) => s.shader === 'matmul_tiled').map(([s]) => [s.defines?.DEEP_K, s.defines?.WARP_MAP, s.defines?.NF4 ?? false]);
      expect(specs).toEqual([
        [true, false, false],
        [true, false, true],
        [true, true, false],
        [true, true, true],
        [false, false, false],
        [false, false, true],
      ]);
      // The K step of 32 binds the code book after the weight's scales: one buffer more than the 16-step product.
      const bound = spy.mock.calls.filter(([s]) => s.shader === 'matmul_tiled' && s.defines?.NF4).map(([, buffers]) => buffers.length);
      expect(bound).toEqual([8, 8, 7]);
    } finally {
      ctx.gemmKernel = before;
      spy.mockRestore();
      for (const b of [A, C, bX, bY]) ctx.destroy(b);
      nf4_destroy(ctx, W);
    }
  });

  it('leaves only its NF4 code book behind, which releaseNf4Table frees (and nothing else)', async () => {
    const live = (): string[] => ctx.ledger.liveBuffers().map((b) => b.label).sort();
    expect(live()).toEqual(['fence', 'fence source', 'scratch: NF4 code book', 'uniform arena']);
    ctx.scratch('other', 16);
    releaseNf4Table(ctx);
    expect(live()).toEqual(['fence', 'fence source', 'scratch: other', 'uniform arena']);
    // Made again, and filled again, by the next product that needs it.
    const p = nf4Product('NF4 forward after the release', 64, 64, 5, false, false, { kStep: 32 });
    const again = await p.run(ctx);
    expect(outputDifference(p, await p.run(ctx, { kStep: 16 }), again, ['16-step', '32-step'])).toBe('');
    ctx.releaseScratch();
    expect(live()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
