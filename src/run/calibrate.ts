// How long will this run take here? Measured on the loaded model with a throwaway adapter of the run's rank, targets
// and dropout, in the run's memory mode (kept layers, kept attention), then scaled by the plan's tokens. The page says
// the answer before Train is pressed, so a software adapter's "hours" is never a surprise. Two ways to measure:
// - 'model' (a software adapter, where seconds are precious): one whole training pass of CALIBRATION_TOKENS tokens;
// - 'layers' (a GPU): the run's own shape (B × T), where a short pass would mislead — a GPU's cost per token at 16
//   tokens is dispatch- and bandwidth-bound, and attention's grows with T — timed part by part instead of whole: one
//   recomputed layer, one kept layer (when the run keeps any), and the head (final norm, lm_head, cross-entropy);
//   a step is L layers of their kinds plus the head. That costs two layer passes, not a whole step of a 7B model.
// With streamed layers (engine/mistral/layer-stream.ts) each pass also moves layers to the GPU: a fixed number per
// pass, whatever its tokens, so the uploads are priced apart from the per-token rate. 'model' times one upload alone
// and takes the pass's uploads out of its per-token rate (a software adapter does copies and compute one after the
// other); 'layers' times two uploads made while a layer's work runs, between it and the next one's, as a step makes
// them, against the two layers' work alone, so whatever part of an upload the CPU and GPU hide under the compute is
// not counted.
// A run that validates also has a validation pass timed (calibrateValidation): one inference-mode forward of the
// shape its validation passes have (validationBatchShape: the validation batches packed into rows of the runner's
// shape), whole on a software adapter, as one layer's forward and the head's on a GPU. Its cost is no fixed share of
// a training pass's: a kept layer's backward costs about one forward (the frozen base gets no weight gradient) and a
// recomputed layer adds a second, and a small validation set's last pass may be far smaller than a micro-batch.
// A run with a validation_prompt also writes a greedy sample after each validation (calibrateSample): the KV-cache
// decoder's prompt pass and its per-token loop timed on that prompt; one row at a time costs more per token than any
// batched pass, so neither training rate prices it.

