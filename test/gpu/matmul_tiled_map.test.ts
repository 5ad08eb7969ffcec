// The tiled GEMM's warp map (shaders/matmul_tiled.wgsl, WARP_MAP; the GEMM kernel 'tiled-warp'): each warp takes an
// 8 × 4 patch of the thread grid instead of 16 × 2. Only which thread computes which 8×8 outputs changes, each output
// summed in the same order, so every product must give the row map's bits, which test/gpu/matmul_tiled.test.ts,
// nf4_matmul_tiled.test.ts and matmul_lowrank.test.ts hold against float64: plain GEMMs in every transpose, aligned
// and not, both blocks, edge tests on and off, two stages, a bf16 B, fused dropout, a batch, LoRA's term in the
// epilogue; the NF4 forward and input gradient. A map that left an output unwritten or wrote one twice fails here.
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GemmKernel, GpuContext } from '../../src/engine/gpu.ts';
import { loraGemmDropout } from '../../src/engine/kernels/lora.ts';
import { gemm } from '../../src/engine/kernels/matmul.ts';
import { DROP_KEY } from './gemm-dropout.ts';
import { gpuContext } from './context.ts';
import { gemmProduct, nf4Product, type TiledProduct } from './tiled-products.ts';

const PRODUCTS: TiledProduct[] = [
  gemmProduct('plain, ragged (edge tests), unaligned', { M: 37, N: 70, K: 41 }),
  gemmProduct('Aᵀ·Bᵀ, ragged, narrow', { M: 130, N: 36, K: 200, transA: true, transB: true, alpha: -1.5, beta: 1 }, { block: 'narrow' }),
  gemmProduct('X·Wᵀ, divisible, wide, no edge tests', { M: 256, N: 256, K: 64, transB: true }, { block: 'wide', check: false }),
  gemmProduct('dYᵀ·X, divisible, narrow, one K step', { M: 128, N: 128, K: 16, transA: true }, { block: 'narrow', check: false }),
  gemmProduct('plain, two stages', { M: 128, N: 128, K: 48 }, { block: 'wide', stages: 2 }),
  gemmProduct('plain, K of 3 steps and a part, a batch of 2', { M: 64, N: 132, K: 52, batch: 2, beta: 1 }),
  gemmProduct('X·Wᵀ with a bf16 W', { M: 40, N: 96, K: 80, transB: true, bStorage: 'bf16' }),
  gemmProduct('dropout on A', { M: 45, N: 64, K: 96, transB: true, dropout: loraGemmDropout({ p: 0.1, key: DROP_KEY }, 'A') }),
  gemmProduct("LoRA's term in the epilogue, wide", { M: 136, N: 160, K: 64, transB: true }, { block: 'wide' }, 3),
  nf4Product('NF4 forward, narrow', 192, 128, 37, false, false, { block: 'narrow' }),
  nf4Product("NF4 forward, double-quantised, wide, LoRA's term", 256, 192, 130, true, false, { block: 'wide' }, 2),
  nf4Product('NF4 input gradient, narrow', 200, 128, 37, false, true, { block: 'narrow' }),
  nf4Product('NF4 input gradient, double-quantised, divisible', 256, 256, 128, true, true),
];

describe('tiled GEMM with the warp map', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });
  let before: GemmKernel;
  beforeAll(() => {
    before = ctx.gemmKernel;
  });
  afterEach(() => {
    ctx.gemmKernel = before;
  });

  /** The product with the context's GEMM kernel 'tiled' (row map) or 'tiled-warp'; the tiled functions ask for neither. */
  const withMap = async (map: 'row' | 'warp', p: TiledProduct): Promise<Uint32Array> => {
    ctx.gemmKernel = map === 'warp' ? 'tiled-warp' : 'tiled';
    return p.run(ctx);
  };

  for (const p of PRODUCTS) {
    it(`${p.name}: the row map's bits`, async () => {
      const row = await withMap('row', p);
      const warp = await withMap('warp', p);
      expect(warp.length).toBe(row.length);
      expect(warp).toEqual(row);
    });
  }

  it("compiles the map the context's kernel or the product asks for into the tiled GEMM and its NF4 products", async () => {
    const spy = vi.spyOn(ctx, 'dispatch');
    try {
      await withMap('warp', PRODUCTS[0]);
      await withMap('warp', PRODUCTS[9]);
      await withMap('row', PRODUCTS[0]);
      // An explicit map wins over the context's kernel (the bench times both maps on one context).
      ctx.gemmKernel = 'tiled';
      await gemmProduct('asked', { M: 8, N: 8, K: 8 }, { map: 'warp' }).run(ctx);
      ctx.gemmKernel = 'tiled-warp';
      await gemmProduct('asked', { M: 8, N: 8, K: 8 }, { map: 'row' }).run(ctx);
      // And the GEMM entry point routes 'tiled-warp' to the tiled kernel with the map.
      const A = ctx.upload('A', new Float32Array(64).fill(1), 'scratch');
      const C = ctx.upload('C', new Float32Array(64), 'scratch');
      gemm(ctx, { A, B: A, C, M: 8, N: 8, K: 8 });
      expect(Array.from(await ctx.readF32(C))).toEqual(new Array(64).fill(8));
      for (const b of [A, C]) ctx.destroy(b);
      const maps = spy.mock.calls.filter(([spec]) => spec.shader === 'matmul_tiled').map(([spec]) => spec.defines?.WARP_MAP);
      expect(maps).toEqual([true, true, false, true, false, true]);
    } finally {
      spy.mockRestore();
    }
  });
});
