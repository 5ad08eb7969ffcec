// `finetune bench sweep`: the generated matmul configurations (matmul-sweep-wgsl.ts) timed one after another in one
// process, each beside the production tiled kernel on the same inputs: its rate, its ratio to the tiled kernel's
// (timed in alternating rounds with it, engine/timing.ts `timePaired`), and its output's largest difference from the
// tiled kernel's (both sum k in order, so 0 is expected; a config that disagrees is reported as such and its speed
// means nothing). A config the device cannot run (threads, workgroup memory, a pipeline error) gets a line saying why
// instead of a time. Before the generated configs, the production kernel's own variants of the same bits (the warp map,
// the K step of 32, both) are timed the same way, so that a generated design and the production form of it are
// compared with the same yardstick in one process.

import type { GpuContext } from '../engine/gpu.ts';
import { thrownMessage } from '../core/errors.ts';
import { gemmTiled, tiledVariant, tiledWorkgroupBytes, TILED_BM, TILED_BN, type TiledOptions } from '../engine/kernels/matmul_tiled.ts';
import { maxRelError } from '../engine/reference/common.ts';
import { benchTiming, timeGpu, timePaired } from '../engine/timing.ts';
import { filled } from './nf4.ts';
import { sweepConfigProblem, sweepName, sweepShapeProblem, sweepThreads, sweepWgsl, sweepWorkgroupBytes, sweepWorkgroups, type SweepConfig, type SweepShape } from './matmul-sweep-wgsl.ts';

/** The production kernel's variants timed beside it on every shape: their names in the lines, and their options. */
export const PRODUCTION_VARIANTS: readonly { config: string; options: TiledOptions }[] = [
  { config: 'tiled-warp (production)', options: { map: 'warp', kStep: 16 } },
  { config: 'tiled-k32 (production)', options: { map: 'row', kStep: 32 } },
  { config: 'tiled-warp-k32 (production)', options: { map: 'warp', kStep: 32 } },
];

/** Largest relative difference from the tiled kernel's output for a config to count as right. */
export const SWEEP_AGREEMENT = 1e-5;

export interface SweepLine {
  bench: 'matmul-sweep';
  config: string;
  M: number;
  N: number;
  K: number;
  threads: number;
  workgroupBytes: number;
  /** The production tiled kernel on this shape: its line has config 'tiled (production)'. */
  ms?: number;
  gflops?: number;
  /**
   * This config's GFLOP/s over the production tiled kernel's, same shape: the median of rounds in which the two were
   * timed one right after the other (`vsTiledRounds`), not against the production line of the shape.
   */
  vsTiled?: number;
  vsTiledRounds?: number[];
  /** The production kernel's GFLOP/s in those rounds. */
  tiledGflops?: number;
  diffVsTiled?: number;
  agrees?: boolean;
  reps?: number;
  /** Why it did not run. */
  skipped?: string;
}

/** A compiled configuration, ready to record against buffers. */
export interface SweepKernel {
  config: SweepConfig;
  /**
   * Binds the buffers and writes the sizes once (refusing a shape that is not whole blocks), and returns what records
   * one product: what a timing loop repeats is only the dispatch and its submit.
   */
  bind(A: GPUBuffer, B: GPUBuffer, C: GPUBuffer, shape: SweepShape): () => void;
  destroy(): void;
}

/**
 * Compiles a configuration into a pipeline (its errors caught as a refusal, not a lost device). Its dispatches go in
 * command buffers of their own, after whatever the context had recorded (flushed first), so queue order holds.
 */
export async function compileSweepKernel(ctx: GpuContext, config: SweepConfig): Promise<SweepKernel> {
  const device = ctx.device;
  const limits = { invocations: device.limits.maxComputeInvocationsPerWorkgroup, workgroupBytes: device.limits.maxComputeWorkgroupStorageSize };
  const problem = sweepConfigProblem(config, limits);
  if (problem) throw new Error(problem);
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: `matmul sweep ${sweepName(config)}`, code: sweepWgsl(config) });
  let pipeline: GPUComputePipeline;
  try {
    pipeline = await device.createComputePipelineAsync({ label: `matmul sweep ${sweepName(config)}`, layout: 'auto', compute: { module, entryPoint: 'main' } });
  } finally {
    const error = await device.popErrorScope();
    if (error) throw new Error(`the pipeline was refused: ${error.message}`);
  }
  const uniforms = ctx.createBuffer('matmul sweep sizes', 16, 'scratch', GPUBufferUsage.UNIFORM);
  return {
    config,
    bind(A, B, C, shape) {
      const problemHere = sweepShapeProblem(config, shape);
      if (problemHere) throw new Error(problemHere);
      ctx.write(uniforms, new Uint32Array([shape.M, shape.N, shape.K, 0]));
      const bindGroup = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [uniforms, A, B, C].map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      const [x, y] = sweepWorkgroups(config, shape);
      return () => {
        // After whatever the context recorded (the sizes' write among it), so that queue order holds.
        ctx.flush();
        const encoder = device.createCommandEncoder({ label: 'matmul sweep' });
        const pass = encoder.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(x, y);
        pass.end();
        device.queue.submit([encoder.finish()]);
      };
    },
    destroy() {
      ctx.destroy(uniforms);
    },
  };
}

