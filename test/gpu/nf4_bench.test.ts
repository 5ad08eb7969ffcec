import { beforeAll, describe, expect, it } from 'vitest';
import { benchNf4, projectionNf4Shapes, type Nf4BenchResult } from '../../src/bench/nf4.ts';
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

  it('yields the plain product first, then the fused forward and backward (each basic, then tiled), plain and double-quantised', async () => {
    const rows: Nf4BenchResult[] = [];
    for await (const r of benchNf4(ctx, [{ M: 33, N: 64, K: 128 }], 1)) rows.push(r);
    expect(rows.map((r) => r.variant)).toEqual([
      'plain fp32 (C = A·B)',
      'nf4 forward Y = X·deq(W)ᵀ',
      'nf4 forward Y = X·deq(W)ᵀ, tiled',
      'nf4 backward dX = dY·deq(W)',
      'nf4 backward dX = dY·deq(W), tiled',
      'nf4 forward Y = X·deq(W)ᵀ, double-quant',
      'nf4 forward Y = X·deq(W)ᵀ, double-quant, tiled',
      'nf4 backward dX = dY·deq(W), double-quant',
      'nf4 backward dX = dY·deq(W), double-quant, tiled',
    ]);
    // The tiled products compute what the basic ones do.
    for (const r of rows.filter((r) => r.variant.endsWith('tiled'))) expect(r.diffVsBasic).toBeLessThan(1e-5);
    for (const r of rows) {
      expect(r).toMatchObject({ bench: 'nf4', M: 33, N: 64, K: 128 });
      expect(r.ms).toBeGreaterThan(0);
      expect(r.gflops).toBeCloseTo((2 * 33 * 64 * 128) / (r.ms * 1e6), 6);
      expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    }
    expect(rows[0].vsPlain).toBe(1);
    for (const r of rows.slice(1)) expect(r.vsPlain).toBeCloseTo(r.gflops / rows[0].gflops, 9);
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