import { ADAPTER_INIT_STREAM, uniformSource } from '../core/prng.ts';
import { unpackedBatch, type TokenBatch } from '../core/token-batch.ts';
import { targetModules } from '../config/index.ts';
import type { Hyperparams } from '../config/hyperparams.ts';
import type { DataStats } from '../data/batches.ts';
import { SAMPLE_MAX_TOKENS } from '../data/layout.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { forwardPassUploads, trainingPassUploads } from '../engine/mistral/layer-stream.ts';
import { destroyLora, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import { timeGpu } from '../engine/timing.ts';
import type { PositionLimit } from '../model/attention-span.ts';
import type { MistralConfig } from '../model/config.ts';
import { createAdapter } from '../model/lora-adapter.ts';
import type { GpuLora } from '../engine/mistral/lora.ts';
import { FORWARD_SHARE, validationSteps, type ValidationSettings } from './eta.ts';
import { generate } from './generate.ts';
import { repeatableLayerWork } from './layer-work.ts';

/** Tokens in the measured pass: enough to amortise dispatch overhead, few enough for seconds on a software adapter. */
export const CALIBRATION_TOKENS = 16;

export interface Calibration {
  /** Seconds one token of training takes (forward, recomputation, backward) on this adapter and model. */
  secondsPerToken: number;
  measuredTokens: number;
  /** Seconds of one training pass over measuredTokens (measured whole, or added up from its parts). */
  measuredSeconds: number;
  method: 'model' | 'layers';
  /** 'layers': the seconds of each part at the run's shape (keptLayer null when the run keeps none). */
  parts?: { recomputedLayer: number | null; keptLayer: number | null; head: number; layers: number; keptLayers: number };
  /** A validation pass timed (calibrateValidation), when the run validates; absent, FORWARD_SHARE prices validation. */
  forward?: ValidationCalibration;
  /**
   * Streamed layers only: layer uploads per training pass (micro-batch) and per validation pass, and the seconds one
   * upload adds to a pass here (not in secondsPerToken).
   */
  uploads?: { perTrainingPass: number; perValidationPass: number; seconds: number };
  /** The validation_prompt sample timed (calibrateSample), when the run writes one. */
  sample?: SampleCalibration;
}

/** What a validation_prompt sample costs here, per token (calibrateSample). */
export interface SampleCalibration {
  /** The prompt as the sample reads it (BOS included). */
  promptTokens: number;
  /** The prompt's pass (the first new token's logits included), per prompt token. */
  prefillSecondsPerToken: number;
  /** Each new token after the first (one row through the decoder, its logits read back). */
  decodeSecondsPerToken: number;
}

/** One sample of up to `maxTokens` new tokens at the timed costs: its prompt's pass, then the tokens after the first. */
export function secondsOfSample(c: SampleCalibration, maxTokens = SAMPLE_MAX_TOKENS): number {
  return c.promptTokens * c.prefillSecondsPerToken + (maxTokens - 1) * c.decodeSecondsPerToken;
}

/** New tokens the calibration times after the first: enough to average out one token's jitter. */
const SAMPLE_TIMED_TOKENS = 4;

export interface RunEstimate extends Calibration {
  /** Tokens the run trains on (the steps it makes), without padding: what its tokens/s readout counts. */
  trainTokens: number;
  /** The same, padding included: what the GPU computes, and what the time is priced by. */
  paddedTokens: number;
  /** Validation passes the run will make and the tokens each reads. */
  evaluations: number;
  validationTokens: number;
  /** Training plus validation, in seconds, uploads included. */
  seconds: number;
  /** Of which: the validation passes (their uploads included). */
  validationSeconds: number;
  /** Of which: moving streamed layers to the GPU (0 when the layers are resident). */
  uploadSeconds: number;
  /**
   * Of which: measuring which kernels are fastest before the first step, when the run will (a GPU with no remembered
   * choice for this shape); 0 otherwise. Layer passes of the run's shape, pipeline compiles not counted.
   */
  tuningSeconds: number;
  /** validation_prompt samples the run will write, and their seconds (of `seconds`; 0 and 0 without a prompt). */
  samples: number;
  sampleSeconds: number;
  /**
   * Training tokens per second (padding not counted, as a run's steps count them), the uploads of the training passes
   * included: the rate the run should show.
   */
  tokensPerSecond: number;
  /** The adapter is a CPU implementation of WebGPU (correct, slow). */
  softwareAdapter: boolean;
}

export interface CalibrationOptions {
  /** The run's micro-batch shape (needed for 'layers'). */
  shape?: { B: number; T: number };
  keptLayers?: number;
  keptAttention?: boolean;
  /** Default: 'model' on a software adapter or without a shape, else 'layers'. */
  method?: 'model' | 'layers';
  /** The share of the run's computed tokens that have a loss (countedShare); default every one but each row's last. */
  countedShare?: number;
}

/**
 * The share of computed tokens that have a loss, in the steps (epoch 0) or the validation passes: the lm_head computes
 * those alone (engine/mistral/model.ts), so the measured batch has the same share of its targets counted. 1 when the
 * plan computes nothing.
 */
export function countedShare(stats: DataStats, of: 'train' | 'validation'): number {
  if (of === 'validation') return stats.validation.paddedTokens > 0 ? Math.min(1, stats.validation.lossTokens / stats.validation.paddedTokens) : 1;
  // paddingFraction = 1 − real / computed tokens of epoch 0's micro-batches.
  const computed = stats.tokensPerEpoch / Math.max(1e-9, 1 - stats.paddingFraction);
  return computed > 0 ? Math.min(1, stats.lossTokensPerEpoch / computed) : 1;
}

/** Times a training pass of the loaded model for the run's adapter shape (see the head of this file for how). */
export async function calibrate(ctx: GpuContext, weights: MistralWeights, config: MistralConfig, hp: Hyperparams, o: CalibrationOptions = {}): Promise<Calibration> {
  const method = o.method ?? (ctx.report.software || !o.shape ? 'model' : 'layers');
  const shape = method === 'layers' && o.shape ? o.shape : { B: 1, T: CALIBRATION_TOKENS };
  const L = weights.dims.L;
  const kept = Math.min(o.keptLayers ?? 0, L);
  // 'layers' needs one layer of each kind: with kept layers, a runner keeping just the last one (the others are the
  // recomputed kind), unless every layer is kept.
  const runnerKept = method === 'model' ? kept : kept === 0 ? 0 : kept === L ? L : 1;
  return withRunner(ctx, weights, config, hp, { ...shape, keptLayers: runnerKept, keptAttention: o.keptAttention, countedShare: o.countedShare }, async (runner) => {
    const N = shape.B * shape.T;
    const stream = weights.stream;
    if (method === 'model') {
      const pass = () =>
        timedPass(runner, stream, () => {
          runner.zeroGrads();
          runner.forwardBackward(1 / N, 1 / N, 'train', 0);
        });
      await pass();
      const timed = await pass();
      const seconds = timed.seconds;
      if (!stream || timed.uploads === 0) return { secondsPerToken: seconds / N, measuredTokens: N, measuredSeconds: seconds, method };
      const upload = (await timeGpu(ctx, () => stream.rewriteSpare(), { warmup: 1, minMs: 100, maxReps: 8 })).ms / 1000;
      return { secondsPerToken: computeSeconds(timed, upload) / N, measuredTokens: N, measuredSeconds: seconds, method, uploads: uploadsAt(L, upload) };
    }
    const layers = repeatableLayerWork(ctx, runner, [0, L - 1], weights.dims.C);
    try {
      const seconds = (work: () => void): Promise<number> => layerSeconds(ctx, work);
      const recomputedLayer = kept < L ? await seconds(() => layers.run(0)) : null;
      const keptLayer = kept > 0 ? await seconds(() => layers.run(L - 1)) : null;
      const head = await seconds(() => runner.headTrainingWork(1 / N));
      const step = (L - kept) * (recomputedLayer ?? 0) + kept * (keptLayer ?? 0) + head;
      const parts = { recomputedLayer, keptLayer, head, layers: L, keptLayers: kept };
      const result: Calibration = { secondsPerToken: step / N, measuredTokens: N, measuredSeconds: step, method, parts };
      if (!stream || trainingPassUploads(L) === 0) return result;
      // A step asks for a layer's successor while the work queued before it runs (layer-stream.ts): the bytes are
      // copied on the CPU meanwhile, and only their transfer waits its turn on the queue. A pass makes about two
      // uploads per layer of training work (one in the forward, one in the backward), so two uploads are timed between
      // two layers' work, the first already submitted when they are made (ctx.write submits what was recorded),
      // against the two layers' work alone. Timed before the first layer (the GPU idle after the timer's fence), the
      // uploads cost 23.2 ms each on an H200 where whole streamed steps showed about 4 (2026-12-04): an estimate 1.4×
      // the step.
      const l = kept < L ? 0 : L - 1;
      const pair = await seconds(() => {
        layers.run(l);
        layers.run(l);
      });
      const withUploads = await seconds(() => {
        layers.run(l);
        stream.rewriteSpare();
        stream.rewriteSpare();
        layers.run(l);
      });
      return { ...result, uploads: uploadsAt(L, Math.max(0, withUploads - pair) / 2) };
    } finally {
      layers.destroy();
    }
  });
}

/** One validation pass timed: an inference-mode forward of B rows of T tokens, uploads not counted. */
export interface ValidationCalibration {
  B: number;
  T: number;
  seconds: number;
  method: 'model' | 'layers';
  /** 'layers': one layer's forward and the head's (final norm, lm_head, cross-entropy); a batch is L of one and the head. */
  parts?: { layer: number; head: number; layers: number };
}

/**
 * The forward pass a validation of this plan is made of, typically: its rows (micro_batch_size, fewer when the set is
 * smaller) and its computed tokens per row (data/batches.ts validationPasses). Null without validation data. A row
 * holds several sequences end to end: the tokens timed are the same, attention's share (which grows with a sequence's
 * length) a little less than this shape gives.
 */
export function validationBatchShape(stats: DataStats): { B: number; T: number } | null {
  const v = stats.validation;
  if (v.passes === 0 || v.paddedTokens === 0) return null;
  const B = Math.ceil(v.rows / v.passes);
  return { B, T: Math.ceil(v.paddedTokens / (v.passes * B)) };
}

/**
 * Times one validation pass of `batch`'s shape on the loaded model with a throwaway adapter of the run's shape
 * (see the head of this file). `uploadSeconds`: what one layer upload costs here (Calibration.uploads), taken out of
 * a 'model' measurement with streamed layers, whose uploads are priced apart.
 */
export async function calibrateValidation(
  ctx: GpuContext,
  weights: MistralWeights,
  config: MistralConfig,
  hp: Hyperparams,
  batch: { B: number; T: number },
  o: { method?: 'model' | 'layers'; uploadSeconds?: number; countedShare?: number } = {},
): Promise<ValidationCalibration> {
  const method = o.method ?? (ctx.report.software ? 'model' : 'layers');
  const L = weights.dims.L;
  return withRunner(ctx, weights, config, hp, { ...batch, keptLayers: 0, countedShare: o.countedShare }, async (runner) => {
    if (method === 'model') {
      const pass = async (): Promise<number> => computeSeconds(await timedPass(runner, weights.stream, () => runner.evaluate(1)), o.uploadSeconds ?? 0);
      // A one-token pass first compiles the forward's pipelines (shape-independent on the kernels a software adapter
      // runs): on SwiftShader a batch of 40 tokens takes seconds, which the page would wait for twice.
      runner.setBatch(anyBatch(config, 1, 1));
      await pass();
      runner.setBatch(anyBatch(config, batch.B, batch.T, o.countedShare));
      return { ...batch, seconds: await pass(), method };
    }
    const layers = repeatableLayerWork(ctx, runner, [0], weights.dims.C);
    try {
      const layer = await layerSeconds(ctx, () => layers.forward(0));
      const head = await layerSeconds(ctx, () => runner.headEvalWork(1));
      return { ...batch, seconds: L * layer + head, method, parts: { layer, head, layers: L } };
    } finally {
      layers.destroy();
    }
  });
}

/**
 * Times the greedy sample a run writes after each validation, on its prompt (`prompt`: ids, BOS included) with the
 * session's adapter (`lora`; null: the base, the same work but LoRA's few products). A first, short generation
 * compiles the decoder's pipelines, which a run pays once and not per sample. No </s> stops it: the loop is timed
 * over the tokens asked for, whatever they are.
 */
export async function calibrateSample(ctx: GpuContext, weights: MistralWeights, lora: GpuLora | null, prompt: readonly number[], positions?: PositionLimit): Promise<SampleCalibration> {
  await generate(ctx, weights, lora, prompt, { maxNewTokens: 2, ...positions });
  const r = await generate(ctx, weights, lora, prompt, { maxNewTokens: SAMPLE_TIMED_TOKENS + 1, ...positions });
  return { promptTokens: prompt.length, prefillSecondsPerToken: r.prefillSeconds / prompt.length, decodeSecondsPerToken: r.decodeSeconds / (r.ids.length - 1) };
}

/**
 * One whole pass on the runner, `record`ed after its loss is reset, timed up to the loss readback (the fence: the pass
 * has finished on the GPU), with the layer uploads it made (streamed layers).
 */
async function timedPass(runner: MistralRunner, stream: MistralWeights['stream'], record: () => void): Promise<{ seconds: number; uploads: number }> {
  const uploads0 = stream?.uploads ?? 0;
  const t0 = performance.now();
  runner.resetLoss();
  record();
  await runner.readLoss();
  return { seconds: (performance.now() - t0) / 1000, uploads: (stream?.uploads ?? 0) - uploads0 };
}

/** A pass less its uploads (`uploadSeconds` each) is its compute; never below a tenth of the pass, whatever the noise. */
function computeSeconds(p: { seconds: number; uploads: number }, uploadSeconds: number): number {
  return Math.max(p.seconds - p.uploads * uploadSeconds, p.seconds / 10);
}

/** Seconds of one layer's (or the head's) recorded work at the run's shape, as the 'layers' measurements time it. */
async function layerSeconds(ctx: GpuContext, work: () => void): Promise<number> {
  return (await timeGpu(ctx, work, { warmup: 1, minMs: 200, maxReps: 4 })).ms / 1000;
}

/** A runner of `shape` with a throwaway adapter of the run's shape and a batch of any in-vocabulary ids, then freed. */
async function withRunner<R>(
  ctx: GpuContext,
  weights: MistralWeights,
  config: MistralConfig,
  hp: Hyperparams,
  shape: { B: number; T: number; keptLayers: number; keptAttention?: boolean; countedShare?: number },
  work: (runner: MistralRunner) => Promise<R>,
): Promise<R> {
  const adapter = createAdapter(config, {
    r: hp.lora_rank,
    alpha: hp.lora_alpha,
    dropout: hp.lora_dropout,
    targetModules: targetModules(hp),
    random: uniformSource(hp.seed, ADAPTER_INIT_STREAM),
  });
  const lora = uploadLora(ctx, weights.dims, adapter);
  // The adapter is freed also when the runner cannot be made (a shape this GPU cannot hold): the estimate is asked
  // again as the form changes, and each failure kept one more.
  try {
    const runner = new MistralRunner(ctx, weights, lora, { B: shape.B, T: shape.T, seed: hp.seed, keptLayers: shape.keptLayers, keptAttention: shape.keptAttention });
    try {
      runner.setBatch(anyBatch(config, shape.B, shape.T, shape.countedShare));
      return await work(runner);
    } finally {
      runner.destroy();
    }
  } finally {
    destroyLora(ctx, lora);
  }
}

/**
 * A batch of B × T ids: any inside the vocabulary do, the cost does not depend on which tokens they are. Each row's
 * last token has no target, as in a run; of the others about `countedShare` of the batch (spread evenly) have one,
 * since the lm_head computes only those (default: all).
 */
export function anyBatch(config: Pick<MistralConfig, 'vocabSize'>, B: number, T: number, countedShare = 1): TokenBatch {
  const N = B * T;
  const share = Math.min(1, Math.max(0, countedShare));
  const ids = Array.from({ length: N }, (_, i) => (1000 + 37 * i) % config.vocabSize);
  const counted = (i: number): boolean => (i + 1) % T !== 0 && Math.floor((i + 1) * share) > Math.floor(i * share);
  return unpackedBatch(B, T, ids, Int32Array.from({ length: N }, (_, i) => (counted(i) ? ids[i + 1] : -100)));
}

/**
 * What a validation token costs against a training token here: measured when the calibration has a validation pass
 * timed (per token of that batch), else FORWARD_SHARE. The trainer's ETA prices the passes to come with it.
 */
export function forwardShare(c: Calibration): number {
  return c.forward && c.secondsPerToken > 0 ? c.forward.seconds / (c.forward.B * c.forward.T) / c.secondsPerToken : FORWARD_SHARE;
}

/** Seconds the uploads of one training pass (micro-batch) add; 0 with resident layers. */
export function trainingPassUploadSeconds(c: Calibration): number {
  return c.uploads ? c.uploads.perTrainingPass * c.uploads.seconds : 0;
}

function uploadsAt(L: number, seconds: number): NonNullable<Calibration['uploads']> {
  return { perTrainingPass: trainingPassUploads(L), perValidationPass: forwardPassUploads(L), seconds };
}

/** How many validation passes a run makes (as the trainer decides: every eval_steps steps and at the end, or per epoch). */
export function evaluationCount(stats: DataStats, hp: ValidationSettings): number {
  return validationSteps(stats, hp).length;
}

/**
 * `tuningPasses` layer passes at the run's shape, from the measured parts ('layers' only: a software adapter never
 * measures kernels, and its 'model' calibration has no layer part).
 */
function tuningSecondsOf(c: Calibration, tuningPasses: number): number {
  return c.parts?.recomputedLayer != null ? c.parts.recomputedLayer * tuningPasses : 0;
}

/**
 * The run's duration from a calibration: the padded tokens of the steps it makes (max_steps included) at the measured
 * rate, plus its validation passes (at the timed validation batch's rate per token, else FORWARD_SHARE of the training
 * rate), the streamed layers' uploads, and `tuningPasses` layer passes for the kernel
 * measurement before the first step (0: none will be made).
 */
export function estimateRun(stats: DataStats, hp: ValidationSettings & Partial<Pick<Hyperparams, 'validation_prompt'>>, c: Calibration, softwareAdapter: boolean, tuningPasses = 0): RunEstimate {
  const trainTokens = stats.run.tokens;
  const paddedTokens = stats.run.paddedTokens;
  const evaluations = evaluationCount(stats, hp);
  const validationTokens = stats.validation.tokens;
  // Each pass computes its batches' padding too, as a step does.
  const validationCompute = forwardShare(c) * c.secondsPerToken * stats.validation.paddedTokens * evaluations;
  const trainPasses = stats.run.microBatches;
  const trainUploadSeconds = trainingPassUploadSeconds(c) * trainPasses;
  const validationUploadSeconds = c.uploads ? c.uploads.seconds * c.uploads.perValidationPass * evaluations * stats.validation.passes : 0;
  const uploadSeconds = trainUploadSeconds + validationUploadSeconds;
  const trainSeconds = c.secondsPerToken * paddedTokens + trainUploadSeconds;
  const tuningSeconds = tuningSecondsOf(c, tuningPasses);
  const validationSeconds = validationCompute + validationUploadSeconds;
  // A sample after each validation pass, or one at the end of a run that never validates (session.ts); each priced
  // at SAMPLE_MAX_TOKENS, a ceiling.
  const samples = hp.validation_prompt && c.sample ? Math.max(1, evaluations) : 0;
  const sampleSeconds = c.sample ? samples * secondsOfSample(c.sample) : 0;
  const seconds = c.secondsPerToken * paddedTokens + validationCompute + uploadSeconds + tuningSeconds + sampleSeconds;
  // A step reports its real tokens over its time, padding computed but not counted: so does the estimate, or the
  // page would promise a rate (1 − padding) higher than the run then shows.
  const tokensPerSecond = trainSeconds > 0 ? trainTokens / trainSeconds : (trainTokens / Math.max(1, paddedTokens)) / c.secondsPerToken;
  return { ...c, trainTokens, paddedTokens, evaluations, validationTokens, seconds, validationSeconds, uploadSeconds, tuningSeconds, samples, sampleSeconds, tokensPerSecond, softwareAdapter };
}
