// `finetune bench model`: whole training steps of a Mistral-7B-shaped model (32 layers of random NF4 weights made on
// the GPU, bf16 embeddings and lm_head, LoRA on the chosen projections) on one sequence of T tokens — the end-to-end
// tokens/s and the peak GPU memory per category from the ledger, with nothing extrapolated.

import { uniformSource } from '../core/prng.ts';
import { unpackedBatch } from '../core/token-batch.ts';
import { PROJECTIONS, type Projection } from '../core/mistral.ts';
import { createAdapter } from '../model/lora-adapter.ts';
import type { MistralConfig } from '../model/config.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { median } from '../engine/timing.ts';
import { nf4_quantize } from '../engine/kernels/nf4.ts';
import { fill_uniform, fill_uniform_bf16 } from '../engine/kernels/random.ts';
import { attentionFlopsPerToken, flopsPerToken, linearShape, type Dims } from '../engine/mistral/dims.ts';
import { destroyLora, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import { destroyMistralWeights, type BaseLinear, type LayerWeights, type MistralWeights } from '../engine/mistral/weights.ts';

export interface ModelBenchResult {
  bench: 'model';
  layers: number;
  T: number;
  targets: string;
  r: number;
  quantization: 'nf4' | 'nf4-double';
  /** 'checkpointed': every layer recomputed in the backward; 'kept': none; 'partly-kept': the last keptLayers not. */
  mode: 'checkpointed' | 'kept' | 'partly-kept';
  keptLayers: number;
  /** The recomputed layers kept their attention output: their recomputation skipped attention. */
  keptAttention: boolean;
  loadSeconds: number;
  /** The median timed step (TrainStepTiming.stepMs); tokensPerSecond and tflops are of it. */
  stepMs: number;
  stepMsEach: number[];
  tokensPerSecond: number;
  /** Useful FLOPs per token (forward, recomputation, input gradients, attention) and the rate they ran at. */
  gflopPerToken: number;
  tflops: number;
  losses: number[];
  /** Compute dispatches per timed step (forward, backward with recomputation, optimizer). */
  dispatchesPerStep: number;
  peakBytes: number;
  peakByCategory: Record<string, number>;
}

export const MISTRAL_7B: Dims = { V: 32000, C: 4096, I: 14336, L: 32, nH: 32, nKV: 8, hd: 128, theta: 1e6, eps: 1e-5 };

/** A config of these dims (for adapters made to fit a random model). */
export function configOf(d: Dims): MistralConfig {
  return {
    vocabSize: d.V, hidden: d.C, intermediate: d.I, layers: d.L, heads: d.nH, kvHeads: d.nKV, headDim: d.hd, ropeTheta: d.theta,
    rmsNormEps: d.eps, maxPositions: 32768, tieWordEmbeddings: false, slidingWindow: null, dtype: 'bfloat16', bosTokenId: 1, eosTokenId: 2, warnings: [],
  };
}

/**
 * Random weights of the given shape: NF4-quantised on the GPU one projection at a time (doubleQuant true or false), or
 * dense f32 projections ('dense', for tests that want the unquantised path).
 */
export async function randomMistral(ctx: GpuContext, d: Dims, doubleQuant: boolean | 'dense'): Promise<MistralWeights> {
  let seed = 1;
  const vec = (label: string, n: number): GPUBuffer => {
    const b = ctx.createBuffer(label, n * 4, 'weights');
    fill_uniform(ctx, b, n, 1, seed++);
    return b;
  };
  const bf16 = (label: string, rows: number, cols: number): { buffer: GPUBuffer; storage: 'bf16' } => {
    const b = ctx.createBuffer(label, rows * cols * 2, 'weights');
    fill_uniform_bf16(ctx, b, rows * cols, 0.02, seed++);
    return { buffer: b, storage: 'bf16' };
  };
  const layers: LayerWeights[] = [];
  for (let l = 0; l < d.L; l++) {
    const linears = {} as Record<Projection, BaseLinear>;
    for (const m of PROJECTIONS) {
      const s = linearShape(d, m);
      if (doubleQuant === 'dense') {
        const buffer = ctx.createBuffer(`random ${l}.${m}`, s.out * s.in * 4, 'weights');
        fill_uniform(ctx, buffer, s.out * s.in, 1 / Math.sqrt(s.in), seed++);
        linears[m] = { kind: 'dense', ...s, buffer, storage: 'f32' };
        continue;
      }
      const src = ctx.createBuffer(`random ${l}.${m}`, s.out * s.in * 4, 'scratch');
      fill_uniform(ctx, src, s.out * s.in, 1 / Math.sqrt(s.in), seed++);
      linears[m] = { kind: 'nf4', ...s, weight: nf4_quantize(ctx, src, 'f32', s.out, s.in, { doubleQuant, label: `${l}.${m}` }) };
      ctx.flush();
      ctx.destroy(src);
    }
    layers.push({ inputNorm: vec(`${l} norm 1`, d.C), postAttentionNorm: vec(`${l} norm 2`, d.C), linears });
    await ctx.sync();
  }
  const quantization = doubleQuant === 'dense' ? 'none' : doubleQuant ? 'nf4-double' : 'nf4';
  return { dims: d, quantization, embed: bf16('embed', d.V, d.C), lmHead: bf16('lm_head', d.V, d.C), finalNorm: vec('final norm', d.C), layers };
}

/**
 * Layers that keep their intermediates (no recomputation): a count, or a choice made once the adapter is on the GPU
 * from the bytes the ledger then holds (the command line passes the run's own chooser, run/kept-layers.ts).
 */
export type KeptLayersChoice = number | ((inUseBytes: number) => { kept: number; keptAttention: boolean });

/** Timed QLoRA training steps on one sequence of T tokens, after one warm-up step. */
export interface TrainStepTiming {
  keptLayers: number;
  keptAttention: boolean;
  /** The median of the timed steps' milliseconds (one step something else on the GPU slowed does not move it). */
  stepMs: number;
  /** Each timed step's milliseconds, in order. */
  stepMsEach: number[];
  /** The warm-up step's loss, then each timed step's. */
  losses: number[];
  /** Layer uploads of the timed steps, per step (streamed weights; 0 when resident). */
  uploadsPerStep: number;
  /** Compute dispatches of the timed steps, per step (ctx.dispatchCount): issue #9 asks for at most 3,000 at 7B. */
  dispatchesPerStep: number;
  peakBytes: number;
  peakByCategory: Record<string, number>;
  /** With `validationPasses`: milliseconds of one validation pass (the inference-mode forward) of the same batch. */
  validationMs?: number;
}

/**
 * Trains a fresh adapter (seeded: two calls on equal weights draw the same adapter, batch and dropout masks) for
 * `steps` timed steps; the ledger's peaks are those since the caller last reset them.
 */
export async function timeTrainSteps(
  ctx: GpuContext,
  weights: MistralWeights,
  o: { T: number; steps: number; r: number; targets: Projection[]; keptLayers?: KeptLayersChoice; keptAttention?: boolean; validationPasses?: number },
): Promise<TrainStepTiming> {
  const d = weights.dims;
  const adapter = createAdapter(configOf(d), { r: o.r, alpha: 2 * o.r, dropout: 0.05, targetModules: o.targets, random: uniformSource(1) });
  const lora = uploadLora(ctx, d, adapter);
  const choice = typeof o.keptLayers === 'function' ? o.keptLayers(ctx.ledger.snapshot().currentBytes) : { kept: o.keptLayers ?? 0, keptAttention: o.keptAttention ?? false };
  const keptLayers = choice.kept;
  const runner = new MistralRunner(ctx, weights, lora, { B: 1, T: o.T, seed: 1, keptLayers, keptAttention: choice.keptAttention });
  try {
    const rand = uniformSource(2);
    const ids = Array.from({ length: o.T }, () => 3 + Math.floor(rand() * (d.V - 3)));
    runner.setBatch(unpackedBatch(1, o.T, ids, ids.map((_, i) => (i + 1 < o.T ? ids[i + 1] : -100))));
    const counted = o.T - 1;
    const losses: number[] = [];
    const step = async (): Promise<number> => {
      runner.zeroGrads();
      runner.resetLoss();
      runner.forwardBackward(1 / counted, 1 / counted, 'train');
      runner.optimizerStep({ lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
      return runner.readLoss();
    };
    losses.push(await step()); // warm-up: pipelines compiled, buffers touched
    const uploads0 = weights.stream?.uploads ?? 0;
    const dispatches0 = ctx.dispatchCount;
    const stepMsEach: number[] = [];
    for (let i = 0; i < o.steps; i++) {
      const s0 = performance.now();
      losses.push(await step()); // the loss's readback fences the step
      stepMsEach.push(performance.now() - s0);
    }
    const stepMs = median(stepMsEach);
    const dispatchesPerStep = (ctx.dispatchCount - dispatches0) / o.steps;
    const snap = ctx.ledger.snapshot();
    const peakByCategory: Record<string, number> = {};
    for (const [k, v] of Object.entries(snap.byCategory)) peakByCategory[k] = v.peakBytes;
    const timing: TrainStepTiming = { keptLayers, keptAttention: runner.keptAttention, stepMs, stepMsEach, losses, uploadsPerStep: ((weights.stream?.uploads ?? 0) - uploads0) / o.steps, dispatchesPerStep, peakBytes: snap.peakBytes, peakByCategory };
    const passes = o.validationPasses ?? 0;
    if (passes <= 0) return timing;
    const validate = async (): Promise<number> => {
      runner.resetLoss();
      runner.evaluate(1 / counted);
      return runner.readLoss();
    };
    await validate(); // warm-up: its pipelines compiled
    const v0 = Date.now();
    for (let i = 0; i < passes; i++) await validate();
    return { ...timing, validationMs: (Date.now() - v0) / passes };
  } finally {
    runner.destroy();
    destroyLora(ctx, lora);
  }
}

export async function benchModel(
  ctx: GpuContext,
  o: { dims: Dims; T: number; steps: number; r?: number; targets?: Projection[]; doubleQuant?: boolean; keptLayers?: KeptLayersChoice; keptAttention?: boolean },
): Promise<ModelBenchResult> {
  const d = o.dims;
  const r = o.r ?? 8;
  const targets = o.targets ?? [...PROJECTIONS];
  ctx.ledger.resetPeaks();
  const t0 = Date.now();
  const weights = await randomMistral(ctx, d, o.doubleQuant ?? true);
  const loadSeconds = (Date.now() - t0) / 1000;
  try {
    const t = await timeTrainSteps(ctx, weights, { T: o.T, steps: o.steps, r, targets, keptLayers: o.keptLayers, keptAttention: o.keptAttention });
    // The recomputation's FLOPs only for the layers that are recomputed, without their attention when it was kept.
    const recomputed = (d.L - t.keptLayers) / d.L;
    const recomputation = flopsPerToken(d, o.T, true) - flopsPerToken(d, o.T, false) - (t.keptAttention ? attentionFlopsPerToken(d, o.T) : 0);
    const fpt = flopsPerToken(d, o.T, false) + recomputed * recomputation;
    return {
      bench: 'model',
      layers: d.L,
      T: o.T,
      targets: targets.join(','),
      r,
      quantization: weights.quantization === 'nf4' ? 'nf4' : 'nf4-double',
      mode: t.keptLayers === 0 ? 'checkpointed' : t.keptLayers === d.L ? 'kept' : 'partly-kept',
      keptLayers: t.keptLayers,
      keptAttention: t.keptAttention,
      loadSeconds,
      stepMs: t.stepMs,
      stepMsEach: t.stepMsEach,
      tokensPerSecond: o.T / (t.stepMs / 1000),
      gflopPerToken: fpt / 1e9,
      tflops: (fpt * o.T) / (t.stepMs / 1000) / 1e12,
      losses: t.losses,
      dispatchesPerStep: t.dispatchesPerStep,
      peakBytes: t.peakBytes,
      peakByCategory: t.peakByCategory,
    };
  } finally {
    destroyMistralWeights(ctx, weights);
  }
}
