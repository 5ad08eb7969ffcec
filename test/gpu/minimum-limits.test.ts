// An adapter that offers only what WebGPU guarantees (16 KiB of workgroup memory, 8 storage buffers per shader stage,
// 128 MiB bindings), as some mobile and compatibility-mode adapters do, must train and generate. Two default kernels
// need more workgroup memory (engine/kernel-fit.ts): a context there starts on their siblings, a run never measures
// them, and asking for them is refused with the reason. SwiftShader's adapter is cut down to those limits here
// (test/helpers/minimum-limits.ts); Dawn then validates every pipeline against them as a small GPU's driver would.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { GpuContext } from '../../src/engine/gpu.ts';
import { WORKGROUP_BYTES } from '../../src/engine/kernel-fit.ts';
import type { KernelSpec } from '../../src/engine/registry.ts';
import { destroyMistralWeights } from '../../src/engine/mistral/weights.ts';
import type { Dims } from '../../src/engine/mistral/dims.ts';
import { configOf, randomMistral } from '../../src/bench/model.ts';
import { applyKernels, kernelsOf, pickKernels, type KernelDecision } from '../../src/run/kernel-tuning.ts';
import { FinetuneSession, memoryRunStore, type TrainEvent } from '../../src/run/session.ts';
import { minimumLimitsAdapter } from '../helpers/minimum-limits.ts';
import { trainSteps, type TrainStepsResult } from '../helpers/train-steps.ts';
import { gpuContext } from './context.ts';

// 2 layers, GQA 2, head_dim 16: every kernel of a training step and its validation pass runs.
const DIMS: Dims = { V: 97, C: 64, I: 128, L: 2, nH: 4, nKV: 2, hd: 16, theta: 10000, eps: 1e-5 };
const TRAIN = { B: 2, T: 7, steps: 2 };

async function train(ctx: GpuContext): Promise<TrainStepsResult> {
  const w = await randomMistral(ctx, DIMS, true);
  try {
    return await trainSteps(ctx, configOf(DIMS), w, TRAIN);
  } finally {
    destroyMistralWeights(ctx, w);
  }
}

/** Every uncaptured GPU error of `ctx`'s device while `work` runs (the context itself keeps only the first). */
async function gpuErrors(ctx: GpuContext, work: () => Promise<unknown>): Promise<string[]> {
  const messages: string[] = [];
  const collect = (ev: Event): void => void messages.push((ev as GPUUncapturedErrorEvent).error.message);
  ctx.device.addEventListener('uncapturederror', collect);
  try {
    await work();
    await ctx.sync(); // lets Dawn deliver the last errors
  } finally {
    ctx.device.removeEventListener('uncapturederror', collect);
  }
  return messages;
}

