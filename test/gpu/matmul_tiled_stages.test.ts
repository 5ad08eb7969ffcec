// The tiled GEMM with two stages of workgroup tiles (shaders/matmul_tiled.wgsl, DOUBLE): one barrier per K step
// instead of two, the same arithmetic in the same order. So every product must give the one-stage kernel's bits, which
// test/gpu/matmul_tiled.test.ts and nf4_matmul_tiled.test.ts hold against float64: plain GEMMs in every transpose,
// aligned and not, both blocks, edge tests on and off, a bf16 B, fused dropout, a batch; the NF4 forward and input
// gradient with plain and double-quantised scales. Where two stages do not fit the device's workgroup memory the
// kernel runs one.
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import type { GemmArgs } from '../../src/engine/kernels/gemm_args.ts';
import { loraGemmDropout } from '../../src/engine/kernels/lora.ts';
import { gemmTiled, nf4MatmulBackwardTiled, nf4MatmulForwardTiled, tiledWorkgroupBytes, type TiledOptions } from '../../src/engine/kernels/matmul_tiled.ts';
import { nf4_destroy, nf4_upload } from '../../src/engine/kernels/nf4.ts';
import { randomArray } from '../../src/engine/reference/common.ts';
import { quantizeRef } from '../../src/engine/reference/nf4.ts';
import { nf4TestWeights } from '../helpers/nf4-inputs.ts';
import { DROP_KEY } from './gemm-dropout.ts';
import { gpuContext } from './context.ts';

/** stages undefined: the context's choice (`GpuContext.tiledStages`). */
type Product = { name: string; run: (ctx: GpuContext, stages: 1 | 2 | undefined) => Promise<Uint32Array> };

const bitsOf = async (ctx: GpuContext, b: GPUBuffer): Promise<Uint32Array> => new Uint32Array((await ctx.readF32(b)).buffer);

/** One f32 GEMM on the tiled kernel with `stages`, from inputs made by the seed: the output's bits. */
function gemmProduct(name: string, a: Omit<GemmArgs, 'A' | 'B' | 'C'>, o: TiledOptions = {}): Product {
  return {
    name,
    run: async (ctx, stages) => {
      const batch = a.batch ?? 1;
      const [sA, sB, sC] = [a.strideA ?? a.M * a.K, a.strideB ?? a.K * a.N, a.strideC ?? a.M * a.N];
      const half = a.bStorage === 'bf16';
      const A = ctx.upload('A', randomArray(sA * batch, a.M + 3 * a.K), 'scratch');
      const Bf = randomArray(sB * batch + (half && (sB * batch) % 2 ? 1 : 0), a.N + 5 * a.K);
      const B = ctx.upload('B', half ? new Float32Array(new Uint16Array(Bf.buffer).filter((_, i) => i % 2 === 1).buffer) : Bf, 'scratch');
      const C = ctx.upload('C', randomArray(sC * batch, a.M * a.N), 'scratch');
      gemmTiled(ctx, { ...a, A, B, C }, { ...o, stages });
      const bits = await bitsOf(ctx, C);
      for (const b of [A, B, C]) ctx.destroy(b);
      return bits;
    },
  };
}

/** The NF4 forward (Y = X·deq(W)ᵀ) or input gradient (dX = dY·deq(W)) on the tiled kernel with `stages`. */
function nf4Product(name: string, N: number, K: number, M: number, doubleQuant: boolean, backward: boolean, o: TiledOptions = {}): Product {
  return {
    name,
    run: async (ctx, stages) => {
      const W = nf4_upload(ctx, quantizeRef(nf4TestWeights(N, K, N + K), N, K, doubleQuant), 'W');
      const In = ctx.upload('in', randomArray(M * (backward ? N : K), M + N), 'scratch');
      const Out = ctx.upload('out', randomArray(M * (backward ? K : N), M + K), 'scratch');
      const f = backward ? nf4MatmulBackwardTiled : nf4MatmulForwardTiled;
      f(ctx, Out, In, W, M, { accumulate: true, alpha: 0.75 }, { ...o, stages });
      const bits = await bitsOf(ctx, Out);
      for (const b of [In, Out]) ctx.destroy(b);
      nf4_destroy(ctx, W);
      return bits;
    },
  };
}

