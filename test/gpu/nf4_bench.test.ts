import { beforeAll, describe, expect, it } from 'vitest';
import { benchNf4, projectionNf4Shapes, type Nf4BenchResult } from '../../src/bench/nf4.ts';
import { tiledWorkgroupBytes } from '../../src/engine/kernels/matmul_tiled.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { gpuContext } from './context.ts';

describe('benchNf4 (tiny shape; real speed is measured on real GPUs, never asserted)', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('lists the Mistral-7B projection shapes, k_proj/v_proj\'s 1024-wide outputs among them', () => {
    expect(projectionNf4Shapes([512])).toEqual([
      { M: 512, N: 4096, K: 4096 },
      { M: 512, N: 1024, K: 4096 },
      { M: 512, N: 14336, K: 4096 },
      { M: 512, N: 4096, K: 14336 },
    ]);
  });

  it('yields the plain product first, then the fused forward and backward (each basic, then tiled on its block, dequantised at the store and with a K step of 32 beside that, dequantised first and then the plain GEMM, and on the other block where both fit, those timed beside the plain product), plain and double-quantised', async () => {
    const rows: Nf4BenchResult[] = [];
    for await (const r of benchNf4(ctx, [{ M: 33, N: 64, K: 128 }], 1)) rows.push(r);
    // The wide NF4 block needs 64 bytes over 16 KiB of workgroup memory: on an adapter without them every product runs
    // on the narrow block and there is no other block to time.
    const bothBlocks = tiledWorkgroupBytes('wide', 1, true) <= ctx.device.limits.maxComputeWorkgroupStorageSize;
    // The K step of 32 on the own (narrow) block where the device holds its 24 KiB of tiles.
    const deepFits = tiledWorkgroupBytes('narrow', 1, true, 32) <= ctx.device.limits.maxComputeWorkgroupStorageSize;
    const product = (name: string): string[] => [
      name,
      `${name}, tiled`,
      `${name}, tiled, dequantised at the store`,
      ...(deepFits ? [`${name}, tiled, K step 32`] : []),
      `${name}, dequantised first`,
      ...(bothBlocks ? [`${name}, tiled, wide block`] : []),
    ];
    expect(rows.map((r) => r.variant)).toEqual([
      'plain fp32 (C = A·B)',
      ...product('nf4 forward Y = X·deq(W)ᵀ'),
      ...product('nf4 backward dX = dY·deq(W)'),
      ...product('nf4 forward Y = X·deq(W)ᵀ, double-quant'),
      ...product('nf4 backward dX = dY·deq(W), double-quant'),
    ]);
    // The tiled products compute what the basic ones do, on either block; a small shape gets the narrow block.
    const tiled = rows.filter((r) => r.variant.includes('tiled'));
    expect(tiled.length).toBe(8 + (bothBlocks ? 4 : 0) + (deepFits ? 4 : 0));
    for (const r of tiled) expect(r.diffVsBasic, r.variant).toBeLessThan(1e-5);
    for (const r of tiled.filter((r) => r.variant.endsWith('tiled'))) expect(r).toMatchObject({ block: 'narrow', blockForced: false });
    for (const r of tiled.filter((r) => r.variant.endsWith('wide block'))) {
      expect(r).toMatchObject({ block: 'wide', blockForced: true });
      const own = rows.find((o) => o.variant === r.variant.replace(', wide block', ''))!;
      expect(r.vsOwnBlock).toBeCloseTo(r.gflops / own.gflops, 9);
    }
    for (const r of rows) {
      expect(r).toMatchObject({ bench: 'nf4', M: 33, N: 64, K: 128 });
      expect(r.ms).toBeGreaterThan(0);
      expect(r.gflops).toBeCloseTo((2 * 33 * 64 * 128) / (r.ms * 1e6), 6);
      expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    }
    expect(rows[0].vsPlain).toBe(1);
    // The basic products against the shape's plain line; the tiled ones against the plain product timed beside them
    // in three alternating rounds, the median of their ratios.
    for (const r of rows.slice(1).filter((r) => !r.variant.includes('tiled') && !r.dequantFirst)) {
      expect(r.vsPlain).toBeCloseTo(r.gflops / rows[0].gflops, 9);
      expect(r.vsPlainRounds).toBeUndefined();
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1];
    for (const r of tiled.filter((r) => !r.dequantAtStore && !r.kStep)) {
      expect(r.vsPlainRounds, r.variant).toHaveLength(3);
      expect(r.vsPlain).toBe(median(r.vsPlainRounds!));
    }
    // The A/B of where a K step is dequantised: timed beside the default arrangement on the same block, its vsPlain
    // that line's times the ratio; the same output (diffVsBasic above).
    const atStore = tiled.filter((r) => r.dequantAtStore);
    expect(atStore).toHaveLength(4);
    for (const r of atStore) {
      const own = rows[rows.indexOf(r) - 1];
      expect(own.variant).toBe(r.variant.replace(', dequantised at the store', ''));
      expect(r).toMatchObject({ block: own.block, blockForced: false });
      expect(r.vsDefaultRounds).toHaveLength(3);
      expect(r.vsDefault).toBe(median(r.vsDefaultRounds!));
      expect(r.vsPlain).toBeCloseTo(own.vsPlain * r.vsDefault!, 9);
      expect(r.vsPlainRounds).toBeUndefined();
    }
    // The K step of 32 beside 16 on the same block: the ratio is the median round, and its vsPlain the 16-step line's
    // (the context's own K step here) times that.
    const deep = tiled.filter((r) => r.kStep === 32);
    expect(deep).toHaveLength(deepFits ? 4 : 0);
    for (const r of deep) {
      const own = rows.find((o) => o.variant === r.variant.replace(', K step 32', ''))!;
      expect(r).toMatchObject({ block: own.block, blockForced: false });
      expect(r.vsKStep16Rounds).toHaveLength(3);
      expect(r.vsKStep16).toBe(median(r.vsKStep16Rounds!));
      expect(r.vsPlain).toBeCloseTo(own.vsPlain * r.vsKStep16!, 9);
    }
  });

  it("times each product dequantised first (the whole weight to f32, then the context's plain GEMM) beside the plain product: the basic product's output, the dequantisation's own time", async () => {
    const rows: Nf4BenchResult[] = [];
    for await (const r of benchNf4(ctx, [{ M: 9, N: 128, K: 192 }], 1)) rows.push(r);
    const first = rows.filter((r) => r.dequantFirst);
    expect(first.map((r) => r.variant)).toEqual([
      'nf4 forward Y = X·deq(W)ᵀ, dequantised first',
      'nf4 backward dX = dY·deq(W), dequantised first',
      'nf4 forward Y = X·deq(W)ᵀ, double-quant, dequantised first',
      'nf4 backward dX = dY·deq(W), double-quant, dequantised first',
    ]);
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1];
    for (const r of first) {
      // Its output is written again after a clear, so a product that wrote nothing would differ by 1.
      expect(r.diffVsBasic, r.variant).toBeLessThan(1e-5);
      expect(r.vsPlainRounds, r.variant).toHaveLength(3);
      expect(r.vsPlain).toBe(median(r.vsPlainRounds!));
      expect(r.dequantMs).toBeGreaterThan(0);
      expect(r.gemmKernel).toBe(ctx.gemmKernel);
      expect(r.gflops).toBeCloseTo((2 * 9 * 128 * 192) / (r.ms * 1e6), 6);
    }
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