/** `run` timed beside `production` in alternating rounds, and its own output (into C) against the reference. */
async function beside(ctx: GpuContext, production: () => void, run: () => void, C: GPUBuffer, reference: Float32Array, flops: number, minMs: number): Promise<Partial<SweepLine>> {
  const paired = await timePaired(ctx, production, run, benchTiming(minMs));
  // Its own output, not the production kernel's from the rounds.
  ctx.clear(C);
  run();
  const diffVsTiled = maxRelError(await ctx.readF32(C), reference);
  const t = paired.candidate;
  return {
    ms: t.ms,
    gflops: flops / (t.ms * 1e6),
    vsTiled: paired.ratio,
    vsTiledRounds: paired.ratios,
    tiledGflops: flops / (paired.yardstick.ms * 1e6),
    diffVsTiled,
    agrees: diffVsTiled <= SWEEP_AGREEMENT,
    reps: t.reps,
  };
}

export async function* benchSweep(ctx: GpuContext, shapes: readonly SweepShape[], configs: readonly SweepConfig[], minMs = 200): AsyncGenerator<SweepLine> {
  for (const shape of shapes) {
    const { M, N, K } = shape;
    const A = filled(ctx, 'sweep A', M * K, 1);
    const B = filled(ctx, 'sweep B', K * N, 2);
    const C = ctx.createBuffer('sweep C', M * N * 4, 'scratch');
    const flops = 2 * M * N * K;
    try {
      // The row map and a K step of 16, whatever the context's GEMM kernel is.
      const production = (): void => gemmTiled(ctx, { A, B, C, M, N, K }, { map: 'row', kStep: 16 });
      const tiled = await timeGpu(ctx, production, benchTiming(minMs));
      const reference = await ctx.readF32(C);
      const tiledGflops = flops / (tiled.ms * 1e6);
      yield { bench: 'matmul-sweep', config: 'tiled (production)', M, N, K, threads: 256, workgroupBytes: 0, ms: tiled.ms, gflops: tiledGflops, vsTiled: 1, reps: tiled.reps };
      const block = tiledVariant({ A, B, C, M, N, K }).block;
      for (const variant of PRODUCTION_VARIANTS) {
        const bytes = tiledWorkgroupBytes(block, 1, false, variant.options.kStep);
        const head = { bench: 'matmul-sweep' as const, config: variant.config, M, N, K, threads: (TILED_BM / 8) * (TILED_BN[block] / 8), workgroupBytes: bytes };
        if (bytes > ctx.device.limits.maxComputeWorkgroupStorageSize) {
          yield { ...head, skipped: `${bytes} bytes of workgroup memory, over this device's ${ctx.device.limits.maxComputeWorkgroupStorageSize}` };
          continue;
        }
        const run = (): void => gemmTiled(ctx, { A, B, C, M, N, K }, variant.options);
        yield { ...head, ...(await beside(ctx, production, run, C, reference, flops, minMs)) };
      }
      for (const config of configs) {
        const head = { bench: 'matmul-sweep' as const, config: sweepName(config), M, N, K, threads: sweepThreads(config), workgroupBytes: sweepWorkgroupBytes(config) };
        const shapeProblem = sweepShapeProblem(config, shape);
        if (shapeProblem) {
          yield { ...head, skipped: shapeProblem };
          continue;
        }
        let kernel: SweepKernel;
        try {
          kernel = await compileSweepKernel(ctx, config);
        } catch (e) {
          yield { ...head, skipped: thrownMessage(e) };
          continue;
        }
        try {
          yield { ...head, ...(await beside(ctx, production, kernel.bind(A, B, C, shape), C, reference, flops, minMs)) };
        } finally {
          kernel.destroy();
        }
      }
    } finally {
      for (const b of [A, B, C]) ctx.destroy(b);
    }
  }
}
