// The kernels' hot loops compile without bounds clamps on workgroup memory, robustness on (as every browser compiles
// them). `finetune bench clamps` (src/cli/spirv-audit.ts, src/bench/clamps.ts) compiles every pipeline with a
// multiply-accumulate loop through the engine's own dispatch functions, in a child process whose Dawn prints the
// SPIR-V, and reads each innermost loop's clamped indices. A clamp in such a loop is an extra integer instruction per
// shared read (4 per 64 FMAs in the tiled GEMM's step as it was); `--no-robustness`, which drops every clamp, ran a
// Mistral-7B layer 1.085× faster on the H200 (docs/performance.md, "Bounds clamps").
import { beforeAll, describe, expect, it } from 'vitest';
import { clampsSummary, type ClampsResult } from '../../src/bench/clamps.ts';
import { auditClamps } from '../../src/cli/spirv-audit.ts';

let results: ClampsResult[] = [];
let pipelines = 0;

beforeAll(async () => {
  ({ results, pipelines } = await auditClamps());
}, 600_000);

describe('hot loops under robustness (bench clamps)', () => {
  it('compiles every listed pipeline and finds its multiply-accumulate loop (the check is not vacuous)', () => {
    // Each kind the engine runs a training step on: both tiled blocks, the basic GEMM, NF4 products, skinny LoRA
    // products, the tiled attention's forward and both backward kernels.
    expect(pipelines).toBeGreaterThanOrEqual(60);
    const names = new Set(results.map((r) => r.pipeline));
    expect(names.size).toBe(pipelines);
    for (const kind of ['tiled GEMM', 'basic GEMM', 'tiled NF4', 'basic NF4', 'skinny', 'tiled attention forward', 'tiled attention backward']) {
      expect([...names].some((n) => n.startsWith(kind)), kind).toBe(true);
    }
    const entries = new Set(results.filter((r) => r.pipeline.startsWith('tiled attention')).map((r) => r.entry));
    expect([...entries].sort()).toEqual(['backward_dkv', 'backward_dq', 'dot_rows', 'forward']);
    // The backward with dS through a scratch compiles its own dK/dV kernel (the one that writes dS) and its dQ kernel.
    const spill = results.filter((r) => r.pipeline.startsWith('tiled attention backward, dS through a scratch'));
    expect(spill.map((r) => r.entry).sort()).toEqual(['backward_dkv', 'backward_dkv', 'backward_dq', 'backward_dq']);
    // Every module but the attention backward's statistics pass (one multiply per element, no tile loop) has a hot loop,
    // and the tiled GEMM's is its whole K tile: 16 steps of 16 vec4 FMAs written out (//#unroll), not a loop of steps
    // (a variant with dropout on an operand multiplies in its hash too).
    for (const r of results.filter((x) => x.entry !== 'dot_rows')) expect(r.hotLoops, r.pipeline).toBeGreaterThan(0);
    for (const r of results.filter((x) => x.pipeline.startsWith('tiled GEMM'))) expect(r.mostMultiplies, r.pipeline).toBeGreaterThanOrEqual(256);
  });

  it('sees the clamps robustness does put in hot loops (storage reads of the skinny kernel): the reader works on these dumps', () => {
    const skinny = results.filter((r) => r.pipeline.startsWith('skinny'));
    expect(skinny.length).toBe(7);
    for (const r of skinny) expect(r.storageClamps, r.pipeline).toBeGreaterThan(0);
  });

  it('leaves no clamped workgroup-memory index in any hot loop of any pipeline', () => {
    const clamped = results.filter((r) => r.workgroupClamps > 0).map((r) => `${r.pipeline} (${r.entry}): ${JSON.stringify(r.loops)}`);
    expect(clamped).toEqual([]);
    const summary = clampsSummary(results, pipelines, true);
    expect(summary).toMatchObject({ workgroupClamps: 0, clampedPipelines: [] });
  });

  it("forms LoRA's epilogue term one output row at a time: no hot loop beside the K loop's (2 quads live, not 16)", () => {
    // Forming all 8 rows of both column quads before storing (a rank loop of 8 vec4 fmas) held 64 floats of term beside
    // the 64 accumulators, at or past the registers two workgroups per SM allow on NVIDIA (shaders/matmul_tiled.wgsl,
    // lowRankRow).
    const epilogue = results.filter((r) => r.pipeline.includes('in the epilogue'));
    expect(epilogue.length).toBe(4);
    for (const r of epilogue) {
      expect(r.loops.filter((l) => l.fn !== 'main_inner'), r.pipeline).toEqual([]);
      expect(r.loops.length, r.pipeline).toBeGreaterThan(0);
    }
  });

  it('leaves none in the GEMM and NF4 products at all, tiled and basic, their once-per-K-step tile fills included', () => {
    // The tiled ones are ≈ 81 % of a layer's time; the fills store 4 to 16 values per thread per K step.
    const products = results.filter((r) => /^(tiled|basic) (GEMM|NF4)/.test(r.pipeline));
    expect(products.length).toBeGreaterThanOrEqual(50);
    expect(products.filter((r) => r.workgroupClampsElsewhere > 0).map((r) => r.pipeline)).toEqual([]);
  });
});
