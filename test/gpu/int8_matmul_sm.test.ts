// The tensor-core int8 kernel (shaders/int8_matmul_sm.wgsl). No adapter here offers subgroup matrices, so it cannot
// run in this tier; what can be checked here is checked:
// - every variant passes Dawn's WGSL validation and pipeline creation (subgroup-matrix types and configurations,
//   uniformity, the 16 KiB workgroup-memory minimum, the workgroup size against the largest subgroup) on Dawn's null
//   backend, which offers the feature with the allow_unsafe_apis toggle and runs nothing;
// - a context on an adapter without the feature refuses the kernel and says why, and never dispatches it;
// - the probe that must pass on a real device before the kernel is used (int8-kernel-check.ts) runs every int8
//   product on ragged shapes with non-zero outputs and compares them bit for bit;
// - the kernel's own logic (tile loads and layouts, matrix offsets, strides and majorness, the stripe loop and the
//   split of tiles among subgroups, the epilogue, the ragged edges) gives the DP4A kernel's outputs bit for bit on
//   SwiftShader, with only its four subgroup-matrix operations replaced by plain WGSL that does what the extension's
//   specification says (test/helpers/subgroup-matrix-emulation.ts), through that same probe;
// Whether Dawn and the driver do what the specification says is proven on a GPU that has the feature: the context's
// own probe refuses the kernel if any bit differs, and the device kit's int8-sm steps (docs/int8.md).
import { create } from 'webgpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { findNodeAdapter } from '../../src/cli/node-gpu.ts';
import { FinetuneError } from '../../src/core/errors.ts';
import { GpuContext } from '../../src/engine/gpu.ts';
import { compareInt8Kernels } from '../../src/engine/int8-kernel-check.ts';
import { int8_gemm, int8RowsBytes } from '../../src/engine/kernels/int8_matmul.ts';
import type { Defines } from '../../src/engine/preprocess.ts';
import { KernelRegistry } from '../../src/engine/registry.ts';
import { shaderNeeds, shaderSources } from '../../src/engine/shaders.ts';
import { SUBGROUP_MATRIX_FEATURE } from '../../src/engine/subgroup-matrix.ts';
import { emulateSubgroupMatrices } from '../helpers/subgroup-matrix-emulation.ts';
import { gpuContext } from './context.ts';

const VARIANTS: Defines[] = [{}, { NF4: true }, { NF4: true, DQ: true }, { NF4: true, BACKWARD: true }, { NF4: true, BACKWARD: true, DQ: true }];

/** A device of Dawn's null backend with the subgroup-matrix feature: validation only, nothing executes. */
async function nullDevice(): Promise<{ adapter: GPUAdapter; device: GPUDevice }> {
  const gpu = create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error("Dawn's null backend gave no adapter");
  expect(adapter.features.has(SUBGROUP_MATRIX_FEATURE as GPUFeatureName)).toBe(true);
  const device = await adapter.requestDevice({ requiredFeatures: [SUBGROUP_MATRIX_FEATURE as GPUFeatureName, 'subgroups' as GPUFeatureName] });
  return { adapter, device };
}

