// Per-dispatch GPU time (GpuContext.profileDispatches, src/engine/profiler.ts) and `bench profile` on it: each
// dispatch recorded in a timestamped pass of its own, in order, with its kernel; the work computes the same bits as
// without the profiler; the context is left as it was (also after a refusal); a device without timestamp-query is told
// why. Then one layer's training work profiled: its parts hold exactly the dispatches the runner makes of each kind.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { benchProfile, PROFILE_PARTS } from '../../src/bench/profile.ts';
import { findNodeAdapter } from '../../src/cli/node-gpu.ts';
import { GpuContext } from '../../src/engine/gpu.ts';
import { lora_dropout } from '../../src/engine/kernels/lora.ts';
import { gemmTiled } from '../../src/engine/kernels/matmul_tiled.ts';
import { randomArray } from '../../src/engine/reference/common.ts';
import { applyKernels, kernelsOf, type KernelChoice } from '../../src/run/kernel-tuning.ts';
import { gpuContext } from './context.ts';

const bits = async (ctx: GpuContext, b: GPUBuffer): Promise<Uint32Array> => new Uint32Array((await ctx.readF32(b)).buffer);

describe('per-dispatch GPU time', () => {
  let ctx: GpuContext;
  let before: KernelChoice;
  beforeAll(async () => {
    ctx = await gpuContext();
    before = kernelsOf(ctx);
  });
  afterEach(() => applyKernels(ctx, before));

  /** Three dispatches of two kernels into C and D from fixed inputs. */
  function work(): { record: () => void; C: GPUBuffer; D: GPUBuffer; free: () => void } {
    const A = ctx.upload('prof A', randomArray(64 * 48, 1), 'scratch');
    const B = ctx.upload('prof B', randomArray(48 * 40, 2), 'scratch');
    const C = ctx.createBuffer('prof C', 64 * 40 * 4, 'scratch');
    const D = ctx.createBuffer('prof D', 64 * 40 * 4, 'scratch');
    const record = (): void => {
      gemmTiled(ctx, { C, A, B, M: 64, N: 40, K: 48 });
      lora_dropout(ctx, D, C, 64 * 40, 0.25, { seed: 1, step: 2, layer: 3, module: 4 });
      gemmTiled(ctx, { C, A, B, M: 64, N: 40, K: 48, alpha: 0.5, beta: 1 });
    };
    return { record, C, D, free: () => [A, B, C, D].forEach((b) => ctx.destroy(b)) };
  }

  it('times each dispatch in recording order with its kernel, and the work computes what it does unprofiled', async () => {
    expect(ctx.device.features.has('timestamp-query')).toBe(true);
    const plain = work();
    plain.record();
    const [c0, d0] = [await bits(ctx, plain.C), await bits(ctx, plain.D)];
    const profiled = work();
    const n0 = ctx.dispatchCount;
    const times = await ctx.profileDispatches(profiled.record);
    expect(ctx.dispatchCount - n0).toBe(3);
    expect(times.map((t) => t.spec.shader)).toEqual(['matmul_tiled', 'lora', 'matmul_tiled']);
    for (const t of times) {
      expect(Number.isFinite(t.ms)).toBe(true);
      expect(t.ms).toBeGreaterThan(0);
    }
    expect(await bits(ctx, profiled.C)).toEqual(c0);
    expect(await bits(ctx, profiled.D)).toEqual(d0);
    // Detached afterwards: the same work recorded again is not profiled and gives the same bits.
    profiled.record();
    expect(await bits(ctx, profiled.C)).toEqual(c0);
    plain.free();
    profiled.free();
  });

  it('refuses more dispatches than its capacity and a profile inside a profile; the context works after either', async () => {
    const w = work();
    expect(() => ctx.profileDispatches(w.record, 2)).toThrow(/more than 2 dispatches/);
    expect(() => ctx.profileDispatches(() => void ctx.profileDispatches(() => {}))).toThrow(/already being recorded/);
    const again = await ctx.profileDispatches(w.record);
    expect(again).toHaveLength(3);
    w.free();
  });

  it('says why on a device without timestamp-query', async () => {
    const adapter = (await findNodeAdapter()).adapter;
    const features = new Set([...adapter.features].filter((f) => f !== 'timestamp-query'));
    const without = new Proxy(adapter, {
      get: (target, key) => {
        if (key === 'features') return features;
        const value = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const small = await GpuContext.fromAdapter(without);
    try {
      expect(small.device.features.has('timestamp-query')).toBe(false);
      expect(() => small.profileDispatches(() => {})).toThrow(expect.objectContaining({ kind: 'no-webgpu', message: expect.stringContaining("no 'timestamp-query' feature") }));
    } finally {
      small.device.destroy();
    }
  });

  it('profiles a layer: each part holds the dispatches the runner makes of its kind, the lines add up', async () => {
    applyKernels(ctx, { gemm: 'tiled', attention: 'tiled', lora: 'skinny' });
    const dims = { C: 64, I: 128, nH: 4, nKV: 2, hd: 16, theta: 1e6, eps: 1e-5 };
    const { kernels, summary } = await benchProfile(ctx, { dims, T: 16, minMs: 1 });
    // Forward, recomputation (no down_proj), backward: 7 + 6 + 7 base products, each with its LoRA term in the
    // epilogue; LoRA's t once for each of 7 modules (the recomputation reuses the forward's), dB, dt and dA once;
    // attention forward twice, the backward's row statistics, dK/dV and dQ; norms (2 + 2 + 2), RoPE (3), SwiGLU (2 + 1).
    expect(summary.parts['base products'].dispatches).toBe(20);
    expect(summary.parts['LoRA products'].dispatches).toBe(28);
    expect(summary.parts.attention.dispatches).toBe(5);
    expect(summary.parts.other.dispatches).toBe(12);
    expect(summary.dispatches).toBe(65);
    expect(kernels.some((k) => k.part === 'base products' && k.kernel.includes('LOW_RANK'))).toBe(true);
    expect(kernels.reduce((a, k) => a + k.dispatches, 0)).toBe(65);
    expect(kernels.reduce((a, k) => a + k.ms, 0)).toBeCloseTo(summary.kernelMs, 6);
    expect(PROFILE_PARTS.reduce((a, p) => a + summary.parts[p].ms, 0)).toBeCloseTo(summary.kernelMs, 6);
    expect(summary.kernelMs).toBeGreaterThan(0);
    expect(summary.layerMs).toBeGreaterThan(0);
  });
});
