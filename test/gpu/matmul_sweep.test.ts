// The generated matmul configurations `finetune bench sweep` times (src/bench/matmul-sweep-wgsl.ts), against float64:
// a speed the sweep reports must be the speed of a right answer. Shapes are whole blocks (the generator's contract)
// but not square, K three tiles, and M more block rows than a group holds, so a grouped block order ends on a ragged
// group.
import { beforeAll, describe, expect, it } from 'vitest';
import { benchSweep, compileSweepKernel, PRODUCTION_VARIANTS, type SweepLine } from '../../src/bench/matmul-sweep.ts';
import { sweepConfigProblem, sweepGrid, sweepName, sweepShapeProblem, sweepWgsl, type SweepConfig } from '../../src/bench/matmul-sweep-wgsl.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { gemmRef } from '../../src/engine/reference/matmul.ts';
import { gpuContext } from './context.ts';

const base: SweepConfig = { BM: 128, BN: 128, BK: 16, TM: 8, TN: 8, map: 'row', unroll: true, group: 0 };

describe('generated matmul configurations', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('refuses configurations it cannot generate, and shapes that are not whole blocks', () => {
    expect(sweepConfigProblem({ ...base, BK: 12 })).toMatch(/BK 12/);
    expect(sweepConfigProblem({ ...base, TM: 6 })).toMatch(/multiples of 4/);
    expect(sweepConfigProblem({ ...base, BM: 80, TM: 8 })).toMatch(/multiple of 32/);
    expect(sweepConfigProblem({ ...base, BN: 64, TN: 16, BM: 32, TM: 8 })).toMatch(/whole number of warps/);
    expect(sweepConfigProblem({ ...base, map: 'warp', BN: 64, TN: 16 })).toMatch(/8×4 patches/);
    expect(sweepConfigProblem({ ...base, BM: 256, BN: 256, TM: 8, TN: 8 }, { invocations: 256, workgroupBytes: 32768 })).toMatch(/1024 threads/);
    expect(sweepConfigProblem({ ...base, BK: 32, BN: 256, TN: 16 }, { invocations: 256, workgroupBytes: 32768 })).toMatch(/49152 bytes/);
    expect(() => sweepWgsl({ ...base, BK: 12 })).toThrow(/BK 12/);
    expect(sweepShapeProblem(base, { M: 256, N: 128, K: 40 })).toMatch(/not a whole number/);
    expect(sweepShapeProblem(base, { M: 256, N: 128, K: 48 })).toBeNull();
    // Every configuration the device kit sweeps can be generated, on a device with WebGPU's common desktop limits.
    for (const c of sweepGrid()) expect(sweepConfigProblem(c, { invocations: 256, workgroupBytes: 32768 }), sweepName(c)).toBeNull();
  });

  // Each row changes what another does not: the thread map, the unrolled steps or the loop, the K step (8, 16, 32),
  // thread tiles wider or taller than 8×8 and smaller, blocks of 64 and 256 rows or columns, the grouped order.
  const CASES: SweepConfig[] = [
    base,
    { ...base, unroll: false },
    { ...base, map: 'warp', BK: 8, group: 8 },
    { ...base, map: 'warp', BK: 32 },
    { ...base, map: 'warp', BN: 256, TN: 16, group: 3 },
    { ...base, map: 'warp', BM: 256, TM: 16, BK: 8 },
    { ...base, map: 'warp', BM: 64, BN: 64, TM: 4, TN: 4 },
    { ...base, map: 'warp', BM: 64 },
    { ...base, map: 'warp', BN: 64, TN: 4 },
  ];
  for (const c of CASES) {
    it(`${sweepName(c)} equals float64`, async () => {
      // 10 block rows: a group of 8 leaves a ragged group of 2 (3 leaves 1).
      const M = c.BM * (c.group ? 10 : 2);
      const N = c.BN * 2;
      const K = c.BK * 3;
      const A = randomArray(M * K, M + N + K);
      const B = randomArray(K * N, M * N + K);
      const bA = ctx.upload('A', A, 'scratch');
      const bB = ctx.upload('B', B, 'scratch');
      // NaN everywhere first: an output the kernel never writes stays NaN and fails the comparison.
      const bC = ctx.upload('C', new Float32Array(M * N).fill(NaN), 'scratch');
      const kernel = await compileSweepKernel(ctx, c);
      try {
        kernel.bind(bA, bB, bC, { M, N, K })();
        const got = await ctx.readF32(bC);
        expect(got.every(Number.isFinite)).toBe(true);
        expect(maxRelError(got, gemmRef(A, B, M, N, K))).toBeLessThan(1e-5);
      } finally {
        kernel.destroy();
        for (const b of [bA, bB, bC]) ctx.destroy(b);
      }
    });
  }

  it('times the production variants and each configuration beside the production kernel in alternating rounds', async () => {
    // The production tiled kernel and a configuration with the same summation order: the same bits, so agrees.
    const lines: SweepLine[] = [];
    for await (const l of benchSweep(ctx, [{ M: 128, N: 128, K: 48 }], [base, { ...base, BM: 256 }], 5)) lines.push(l);
    expect(lines.map((l) => l.config)).toEqual([
      'tiled (production)',
      ...PRODUCTION_VARIANTS.map((v) => v.config),
      sweepName(base),
      sweepName({ ...base, BM: 256 }),
    ]);
    // The production kernel's own variants (warp map, K step of 32, both; SwiftShader's 32 KiB holds them): its bits,
    // timed in the same rounds.
    for (const v of lines.slice(1, 4)) {
      expect(v, v.config).toMatchObject({ agrees: true, diffVsTiled: 0 });
      expect(v.vsTiledRounds).toHaveLength(3);
    }
    expect(lines[2].workgroupBytes).toBe(24_576); // K step 32, the narrow block a 128×128 product takes
    const [, , , , timed, skipped] = lines;
    expect(timed).toMatchObject({ agrees: true, diffVsTiled: 0 });
    // Three rounds, each its own ratio; the line's ratio is their median, beside the production kernel's rate in them.
    expect(timed.vsTiledRounds).toHaveLength(3);
    expect(timed.vsTiled).toBe([...timed.vsTiledRounds!].sort((a, b) => a - b)[1]);
    expect(timed.tiledGflops).toBeGreaterThan(0);
    expect(timed.gflops).toBeGreaterThan(0);
    expect(skipped.skipped).toMatch(/not a whole number/);
  });
});
