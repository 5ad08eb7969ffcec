// The kernel registry: compile errors name the shader file and line; pipelines are cached per variant.
import { beforeAll, describe, expect, it } from 'vitest';
import { FinetuneError } from '../../src/core/errors.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { KernelRegistry } from '../../src/engine/registry.ts';
import { shaderNeeds, shaderSources } from '../../src/engine/shaders.ts';
import { gpuContext } from './context.ts';

describe('kernel registry', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('reports a WGSL compile error with the shader name, line and column', async () => {
    const reg = new KernelRegistry(ctx.device, { broken: '// a comment\n\nfn f() -> f32 {\n  return undefined_name;\n}\n' });
    const err = await reg.check('broken').then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FinetuneError);
    expect((err as FinetuneError).kind).toBe('shader-compile');
    expect((err as FinetuneError).message).toMatch(/^broken\.wgsl:4:\d+: .*undefined_name/);
  });

  it('compiles every shader in shaders/ on this adapter (with and without its text variants)', async () => {
    // A shader that needs a feature this device lacks is validated where it has it (int8_matmul_sm.test.ts).
    for (const name of Object.keys(shaderSources)) {
      const needs = shaderNeeds[name];
      if (needs === undefined || ctx.device.features.has(needs as GPUFeatureName)) await ctx.registry.check(name);
    }
    await ctx.registry.check('matmul', { B_BF16: true });
    await ctx.registry.check('matmul_tiled', { ALIGNED: true, NARROW: true, B_BF16: true });
    await ctx.registry.check('matmul_tiled', { ALIGNED: true, NF4: true, DQ: true });
    await ctx.registry.check('nf4', { SRC_BF16: true });
  });

  it('caches one pipeline per (shader, entry, defines, constants)', async () => {
    const a = await ctx.registry.prepare({ shader: 'matmul', constants: { TRANS_A: false, TRANS_B: true } });
    const b = await ctx.registry.prepare({ shader: 'matmul', constants: { TRANS_B: true, TRANS_A: false } });
    const c = await ctx.registry.prepare({ shader: 'matmul', constants: { TRANS_A: true, TRANS_B: false } });
    expect(a).toBe(b);
    expect(a).not.toBe(c);
  });

  it('names a missing shader', () => {
    expect(() => ctx.registry.pipeline({ shader: 'no_such_kernel' })).toThrow(/no shader named "no_such_kernel"/);
  });
});
