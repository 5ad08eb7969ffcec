// Which kernels a run uses on this GPU, chosen by measuring them there.
//
// The engine has two GEMM kernels (the 64×64 'basic' one and the register-tiled 'tiled' one, which also carries both
// NF4 products), two attention kernels ('rows' and the FlashAttention-style 'tiled') and two ways to run LoRA's
// rank-r products (on the GEMM kernel, 'general', or the 'skinny' kernel made for them). Which is faster depends on
// the GPU — a laptop's integrated one, an H200 — and no rule written here could know it. All of them compute the same
// products to fp32 rounding. So before a run, one layer of the loaded model does its training work (forward,
// recomputation, backward, at the run's batch shape, with an adapter of the run's rank and targets) under each
// combination, and:
// - a combination is eligible only if that layer's output and input gradient agree with the current kernels' on this
//   GPU: a kernel the driver miscompiles, or a race a software adapter hides, is refused and never trained with;
// - the fastest eligible combination wins if it beats the current kernels by more than the timing noise.
// The answer is cached per GPU, model shape, batch shape and shader text (new shaders are measured again), and a saved
// run remembers its kernels, so that a resume continues on the same numbers, bit for bit.
// The measurement is staged (GEMM × attention first, then the LoRA-product kernel on the winner), and a combination
// during whose measurement the GPU device was lost is remembered too and not measured again: a driver that hangs on one
// kernel must not end every run before its first step.