describe('the subgroup-matrix int8 kernel', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('passes WGSL validation and pipeline creation in every variant, within 16 KiB of workgroup memory', async () => {
    const { adapter, device } = await nullDevice();
    expect(device.limits.maxComputeWorkgroupStorageSize).toBe(16384);
    // The null backend's largest subgroup (128) is the kernel's whole workgroup: the strictest case of the rule.
    expect((adapter.info as unknown as { subgroupMaxSize: number }).subgroupMaxSize).toBe(128);
    const registry = new KernelRegistry(device, shaderSources);
    for (const defines of VARIANTS) await registry.prepare({ shader: 'int8_matmul_sm', defines });
    // The validation is real: a wrong accumulator type and an oversized workgroup are refused.
    const broken = new KernelRegistry(device, {
      ...shaderSources,
      wrong_type: shaderSources.int8_matmul_sm.replace('subgroup_matrix_result<i32, 16, 16>()', 'subgroup_matrix_result<f32, 16, 16>()'),
      too_big: shaderSources.int8_matmul_sm.replace('array<i32, 1024>;', 'array<i32, 2048>;'),
    });
    // In error scopes: the refusals are expected, and so not reported as uncaptured errors.
    device.pushErrorScope('validation');
    await expect(broken.prepare({ shader: 'wrong_type' })).rejects.toThrow(/subgroupMatrixMultiplyAccumulate/);
    await expect(broken.prepare({ shader: 'too_big' })).rejects.toThrow(/workgroup storage/);
    await device.popErrorScope();
    device.destroy();
  });

  it('is the only shader that needs a feature, and does not compile without it', async () => {
    expect(shaderNeeds).toEqual({ int8_matmul_sm: SUBGROUP_MATRIX_FEATURE });
    expect(ctx.device.features.has(SUBGROUP_MATRIX_FEATURE as GPUFeatureName)).toBe(false);
    // In an error scope, so that the refusal does not reach the shared context as an uncaptured error.
    ctx.device.pushErrorScope('validation');
    await expect(new KernelRegistry(ctx.device, shaderSources).check('int8_matmul_sm')).rejects.toThrow(/chromium_experimental_subgroup_matrix/);
    expect((await ctx.device.popErrorScope())?.message).toMatch(/chromium_experimental_subgroup_matrix' is not allowed/);
  });

  it('is refused, with the reason, by a context on an adapter without subgroup matrices', async () => {
    const err = await GpuContext.fromAdapter(ctx.adapter, { int8Kernel: 'subgroup-matrix' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FinetuneError);
    expect((err as FinetuneError).kind).toBe('no-webgpu');
    expect((err as FinetuneError).message).toMatch(/subgroup-matrix int8 kernel cannot run on this adapter: the adapter does not offer chromium-experimental-subgroup-matrix/);
  });

  it('is never dispatched on a device made without it', () => {
    expect(ctx.hasInt8SubgroupMatrix).toBe(false);
    const b = int8RowsBytes(64, 64);
    const q = ctx.createBuffer('q', b.codes, 'scratch');
    const s = ctx.createBuffer('s', b.scales, 'scratch');
    const c = ctx.createBuffer('c', 64 * 64 * 4, 'scratch');
    const before = ctx.dispatchCount;
    ctx.int8Kernel = 'subgroup-matrix';
    try {
      expect(() => int8_gemm(ctx, c, q, s, q, s, 64, 64, 64)).toThrow(/device made without subgroup matrices/);
    } finally {
      ctx.int8Kernel = 'dp4a';
      for (const x of [q, s, c]) ctx.destroy(x);
    }
    expect(ctx.dispatchCount).toBe(before);
  });

  it("gives the DP4A kernel's outputs bit for bit with only its subgroup-matrix operations emulated", async () => {
    const sources = shaderSources as Record<string, string>;
    const real = sources.int8_matmul_sm;
    const emulated = emulateSubgroupMatrices(real);
    // A fresh device for each variant: the registry keeps a compiled module per shader name.
    const run = async (text: string) => {
      sources.int8_matmul_sm = text;
      const c = await GpuContext.fromAdapter((await findNodeAdapter()).adapter, {});
      c.hasInt8SubgroupMatrix = true;
      try {
        return await compareInt8Kernels(c, 'subgroup-matrix');
      } finally {
        c.destroyDevice();
      }
    };
    try {
      const results = await run(emulated);
      expect(results).toHaveLength(5);
      for (const r of results) {
        expect(r.referenceMaxAbs, r.product).toBeGreaterThan(0.1);
        expect(r.differing, `${r.product}: ${r.differing} of ${r.outputs} outputs differ (${r.maxAbsDiff})`).toBe(0);
      }
      // The comparison can fail here: the right-hand tiles read one column further along give other numbers.
      const shifted = await run(emulated.replace('t * 16u * ROW_BYTES + h * 32u', '(t * 16u + 1u) * ROW_BYTES + h * 32u'));
      expect(shifted.every((r) => r.differing > 0)).toBe(true);
    } finally {
      sources.int8_matmul_sm = real;
    }
  });

  it("has a probe that compares every int8 product's outputs bit for bit, on ragged shapes", async () => {
    const results = await compareInt8Kernels(ctx, 'dp4a');
    expect(results.map((r) => r.product)).toEqual([
      'int8 GEMM',
      'NF4 forward, plain scales',
      'NF4 input gradient, plain scales, accumulated',
      'NF4 forward, double-quantised scales',
      'NF4 input gradient, double-quantised scales, accumulated',
    ]);
    for (const r of results) {
      expect(r.outputs, r.product).toBeGreaterThan(4000);
      expect(r.referenceMaxAbs, r.product).toBeGreaterThan(0.1);
      expect(r.differing, r.product).toBe(0);
    }
    expect(ctx.int8Kernel).toBe('dp4a');
  });
});