const PRODUCTS: Product[] = [
  gemmProduct('plain, ragged (edge tests), unaligned', { M: 37, N: 70, K: 41 }),
  gemmProduct('Aᵀ·Bᵀ, ragged, narrow', { M: 130, N: 36, K: 200, transA: true, transB: true, alpha: -1.5, beta: 1 }, { block: 'narrow' }),
  gemmProduct('X·Wᵀ, divisible, wide, no edge tests', { M: 128, N: 128, K: 64, transB: true }, { block: 'wide', check: false }),
  gemmProduct('dYᵀ·X, divisible, narrow, one K step', { M: 128, N: 64, K: 16, transA: true }, { block: 'narrow', check: false }),
  gemmProduct('plain, K of 3 steps and a part, a batch of 2', { M: 64, N: 132, K: 52, batch: 2, beta: 1 }),
  gemmProduct('X·Wᵀ with a bf16 W', { M: 40, N: 96, K: 80, transB: true, bStorage: 'bf16' }),
  gemmProduct('dropout on A', { M: 45, N: 64, K: 96, transB: true, dropout: loraGemmDropout({ p: 0.1, key: DROP_KEY }, 'A') }),
  gemmProduct('dropout on the output', { M: 33, N: 64, K: 48, beta: 1, dropout: loraGemmDropout({ p: 0.3, key: DROP_KEY }, 'out') }),
  nf4Product('NF4 forward, narrow', 192, 128, 37, false, false, { block: 'narrow' }),
  nf4Product('NF4 forward, double-quantised, wide', 256, 192, 130, true, false, { block: 'wide' }),
  nf4Product('NF4 input gradient, narrow', 200, 128, 37, false, true, { block: 'narrow' }),
  nf4Product('NF4 input gradient, double-quantised, divisible', 256, 256, 128, true, true),
];

describe('tiled GEMM with two stages of workgroup tiles', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });
  afterEach(() => {
    ctx.tiledStages = 1;
  });

  it('needs the workgroup memory of its stages: 16 KiB a stage wide, 12 KiB narrow, 64 bytes more with NF4', () => {
    expect(tiledWorkgroupBytes('wide', 1, false)).toBe(16384);
    expect(tiledWorkgroupBytes('wide', 1, true)).toBe(16448);
    expect(tiledWorkgroupBytes('narrow', 1, true)).toBe(12352);
    expect(tiledWorkgroupBytes('wide', 2, false)).toBe(32768);
    expect(tiledWorkgroupBytes('narrow', 2, true)).toBe(24640);
    expect(tiledWorkgroupBytes('wide', 2, true)).toBe(32832);
  });

  for (const p of PRODUCTS) {
    it(`${p.name}: the one-stage kernel's bits`, async () => {
      expect(await p.run(ctx, 2)).toEqual(await p.run(ctx, 1));
    });
  }

  it("is the context's choice when a product asks for none, and one stage where two do not fit", async () => {
    // SwiftShader offers 32 KiB: two stages of the wide NF4 block (32 KiB + 64) do not fit, so that product runs one
    // stage; the plain wide block (32 KiB) runs two. Either way the bits are the one-stage ones.
    expect(ctx.device.limits.maxComputeWorkgroupStorageSize).toBeLessThan(tiledWorkgroupBytes('wide', 2, true));
    expect(ctx.device.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(tiledWorkgroupBytes('wide', 2, false));
    // The spy records each dispatch and runs it.
    const spy = vi.spyOn(ctx, 'dispatch');
    try {
      const plain = gemmProduct('plain', { M: 128, N: 128, K: 32 }, { block: 'wide' });
      const one = await plain.run(ctx, 1);
      ctx.tiledStages = 2;
      expect(await plain.run(ctx, undefined)).toEqual(one);
      const wideNf4 = nf4Product('NF4 wide', 128, 64, 128, false, false, { block: 'wide' });
      const nf4Two = await wideNf4.run(ctx, undefined);
      ctx.tiledStages = 1;
      expect(nf4Two).toEqual(await wideNf4.run(ctx, undefined));
      // one stage asked; the context's two; the wide NF4 block that cannot have them; one stage again.
      const doubles = spy.mock.calls.filter(([spec]) => spec.shader === 'matmul_tiled').map(([spec]) => Boolean(spec.defines?.DOUBLE));
      expect(doubles).toEqual([false, true, false, false]);
    } finally {
      spy.mockRestore();
    }
  });
});