import { uniformSource } from '../core/prng.ts';
import { FinetuneError, isFinetuneError, thrownMessage } from '../core/errors.ts';
import { quote } from '../core/quote.ts';
import { unpackedBatch } from '../core/token-batch.ts';
import type { Projection, Quantization } from '../core/mistral.ts';
import type { GpuAdapterInfo } from '../engine/gpu-adapter.ts';
import { ATTENTION_KERNELS, GEMM_KERNELS, LORA_KERNELS, tiledKernelParts, type GemmKernel, type GpuContext } from '../engine/gpu.ts';
import { KERNEL_KINDS, unfitKernel, unfitKernels, type KernelKind, type KernelKinds } from '../engine/kernel-fit.ts';
import type { Dims } from '../engine/mistral/dims.ts';
import { destroyLora, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import { maxRelError } from '../engine/reference/common.ts';
import { shaderSources } from '../engine/shaders.ts';
import type { MistralConfig } from '../model/config.ts';
import { createAdapter } from '../model/lora-adapter.ts';
import { timeGpu } from '../engine/timing.ts';
import { releaseNf4Table } from '../engine/kernels/matmul_tiled.ts';
import type { StoreFiles } from './run-store.ts';
import { repeatableLayerWork } from './layer-work.ts';

/** A combination of kernels: one GEMM, one attention and one LoRA-product kernel (engine/kernel-fit.ts). */
export type KernelChoice = KernelKinds;

type KernelsByKind = { readonly [K in KernelKind]: readonly KernelChoice[K][] };

/** Every kernel the engine has, by kind: what a saved run or a cached decision may name. */
const KNOWN: KernelsByKind = { gemm: GEMM_KERNELS, attention: ATTENTION_KERNELS, lora: LORA_KERNELS };

/**
 * The GEMM kernels a tuning compares: 'tiled-fixed' compiles one pipeline per shape, so it stays a bench choice.
 * 'tiled-warp' (the tiled kernel on the warp map) and the K step of 32 ('tiled-k32', 'tiled-warp-k32'), the same bits
 * as 'tiled', are measured in stages of their own (kernelStages).
 */
export const TUNED_GEMM_KERNELS: readonly GemmKernel[] = ['basic', 'tiled', 'tiled-warp', 'tiled-k32', 'tiled-warp-k32'];

/** Each tiled GEMM kernel's K-step-32 sibling on the same thread map. */
const DEEP_SIBLING: Partial<Record<GemmKernel, GemmKernel>> = { tiled: 'tiled-k32', 'tiled-warp': 'tiled-warp-k32' };
/** The tiled kernels the first stage leaves to later ones when the GEMM is 'auto'. */
const LATER_STAGE_GEMMS: readonly GemmKernel[] = ['tiled-warp', 'tiled-k32', 'tiled-warp-k32'];

/** What a tuning compares, by kind. */
const TUNED: KernelsByKind = { gemm: TUNED_GEMM_KERNELS, attention: ATTENTION_KERNELS, lora: LORA_KERNELS };

/** A layer's outputs under a candidate may differ from the reference's by this much (relative to their largest value). */
export const AGREEMENT_TOLERANCE = 1e-3;
/** A candidate must be this much faster than the current kernels to replace them (timing noise on a real GPU). */
export const SPEED_MARGIN = 0.05;

export interface KernelTrial {
  kernels: KernelChoice;
  /** Milliseconds one layer's training work took (mean over `reps`); NaN when it was not timed (it disagreed). */
  ms: number;
  reps: number;
  /** maxRelError (max |output − reference| / max |reference|) over the layer's output and input gradient; NaN when it failed. */
  relDiff: number;
  agrees: boolean;
  /** The GPU error the candidate's pass raised (a pipeline the driver would not build, …), when it failed. */
  error?: string;
}

/**
 * The lost-device error of a measurement, naming the combination that was running (in `details`, which survives the
 * worker boundary): the decision remembers it (KernelTuningCache.markLost).
 */
function deviceLostWhile(e: FinetuneError, kernels: KernelChoice): FinetuneError {
  const error = new FinetuneError('device-lost', e.message, { ...e.details, lostWhileMeasuring: kernelChoice(kernels) });
  if (e.stack) error.stack = e.stack;
  return error;
}

/** The combination a lost-device error names as running when the device went (deviceLostWhile), if any. */
export function lostWhileMeasuring(e: unknown): KernelChoice | null {
  return isFinetuneError(e, 'device-lost') ? knownKernels(e.details?.lostWhileMeasuring) : null;
}

export interface LoraShape {
  r: number;
  alpha: number;
  dropout: number;
  targets: readonly Projection[];
}

export interface MeasureOptions {
  /** Stop timing a candidate once this much time was measured (default 400 ms). */
  minMs?: number;
  /** At most this many timed repetitions per candidate (default 8). */
  maxReps?: number;
  tolerance?: number;
  /** The recomputed layer keeps its attention output (RunnerOptions.keptAttention), as the run will. */
  keptAttention?: boolean;
  /** For tests: runs with a candidate's kernels set, inside its error scopes, before its first pass (to inject a GPU error). */
  beforePass?: (k: KernelChoice) => void;
  /** After the candidates given ran: more to run, from the trials so far (the next stage, kernelStages); none ends it. */
  extend?: (trials: readonly KernelTrial[]) => KernelChoice[];
  /** Each trial as it is done (the run's progress line). */
  onTrial?: (trial: KernelTrial, done: number) => void;
}

export const kernelsOf = (ctx: GpuContext): KernelChoice => ({ gemm: ctx.gemmKernel, attention: ctx.attention, lora: ctx.loraKernel });

export function applyKernels(ctx: GpuContext, k: KernelChoice): void {
  ctx.gemmKernel = k.gemm;
  ctx.attention = k.attention;
  ctx.loraKernel = k.lora;
}

export const sameKernels = (a: KernelChoice, b: KernelChoice): boolean => KERNEL_KINDS.every((kind) => a[kind] === b[kind]);

/**
 * Whether two choices compute the same bits: the same kernels, or the tiled GEMM on either thread map and either K
 * step (each output is summed in the same order by whichever thread owns it).
 */
export function sameNumbers(a: KernelChoice, b: KernelChoice): boolean {
  // The thread map and the K step differ, each output's sum does not ('tiled-fixed' is kept apart, as it always was).
  const tiledFamily = (g: GemmKernel): GemmKernel => (g !== 'tiled-fixed' && tiledKernelParts(g) !== null ? 'tiled' : g);
  return tiledFamily(a.gemm) === tiledFamily(b.gemm) && a.attention === b.attention && a.lora === b.lora;
}

/** Just the kernels of a choice (a cached decision also carries its speedup and date). */
export const kernelChoice = (k: KernelChoice): KernelChoice => ({ gemm: k.gemm, attention: k.attention, lora: k.lora });

export function kernelsText(k: KernelChoice): string {
  const gemmNames: Partial<Record<GemmKernel, string>> = {
    'tiled-warp': 'tiled GEMM (warp map)',
    'tiled-k32': 'tiled GEMM (K step 32)',
    'tiled-warp-k32': 'tiled GEMM (warp map, K step 32)',
  };
  const gemm = gemmNames[k.gemm] ?? `${k.gemm} GEMM`;
  return `${gemm}, ${k.attention === 'rows' ? 'row-split' : 'tiled'} attention${k.lora === 'skinny' ? ', skinny LoRA products' : ''}`;
}

export type KernelAsk<K> = K | 'auto';

/** A kernel or 'auto' for each kind; a kind left out is 'auto'. */
export type KernelAsks = Partial<{ [K in KernelKind]: KernelAsk<KernelChoice[K]> }>;

const askOf = (ask: KernelAsks, kind: KernelKind): KernelAsk<KernelChoice[KernelKind]> => ask[kind] ?? 'auto';

/** Whether `k` is one of the kernels `ask` allows. */
export function allowedBy(ask: KernelAsks, k: KernelChoice): boolean {
  return KERNEL_KINDS.every((kind) => {
    const a = askOf(ask, kind);
    return a === 'auto' ? (TUNED[kind] as readonly string[]).includes(k[kind]) : k[kind] === a;
  });
}

/**
 * The combinations to run: `current` first — the reference every other must agree with, run even when the ask does
 * not allow it — then every combination the ask allows (each tuned kernel for an 'auto', the named one otherwise).
 */
export function kernelCandidates(ask: KernelAsks, current: KernelChoice): KernelChoice[] {
  const options = (kind: KernelKind): readonly string[] => {
    const a = askOf(ask, kind);
    return a === 'auto' ? TUNED[kind] : [a];
  };
  let combos: Partial<Record<KernelKind, string>>[] = [{}];
  for (const kind of KERNEL_KINDS) combos = combos.flatMap((c) => options(kind).map((v) => ({ ...c, [kind]: v })));
  const all: KernelChoice[] = [current];
  for (const c of combos as unknown as KernelChoice[]) if (!sameKernels(c, current)) all.push(c);
  return all;
}

/** What a run measures: a first list, then more chosen from its trials. */
export interface KernelStages {
  first: KernelChoice[];
  then: (trials: readonly KernelTrial[]) => KernelChoice[];
}

/**
 * The combinations a run measures, in up to four stages: every basic/tiled GEMM × attention combination the ask
 * allows, on the current LoRA-product kernel (or the one asked for); then — when the GEMM is 'auto' and the tiled
 * GEMM won — the tiled GEMM on the warp map with the winner's other kernels (the same bits: which map is faster is a
 * property of the GPU, not of the other kernels); then — when the GEMM is 'auto' and a tiled GEMM still leads — the
 * winner with a K step of 32 (the same bits again; where the GPU's workgroup memory holds it); then — when the
 * LoRA-product kind is 'auto' — the other LoRA-product kernels on the winner so far. Seven passes instead of twenty:
 * LoRA's products are a few per cent of a layer and do not decide which GEMM or attention kernel wins (`finetune
 * bench tune` measures them all and says whether the staged choice equals the full one). Combinations `skip` names
 * (lost the device before, or too big for the GPU) are left out; when the current kernels are among them, the first
 * left becomes the reference. `then` is given every trial so far and replays the stages to tell the next one.
 */
export function kernelStages(ask: KernelAsks, current: KernelChoice, skip: (k: KernelChoice) => boolean = () => false): KernelStages {
  const loraAuto = askOf(ask, 'lora') === 'auto';
  const gemmAuto = askOf(ask, 'gemm') === 'auto';
  const firstAsk: KernelAsks = { ...ask, lora: loraAuto ? current.lora : ask.lora };
  const first = kernelCandidates(firstAsk, current).filter((k) => !skip(k) && (!gemmAuto || !LATER_STAGE_GEMMS.includes(k.gemm) || sameKernels(k, current)));
  const winnerOf = (trials: readonly KernelTrial[]): KernelChoice => pickKernels(trials, { allowed: (k) => allowedBy(ask, k) }).chosen;
  const untried = (trials: readonly KernelTrial[]) => (k: KernelChoice): boolean => !skip(k) && !trials.some((t) => sameKernels(t.kernels, k));
  const mapStage = (trials: readonly KernelTrial[]): KernelChoice[] => {
    if (!gemmAuto || trials.length === 0) return [];
    const winner = winnerOf(trials);
    return winner.gemm === 'tiled' ? [{ ...winner, gemm: 'tiled-warp' as const }].filter(untried(trials)) : [];
  };
  const kStepStage = (trials: readonly KernelTrial[]): KernelChoice[] => {
    if (!gemmAuto || trials.length === 0) return [];
    const winner = winnerOf(trials);
    const deep = DEEP_SIBLING[winner.gemm];
    return deep ? [{ ...winner, gemm: deep }].filter(untried(trials)) : [];
  };
  const loraStage = (trials: readonly KernelTrial[]): KernelChoice[] => {
    if (!loraAuto || trials.length === 0) return [];
    const winner = winnerOf(trials);
    return TUNED.lora
      .filter((l) => l !== winner.lora)
      .map((lora) => ({ ...winner, lora }))
      .filter(untried(trials));
  };
  // Each later stage is decided by the trials before it: replaying them from the first tells which stage the trials
  // given have reached (an empty stage is passed over), and what it runs.
  const later = [mapStage, kStepStage, loraStage];
  const then = (trials: readonly KernelTrial[]): KernelChoice[] => {
    let done = first.length;
    if (trials.length < done) return [];
    for (const stage of later) {
      const next = stage(trials.slice(0, done));
      if (next.length === 0) continue;
      if (trials.length === done) return next;
      done += next.length;
      if (trials.length < done) return [];
    }
    return [];
  };
  return { first, then };
}

/**
 * Layer passes a run's measurement takes when every candidate agrees and each is timed once (a slow GPU: one pass
 * passes the 400 ms): a comparison pass and a timed one per candidate of both stages, and one warm-up more for the
 * first. Pipeline compiles come on top.
 */
export function tuningPasses(ask: KernelAsks, current: KernelChoice): number {
  const stages = kernelStages(ask, current);
  // The warp map's and the K step's stages are counted as if the tiled GEMM wins (they run only then): an estimate
  // errs long, not short.
  const map = askOf(ask, 'gemm') === 'auto' ? 2 : 0;
  const lora = askOf(ask, 'lora') === 'auto' ? TUNED.lora.length - 1 : 0;
  return 2 * (stages.first.length + map + lora) + 1;
}

/** The trials a staged run would have made, taken from a measurement of every combination (bench tune). */
export function stagedTrials(all: readonly KernelTrial[], stages: KernelStages): KernelTrial[] {
  const find = (k: KernelChoice): KernelTrial | undefined => all.find((t) => sameKernels(t.kernels, k));
  const trials: KernelTrial[] = [];
  for (let queue = stages.first; queue.length > 0; queue = stages.then(trials)) {
    const found = queue.map(find).filter((t): t is KernelTrial => t !== undefined);
    // A combination the grid lacks ends the stages, as a run that could not measure it would not go on either.
    if (found.length < queue.length) break;
    trials.push(...found);
  }
  return trials;
}

/** `v` as a choice when it names kernels this engine has; a missing `lora` is 'general' (records from before it). */
function knownKernels(v: unknown): KernelChoice | null {
  if (typeof v !== 'object' || v === null) return null;
  const k: Record<string, unknown> = { lora: 'general', ...(v as Record<string, unknown>) };
  return KERNEL_KINDS.every((kind) => (KNOWN[kind] as readonly unknown[]).includes(k[kind])) ? kernelChoice(k as unknown as KernelChoice) : null;
}

export interface KernelPick {
  chosen: KernelChoice;
  /** The reference's time over the chosen one's (1 when the reference stays). */
  speedup: number;
  /** Candidates refused because their numbers disagreed with the reference's on this GPU. */
  refused: KernelChoice[];
}

/**
 * The fastest allowed candidate that agrees with the reference (trials[0]). The reference itself, when allowed, is
 * only replaced by one faster by more than `margin`; when none allowed agrees, the reference is kept (and the
 * refusals say why).
 */
export function pickKernels(trials: readonly KernelTrial[], o: { margin?: number; allowed?: (k: KernelChoice) => boolean } = {}): KernelPick {
  const reference = trials[0];
  if (!reference) throw new FinetuneError('internal', 'no kernels were measured');
  const allowed = o.allowed ?? ((): boolean => true);
  const margin = o.margin ?? SPEED_MARGIN;
  const refused = trials.filter((t) => !t.agrees).map((t) => t.kernels);
  const referenceAllowed = allowed(reference.kernels);
  let best: KernelTrial | null = referenceAllowed ? reference : null;
  for (const t of trials) {
    if (t === reference || !t.agrees || !Number.isFinite(t.ms) || !allowed(t.kernels)) continue;
    if (best === null || t.ms < best.ms) best = t;
  }
  if (best === null || best === reference) return { chosen: reference.kernels, speedup: 1, refused };
  if (referenceAllowed && best.ms * (1 + margin) > reference.ms) return { chosen: reference.kernels, speedup: 1, refused };
  return { chosen: best.kernels, speedup: reference.ms / best.ms, refused };
}

/**
 * Runs layer 0's training work under each candidate (candidates[0] the reference) at the run's batch shape and
 * returns what each took and whether it agreed. The context's kernels are as before when it returns.
 */
export async function measureKernels(
  ctx: GpuContext,
  weights: MistralWeights,
  config: MistralConfig,
  lora: LoraShape,
  shape: { B: number; T: number },
  candidates: readonly KernelChoice[],
  o: MeasureOptions = {},
): Promise<KernelTrial[]> {
  const before = kernelsOf(ctx);
  const d = weights.dims;
  const N = shape.B * shape.T;
  // A throwaway adapter of the run's shape; B ≠ 0 (PEFT starts it at 0) so that every LoRA product carries values.
  const adapter = createAdapter(config, { r: lora.r, alpha: lora.alpha, dropout: lora.dropout, targetModules: [...lora.targets], random: uniformSource(7) });
  for (const layer of adapter.tensors) for (const m of lora.targets) layer[m]?.B.fill(1e-3);
  const gpuLora = uploadLora(ctx, d, adapter);
  // What is made before the measurement's own clean-up takes over is freed if the next part cannot be made (a shape
  // this GPU cannot hold): the adapter, then the runner.
  let runner: MistralRunner;
  let layer: ReturnType<typeof repeatableLayerWork>;
  try {
    runner = new MistralRunner(ctx, weights, gpuLora, { B: shape.B, T: shape.T, seed: 1, keptLayers: 0, keptAttention: o.keptAttention });
    try {
      layer = repeatableLayerWork(ctx, runner, [0], d.C);
    } catch (e) {
      runner.destroy();
      throw e;
    }
  } catch (e) {
    destroyLora(ctx, gpuLora);
    throw e;
  }
  const tolerance = o.tolerance ?? AGREEMENT_TOLERANCE;
  try {
    const ids = Array.from({ length: N }, (_, i) => (1 + 37 * i) % d.V);
    runner.setBatch(unpackedBatch(shape.B, shape.T, ids, new Int32Array(N).fill(-100)));
    const work = (): void => layer.run(0);
    const trials: KernelTrial[] = [];
    let reference: { out: Float32Array; grad: Float32Array } | null = null;
    const trialOf = async (k: KernelChoice): Promise<KernelTrial> => {
      applyKernels(ctx, k);
      // One pass to compare (it also compiles the candidate's pipelines, outside the timing).
      // A candidate's validation or internal GPU error (a pipeline this driver will not build, …) is caught by error
      // scopes around its pass, deterministically, and refuses it: the run goes on with kernels that work here. The
      // reference's own errors and exhausted memory end the run as they would without tuning; a lost device too,
      // naming the candidate (deviceLostWhile) so that the next run does not measure it again.
      ctx.device.pushErrorScope('validation');
      ctx.device.pushErrorScope('internal');
      // The scopes are popped whatever happens while the pass is recorded: one left pushed would catch every later
      // GPU error of the session, and nothing would report them.
      let thrown: { e: unknown } | null = null;
      try {
        o.beforePass?.(k);
        work();
        ctx.flush();
      } catch (e) {
        thrown = { e };
      }
      const scoped = [await ctx.device.popErrorScope(), await ctx.device.popErrorScope()].find((e) => e !== null);
      if (thrown) throw thrown.e;
      if (scoped) {
        if (reference === null) throw new FinetuneError('internal', `GPU error: ${scoped.message}`);
        return { kernels: k, ms: NaN, reps: 0, relDiff: NaN, agrees: false, error: scoped.message };
      }
      const out = await ctx.readF32(runner.xs[1], 0, N * d.C);
      const grad = await ctx.readF32(runner.layerGradient, 0, N * d.C);
      reference ??= { out, grad };
      const relDiff = Math.max(maxRelError(out, reference.out), maxRelError(grad, reference.grad));
      const agrees = relDiff <= tolerance;
      if (!agrees) return { kernels: k, ms: NaN, reps: 0, relDiff, agrees };
      // The comparison pass just ran these pipelines on this shape: it was the warm-up. The first candidate gets one
      // more, so that the GPU's clocks are up before anything is timed (every later candidate follows timed work).
      const t = await timeGpu(ctx, work, { warmup: trials.length === 0 ? 1 : 0, minMs: o.minMs ?? 400, maxReps: o.maxReps ?? 8 });
      return { kernels: k, ms: t.ms, reps: t.reps, relDiff, agrees };
    };
    for (let queue = [...candidates]; queue.length > 0; queue = o.extend?.(trials) ?? []) {
      for (const k of queue) {
        let trial: KernelTrial;
        try {
          trial = await trialOf(k);
        } catch (e) {
          if (isFinetuneError(e, 'device-lost')) throw deviceLostWhile(e, k);
          throw e;
        }
        trials.push(trial);
        o.onTrial?.(trial, trials.length);
      }
    }
    return trials;
  } finally {
    applyKernels(ctx, before);
    try {
      layer.destroy();
      runner.destroy();
      destroyLora(ctx, gpuLora);
      // A candidate with a K step of 32 made the NF4 code book's buffer: the context is left as it was found (a run on
      // that kernel makes it again at its first product).
      releaseNf4Table(ctx);
    } catch (e) {
      // On a lost device every GPU call fails again: the error that ended the measurement, naming its candidate, is
      // the one to report.
      if (!isFinetuneError(e, 'device-lost')) throw e;
    }
  }
}

// ---- The cache of decisions ----

/** A digest of every shader's text: a change to any kernel makes earlier measurements stale. */
export function shaderRevision(): string {
  // FNV-1a, 32 bits: a change detector, not a security hash.
  let h = 0x811c9dc5;
  for (const name of Object.keys(shaderSources).sort()) {
    const text = `${name}\u0000${shaderSources[name]}\u0000`;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h.toString(16).padStart(8, '0');
}

/** What a decision depends on: the GPU, the shaders, the model's shape and quantisation, the batch size and the adapter. */
export function tuningKey(report: GpuAdapterInfo, d: Dims, quantization: Quantization, streamed: boolean, shape: { B: number; T: number }, lora: LoraShape, keptAttention = false): string {
  return JSON.stringify({
    gpu: [report.vendor, report.architecture, report.device, report.description],
    shaders: shaderRevision(),
    model: [d.C, d.I, d.nH, d.nKV, d.hd, quantization, streamed],
    // Tokens per micro-batch rounded up to a power of two: which kernels win changes slowly with the shape, and a new
    // dataset whose longest row is a few tokens longer should not cost a new measurement.
    batch: [2 ** Math.ceil(Math.log2(Math.max(1, shape.B * shape.T))), keptAttention],
    lora: [lora.r, [...lora.targets].sort(), lora.dropout > 0],
  });
}

export interface CachedKernels extends KernelChoice {
  speedup: number;
  measuredAt: string;
}

/** A combination during whose measurement the GPU device was lost, and when. */
export interface LostKernels extends KernelChoice {
  at: string;
}

export interface KernelTuningCache {
  get(key: string): Promise<CachedKernels | null>;
  put(key: string, value: CachedKernels): Promise<void>;
  /** The combinations that lost the GPU device while measured for this key: later measurements leave them out. */
  lost(key: string): Promise<LostKernels[]>;
  markLost(key: string, kernels: KernelChoice): Promise<void>;
  /** Forgets the lost marks of one key (a measurement asked for again tries every combination). */
  forgetLost(key: string): Promise<void>;
  /** Every remembered decision, newest first, with the combinations that lost the device for it (the page lists them). */
  list(): Promise<RememberedKernels[]>;
  /** Forgets every decision and lost mark: the next run on each shape measures again, every combination. */
  clear(): Promise<void>;
}

/** A remembered decision with what it was measured for, read back from its key (tuningKey). */
export interface RememberedKernels extends CachedKernels {
  gpu: string;
  /** Hidden size, tokens per micro-batch (rounded up to a power of two), LoRA rank; null when the key is not ours. */
  hidden: number | null;
  tokens: number | null;
  rank: number | null;
  /** The kernels in words (kernelsText). */
  text: string;
  /** The combinations that lost the GPU device when measured for the same key, in words, with when. */
  lost: { text: string; at: string }[];
}

function remembered(key: string, value: CachedKernels, lost: readonly LostKernels[]): RememberedKernels {
  let k: { gpu?: unknown; model?: unknown; batch?: unknown; lora?: unknown } = {};
  try {
    const parsed: unknown = JSON.parse(key);
    if (typeof parsed === 'object' && parsed !== null) k = parsed;
  } catch {
    // a key from another version: shown without its shape
  }
  const first = (v: unknown): number | null => (Array.isArray(v) && typeof v[0] === 'number' ? v[0] : null);
  const gpu = Array.isArray(k.gpu) ? k.gpu.filter((x): x is string => typeof x === 'string' && x !== '').join(' · ') : '';
  return { ...value, gpu, hidden: first(k.model), tokens: first(k.batch), rank: first(k.lora), text: kernelsText(value), lost: lost.map((l) => ({ text: kernelsText(l), at: l.at })) };
}

const CACHE_FILE = 'kernel-tuning.json';
const CACHE_FORMAT = 'finetune-kernel-tuning';
/** Decisions kept; the oldest go first. A few dozen shapes is more than one person trains. */
export const MAX_CACHED_DECISIONS = 64;
/** A bigger file is not ours (or is damaged): it is ignored, not parsed. */
const MAX_CACHE_BYTES = 1 << 20;

/** The entry as a decision, or null when it is not one. */
function validEntry(v: unknown): CachedKernels | null {
  const kernels = knownKernels(v);
  if (!kernels) return null;
  const e = v as Record<string, unknown>;
  return typeof e.speedup === 'number' && Number.isFinite(e.speedup) && typeof e.measuredAt === 'string' ? { ...kernels, speedup: e.speedup, measuredAt: e.measuredAt } : null;
}

/** A key's lost marks as recorded, the ones that do not check out dropped. */
function validLost(v: unknown): LostKernels[] {
  if (!Array.isArray(v)) return [];
  const out: LostKernels[] = [];
  for (const x of v) {
    const kernels = knownKernels(x);
    const at = (x as { at?: unknown } | null)?.at;
    if (kernels && typeof at === 'string' && !out.some((o) => sameKernels(o, kernels))) out.push({ ...kernels, at });
  }
  return out;
}

interface CacheContents {
  entries: Record<string, CachedKernels>;
  lost: Record<string, LostKernels[]>;
}

/**
 * Why the cache file could not be written (or, for `doing` 'forgotten', removed), in words that name the path: the
 * Node store's errors carry `code` and `path` (and a rename's `dest`, the file it would replace: its `path` is the
 * temporary file); anything else (OPFS's, whose store names the file) is said by its own message.
 */
function unwritable(e: unknown, where: string | undefined, doing: 'written' | 'forgotten' = 'written'): FinetuneError {
  const { code, path, dest } = (e ?? {}) as { code?: unknown; path?: unknown; dest?: unknown };
  const target = typeof dest === 'string' ? dest : typeof path === 'string' ? path : null;
  const at = target === null ? null : quote(target);
  const why =
    // A write's ENOTDIR names the folder it could not make; a removal's names the file, below the file in its way.
    code === 'ENOTDIR' ? (at ? (doing === 'written' ? `${at} is a file, not a folder` : `part of ${at} is a file, not a folder`) : 'part of its path is a file')
    // Node's rm says a folder in its way with its own code (ERR_FS_EISDIR: "Path is a directory: rm returned EISDIR").
    : code === 'EISDIR' || code === 'ERR_FS_EISDIR' ? `${at ?? CACHE_FILE} is a folder, not a file`
    : code === 'EACCES' || code === 'EPERM' ? `permission denied${at ? ` (${at})` : ''}`
    : code === 'EROFS' ? 'the disk is read-only'
    : code === 'ENOSPC' || code === 'EDQUOT' ? 'no space is left on the disk'
    // What the store threw, in its own words; thrownMessage never throws (String() of an object with no prototype did).
    : thrownMessage(e);
  return new FinetuneError('bad-input', `the kernel choices cannot be ${doing}${where === undefined ? '' : ` in ${quote(where)}`}: ${why}`);
}

// Whatever a KernelTuningCache rejects with, in words, never throwing: a run goes on without the cache and says so.
const messageOf = (e: unknown): string => thrownMessage(e);

/**
 * Decisions in one small JSON file of a folder (Node: under the cache directory; the browser: OPFS). A missing,
 * damaged or foreign file reads as empty — the kernels are measured again and the file rewritten — never as an error
 * that stops a run; entries that do not check out are dropped one by one. Beside the decisions, per key, the
 * combinations that lost the GPU device while measured (`lost`): written after the loss, before the run's error is
 * reported, so that the next run leaves them out. A write that fails is a FinetuneError naming `where` (the folder,
 * in messages) and what is wrong with it; a run goes on without the cache, and says so (decideKernels).
 */
export function fileKernelTuningCache(files: StoreFiles, where?: string): KernelTuningCache {
  const readAll = async (): Promise<CacheContents> => {
    const contents: CacheContents = { entries: {}, lost: {} };
    const bytes = await files.read(CACHE_FILE).catch(() => null);
    if (!bytes || bytes.length > MAX_CACHE_BYTES) return contents;
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      return contents;
    }
    const p = parsed as { format?: unknown; entries?: unknown; lost?: unknown } | null;
    if (typeof p !== 'object' || p === null || p.format !== CACHE_FORMAT || typeof p.entries !== 'object' || p.entries === null) return contents;
    for (const [k, v] of Object.entries(p.entries as Record<string, unknown>)) {
      const entry = validEntry(v);
      if (entry) contents.entries[k] = entry;
    }
    if (typeof p.lost === 'object' && p.lost !== null) {
      for (const [k, v] of Object.entries(p.lost as Record<string, unknown>)) {
        const marks = validLost(v);
        if (marks.length) contents.lost[k] = marks;
      }
    }
    return contents;
  };
  const newestFirst = (a: [string, CachedKernels], b: [string, CachedKernels]): number => (a[1].measuredAt < b[1].measuredAt ? 1 : a[1].measuredAt > b[1].measuredAt ? -1 : 0);
  const latest = (marks: readonly LostKernels[]): string => marks.reduce((m, l) => (l.at > m ? l.at : m), '');
  const writeAll = async (c: CacheContents): Promise<void> => {
    const entries = Object.entries(c.entries).sort(newestFirst).slice(0, MAX_CACHED_DECISIONS);
    const lost = Object.entries(c.lost)
      .filter(([, marks]) => marks.length > 0)
      .sort((a, b) => (latest(a[1]) < latest(b[1]) ? 1 : -1))
      .slice(0, MAX_CACHED_DECISIONS);
    const bytes = new TextEncoder().encode(JSON.stringify({ format: CACHE_FORMAT, entries: Object.fromEntries(entries), lost: Object.fromEntries(lost) }));
    await files.write(CACHE_FILE, bytes).catch((e: unknown) => {
      throw unwritable(e, where);
    });
  };
  return {
    async get(key) {
      return (await readAll()).entries[key] ?? null;
    },
    async lost(key) {
      return (await readAll()).lost[key] ?? [];
    },
    async list() {
      const c = await readAll();
      return Object.entries(c.entries)
        .sort(newestFirst)
        .map(([k, v]) => remembered(k, v, c.lost[k] ?? []));
    },
    async clear() {
      // "Forget them" on the page: a store that cannot remove the file (a folder in its way, a file where the folder
      // should be, the browser's storage refusing) is said naming it, not by the store's bare error.
      await files.remove(CACHE_FILE).catch((e: unknown) => {
        throw unwritable(e, where, 'forgotten');
      });
    },
    async put(key, value) {
      const c = await readAll();
      c.entries[key] = value;
      await writeAll(c);
    },
    async markLost(key, kernels) {
      const c = await readAll();
      const marks = (c.lost[key] ?? []).filter((l) => !sameKernels(l, kernels));
      c.lost[key] = [...marks, { ...kernelChoice(kernels), at: new Date().toISOString() }];
      await writeAll(c);
    },
    async forgetLost(key) {
      const c = await readAll();
      if (!(key in c.lost)) return;
      delete c.lost[key];
      await writeAll(c);
    },
  };
}

// ---- The decision a run makes ----

export interface KernelRequest extends KernelAsks {
  /** Measure even when a decision is cached. */
  retune?: boolean;
  /** Measure on a software adapter too (tests, `finetune bench tune`); otherwise its kernels are left as they are. */
  measureOnSoftware?: boolean;
}

export type KernelSource = 'measured' | 'cached' | 'saved-run' | 'asked' | 'software' | 'lost-before' | 'fitted';

export interface KernelDecision {
  kernels: KernelChoice;
  source: KernelSource;
  /** The chosen kernels' speed over the reference's (the current kernels, unless they lost the device here) when measured or cached; null otherwise. */
  speedup: number | null;
  trials: KernelTrial[];
  refused: KernelChoice[];
  /** Combinations left out because the GPU device was lost while they were measured before. */
  lost: LostKernels[];
  /** One sentence for the user. */
  text: string;
}

export interface DecideInputs {
  request: KernelRequest;
  current: KernelChoice;
  software: boolean;
  /** The kernels a resumed run was trained with, when the record names them. */
  saved: KernelChoice | null;
  cache: KernelTuningCache | null;
  key: string;
  /**
   * The adapter's workgroup memory (device.limits.maxComputeWorkgroupStorageSize): kernels that need more are never
   * measured or chosen, one asked for is refused, and a saved run trained on them continues on ones that fit.
   * Unset: no limit.
   */
  workgroupBytes?: number;
  /** Runs `first`, then whatever `then` returns from the trials so far, until it returns none (measureKernels' `extend`). */
  measure: (first: KernelChoice[], then: (trials: readonly KernelTrial[]) => KernelChoice[]) => Promise<KernelTrial[]>;
}

function speedText(chosen: KernelChoice, reference: KernelChoice, current: KernelChoice, speedup: number): string {
  if (!sameKernels(reference, current)) return sameKernels(chosen, reference) ? `the fastest that agree with each other (the defaults lost the GPU device here)` : `${speedup.toFixed(2)}× the speed of ${kernelsText(reference)} (the defaults lost the GPU device here)`;
  return sameKernels(chosen, current) ? 'the defaults were the fastest that agree' : `${speedup.toFixed(2)}× the default kernels' speed`;
}

const lostText = (lost: readonly LostKernels[]): string => lost.map((l) => `${kernelsText(l)} (${l.at.slice(0, 10)})`).join('; ');

/** `base` with every kind the request names replaced by the named kernel. */
function withAsked(request: KernelAsks, base: KernelChoice): KernelChoice {
  const out = { ...base };
  for (const kind of KERNEL_KINDS) {
    const a = askOf(request, kind);
    if (a !== 'auto') (out as Record<KernelKind, string>)[kind] = a;
  }
  return out;
}

/**
 * `k` with each kernel that needs more workgroup memory than `limit` replaced by `fallback`'s (which fits: the
 * context's defaults are chosen to), and why, or null when all of `k` fits.
 */
function fitted(k: KernelChoice, fallback: KernelChoice, limit: number): { kernels: KernelChoice; why: string } | null {
  const why = unfitKernels(limit, k);
  if (why === null) return null;
  const kernels = { ...k };
  for (const kind of KERNEL_KINDS) if (unfitKernel(limit, kind, k[kind]) !== null) (kernels as Record<KernelKind, string>)[kind] = fallback[kind];
  return { kernels, why };
}

export async function decideKernels(i: DecideInputs): Promise<KernelDecision> {
  const ask = i.request;
  const limit = i.workgroupBytes ?? Infinity;
  for (const kind of KERNEL_KINDS) {
    const a = askOf(ask, kind);
    const why = a === 'auto' ? null : unfitKernel(limit, kind, a as KernelChoice[typeof kind]);
    if (why) throw new FinetuneError('bad-input', `${why}; ask for another ${kind === 'gemm' ? 'GEMM' : kind === 'attention' ? 'attention' : 'LoRA-product'} kernel, or for auto`);
  }
  const allAuto = KERNEL_KINDS.every((kind) => askOf(ask, kind) === 'auto');
  const noneAuto = KERNEL_KINDS.every((kind) => askOf(ask, kind) !== 'auto');
  const none = { trials: [], refused: [], lost: [], speedup: null };
  if (i.saved) {
    // A resume keeps the kernels it was trained with (same numbers bit for bit) unless the user asks otherwise, or
    // this GPU cannot run them (a run moved to a GPU with less workgroup memory).
    const onThisGpu = fitted(withAsked(ask, i.saved), i.current, limit);
    if (onThisGpu) {
      const kernels = onThisGpu.kernels;
      return { ...none, kernels, source: 'fitted', text: `kernels: ${kernelsText(kernels)}; the saved run was trained with ${kernelsText(i.saved)}, but ${onThisGpu.why}, so its numbers continue to fp32 rounding, not bit for bit` };
    }
    const kernels = withAsked(ask, i.saved);
    const same = sameKernels(kernels, i.saved);
    const numbers = sameNumbers(kernels, i.saved) ? 'the same numbers, bit for bit (only which thread computes what, and in what tiles, differs)' : 'so its numbers continue to fp32 rounding, not bit for bit';
    return { ...none, kernels, source: same ? 'saved-run' : 'asked', text: same ? `kernels: ${kernelsText(kernels)}, as the saved run was trained with` : `kernels: ${kernelsText(kernels)} as asked; the saved run was trained with ${kernelsText(i.saved)}, ${numbers}` };
  }
  if (noneAuto) {
    const kernels = withAsked(ask, i.current);
    return { ...none, kernels, source: 'asked', text: `kernels: ${kernelsText(kernels)}, as asked` };
  }
  if (i.software && !i.request.measureOnSoftware) {
    const kernels = withAsked(ask, i.current);
    return { ...none, kernels, source: 'software', text: `kernels: ${kernelsText(kernels)} (not measured: on a software adapter their speed says nothing about a GPU)` };
  }
  if (!i.request.retune && i.cache) {
    const hit = await i.cache.get(i.key).catch(() => null);
    if (hit && allowedBy(ask, hit) && unfitKernels(limit, hit) === null) {
      const kernels = kernelChoice(hit);
      return { ...none, kernels, source: 'cached', speedup: hit.speedup, text: `kernels: ${kernelsText(kernels)}, measured on this GPU on ${hit.measuredAt.slice(0, 10)}: ${speedText(kernels, i.current, i.current, hit.speedup)}` };
    }
  }
  // Asking to measure again tries every combination, those that lost the device before included.
  if (i.request.retune) await i.cache?.forgetLost(i.key).catch(() => undefined);
  const lostBefore = (await i.cache?.lost(i.key).catch(() => null)) ?? [];
  // Kernels that do not fit this GPU are never tried: their pipelines would not even build.
  const stages = kernelStages(ask, i.current, (k) => lostBefore.some((l) => sameKernels(l, k)) || unfitKernels(limit, k) !== null);
  const lostClause = lostBefore.length ? `; not measured, having lost the GPU device here before: ${lostText(lostBefore)}` : '';
  if (stages.first.length === 0) {
    const kernels = withAsked(ask, i.current);
    return { ...none, lost: lostBefore, kernels, source: 'lost-before', text: `kernels: ${kernelsText(kernels)}, unmeasured: every combination lost the GPU device when measured here before (${lostText(lostBefore)}); --retune-kernels or "Forget them" in the GPU panel measures them again` };
  }
  let trials: KernelTrial[];
  try {
    trials = await i.measure(stages.first, stages.then);
  } catch (e) {
    const lost = lostWhileMeasuring(e);
    if (!lost) throw e;
    // Remembered before the error is reported: the next run (a click on Train, or the same command) leaves it out. A
    // cache that cannot be written would not leave it out, and the message must not promise it does.
    const unremembered = i.cache ? await i.cache.markLost(i.key, lost).then(() => null, messageOf) : null;
    const error = e as FinetuneError;
    const passKernels = 'pass the kernels to use (--gemm, --attention, --lora-kernel) to train without it';
    const next = !i.cache ? passKernels : unremembered === null ? 'the next run on this GPU leaves that combination out' : `it could not be remembered (${unremembered}): ${passKernels}`;
    // details.kernelsLost: the combination in words, for the page's own sentence.
    throw new FinetuneError('device-lost', `${error.message} — while measuring ${kernelsText(lost)} on one layer of this model, before the first step; ${next}`, { ...error.details, kernelsLost: kernelsText(lost) });
  }
  const pick = pickKernels(trials, { allowed: (k) => allowedBy(ask, k) });
  const failed = trials.filter((t) => t.error !== undefined);
  const disagreed = pick.refused.filter((k) => !failed.some((t) => t.kernels === k));
  const refusedText =
    (disagreed.length ? `; refused for numbers that disagree on this GPU: ${disagreed.map(kernelsText).join('; ')}` : '') +
    (failed.length ? `; refused for failing on this GPU: ${failed.map((t) => `${kernelsText(t.kernels)} (${t.error})`).join('; ')}` : '');
  // Only an unconstrained choice is remembered: a later run that asks for nothing must get the overall fastest.
  // A choice that cannot be remembered (the cache folder is a file, say) does not stop the run, but is said: every
  // later run would measure again, and nothing would say why.
  const unremembered = i.cache && allAuto ? await i.cache.put(i.key, { ...pick.chosen, speedup: pick.speedup, measuredAt: new Date().toISOString() }).then(() => null, messageOf) : null;
  const unrememberedText = unremembered === null ? '' : `; not remembered for the next run: ${unremembered}`;
  return {
    kernels: pick.chosen,
    source: 'measured',
    speedup: pick.speedup,
    trials,
    refused: pick.refused,
    lost: lostBefore,
    text: `kernels: ${kernelsText(pick.chosen)}, measured on one layer of this model: ${speedText(pick.chosen, trials[0].kernels, i.current, pick.speedup)}${refusedText}${lostClause}${unrememberedText}`,
  };
}

/** A saved run's kernels as its record names them, or null when it names none (runs saved before this existed). */
export function savedKernels(v: unknown): KernelChoice | null {
  return knownKernels(v);
}