describe("an adapter with only WebGPU's guaranteed limits", () => {
  // One minimum-limits device for the two tests that train on its default kernels (the first test and the session's):
  // each compiled the tiled GEMM's and the tiled attention's pipelines for itself (Dawn validates each against the
  // limits; compiling is most of their time on SwiftShader). Neither breaks its device; the tests that provoke
  // errors or ask for other limits keep their own.
  let shared: Promise<GpuContext> | null = null;
  const smallContext = (): Promise<GpuContext> => (shared ??= minimumLimitsAdapter().then((a) => GpuContext.fromAdapter(a)));
  afterAll(async () => {
    if (shared) (await shared).device.destroy();
  });

  it('starts on kernels that fit, trains with them to the same bits as a full-limits device, and raises no GPU error', async () => {
    const small = await smallContext();
    expect(small.device.limits.maxComputeWorkgroupStorageSize).toBe(16384);
    expect(small.device.limits.maxStorageBuffersPerShaderStage).toBe(8);
    expect(kernelsOf(small)).toEqual({ gemm: 'tiled', attention: 'tiled', lora: 'general' });
    // What gpu-info and the page's GPU panel say about it.
    expect(small.kernelNote).toBe(
      'the basic GEMM (its NF4 products) needs 16,448 bytes of workgroup memory, the row-split attention 25,680, and this GPU offers 16,384, so the tiled GEMM and the tiled attention run in their place',
    );
    let run: TrainStepsResult | null = null;
    expect(await gpuErrors(small, async () => (run = await train(small)))).toEqual([]);
    expect(() => small.checkHealthy()).not.toThrow();
    const big = await gpuContext();
    expect(big.device.limits.maxComputeWorkgroupStorageSize).toBeGreaterThan(16384);
    const before = kernelsOf(big);
    applyKernels(big, kernelsOf(small));
    let same: TrainStepsResult;
    try {
      same = await train(big);
    } finally {
      applyKernels(big, before);
    }
    expect(run!.losses.every((bits) => Number.isFinite(new Float32Array(Uint32Array.of(bits).buffer)[0]))).toBe(true);
    expect(run!.losses).toEqual(same.losses);
    expect(Buffer.from(run!.lora.buffer).equals(Buffer.from(same.lora.buffer))).toBe(true);
  });

  it('Dawn refuses exactly the default kernels kernel-fit.ts marks as too big, by the byte counts it gives', async () => {
    const small = await GpuContext.fromAdapter(await minimumLimitsAdapter());
    try {
      // Every pipeline of the row-split attention and the basic NF4 products, each alone (Dawn reports a pipeline's
      // total workgroup memory when it refuses it; the constants do not change it).
      const attention = (entry: string, c: Record<string, number>): KernelSpec => ({ shader: 'attention', entry, constants: { HD: 128, ...c } });
      const specs: KernelSpec[] = [
        attention('forward', { DPT: 32, WG: 128 }),
        attention('backward_dq', { DPT: 32, WG: 128 }),
        attention('backward_dkv', { DPT: 16, WG: 256 }),
        ...[false, true].flatMap((DQ): KernelSpec[] => [
          { shader: 'nf4_matmul', entry: 'forward', defines: { DQ } },
          { shader: 'nf4_matmul', entry: 'backward', defines: { BACKWARD: true, DQ } },
        ]),
        // The tiled GEMM with a K step of 32: both blocks, f32 and NF4 (whose code book is not in workgroup memory).
        ...[false, true].flatMap((NARROW): KernelSpec[] => [
          { shader: 'matmul_tiled', defines: { DEEP_K: true, ALIGNED: true, NARROW } },
          { shader: 'matmul_tiled', defines: { DEEP_K: true, ALIGNED: true, NARROW, NF4: true, DQ: true } },
        ]),
      ];
      const need: number[] = [];
      for (const spec of specs) {
        small.device.pushErrorScope('validation');
        small.registry.pipeline(spec);
        const error = await small.device.popErrorScope();
        const bytes = /total use of workgroup storage \((\d+) bytes\) is larger than the maximum allowed \(16384 bytes\)/.exec(error?.message ?? '');
        expect(bytes, `${spec.shader}:${spec.entry} ${JSON.stringify(spec.defines ?? {})}: ${error?.message ?? 'built'}`).not.toBeNull();
        need.push(Number(bytes![1]));
      }
      expect(Math.max(...need.slice(0, 3))).toBe(WORKGROUP_BYTES.attention.rows);
      expect(Math.max(...need.slice(3, 7))).toBe(WORKGROUP_BYTES.gemm.basic);
      expect(Math.max(...need.slice(7))).toBe(WORKGROUP_BYTES.gemm['tiled-k32']);
      expect(WORKGROUP_BYTES.gemm['tiled-warp-k32']).toBe(WORKGROUP_BYTES.gemm['tiled-k32']);
      // The narrow block's 24 KiB, the NF4 variants' as the f32 ones'.
      expect(need.slice(7)).toEqual([32768, 32768, 24576, 24576]);
      // Their siblings' figures are within the minimum: the first test built and ran every one of their pipelines.
      for (const n of [WORKGROUP_BYTES.attention.tiled, WORKGROUP_BYTES.gemm.tiled, WORKGROUP_BYTES.lora.skinny]) expect(n).toBeLessThanOrEqual(16384);
    } finally {
      small.device.destroy();
    }
  });

  it('with 32 KiB of workgroup memory but only 8 storage buffers per stage, the default kernels train with no GPU error', async () => {
    // The attention backward's key pass reads the row statistics (lse and D) through one binding: 8 storage buffers.
    const ctx = await GpuContext.fromAdapter(await minimumLimitsAdapter({ maxComputeWorkgroupStorageSize: 32768 }));
    try {
      expect(ctx.device.limits.maxStorageBuffersPerShaderStage).toBe(8);
      expect(kernelsOf(ctx)).toEqual({ gemm: 'basic', attention: 'rows', lora: 'general' });
      expect(ctx.kernelNote).toBeNull();
      let run: TrainStepsResult | null = null;
      expect(await gpuErrors(ctx, async () => (run = await train(ctx)))).toEqual([]);
      expect(run!.losses.every((bits) => Number.isFinite(new Float32Array(Uint32Array.of(bits).buffer)[0]))).toBe(true);
    } finally {
      ctx.device.destroy();
    }
  });

  it('with 32 KiB and 9 storage buffers, the K step of 32 trains with no GPU error (its NF4 code book is one binding more)', async () => {
    // A double-quantised NF4 product binds 7 storage buffers, LoRA's term in its epilogue 2 more: 9 fits at a K step of
    // 16, but not with the code book's 10th, so LoRA's term must then run as a product of its own (mistral/linear.ts).
    const ctx = await GpuContext.fromAdapter(await minimumLimitsAdapter({ maxComputeWorkgroupStorageSize: 32768, maxStorageBuffersPerShaderStage: 9 }), { gemmKernel: 'tiled-k32' });
    try {
      expect(ctx.device.limits.maxStorageBuffersPerShaderStage).toBe(9);
      let run: TrainStepsResult | null = null;
      expect(await gpuErrors(ctx, async () => (run = await train(ctx)))).toEqual([]);
      expect(run!.losses.every((bits) => Number.isFinite(new Float32Array(Uint32Array.of(bits).buffer)[0]))).toBe(true);
    } finally {
      ctx.device.destroy();
    }
  });

  it('refuses a kernel asked for that does not fit, before anything runs, saying why', async () => {
    await expect(GpuContext.fromAdapter(await minimumLimitsAdapter(), { attention: 'rows' })).rejects.toMatchObject({
      kind: 'bad-input',
      message: expect.stringContaining('the row-split attention needs 25,680 bytes of workgroup memory and this GPU offers 16,384'),
    });
    await expect(GpuContext.fromAdapter(await minimumLimitsAdapter(), { gemmKernel: 'basic' })).rejects.toMatchObject({
      kind: 'bad-input',
      message: expect.stringContaining('the basic GEMM (its NF4 products) needs 16,448 bytes'),
    });
    await expect(GpuContext.fromAdapter(await minimumLimitsAdapter(), { gemmKernel: 'tiled-warp-k32' })).rejects.toMatchObject({
      kind: 'bad-input',
      message: expect.stringContaining('the tiled GEMM with a K step of 32 needs 32,768 bytes'),
    });
  });

  it('a session there measures only kernels that fit, trains the tiny Mistral, refuses an unfit ask, and generates', async () => {
    const small = await smallContext();
    const tokenizer = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    const session = new FinetuneSession(small, tokenizer, memoryRunStore());
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    const rows = ['def add(a, b):\n    return a + b', 'x = [1, 2, 3]'];
    const files = { train: new Blob([rows.map((text) => JSON.stringify({ text })).join('\n')]), trainName: 'rows.jsonl', validation: null, validationName: null };
    const hp = { num_train_epochs: 1, train_batch_size: 1, micro_batch_size: 1, lora_rank: 2, lora_alpha: 4, learning_rate: 1e-3, max_seq_len: 24, peft_method: 'qlora', run_validation: false };
    const events: TrainEvent[] = [];
    const errors = await gpuErrors(small, () => session.train(hp, files, (e) => events.push(e), { kernels: { measureOnSoftware: true } }));
    expect(errors).toEqual([]);
    const decision = events.find((e) => e.type === 'kernels') as KernelDecision & { type: 'kernels' };
    // Only the tiled GEMM and attention were measured, then the tiled GEMM on the warp map (it fits as the tiled one
    // does), then the skinny LoRA products on the faster of the two maps.
    const trials = decision.trials.map((t) => t.kernels);
    expect(trials.slice(0, 2)).toEqual([
      { gemm: 'tiled', attention: 'tiled', lora: 'general' },
      { gemm: 'tiled-warp', attention: 'tiled', lora: 'general' },
    ]);
    expect(trials[2]).toEqual({ gemm: pickKernels(decision.trials.slice(0, 2)).chosen.gemm, attention: 'tiled', lora: 'skinny' });
    expect(trials).toHaveLength(3);
    const losses = events.filter((e) => e.type === 'step').map((e) => (e as { loss: number }).loss);
    expect(losses).toHaveLength(2);
    expect(losses.every(Number.isFinite)).toBe(true);
    await expect(session.train(hp, files, () => undefined, { kernels: { attention: 'rows' } })).rejects.toMatchObject({
      kind: 'bad-input',
      message: expect.stringContaining('the row-split attention needs 25,680 bytes of workgroup memory and this GPU offers 16,384'),
    });
    const text = await session.generate('def', 4);
    expect(typeof text).toBe('string');
    expect(() => small.checkHealthy()).not.toThrow();
    session.unloadModel();
  });
});
