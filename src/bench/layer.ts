// `finetune bench layer`: one Mistral-7B-shaped decoder layer (random NF4 weights made on the GPU) trained with LoRA
// on all seven projections: forward, checkpoint recomputation and backward at T tokens. Reported next to the plain
// tiled fp32 matmul measured in the same run, so the matmul-bound ceiling and the model-FLOPs utilisation are visible.

import { uniformSource } from '../core/prng.ts';
import { unpackedBatch } from '../core/token-batch.ts';
import { PROJECTIONS, type Projection } from '../core/mistral.ts';
import type { MistralConfig } from '../model/config.ts';
import { createAdapter } from '../model/lora-adapter.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { fill_uniform } from '../engine/kernels/random.ts';
import { gemm } from '../engine/kernels/matmul.ts';
import { nf4_quantize } from '../engine/kernels/nf4.ts';
import { linearShape, type Dims } from '../engine/mistral/dims.ts';
import { destroyLora, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import { destroyMistralWeights, type BaseLinear, type MistralWeights } from '../engine/mistral/weights.ts';
import { benchTiming, timeGpu } from '../engine/timing.ts';

export interface LayerBenchOptions {
  dims: Omit<Dims, 'L' | 'V'>;
  T: number;
  r?: number;
  doubleQuant?: boolean;
  minMs?: number;
}

export interface LayerBenchResult {
  bench: 'layer';
  T: number;
  C: number;
  I: number;
  ms: number;
  tokensPerSecond: number;
  /** Useful FLOPs of the step (matmuls of forward, recomputation and input gradients; LoRA; attention). */
  gflopPerStep: number;
  gflops: number;
  /** The plain tiled fp32 matmul at (T × C × C) in the same run: the mean of plainMatmulGflopsEach. */
  plainMatmulGflops: number;
  /** Its rate timed before the layer and after it. */
  plainMatmulGflopsEach: [number, number];
  /** gflops / plainMatmulGflops: the share of the matmul-bound ceiling reached. */
  vsMatmulCeiling: number;
  peakBytes: number;
  peakByCategory: Record<string, number>;
  /** Dispatches of one layer's training work (forward, recomputation, backward). */
  dispatches: number;
}

export const MISTRAL_7B_LAYER: Omit<Dims, 'L' | 'V'> = { C: 4096, I: 14336, nH: 32, nKV: 8, hd: 128, theta: 1e6, eps: 1e-5 };

/** FLOPs of one layer's training work at T tokens with LoRA rank r on all seven modules. */
export function layerFlops(d: Omit<Dims, 'L' | 'V'>, T: number, r: number): number {
  const full: Dims = { ...d, L: 1, V: 0 };
  let base = 0;
  let lora = 0;
  for (const m of PROJECTIONS) {
    const s = linearShape(full, m);
    base += 2 * T * s.in * s.out;
    lora += 2 * T * r * (s.in + s.out);
  }
  const attnFwd = 2 * 2 * (T * T) / 2 * d.nH * d.hd;
  // forward + recomputed forward + input gradient for the base; LoRA: 2 forwards + 3 backward products; attention:
  // 2 forwards + backward (2.5× nominal).
  return 3 * base + 5 * lora + 2 * attnFwd + 2.5 * attnFwd;
}

/** A MistralConfig of one layer with these dims (the adapter's shape comes from it). */
export function syntheticConfig(d: Omit<Dims, 'L' | 'V'>): MistralConfig {
  return {
    vocabSize: 64,
    hidden: d.C,
    intermediate: d.I,
    layers: 1,
    heads: d.nH,
    kvHeads: d.nKV,
    headDim: d.hd,
    ropeTheta: d.theta,
    rmsNormEps: d.eps,
    maxPositions: 32768,
    tieWordEmbeddings: false,
    slidingWindow: null,
    dtype: 'bfloat16',
    bosTokenId: 1,
    eosTokenId: 2,
    warnings: [],
  };
}

/** One random NF4 layer (and a tiny embedding/head, unused), quantised on the GPU from random f32. */
export async function randomLayer(ctx: GpuContext, d: Omit<Dims, 'L' | 'V'>, doubleQuant: boolean): Promise<MistralWeights> {
  const dims: Dims = { ...d, L: 1, V: 64 };
  const linears = {} as Record<Projection, BaseLinear>;
  let seed = 1;
  for (const m of PROJECTIONS) {
    const s = linearShape(dims, m);
    const src = ctx.createBuffer(`random ${m}`, s.out * s.in * 4, 'scratch');
    fill_uniform(ctx, src, s.out * s.in, 1 / Math.sqrt(s.in), seed++);
    linears[m] = { kind: 'nf4', ...s, weight: nf4_quantize(ctx, src, 'f32', s.out, s.in, { doubleQuant, label: m }) };
    ctx.flush();
    ctx.destroy(src);
    await ctx.sync();
  }
  const vec = (label: string, n: number): GPUBuffer => {
    const b = ctx.createBuffer(label, n * 4, 'weights');
    fill_uniform(ctx, b, n, 1, seed++);
    return b;
  };
  const small = (label: string): { buffer: GPUBuffer; storage: 'f32' } => ({ buffer: vec(label, dims.V * d.C), storage: 'f32' });
  return {
    dims,
    quantization: doubleQuant ? 'nf4-double' : 'nf4',
    embed: small('embed'),
    lmHead: small('lm_head'),
    finalNorm: vec('final norm', d.C),
    layers: [{ inputNorm: vec('norm 1', d.C), postAttentionNorm: vec('norm 2', d.C), linears }],
  };
}

export async function benchLayer(ctx: GpuContext, o: LayerBenchOptions): Promise<LayerBenchResult> {
  const d = o.dims;
  const T = o.T;
  const r = o.r ?? 8;
  const minMs = o.minMs ?? 300;
  // The plain matmul at the layer's most common shape, the ceiling's reference: timed before the layer and again
  // after it (its buffers are not held while the layer runs, so they stay out of the layer's peak), and the two rates
  // averaged, so a clock that moved while the layer was timed moves the ceiling half as far as the layer.
  const plainRate = async (): Promise<number> => {
    const A = ctx.createBuffer('bench A', T * d.C * 4, 'scratch');
    const B = ctx.createBuffer('bench B', d.C * d.C * 4, 'scratch');
    const Cm = ctx.createBuffer('bench C', T * d.C * 4, 'scratch');
    try {
      fill_uniform(ctx, A, T * d.C, 1, 11);
      fill_uniform(ctx, B, d.C * d.C, 1, 12);
      const plain = await timeGpu(ctx, () => gemm(ctx, { C: Cm, A, B, M: T, N: d.C, K: d.C }), benchTiming(minMs));
      return (2 * T * d.C * d.C) / (plain.ms * 1e6);
    } finally {
      for (const b of [A, B, Cm]) ctx.destroy(b);
    }
  };
  const plainBefore = await plainRate();

  ctx.ledger.resetPeaks();
  const { runner, destroy } = await benchLayerRunner(ctx, d, T, r, o.doubleQuant ?? false);
  let line: Omit<LayerBenchResult, 'plainMatmulGflops' | 'plainMatmulGflopsEach' | 'vsMatmulCeiling'>;
  try {
    // The run that counts the dispatches is the timing's warm-up.
    const d0 = ctx.dispatchCount;
    runner.layerTrainingWork(0);
    const dispatches = ctx.dispatchCount - d0;
    const t = await timeGpu(ctx, () => runner.layerTrainingWork(0), { ...benchTiming(minMs), warmup: 0, maxReps: 50 });
    const flop = layerFlops(d, T, r);
    const gflops = flop / (t.ms * 1e6);
    const snap = ctx.ledger.snapshot();
    const peakByCategory: Record<string, number> = {};
    for (const [k, v] of Object.entries(snap.byCategory)) peakByCategory[k] = v.peakBytes;
    line = {
      bench: 'layer',
      T,
      C: d.C,
      I: d.I,
      ms: t.ms,
      tokensPerSecond: T / (t.ms / 1000),
      gflopPerStep: flop / 1e9,
      gflops,
      peakBytes: snap.peakBytes,
      peakByCategory,
      dispatches,
    };
  } finally {
    destroy();
  }
  const plainAfter = await plainRate();
  const plainMatmulGflops = (plainBefore + plainAfter) / 2;
  return { ...line, plainMatmulGflops, plainMatmulGflopsEach: [plainBefore, plainAfter], vsMatmulCeiling: line.gflops / plainMatmulGflops };
}

/**
 * The layer `bench layer` and `bench profile` train: random NF4 weights (randomLayer), LoRA of rank r with dropout on
 * all seven projections (B filled, so no product of the adapter is trivially zero), a runner of one row of T tokens
 * with its input filled. `destroy` frees all of it.
 */
export async function benchLayerRunner(ctx: GpuContext, d: Omit<Dims, 'L' | 'V'>, T: number, r: number, doubleQuant: boolean): Promise<{ runner: MistralRunner; destroy: () => void }> {
  const weights = await randomLayer(ctx, d, doubleQuant);
  const adapter = createAdapter(syntheticConfig(d), { r, alpha: 2 * r, dropout: 0.05, targetModules: [...PROJECTIONS], random: uniformSource(5) });
  // B = 0 at init would make half the LoRA work trivially zero-valued; give it values so the work is representative.
  for (const layer of adapter.tensors) for (const m of PROJECTIONS) layer[m]?.B.fill(1e-3);
  const lora = uploadLora(ctx, weights.dims, adapter);
  let runner: MistralRunner | null = null;
  const destroy = (): void => {
    runner?.destroy();
    destroyLora(ctx, lora);
    destroyMistralWeights(ctx, weights);
  };
  try {
    runner = new MistralRunner(ctx, weights, lora, { B: 1, T, seed: 1 });
    runner.setBatch(unpackedBatch(1, T, new Uint32Array(T).fill(5), new Int32Array(T).fill(-100)));
    fill_uniform(ctx, runner.xs[0], T * d.C, 1, 13);
    return { runner, destroy };
  } catch (e) {
    destroy();
    throw e;
  }
}
