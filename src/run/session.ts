// One fine-tuning session: a model on the GPU, datasets, a training run with its events, checkpoints that survive a
// reload (through a RunStore: OPFS in the browser, a folder in Node, memory in tests), export and samples. The worker
// exposes this object to the page; the CLI drives the same one.

import { passPlace } from '../core/run-words.ts';
import { uniformSource, ADAPTER_INIT_STREAM } from '../core/prng.ts';
import { PROJECTIONS, type Projection, type Quantization } from '../core/mistral.ts';
import { generationLimitMessage, parseHyperparams, targetModules, withinGenerationLimit } from '../config/index.ts';
import { hyperparamRows, type Hyperparams } from '../config/hyperparams.ts';
import type { TrainingCard, TrainingSummary } from '../export/training-card.ts';
import type { DataStats, TrainingData } from '../data/batches.ts';
import { loadDataset, type DatasetSummary } from '../data/dataset.ts';
import { generationPromptIds, SAMPLE_MAX_TOKENS, samplePromptIds, type Layout } from '../data/layout.ts';
import type { Problem } from '../data/problems.ts';
import { loadRunData } from '../data/training-data.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import { assertFiniteAdapter, createAdapter, loraScaling, type LoraAdapter } from '../model/lora-adapter.ts';
import { moduleShape, openBaseCheckpoint, type BaseCheckpoint } from '../model/checkpoint.ts';
import { maxSeqLenWindowProblem, positionLimit, positionLimitWords } from '../model/attention-span.ts';
import { tokenizerForModel } from './model-tokenizer.ts';
import { parameterCount, type MistralConfig } from '../model/config.ts';
import type { FileSet } from '../model/source.ts';
import { quote, visibleText } from '../core/quote.ts';
import { FinetuneError, isFinetuneError, thrownMessage } from '../core/errors.ts';
import { formatCount } from '../core/units.ts';
import { baseModelNameProblem } from '../core/file-names.ts';
import { calibrate, calibrateSample, calibrateValidation, countedShare, estimateRun, forwardShare, secondsOfSample, validationBatchShape, type Calibration, type RunEstimate, type SampleCalibration, type ValidationCalibration } from './calibrate.ts';
import { validationSteps } from './eta.ts';
import { generate, type GenerationResult, type GenerationSettings, type StreamedToken } from './generate.ts';
import { loadWeightsCached, type WeightCacheStore } from './weight-cache.ts';
import { keepOfflineCopy } from '../model/offline-copy.ts';
import { chooseLayerStreaming, type StreamLayersChoice } from './layer-streaming.ts';
import type { BaseMatmul, GpuContext } from '../engine/gpu.ts';
import type { LedgerSnapshot } from '../engine/ledger.ts';
import { destroyLora, downloadLora, uploadLora, type GpuLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import { decoderBytes, decoderChunk, decoderPeakBytes } from '../engine/mistral/sizing.ts';
import { destroyMistralWeights, isStreamed, type LoadProgress, type MistralWeights } from '../engine/mistral/weights.ts';
import { chooseKeptLayers } from './kept-layers.ts';
import { learningRateCurve, scheduleNotice } from './schedule.ts';
import { applyKernels, decideKernels, kernelChoice, kernelsOf, kernelsText, measureKernels, savedKernels, tuningKey, tuningPasses, type KernelChoice, type KernelDecision, type KernelRequest, type KernelTrial, type KernelTuningCache, type LoraShape } from './kernel-tuning.ts';
import { checkTrainState, runnerShape, writeTrainState, type TrainStateLayout, saveTrainState, train, TrainControl, type EvalReport, type SkipReport, type StepReport, type TrainResult, type EvaluationProgress, type ValidationProgress } from './trainer.ts';
import type { RunStore } from './run-store.ts';
import { validationLoss, type EvaluationResult } from './evaluate-adapter.ts';
import { checkRunFitsImported, startFromImported } from './imported-adapter.ts';
import { localFingerprints, withFingerprints } from './model-fingerprint.ts';
import { checkDataChecksums, checkModelFiles, checkTokenizer, checkSavedRun, checkSavedRunAgainstPlan, checkStateChecksum, epochOfStep, stateChecksum } from './saved-run-check.ts';
import { checkpointFiles, checkStateStep, isCheckpoint, isDamagedRun, namesCheckpoint, readSavedRun, savedRunIn, savedRunOrDamage, STATE_FILE, TRAIN_FILE, VALIDATION_FILE, type ExpectedCheckpoint, type ModelFileVersion, type RunData, type RunBaseline, type SavedRun } from './saved-run.ts';

export { memoryRunStore, type RunStore } from './run-store.ts';
export type { ExpectedCheckpoint, SavedRun } from './saved-run.ts';

/**
 * What a session keeps its runs in: a store (null: none), or a function that answers the store each time a run needs
 * it. The worker gives the function: the browser may refuse its private file system for a moment, and a session handed
 * what the open answered when it was made (null) saved no checkpoint and found no saved run for its life, though the
 * worker's own calls, opening again, found the store.
 */
export type RunStoreSource = RunStore | null | (() => Promise<RunStore | null>);

export interface ModelInfo {
  /** What the user picked ("demo", a Hub repo, local files). */
  source: string;
  params: number;
  layers: number;
  hidden: number;
  vocab: number;
  quantization: Quantization;
  gpuBytes: number;
  seconds: number;
  /** The quantised weights came from the weight cache (nothing was downloaded or quantised). */
  fromCache?: boolean;
  /** The layers are kept in CPU memory and streamed to the GPU (docs/models.md, layer streaming). */
  streamedLayers?: boolean;
  /** Why the layers are streamed when that was chosen for the user, and other things said about the load. */
  notices?: string[];
  warnings: string[];
  /**
   * The tokenizer the model reads with: `own` when it is the model's own tokenizer.model (its vocabulary is not the
   * app's: Mistral-7B-Instruct-v0.3), which the page's dataset counts and runs then use. `key` as DatasetReport.tokenizer.
   */
  tokenizer?: { name: string; vocab: number; own: boolean; key: string };
}

export interface DatasetReport {
  name: string;
  ok: boolean;
  summary: DatasetSummary;
  /**
   * Each usable row's length in tokens before truncation, in file order (LoadedDataset.lengths); null without token
   * counts. The remote panel counts the rows Replicate's trainer keeps from it, each cut where that trainer cuts.
   */
  rowLengths: Uint32Array | null;
  /** The problems kept (line, column, severity, message), in file order. */
  problems: Problem[];
  /** Problems found beyond those kept. */
  omitted: number;
  /**
   * Which tokenizer counted the tokens: 'app' for the session's own (the app's), else the checksum of the loaded
   * model's own tokenizer.model. The page reads the files again when a model with another one is loaded.
   */
  tokenizer: string;
}

export type TrainEvent =
  | { type: 'plan'; stats: DataStats; resumedAt: number }
  | ({ type: 'step' } & StepReport)
  /** The validation pass after `step`: `done` of its `batches` finished, and the seconds the run has left. */
  | ({ type: 'validating' } & ValidationProgress & { etaSeconds: number | null })
  | ({ type: 'eval' } & EvalReport)
  | { type: 'sample'; step: number; prompt: string; text: string }
  /**
   * A checkpoint committed. savedAt: its run record's (each commit writes its own), by which the page tells this
   * checkpoint from one another tab saves to the shared store later.
   */
  | { type: 'checkpoint'; step: number; savedAt: string }
  /**
   * What the run is doing (progress a page shows and a command line need not), or with `note`, a fact about the run a
   * person must read wherever it runs (its numbers change from here, the model's files changed, a sample failed).
   */
  | { type: 'status'; text: string; note?: true }
  /** A pause asked for has taken effect: the run waits (between steps, validation passes or a sample's tokens). */
  | { type: 'paused'; step: number }
  /** A step whose loss or gradient norm was not finite: its update was not applied. */
  | ({ type: 'skipped' } & SkipReport)
  /** The kernels the run uses, and how they were chosen (src/run/kernel-tuning.ts). */
  | ({ type: 'kernels' } & KernelDecision);

/** A resume's expectation as it came from the page: a checkpoint, or refused. */
function checkExpectedCheckpoint(e: unknown): asserts e is ExpectedCheckpoint {
  if (!namesCheckpoint(e)) throw new FinetuneError('bad-input', 'the checkpoint to resume is named by its step (a whole number) and its savedAt (text)');
}

/**
 * The refusal of a resume asked for `expected` when the store holds another run (`now`) or none: every tab of the page
 * shares the store, and another may have saved since the page offered the checkpoint. details.checkpointGone tells
 * the page to offer the run saved now instead of failing the run.
 */
function checkpointRefusal(expected: ExpectedCheckpoint, now: SavedRun | null, restoreOnly: boolean): FinetuneError {
  const holds = now ? `it now holds ${quote(now.trainName)} at step ${now.step} of ${now.totalSteps}, saved ${now.savedAt}` : 'no run is saved any more';
  return new FinetuneError(
    'bad-input',
    `the run saved here is no longer the checkpoint asked for (step ${expected.step}, saved ${expected.savedAt}): ${holds}. Nothing was ${restoreOnly ? 'restored' : 'resumed'}`,
    { checkpointGone: true, expected: { step: expected.step, savedAt: expected.savedAt } },
  );
}

/**
 * What a new run replaces, as its caller named it: the saved run's checkpoint (its step and its record's savedAt) or
 * null, "none saved". The page asks the person before a new run replaces the run saved in this browser, naming it, and
 * starts at once when there is none; every tab shares the store, so another may save or forget a run after that read.
 */
export type ExpectedSavedRun = ExpectedCheckpoint | null;

/** A new run's expectation as it came from the page (through the worker): a whole step and a time, or null; else refused. */
function checkExpectedSavedRun(e: unknown): asserts e is ExpectedSavedRun {
  if (e !== null && !namesCheckpoint(e)) {
    throw new FinetuneError('bad-input', 'the saved run a new run replaces is named by its step (a whole number) and its savedAt (text), or null for none');
  }
}

/**
 * The refusal of a new run asked to replace `expected` (null: nothing saved) when the store holds another run (`now`),
 * none, or one that cannot be read (`damaged`). details.savedRunChanged tells the page to ask again about the run saved
 * now instead of failing the run; nothing of the store or of the session was touched.
 */
function savedRunChangedRefusal(expected: ExpectedSavedRun, now: SavedRun | null, damaged: FinetuneError | null): FinetuneError {
  const holds = damaged
    ? `it now holds a run that cannot be read: ${damaged.message}`
    : now
      ? `it now holds ${quote(now.trainName)} at step ${now.step} of ${now.totalSteps}, saved ${now.savedAt}`
      : 'no run is saved any more';
  const asked = expected
    ? `the run saved here is no longer the one this run was to replace (step ${expected.step}, saved ${expected.savedAt})`
    : 'this run was to replace no saved run, but one was saved here since';
  return new FinetuneError('bad-input', `${asked}: ${holds}. Nothing was started`, {
    savedRunChanged: true,
    expected: expected && { step: expected.step, savedAt: expected.savedAt },
  });
}

/** A run's data as files under the names it was trained with (what the page's dataset panel shows). */
function namedFiles(train: Blob, validation: Blob | null, names: { train: string; validation: string | null }): { train: File; validation: File | null } {
  const file = (blob: Blob, name: string): File => new File([blob], name, { type: 'application/jsonl' });
  return { train: file(train, names.train), validation: validation && names.validation !== null ? file(validation, names.validation) : null };
}

/** `p`, held in `set` until it settles (how the session knows which calls are still in flight). */
function inSetUntilSettled<T>(set: Set<Promise<unknown>>, p: Promise<T>): Promise<T> {
  set.add(p);
  const done = (): void => void set.delete(p);
  p.then(done, done);
  return p;
}

/** The adapter shape a run of these hyperparameters trains (what kernel tuning measures with). */
function loraShapeOf(hp: Hyperparams): LoraShape {
  return { r: hp.lora_rank, alpha: hp.lora_alpha, dropout: hp.lora_dropout, targets: targetModules(hp) };
}

export function quantizationFor(hp: Hyperparams): Quantization {
  return hp.quantization;
}

/**
 * The plan as shown before and at the start of a run: the data's notices, the schedule's if it would learn nothing,
 * and the learning rate by step (the page draws it).
 */
function planStats(data: TrainingData, hp: Hyperparams): DataStats {
  const s = data.stats;
  const notice = scheduleNotice(s.totalSteps, hp.warmup_ratio, hp.learning_rate, hp.lr_scheduler);
  const learningRates = learningRateCurve(hp.learning_rate, s.totalSteps, hp.warmup_ratio, hp.lr_scheduler);
  return { ...s, learningRates, ...(notice ? { notices: [...(s.notices ?? []), notice] } : {}) };
}

/** How often a data file's reading is reported to the page at most (each report is a message to it). */
export const DATA_PROGRESS_EVERY_MS = 250;

/** `report`, called at most every `everyMs` and always for the last bytes (bytesRead = total). */
export function everyFewMs(report: (bytesRead: number) => void, total: number, everyMs = DATA_PROGRESS_EVERY_MS, now = () => performance.now()): (bytesRead: number) => void {
  let last = now();
  return (bytesRead) => {
    const t = now();
    if (bytesRead < total && t - last < everyMs) return;
    last = t;
    report(bytesRead);
  };
}

/**
 * Reads a JSONL file the way training will: every problem with its line (up to `maxProblems`), and token statistics.
 * Only the tokenizer takes part: the page's worker reads a file without a session (and its GPU device).
 */
export async function datasetReport(
  tokenizer: Tokenizer,
  file: Blob,
  name: string,
  layout: Layout,
  maxSeqLen: number,
  maxProblems = 200,
  tokenizerKey = 'app',
  onProgress?: (bytesRead: number) => void,
): Promise<DatasetReport> {
  const d = await loadDataset(file.stream(), { tokenizer, layout, maxSeqLen, maxProblems, keepExamples: false, ...(onProgress ? { onProgress: everyFewMs(onProgress, file.size) } : {}) });
  return { name, ok: d.ok, summary: d.summary, rowLengths: d.summary.tokens ? d.lengths : null, problems: d.problems.shown, omitted: d.problems.omitted, tokenizer: tokenizerKey };
}

/** DatasetReport.tokenizer's word for a tokenizer: 'app' unless it is a loaded model's own (then its checksum). */
export function tokenizerKeyOf(tokenizer: Tokenizer, own: boolean): string {
  return own ? (tokenizer.identity?.checksum ?? tokenizer.identity?.name ?? 'own') : 'app';
}

/**
 * Validates the hyperparameters against the schema and the data, and returns the plan (steps, tokens). Only the
 * tokenizer takes part, as in datasetReport.
 */
export async function runPlan(tokenizer: Tokenizer, hpInput: Readonly<Record<string, unknown>>, trainFile: Blob, validationFile: Blob | null): Promise<DataStats> {
  const hp = parseHyperparams(hpInput);
  const { data } = await loadRunData({ train: trainFile.stream(), validation: validationFile?.stream() ?? null }, tokenizer, hp);
  return planStats(data, hp);
}

export class FinetuneSession {
  private ckpt: BaseCheckpoint | null = null;
  private weights: MistralWeights | null = null;
  private modelSource = '';
  /** The loaded model's files (names, sizes, versions), saved with a run and checked by its resume. */
  private modelFiles: ModelFileVersion[] = [];
  /** The same files as earlier builds versioned them, when that differs (a run saved by one recorded those). */
  private modelFormerFiles: ModelFileVersion[] | null = null;
  private lora: GpuLora | null = null;
  private adapter: LoraAdapter | null = null;
  /** An adapter loaded from outside (useImportedAdapter): new runs start from it until it is forgotten. */
  private imported: LoraAdapter | null = null;
  /**
   * How the current adapter, when imported, was trained: the Replicate training that made it, or the "Training" section
   * of the README it came with (for the README of an export of it).
   */
  /** What is known of how the imported adapter was trained (its Replicate training, or its README's section). */
  private importedCard: TrainingCard | null = null;
  /**
   * The run that trained the current adapter, its history live (for the export README's "Training" section); null for
   * an imported adapter or none.
   */
  private trainedBy: {
    hp: Hyperparams;
    names: { train: string; validation: string | null };
    stats: DataStats;
    history: SavedRun['history'];
    /** The run's validation before its first step, once made (or read with its record). */
    start: { baseline?: RunBaseline };
    fromImported: boolean;
    step: () => number;
    /** The name the run was given for its base model (train --base-model, or its record's), or null: none. */
    baseModelName: string | null;
  } | null = null;
  /** The data the last resume read with its checkpoint, until the page takes them (savedRunFiles) or a run starts. */
  private resumedFiles: { checkpoint: ExpectedCheckpoint; train: File; validation: File | null } | null = null;
  private control: TrainControl | null = null;
  private running = false;
  /** Where quantised weights are cached between loads (src/run/weight-cache.ts); null: no cache. */
  weightCache: WeightCacheStore | null = null;
  /**
   * The GPU's memory in bytes when the user told it (WebGPU cannot report it), else null. With it, a run keeps as
   * many layers' intermediates as fit instead of recomputing them (run/kept-layers.ts): faster, same numbers.
   */
  gpuMemoryBytes: number | null = null;
  /** The last calibration (src/run/calibrate.ts) and the model and adapter shape it was measured for. */
  private calibration: { key: string; value: Calibration } | null = null;
  /** The last validation batch timed (calibrateValidation), for that calibration and batch shape. */
  private validationCalibration: { key: string; value: ValidationCalibration } | null = null;
  /** The last validation_prompt sample timed (calibrateSample) and for what; value undefined: it could not be. */
  private sampleCalibration: { key: string; value: SampleCalibration | undefined } | null = null;
  /** What a validation token cost against a training token in the last estimate (forwardShare); null: not measured. */
  private validationShare: number | null = null;
  /** Where measured kernel choices are kept between runs (src/run/kernel-tuning.ts); null: measure every run. */
  kernelCache: KernelTuningCache | null = null;
  /**
   * The kernels the context was made with: the reference every measured choice must agree with, what a software
   * adapter keeps, and what a run saved before runs recorded their kernels was trained with.
   */
  private readonly defaultKernels: KernelChoice;
  /** How the base products run when a run asks nothing (the context's choice when the session was made). */
  private readonly defaultBaseMatmul: BaseMatmul;

  /** The run store as it is now (see RunStoreSource): asked for by each run, not once. */
  private readonly runStore: () => Promise<RunStore | null>;

  constructor(
    readonly ctx: GpuContext,
    private readonly baseTokenizer: Tokenizer,
    store: RunStoreSource,
  ) {
    this.runStore = typeof store === 'function' ? store : () => Promise.resolve(store);
    this.defaultKernels = kernelsOf(ctx);
    this.defaultBaseMatmul = ctx.baseMatmul;
  }

  /** The loaded model's own tokenizer, where its vocabulary is not the session's tokenizer's (model-tokenizer.ts). */
  private modelTokenizer: Tokenizer | null = null;

  /** The tokenizer the loaded model reads with: its own where it needed one, else the one the session was made with. */
  get tokenizer(): Tokenizer {
    return this.modelTokenizer ?? this.baseTokenizer;
  }

  get model(): MistralWeights | null {
    return this.weights;
  }

  memory(): LedgerSnapshot {
    return this.ctx.ledger.snapshot();
  }

  /**
   * Loads a model. `o.streamLayers`: true keeps the layers in CPU memory and streams them to the GPU; a plan's inputs
   * (hyperparameters and the GPU's memory) stream them only when the plan says they cannot all be on the GPU.
   * `o.checkpoint`: `files` already opened (openBaseCheckpoint), by a caller that checked the model before other work.
   * `o.cacheSource`: what the weight cache names the files by, when `source` (the model's name in runs and exports)
   * could be another model's too (a folder's bare name); entries written under `source`, or under one of
   * `o.formerCacheSources` (names earlier builds gave the same files), are moved to it.
   */
  async loadModel(
    files: FileSet,
    source: string,
    quantization: Quantization,
    onProgress?: (p: LoadProgress) => void,
    o: { streamLayers?: StreamLayersChoice; checkpoint?: BaseCheckpoint; cacheSource?: string; formerCacheSources?: readonly string[] } = {},
  ): Promise<ModelInfo> {
    if (this.running) throw new FinetuneError('bad-input', 'stop the training run before loading another model');
    if (this.loading) throw new FinetuneError('bad-input', 'a model is already loading: wait for it, or reload the page to stop it');
    this.loading = true;
    try {
      return await this.loadModelNow(files, source, quantization, onProgress, o);
    } finally {
      this.loading = false;
    }
  }

  /** A load that may take minutes: while it goes, a run is refused (train checks `loading`), and another load too. */
  private loading = false;

  private async loadModelNow(
    files: FileSet,
    source: string,
    quantization: Quantization,
    onProgress: ((p: LoadProgress) => void) | undefined,
    o: { streamLayers?: StreamLayersChoice; checkpoint?: BaseCheckpoint; cacheSource?: string; formerCacheSources?: readonly string[] },
  ): Promise<ModelInfo> {
    const t0 = Date.now();
    const ckpt = o.checkpoint ?? (await openBaseCheckpoint(files));
    // A model of another vocabulary than the session's tokenizer (Mistral-7B-Instruct-v0.3) reads with its own
    // tokenizer.model; without one it is refused here, before its weights are read.
    const ownTokenizer = await tokenizerForModel(files, ckpt.config, this.baseTokenizer);
    // Into new buffers first, the loaded model swapped out only on success: a failed load (a bad token, the network,
    // a 404, out of memory) leaves the previous model in place and usable. (The price: both are on the GPU while the
    // new one loads; loadMistralWeights frees its own partial upload when it fails.)
    const before = this.ctx.ledger.snapshot().byCategory.weights.currentBytes;
    // Planned from the dtype the matrices are stored in (what is uploaded and quantised from), not config.json's.
    const streaming = chooseLayerStreaming(ckpt.config, o.streamLayers, ckpt.storedDtype);
    const streamLayers = streaming.stream;
    // Local files also by a sample of their contents (a folder is known to the page by its name alone), read before
    // the weights are: a file that cannot be read fails the load before anything is on the GPU.
    const fingerprints = await localFingerprints(files, ['config.json', ...ckpt.files]);
    // With a weight cache, the quantised weights come from it when it holds these files at these settings (without
    // one, from the files).
    const cacheNames = o.cacheSource === undefined ? { source } : { source: o.cacheSource, legacySources: [source, ...(o.formerCacheSources ?? [])] };
    let last: LoadProgress | null = null;
    const heard = (p: LoadProgress): void => {
      last = p;
      onProgress?.(p);
    };
    const loaded = await loadWeightsCached(this.ctx, files, ckpt, { quantization, ...cacheNames, cache: this.weightCache, onProgress: heard, streamLayers });
    const weights = loaded.weights;
    if (this.running) {
      // A run began (a resume reading its store when this load was asked for) and trains on the loaded model.
      ownTokenizer?.dispose();
      destroyMistralWeights(this.ctx, weights);
      throw new FinetuneError('bad-input', 'a training run started while the model loaded: it keeps the model it started with; stop it to load another');
    }
    // A remote model's files described for a later load without the network (their weights are cached now), and
    // said when this load read them from such a copy.
    const offlineNotes = this.weightCache ? await keepOfflineCopy(files) : [];
    const gpuBytes = this.ctx.ledger.snapshot().byCategory.weights.currentBytes - before;
    // Work still going on the old model (an estimate the page asked for as the form changed, a validation loss, a
    // generation, an export) stops or finishes before its weights are freed: freed under it, its next submit failed
    // ("used in submit while destroyed"), or its measurement was kept for the new model. Said, while it lasts: a
    // validation pass of Mistral-7B can take a minute on a small GPU, the load's bar full meanwhile.
    const done = last as LoadProgress | null;
    if (this.weightUsers.size > 0 && done) onProgress?.({ ...done, phase: 'waiting', etaSeconds: null });
    await this.weightsReleased();
    this.unloadModel();
    this.weights = weights;
    this.ckpt = ckpt;
    // The previous model's own tokenizer is not disposed: a dataset read that began before this load may still hold it.
    // Its WASM processor (about 3 MB for Mistral's v3 model) is freed when the last holder lets go: the package's embind
    // deletes a handle the garbage collector takes (test/unit/data/tokenizer-release.test.ts).
    this.modelTokenizer = ownTokenizer;
    this.modelSource = source;
    this.modelFiles = withFingerprints(loaded.files, fingerprints);
    this.modelFormerFiles = loaded.formerFiles;
    const c = ckpt.config;
    return {
      source,
      params: parameterCount(c),
      layers: c.layers,
      hidden: c.hidden,
      vocab: c.vocabSize,
      quantization,
      gpuBytes,
      seconds: (Date.now() - t0) / 1000,
      fromCache: loaded.fromCache,
      streamedLayers: isStreamed(weights),
      notices: streaming.notice ? [streaming.notice] : [],
      warnings: [...offlineNotes, ...c.warnings, ...ckpt.warnings, ...loaded.notes],
      tokenizer: { name: this.tokenizer.identity?.name ?? 'tokenizer.model', vocab: this.tokenizer.vocabSize, own: ownTokenizer !== null, key: tokenizerKeyOf(this.tokenizer, ownTokenizer !== null) },
    };
  }

  /**
   * Forgets the measurements estimate() keeps, so that the next one measures again: the page calls it when another tab's
   * run, which shared the GPU while they were taken, has ended.
   */
  forgetEstimate(): void {
    this.calibration = null;
    this.validationCalibration = null;
    this.sampleCalibration = null;
    this.validationShare = null;
  }

  /**
   * Calls in flight that read the loaded model's weights or its adapter (estimate, evaluate, generate, adapterNow):
   * what frees either (a load, an imported adapter, a new run) waits for them.
   */
  private readonly weightUsers = new Set<Promise<unknown>>();

  private usingWeights<T>(work: () => Promise<T>): Promise<T> {
    return inSetUntilSettled(this.weightUsers, work());
  }

  /**
   * Stops a generation at its next token and a validation loss at its next pass, and settles once no call reads the
   * weights or the adapter; the caller's next synchronous steps (freeing them) run before any new call can start.
   */
  private async weightsReleased(): Promise<void> {
    this.stopGeneration();
    this.stopEvaluation();
    while (this.weightUsers.size > 0) await Promise.allSettled([...this.weightUsers]);
  }

  unloadModel(): void {
    this.forgetEstimate();
    this.dropAdapter();
    this.imported = null;
    if (this.weights) destroyMistralWeights(this.ctx, this.weights);
    this.weights = null;
    this.ckpt = null;
    // No model, no model's tokenizer: the session's own again (a load sets the next model's after this).
    this.modelTokenizer = null;
  }

  private dropAdapter(): void {
    if (this.lora) destroyLora(this.ctx, this.lora);
    this.lora = null;
    this.adapter = null;
    this.trainedBy = null;
    this.importedCard = null;
  }

  /**
   * Makes an imported adapter (src/model/adapter-import.ts) the current one: generate tries it, evaluate scores it,
   * export writes it, and the next new run starts from it. uploadLora checks it fits the loaded model.
   */
  async useImportedAdapter(adapter: LoraAdapter, card: TrainingCard | null = null): Promise<void> {
    const loaded = (): MistralWeights => {
      if (this.running) throw new FinetuneError('bad-input', 'stop the training run before loading an adapter');
      if (!this.weights) throw new FinetuneError('bad-input', 'load a model first');
      return this.weights;
    };
    loaded();
    // A generation, a validation loss or an export going on reads the current adapter: stopped (at its next token or
    // pass) or finished before that adapter is freed. Asked again after the wait: a run or a load may have begun meanwhile.
    await this.weightsReleased();
    const lora = uploadLora(this.ctx, loaded().dims, adapter);
    // uploadLora records its zero-fills without submitting them; submit now, or a run started next (which drops this
    // adapter first) would destroy buffers that pending work still names.
    this.ctx.flush();
    this.dropAdapter();
    this.lora = lora;
    this.adapter = adapter;
    this.imported = adapter;
    this.importedCard = card;
  }

  /** New runs start from a fresh adapter again (the imported one stays current until then). */
  forgetImportedAdapter(): void {
    this.imported = null;
  }

  get hasImportedAdapter(): boolean {
    return this.imported !== null;
  }

  /**
   * Mean validation loss of the current adapter (or of the base model without one) on the run's validation set.
   * stopEvaluation ends it between forward passes, or before it starts when it still waits for an estimate.
   */
  evaluate(hpInput: Readonly<Record<string, unknown>>, trainFile: Blob, validationFile: Blob | null, onProgress?: (p: EvaluationProgress) => void): Promise<EvaluationResult> {
    const control = new TrainControl();
    this.evaluations.add(control);
    return this.afterEstimates(() => this.evaluateNow(hpInput, trainFile, validationFile, control, onProgress)).finally(() => this.evaluations.delete(control));
  }

  /** The validation losses asked for and not ended (waiting or going): stopEvaluation stops each. */
  private readonly evaluations = new Set<TrainControl>();

  private async evaluateNow(hpInput: Readonly<Record<string, unknown>>, trainFile: Blob, validationFile: Blob | null, control: TrainControl, onProgress?: (p: EvaluationProgress) => void): Promise<EvaluationResult> {
    if (control.stopped) return { loss: NaN, tokens: 0, stopped: true };
    if (this.running) throw new FinetuneError('bad-input', 'a training run is going: it reports its own validation loss');
    if (!this.weights) throw new FinetuneError('bad-input', 'load a model first');
    const hp = parseHyperparams(hpInput);
    this.refuseBeyondPositions(hp);
    const { data } = await loadRunData({ train: trainFile.stream(), validation: validationFile?.stream() ?? null }, this.tokenizer, hp);
    return validationLoss(this.ctx, this.weights, this.lora, data, onProgress, control);
  }

  /**
   * A run whose sequences could be longer than the model's sliding attention window computes other numbers, and a
   * validation_prompt whose sample cannot fit in the model's positions (or window) would end the run at its first
   * validation: both refused before it starts.
   */
  private refuseBeyondPositions(hp: Hyperparams, sampleTokens = SAMPLE_MAX_TOKENS): void {
    if (!this.ckpt) return;
    const why = maxSeqLenWindowProblem(this.ckpt.config, hp.max_seq_len);
    if (why) throw new FinetuneError('bad-input', why);
    if (!hp.validation_prompt) return;
    const tokens = samplePromptIds(this.tokenizer, hp.validation_prompt, hp.layout).length;
    const limit = positionLimit(this.ckpt.config);
    // The sample's cache holds the prompt and all new tokens but the last (generate.ts).
    if (tokens + sampleTokens - 1 > limit.maxPositions) {
      throw new FinetuneError('bad-input', `validation_prompt is ${formatCount(tokens)} tokens as the run lays it out: with its sample's ${formatCount(sampleTokens)} new tokens it needs ${formatCount(tokens + sampleTokens - 1)} positions, more than this model's ${positionLimitWords(limit)}. Shorten it`);
    }
  }

  /**
   * Ends the validation losses going on after their current forward pass, and those still waiting before they start;
   * a load, an imported adapter and a new run do too, rather than wait minutes for a number about what they replace.
   */
  stopEvaluation(): void {
    for (const control of this.evaluations) control.stop();
  }

  async inspectDataset(file: Blob, name: string, layout: Layout, maxSeqLen: number, maxProblems = 200, onProgress?: (bytesRead: number) => void): Promise<DatasetReport> {
    return datasetReport(this.tokenizer, file, name, layout, maxSeqLen, maxProblems, tokenizerKeyOf(this.tokenizer, this.modelTokenizer !== null), onProgress);
  }

  /** Validates the hyperparameters against the schema and the data, and returns the plan (steps, tokens). */
  async plan(hpInput: Readonly<Record<string, unknown>>, trainFile: Blob, validationFile: Blob | null): Promise<DataStats> {
    return runPlan(this.tokenizer, hpInput, trainFile, validationFile);
  }

  /**
   * How long the run would take on this GPU: the plan's tokens at the rate of one short training pass measured on the
   * loaded model (src/run/calibrate.ts). Needs a loaded model and no run going.
   */
  estimate(hpInput: Readonly<Record<string, unknown>>, trainFile: Blob, validationFile: Blob | null): Promise<RunEstimate> {
    // One at a time: the page asks again as the form changes, before the last answer came, and two measurements on the
    // GPU together each time the other's work too (and the slower figure is kept for that shape).
    // Nor beside a generation or a validation loss (the page measures as it opens, while its user tries the model).
    const turn = Promise.allSettled([this.estimateQueue, ...this.readers]).then(() => this.estimateNow(hpInput, trainFile, validationFile));
    this.estimateQueue = turn.catch(() => undefined);
    return this.usingWeights(() => turn);
  }

  /** GPU bytes of a validation_prompt sample's decoder (generate.ts: prompt + new tokens − 1 positions); 0 without one. */
  private sampleDecoderBytes(ids: readonly number[] | null, maxNewTokens: number, loraRank: number): number {
    if (!ids || !this.weights) return 0;
    const maxT = ids.length + maxNewTokens - 1;
    return decoderPeakBytes(decoderBytes(this.weights.dims, { maxT, chunk: decoderChunk(maxT, this.ctx.report.software), loraRank }));
  }

  /** What a timed validation_prompt sample is kept for: the model, the adapter's shape and the prompt. */
  private sampleKey(hp: Hyperparams, quantization: string): string {
    return JSON.stringify([this.modelSource, quantization, hp.lora_rank, targetModules(hp), hp.layout, hp.validation_prompt]);
  }

  /** Settles when the estimates asked for so far have. */
  private estimateQueue: Promise<unknown> = Promise.resolve();
  /** Generations and validation losses in flight: an estimate asked for now waits for them. */
  private readonly readers = new Set<Promise<unknown>>();

  /** `work` after the estimates asked for so far (it would slow their measurements), counted in `readers` meanwhile. */
  private afterEstimates<T>(work: () => Promise<T>): Promise<T> {
    return this.usingWeights(() => inSetUntilSettled(this.readers, this.estimateQueue.then(work)));
  }

  private async estimateNow(hpInput: Readonly<Record<string, unknown>>, trainFile: Blob, validationFile: Blob | null): Promise<RunEstimate> {
    if (this.running) throw new FinetuneError('bad-input', 'a training run is going: its own progress gives the time left');
    if (!this.weights || !this.ckpt) throw new FinetuneError('bad-input', 'load a model first');
    const hp = parseHyperparams(hpInput);
    this.refuseBeyondPositions(hp);
    const { data } = await loadRunData({ train: trainFile.stream(), validation: validationFile?.stream() ?? null }, this.tokenizer, hp);
    const stats = data.stats;
    const weights = this.weights;
    const config = this.ckpt.config;
    // Measured as the run will train: its runner's shape, the memory mode a run would choose here, and the kernels a
    // run on this GPU has measured before for that shape (the defaults until one has).
    const shape = runnerShape(data);
    const targets = targetModules(hp);
    const sampleIds = hp.validation_prompt ? samplePromptIds(this.tokenizer, hp.validation_prompt, hp.layout) : null;
    const keep = chooseKeptLayers(weights.dims, { ...shape, r: hp.lora_rank, targets }, { memoryBytes: this.gpuMemoryBytes, inUseBytes: this.ctx.ledger.snapshot().currentBytes, besideBytes: this.sampleDecoderBytes(sampleIds, SAMPLE_MAX_TOKENS, hp.lora_rank) });
    const tuned = this.ctx.report.software ? null : await this.kernelCache?.get(this.kernelKey(weights, hp, shape, keep.keptAttention)).catch(() => null);
    const kernels = tuned ? kernelChoice(tuned) : this.defaultKernels;
    // The rate depends on the model, the adapter's shape and (on a GPU) the batch shape, not on the data.
    // And on the share of tokens with a loss (the lm_head computes those alone), to a twentieth.
    const trainShare = Math.round(countedShare(stats, 'train') * 20) / 20;
    const key = JSON.stringify([this.modelSource, weights.quantization, hp.lora_rank, targets, hp.lora_dropout > 0, this.ctx.report.software ? null : shape, keep.kept, keep.keptAttention, kernels, trainShare]);
    // Measured on the kernels the run would use; the session's defaults again afterwards.
    const onRunKernels = async <T>(work: () => Promise<T>): Promise<T> => {
      applyKernels(this.ctx, kernels);
      try {
        return await work();
      } finally {
        applyKernels(this.ctx, this.defaultKernels);
      }
    };
    if (this.calibration?.key !== key) {
      this.calibration = { key, value: await onRunKernels(() => calibrate(this.ctx, weights, config, hp, { shape, keptLayers: keep.kept, keptAttention: keep.keptAttention, countedShare: trainShare })) };
    }
    // A run that validates: one of its validation passes timed too, which the data's shape decides (measured apart,
    // so that another dataset does not measure the training pass again).
    const batch = validationSteps(stats, hp).length > 0 ? validationBatchShape(stats) : null;
    let forward: ValidationCalibration | undefined;
    if (batch) {
      const validationShare = Math.round(countedShare(stats, 'validation') * 20) / 20;
      const vkey = JSON.stringify([key, batch, validationShare]);
      if (this.validationCalibration?.key !== vkey) {
        const uploadSeconds = this.calibration.value.uploads?.seconds;
        this.validationCalibration = { key: vkey, value: await onRunKernels(() => calibrateValidation(this.ctx, weights, config, hp, batch, { uploadSeconds, countedShare: validationShare })) };
      }
      forward = this.validationCalibration.value;
    }
    // A run with a validation_prompt writes a sample after each validation: its decoder timed on that prompt (kept per
    // model and prompt; a prompt too long for the model's positions fails the run's sample too, and is not priced).
    let sample: SampleCalibration | undefined;
    if (sampleIds) {
      const skey = this.sampleKey(hp, weights.quantization);
      if (this.sampleCalibration?.key !== skey) {
        const value = await calibrateSample(this.ctx, weights, this.lora, sampleIds, positionLimit(config)).catch(() => undefined);
        this.sampleCalibration = { key: skey, value };
      }
      sample = this.sampleCalibration.value;
    }
    const c: Calibration = { ...this.calibration.value, ...(forward ? { forward } : {}), ...(sample ? { sample } : {}) };
    this.validationShare = forward ? forwardShare(c) : null;
    // A run on a GPU with no remembered choice for this shape measures its kernels first (what Train does: nothing asked).
    const measures = !this.ctx.report.software && !tuned;
    return estimateRun(stats, hp, c, this.ctx.report.software, measures ? tuningPasses({}, this.defaultKernels) : 0);
  }

  /**
   * Runs training. With `resume`, continues the saved run (same model, hyperparameters and data, read back from the
   * store). Events arrive in order; the promise settles when the run ends, is stopped, or fails. `prepared`: the run's
   * data as loadRunData made it from `files` and these hyperparameters, when the caller has it already.
   * `restoreOnly` (with `resume`): the saved run's adapter at its checkpoint's step, for export and generation, with no
   * step, validation or sample: the run comes back stopped where it was saved, and its store is left as it was (no
   * record or state is written), so that a later resume continues from the very same checkpoint.
   * `expected` (with `resume`): the checkpoint the caller offered; any other saved run is refused (checkpointRefusal)
   * before anything is given up. The CLI, the store's one user, asks none.
   * `replaces` (without `resume`): the saved run the caller named as the one this run replaces, or null for none; a store
   * that holds anything else is refused (savedRunChangedRefusal) before anything is given up. The CLI names none: it
   * refuses a saved run itself unless --overwrite (commands/train.ts).
   *
   * `baseModelName`: the name the adapter gives its base model (train --base-model), recorded with the run; a resume
   * without one takes the record's. Without either the adapter names the loaded model (its source).
   */
  async train(
    hpInput: Readonly<Record<string, unknown>>,
    files: { train: Blob; trainName: string; validation: Blob | null; validationName: string | null } | null,
    onEvent: (e: TrainEvent) => void,
    o: { resume?: boolean; restoreOnly?: boolean; expected?: ExpectedCheckpoint; replaces?: ExpectedSavedRun; replaceDamaged?: boolean; sampleMaxTokens?: number; keptLayers?: number; keptAttention?: boolean; kernels?: KernelRequest; baseMatmul?: BaseMatmul; prepared?: TrainingData; baseModelName?: string } = {},
  ): Promise<TrainResult> {
    if (this.running) throw new FinetuneError('bad-input', 'a training run is already going');
    // An earlier resume's data are not this run's (and are not kept past it).
    this.resumedFiles = null;
    // The load would free the weights this run trains on when it finishes.
    if (this.loading) throw new FinetuneError('bad-input', 'a model is loading: start the run once it has loaded');
    if (o.restoreOnly && !o.resume) throw new FinetuneError('bad-input', 'only a saved run can be restored');
    if (!this.weights || !this.ckpt) throw new FinetuneError('bad-input', 'load a model first');
    // A resume reads the store before the run counts as going: a load asked for meanwhile is refused when it ends.
    const preparedOn = this.weights;
    // The store this run reads and saves to, whatever the source answers later, asked inside the worker's run lock: now
    // by a resume and by a run that names what it replaces (both read it before the run counts as going, as they did),
    // else once the run counts as going. Asked first by every run, it put an await before a new run counted as going,
    // and a load asked for in that moment went ahead and refused the run (session-serialise.test.ts).
    const storeFirst = o.resume === true || o.replaces !== undefined;
    let store: RunStore | null = storeFirst ? await this.runStore() : null;
    // Written into the adapter's config and README as given: held to what the page's and the CLI's typed name is.
    if (o.baseModelName !== undefined) {
      const problem = typeof o.baseModelName === 'string' ? baseModelNameProblem(o.baseModelName) : 'the base model name is not text';
      if (problem) throw new FinetuneError('bad-input', problem);
    }
    let hp = parseHyperparams(hpInput);
    let trainFile = files?.train ?? null;
    let validationFile = files?.validation ?? null;
    let names = { train: files?.trainName ?? 'train.jsonl', validation: files?.validationName ?? null };
    let fromStep = 0;
    let state: Uint8Array | null = null;
    let history: SavedRun['history'] = [];
    // The validation before the first step: made by a new run with eval_on_start, read with a resumed run's record.
    const start: { baseline?: RunBaseline } = {};
    let resumed: SavedRun | null = null;
    // Carried in every record of the run: a resume checks the stored data against them.
    let dataChecksums: Pick<SavedRun, 'trainChecksum' | 'validationChecksum'> = {};
    if (o.resume) {
      if (o.expected !== undefined) checkExpectedCheckpoint(o.expected);
      const found = await savedRunIn(store);
      // Read once, and resumed as read: the worker holds the run lock from here to the run's end, so no other tab can
      // save between this check and the run (the page's own check, before it asked, could not promise that).
      if (o.expected && !isCheckpoint(found, o.expected)) {
        throw checkpointRefusal(o.expected, found, o.restoreOnly === true);
      }
      if (!found || !store) throw new FinetuneError('bad-input', 'there is no saved run to resume');
      // The record is checked before anything in it is used: a tampered one is refused before anything is allocated.
      const saved = (resumed = checkSavedRun(found));
      if (saved.modelSource !== this.modelSource || saved.quantization !== this.weights.quantization) {
        throw new FinetuneError('bad-input', `the saved run used model "${saved.modelSource}" (${saved.quantization}); load it first`);
      }
      // The same name is not always the same model (local files are named by their file names alone).
      const changed = checkModelFiles(saved, this.modelFiles, this.modelFormerFiles);
      if (changed) onEvent({ type: 'status', text: changed, note: true });
      // The same data tokenized by another tokenizer is other ids: the run would go on with other numbers, silently.
      const tokenizerNote = checkTokenizer(saved, this.tokenizer.identity, "Load the run's tokenizer to resume it, or start a new run");
      if (tokenizerNote) onEvent({ type: 'status', text: tokenizerNote });
      hp = saved.hp;
      const t = await store.load(TRAIN_FILE);
      state = await store.load(STATE_FILE);
      if (!t || !state) throw new FinetuneError('bad-input', 'the saved run is incomplete (its data or checkpoint is missing)', { damagedRun: true });
      await checkStateChecksum(saved, state);
      // A record with stateChecksum is paired with its state by it (the session commits both at once). One saved before
      // that field is paired by the step: the state's must be the record's, or the run would go on from one step's
      // adapter with another step's history and place in the data.
      if (saved.stateChecksum === undefined) await checkStateStep(saved, state);
      const v = saved.validationName ? await store.load(VALIDATION_FILE) : null;
      await checkDataChecksums(saved, t, v);
      dataChecksums = { trainChecksum: saved.trainChecksum, validationChecksum: saved.validationChecksum };
      trainFile = new Blob([new Uint8Array(t)]);
      validationFile = v ? new Blob([new Uint8Array(v)]) : null;
      names = { train: saved.trainName, validation: saved.validationName };
      history = saved.history;
      if (saved.baseline) start.baseline = saved.baseline;
    }
    // Read under the worker's run lock, held to the run's end: no other tab can save between this check and the first
    // checkpoint, which is where a new run replaces the saved one (the page's read, before it asked, could not promise that).
    if (!o.resume && o.replaces !== undefined) await this.checkReplaces(store, o.replaces);
    if (!trainFile) throw new FinetuneError('bad-input', 'choose a training file');
    if (quantizationFor(hp) !== this.weights.quantization) {
      throw new FinetuneError('bad-input', `the model is loaded with quantization "${this.weights.quantization}" but the run asks for "${quantizationFor(hp)}": reload the model or change peft_method/quantization`);
    }
    if (this.loading || this.weights !== preparedOn) throw new FinetuneError('bad-input', 'a model is loading: start the run once it has loaded');
    this.refuseBeyondPositions(hp, o.sampleMaxTokens);

    this.running = true;
    const control = (this.control = new TrainControl());
    // Begun on a device already dropped (it was asked for before the drop): it ends at its first step.
    if (this.lostDevice) control.lose(this.lostDevice);
    // A restore is the resume path stopped before its first step: the trainer then runs nothing, the stopped run
    // samples nothing, and a stop at the saved step saves nothing.
    if (o.restoreOnly) control.stop();
    let stepNow = 0;
    control.onPaused = () => onEvent({ type: 'paused', step: stepNow });
    let runner: MistralRunner | null = null;
    try {
      if (!storeFirst) store = await this.runStore();
      // `prepared`: the caller already read these files with these hyperparameters (the CLI does, before it loads the
      // model, so that a bad file is refused before minutes of loading); a resume reads its own from the store.
      const data =
        !o.resume && o.prepared
          ? o.prepared
          : (await loadRunData({ train: trainFile.stream(), validation: validationFile?.stream() ?? null, trainName: names.train, validationName: names.validation ?? undefined }, this.tokenizer, hp)).data;
      if (resumed) checkSavedRunAgainstPlan(resumed, data.stats);
      // The name given now, else the one the run was given (its record's): what its adapter and its records name.
      const baseModelName = o.baseModelName ?? resumed?.baseModelName ?? null;
      // A fresh adapter as PEFT initialises it, seeded; a resume overwrites it with the checkpoint.
      // The adapter is replaced below: a generation, validation loss or export still reading it is stopped or finished first.
      await this.weightsReleased();
      const startFrom = o.resume ? null : this.imported;
      if (startFrom) checkRunFitsImported({ r: hp.lora_rank, alpha: hp.lora_alpha, targets: targetModules(hp) }, startFrom);
      // A saved state is checked before the adapter the session holds is given up: a refused resume keeps it.
      const checkedState = state ? await checkTrainState(state, stateLayoutOf(this.ckpt.config, hp), data.stats.totalSteps) : null;
      this.dropAdapter();
      this.adapter = createAdapter(this.ckpt.config, {
        r: hp.lora_rank,
        alpha: hp.lora_alpha,
        dropout: hp.lora_dropout,
        targetModules: targetModules(hp),
        baseModel: baseModelName ?? this.modelSource,
        random: uniformSource(hp.seed, ADAPTER_INIT_STREAM),
      });
      // An imported adapter is the starting point instead of PEFT's fresh initialisation.
      if (startFrom) startFromImported(this.adapter, startFrom);
      // A run that started from an imported rsLoRA adapter keeps its scale (alpha / √r) when it is resumed or restored:
      // the hyperparameters hold no such flag, the record does.
      if (resumed?.useRslora) {
        this.adapter.config.useRslora = true;
        this.adapter.scaling = loraScaling(this.adapter.config);
      }
      const useRslora = this.adapter.config.useRslora;
      this.lora = uploadLora(this.ctx, this.weights.dims, this.adapter);
      // Submit uploadLora's zero-fills now: if the checkpoint below is refused, the next run destroys these buffers,
      // and destroying a buffer that unsubmitted work still names breaks the device.
      this.ctx.flush();
      if (checkedState) fromStep = writeTrainState(this.ctx, this.lora, checkedState);
      stepNow = fromStep;
      this.trainedBy = { hp, names, stats: data.stats, history, start, fromImported: startFrom !== null, step: () => stepNow, baseModelName };
      // The resumed run's data as read above, for the page (savedRunFiles) once the plan says the run has begun.
      if (resumed) this.resumedFiles = { checkpoint: { step: resumed.step, savedAt: resumed.savedAt }, ...namedFiles(trainFile, validationFile, names) };
      onEvent({ type: 'plan', stats: planStats(data, hp), resumedAt: fromStep });
      // A new run's data joins the store with its first checkpoint: until then the previous run stays resumable.
      let newData: RunData | null = null;
      if (store && !o.resume) {
        newData = { train: new Uint8Array(await trainFile.arrayBuffer()), validation: validationFile ? new Uint8Array(await validationFile.arrayBuffer()) : null };
        dataChecksums = { trainChecksum: await stateChecksum(newData.train), validationChecksum: newData.validation ? await stateChecksum(newData.validation) : undefined };
        // A saved run that cannot be read is replaced only when asked (the CLI's --overwrite; the page forgets it first).
        const previous = await readSavedRun(store).catch((e: unknown) => {
          if (!isDamagedRun(e)) throw e;
          // A first checkpoint cut short saved no run: nothing there to keep.
          if (!o.replaceDamaged && e.details?.firstCommitCutShort !== true) throw new FinetuneError('bad-input', `${e.message}: a new run here would replace it at its first checkpoint; forget the saved run first to start a new one`, e.details);
          onEvent({ type: 'status', text: `${e.message}: this run replaces it at its first checkpoint` });
          return null;
        });
        if (previous) {
          onEvent({ type: 'status', text: `the previous run saved here (${quote(previous.trainName)}, step ${previous.step} of ${previous.totalSteps}) is kept until this run saves its first checkpoint` });
        }
      }
      let lastSaved = fromStep;
      // The state and the record describing it are committed as one unit (see run-store.ts).
      const saveCheckpoint = async (step: number, state: Uint8Array): Promise<void> => {
        if (!store || !this.weights) return;
        const run: SavedRun = {
          modelSource: this.modelSource,
          modelFiles: this.modelFiles,
          quantization: this.weights.quantization,
          hp,
          trainName: names.train,
          validationName: names.validation,
          step,
          totalSteps: data.stats.totalSteps,
          history,
          ...(start.baseline ? { baseline: start.baseline } : {}),
          savedAt: new Date().toISOString(),
          epoch: epochOfStep(data.stats.stepsByEpoch, step),
          stateChecksum: await stateChecksum(state),
          ...dataChecksums,
          kernels,
          baseMatmul,
          ...(this.tokenizer.identity ? { tokenizer: this.tokenizer.identity } : {}),
          ...(useRslora ? { useRslora } : {}),
          ...(baseModelName !== null ? { baseModelName } : {}),
        };
        try {
          await store.commit(checkpointFiles(run, state, newData));
        } catch (e) {
          // A full disk, a lost mount: the commit left the previous checkpoint whole (run-store.ts). Say which file
          // failed, which checkpoint is kept and what to do; the caller may still write the adapter trained so far.
          if (isFinetuneError(e, 'device-lost')) throw e;
          // A store may pass Node's own error on, whose message holds a path as it is: escaped (visibleText).
          const kept = lastSaved > 0 ? `The last complete checkpoint, at step ${lastSaved}, is kept: free some space, then resume from it` : 'The run has no complete checkpoint yet: free some space, then start it again';
          throw new FinetuneError('bad-input', `the checkpoint at step ${step} could not be saved: ${visibleText(thrownMessage(e))}. ${kept}`, { checkpointFailed: true, step, lastSaved, code: (e as { code?: unknown }).code });
        }
        newData = null;
        lastSaved = step;
        onEvent({ type: 'checkpoint', step, savedAt: run.savedAt });
      };
      const shape = runnerShape(data);
      const baseMatmul = this.chooseBaseMatmul(resumed, o.baseMatmul, onEvent);
      const sampleTokens = o.sampleMaxTokens ?? SAMPLE_MAX_TOKENS;
      // The prompt as every sample of this run reads it (the run's layout), laid out once.
      const sampleIds = hp.validation_prompt ? samplePromptIds(this.tokenizer, hp.validation_prompt, hp.layout) : null;
      // Keep layers' intermediates instead of recomputing them where the memory allows (same numbers, fewer FLOPs),
      // leaving room for the sample's decoder, made beside the runner after each validation.
      const keep = chooseKeptLayers(
        this.weights.dims,
        { ...shape, r: this.lora.r, targets: this.lora.targets, loraChunkBytes: this.lora.arenas.layout.maxChunkBytes },
        { asked: o.keptLayers, askedAttention: o.keptAttention, memoryBytes: this.gpuMemoryBytes, inUseBytes: this.ctx.ledger.snapshot().currentBytes, besideBytes: this.sampleDecoderBytes(sampleIds, sampleTokens, this.lora.r) },
      );
      if (keep.notice) onEvent({ type: 'status', text: keep.notice, note: true });
      // The kernels are measured in that mode (a kept attention leaves the recomputation without attention).
      const kernels = await this.chooseKernels(hp, shape, keep.keptAttention, resumed, o.kernels ?? {}, onEvent);
      runner = new MistralRunner(this.ctx, this.weights, this.lora, { ...shape, seed: hp.seed, keptLayers: keep.kept, keptAttention: keep.keptAttention });
      // The sample as the page's estimate timed it on this model and prompt, where it did (the ETA's price of it).
      const timedSample = this.sampleCalibration?.key === this.sampleKey(hp, this.weights.quantization) ? this.sampleCalibration.value : undefined;
      let sampledAt = -1;
      // validation_prompt's greedy sample after `step`, emitted unless the run's Stop cut it off; the run's Pause
      // holds it between tokens.
      const emitSample = async (step: number, prompt: string, ids: readonly number[]): Promise<void> => {
        // Seconds to a minute on a slow adapter, with the step counter standing still: said, not left unexplained.
        onEvent({ type: 'status', text: `writing a sample for the validation prompt ${passPlace(step, `after step ${step}`)}…` });
        let text: string | null;
        try {
          text = await this.sample(ids, sampleTokens, control);
        } catch (e) {
          // Logits sampling refuses (not finite): the sample is a view of the adapter, not part of its training, and
          // the run's own guards judge its steps. Said, and the run goes on; any other failure ends it as before.
          if (!(e instanceof FinetuneError && e.kind === 'mismatch')) throw e;
          onEvent({ type: 'status', text: `no sample for the validation prompt ${passPlace(step, `after step ${step}`)}: ${e.message}; training goes on`, note: true });
          return;
        }
        if (text === null) return;
        // Kept with its step, so the checkpoint after this pass saves it (the page shows it again after a reload).
        const h = history.find((x) => x.step === step);
        if (h) h.sample = text;
        else if (step === 0 && start.baseline) start.baseline.sample = text;
        onEvent({ type: 'sample', step, prompt, text });
      };
      const result = await train(
        this.ctx,
        runner,
        data,
        hp,
        {
          onStep: (r) => {
            stepNow = r.step;
            history.push({ step: r.step, loss: r.loss, seconds: r.elapsedSeconds });
            onEvent({ type: 'step', ...r });
          },
          onSkip: (r) => onEvent({ type: 'skipped', ...r }),
          onValidating: (p) => onEvent({ type: 'validating', ...p }),
          onEval: async (r) => {
            const h = history.find((x) => x.step === r.step);
            // The pass before the first step: the baseline, kept beside the history (no step of the run has its loss).
            if (r.step === 0) start.baseline = { valLoss: r.valLoss };
            else if (h) {
              h.valLoss = r.valLoss;
              // The step's training time then includes its pass: what a finished run restored after a reload says it
              // took, and where a run resumed at this step (its pass made) counts on from.
              if (h.seconds !== undefined) h.seconds += r.seconds;
            }
            onEvent({ type: 'eval', ...r });
            // Each validation also shows what the adapter now writes for validation_prompt (greedy: comparable).
            if (hp.validation_prompt && sampleIds) {
              await emitSample(r.step, hp.validation_prompt, sampleIds);
              sampledAt = r.step;
            }
          },
          onCheckpoint: (step, bytes) => saveCheckpoint(step, bytes),
        },
        control,
        fromStep,
        // Stopped in (or before) the validation after the step it saved: the resume makes that pass first.
        {
          validateFirst: !o.restoreOnly && fromStep > 0 && !history.some((h) => h.step === fromStep && h.valLoss !== undefined),
          // The training time up to the checkpoint (records from before it was saved have none: counted from here).
          elapsedBefore: history.find((h) => h.step === fromStep)?.seconds ?? 0,
          // The ETA's price of a validation pass until the run has timed one: the share the last estimate measured
          // on this model (the page estimates the plan it then trains).
          ...(this.validationShare !== null ? { validationShare: this.validationShare } : {}),
          // What each pass's sample computes (the prompt as sample() reads it, then up to sampleTokens), for the ETA to
          // price it before one has been timed: a run with one pass never times one before writing it.
          ...(sampleIds ? { afterPassTokens: sampleIds.length + sampleTokens } : {}),
          // Better: the sample as the page's estimate timed it on this model and prompt, where it did.
          ...(sampleIds && timedSample ? { afterPassSeconds: secondsOfSample(timedSample, sampleTokens) } : {}),
        },
      );
      if (hp.validation_prompt && sampleIds && !control.stopped && sampledAt !== result.steps) {
        await emitSample(result.steps, hp.validation_prompt, sampleIds);
      }
      // A resumed run that trained no step here (a finished run restored, say) reports its last losses from its history,
      // not null.
      const lastLoss = [...history].reverse().find((h) => Number.isFinite(h.loss));
      const lastVal = [...history].reverse().find((h) => h.valLoss !== undefined);
      if (result.finalLoss === null && lastLoss) result.finalLoss = lastLoss.loss;
      if (result.finalValLoss === null && lastVal?.valLoss !== undefined) result.finalValLoss = lastVal.valLoss;
      // Made by this call, or read with the resumed run's record.
      result.baselineValLoss = start.baseline?.valLoss ?? null;
      if (control.stopped && store && this.lora && result.steps !== lastSaved) {
        // A stopped run keeps its latest step: save it so that Resume continues from here.
        await saveCheckpoint(result.steps, await saveTrainState(this.ctx, this.lora, result.steps));
      }
      return result;
    } finally {
      this.running = false;
      this.control = null;
      // The run's kernels were its own choice: the next run (or a generation) starts from the defaults again.
      applyKernels(this.ctx, this.defaultKernels);
      this.ctx.baseMatmul = this.defaultBaseMatmul;
      try {
        runner?.destroy();
      } catch (e) {
        // On a lost device every GPU call fails again; the first error is the one to report, and the session must
        // not stay marked as running (a new context takes over: see the worker's recoverDevice).
        if (!isFinetuneError(e, 'device-lost')) throw e;
      }
    }
  }

  /**
   * The kernels this run trains with, made current on the context: a resume's own, the ones asked for, or the fastest
   * that agree with the defaults on one layer of this model (measured, or remembered from an earlier measurement).
   */
  private async chooseKernels(hp: Hyperparams, shape: { B: number; T: number }, keptAttention: boolean, resumed: SavedRun | null, request: KernelRequest, onEvent: (e: TrainEvent) => void): Promise<KernelChoice> {
    const weights = this.weights;
    const config = this.ckpt?.config;
    if (!weights || !config) throw new FinetuneError('internal', 'kernels are chosen for a loaded model');
    const loraShape = loraShapeOf(hp);
    const decision = await decideKernels({
      request,
      current: this.defaultKernels,
      software: this.ctx.report.software,
      workgroupBytes: this.ctx.device.limits.maxComputeWorkgroupStorageSize,
      // A run saved before runs recorded their kernels was trained with the defaults.
      saved: resumed ? (savedKernels(resumed.kernels) ?? this.defaultKernels) : null,
      cache: this.kernelCache,
      key: this.kernelKey(weights, hp, shape, keptAttention),
      measure: (first, then) => {
        onEvent({ type: 'status', text: `measuring ${first.length} kernel combinations on one layer of this model, then on the fastest the tiled GEMM's warp map and K step of 32 and the LoRA products' kernel where they are not set…` });
        const onTrial = (t: KernelTrial, done: number): void => onEvent({ type: 'status', text: `measured ${done} kernel combinations on one layer of this model (last: ${kernelsText(t.kernels)}, ${Number.isFinite(t.ms) ? `${t.ms.toFixed(1)} ms` : 'refused'})…` });
        return measureKernels(this.ctx, weights, config, loraShape, shape, first, { keptAttention, extend: then, onTrial });
      },
    });
    applyKernels(this.ctx, decision.kernels);
    onEvent({ type: 'kernels', ...decision });
    return decision.kernels;
  }

  /**
   * How the run's base products run: as asked, else as the resumed run was trained (its numbers continue only on the
   * same arithmetic), else the session's default. Made current on the context for the run.
   */
  private chooseBaseMatmul(resumed: SavedRun | null, asked: BaseMatmul | undefined, onEvent: (e: TrainEvent) => void): BaseMatmul {
    const saved = resumed ? (resumed.baseMatmul ?? 'fp32') : null;
    const choice = asked ?? saved ?? this.defaultBaseMatmul;
    if (saved !== null && choice !== saved) {
      onEvent({ type: 'status', text: `the saved run's base products ran in ${saved}; it continues in ${choice} as asked, so its numbers change from here`, note: true });
    } else if (saved !== null && saved !== 'fp32' && asked === undefined) {
      onEvent({ type: 'status', text: `NF4 base products in int8 (${saved}), as the saved run was trained`, note: true });
    }
    this.ctx.baseMatmul = choice;
    return choice;
  }

  /** Where a run of these hyperparameters and shape on the loaded model finds its remembered kernels. */
  private kernelKey(weights: MistralWeights, hp: Hyperparams, shape: { B: number; T: number }, keptAttention: boolean): string {
    return tuningKey(this.ctx.report, weights.dims, weights.quantization, isStreamed(weights), shape, loraShapeOf(hp), keptAttention);
  }

  pause(): void {
    // A Resume still waiting (below) is overtaken: the later request wins.
    this.resumeRequest++;
    this.control?.pause();
  }

  /** Counts pause and resume requests, so that a Resume whose wait a Pause overtook does nothing when it ends. */
  private resumeRequest = 0;

  /**
   * Resumes a paused run once what read its adapter during the pause has ended: an export reads it whole, and a
   * generation (Try it) stops at its next token. Resumed under them, the export's tensors were of two steps, and the
   * generation went on with an adapter that changed under it while its column named the paused step's. A Pause asked
   * during that wait keeps the run paused (it once let the run go when the wait ended).
   */
  async resume(): Promise<void> {
    const control = this.control;
    const request = ++this.resumeRequest;
    await this.weightsReleased();
    if (request === this.resumeRequest) control?.resume();
  }

  stop(): void {
    this.control?.stop();
  }

  /** The loss the worker met on this session's device (deviceLost), or null while the device is in use. */
  private lostDevice: FinetuneError | null = null;

  /**
   * The worker dropped this session's GPU device (worker.ts dropGpu) after a call met its loss (`error`): no call reaches
   * this session any more, its Resume included. A run paused here would wait for that Resume forever, its caller never
   * told: it ends with `error` now (TrainControl.lose), a run between steps at its next step, and one begun here after
   * the drop (asked for before it) at its first. Work in the middle of GPU calls (a step, a generation, a validation
   * loss, an export) fails on the dead device by itself, through GpuContext's checks.
   */
  deviceLost(error: FinetuneError): void {
    this.lostDevice ??= error;
    this.control?.lose(error);
  }

  get isRunning(): boolean {
    return this.running;
  }

  get isPaused(): boolean {
    return this.control?.paused ?? false;
  }

  /**
   * Refuses a new run unless `store` holds exactly the run `expected` (the same record: its step and savedAt), or,
   * for null, nothing at all. A damaged store is never what the caller named: the page offers to forget it, and a run
   * started over it would replace it at its first checkpoint.
   */
  private async checkReplaces(store: RunStore | null, expected: unknown): Promise<void> {
    checkExpectedSavedRun(expected);
    const { now, damaged } = await savedRunOrDamage(store);
    const same = damaged === null && (expected === null ? now === null : isCheckpoint(now, expected));
    if (!same) throw savedRunChangedRefusal(expected, now, damaged);
  }

  async savedRun(): Promise<SavedRun | null> {
    return savedRunIn(await this.runStore());
  }

  /**
   * The data of the checkpoint `expected` as this session's last resume (or restore) read them, under the names it was
   * trained with (the page shows them once it has begun), or null when that resume was of another checkpoint, or there
   * was none. Read then, under the worker's run lock and checked against the record; read from the store again now
   * (a restore lets the lock go at once), another tab's save between two files gave one checkpoint's names with
   * another run's data. Handed over once: the session does not keep a run's data past that.
   */
  savedRunFiles(expected: ExpectedCheckpoint): { train: File; validation: File | null } | null {
    const read = this.resumedFiles;
    if (!read || !isCheckpoint(read.checkpoint, expected)) return null;
    this.resumedFiles = null;
    return { train: read.train, validation: read.validation };
  }

  /**
   * The trained adapter as a CPU-side PEFT adapter (for export). During a run, only while it is paused (its adapter
   * changes with every step: read across a step, tensors of two steps came out as one adapter), and a Resume waits for
   * the reading.
   */
  adapterNow(): Promise<LoraAdapter> {
    if (this.running && !this.control?.holding) {
      return Promise.reject(new FinetuneError('bad-input', 'a run is training this adapter: pause it (or let it end) to read it, since its tensors change with every step'));
    }
    // Read tensor by tensor: a load, an imported adapter, a new run or a Resume waits for the reading.
    return this.usingWeights(() => this.readAdapter());
  }

  private async readAdapter(): Promise<LoraAdapter> {
    if (!this.lora || !this.adapter) throw new FinetuneError('bad-input', 'there is no trained adapter yet: train first');
    const adapter = await downloadLora(this.ctx, this.lora, this.adapter);
    assertFiniteAdapter(adapter, 'not exporting the adapter');
    return adapter;
  }

  /** How the current adapter was trained, for its README; null for an imported adapter (or none). */
  trainingSummary(): TrainingSummary | null {
    const t = this.trainedBy;
    if (!t) return null;
    return {
      trainName: t.names.train,
      validationName: t.names.validation,
      step: t.step(),
      totalSteps: t.stats.totalSteps,
      trainRows: t.stats.trainExamples,
      validationRows: t.stats.validation.examples,
      hyperparameters: hyperparamRows(t.hp),
      history: t.history.map((h) => ({ ...h })),
      validationPrompt: t.hp.validation_prompt ?? null,
      ...(t.start.baseline ? { baseline: { ...t.start.baseline } } : {}),
      fromImported: t.fromImported,
      // Read during a run only while it is paused (adapterNow): it goes on after.
      ...(this.running ? { paused: true } : {}),
    };
  }

  /**
   * How the current adapter was trained, for its README: the run that trained it here, else what came with it when it
   * was imported (a trained adapter that started from an imported one is the run's: its card says it started from one).
   */
  trainingCard(): TrainingCard | null {
    const run = this.trainingSummary();
    return run ? { kind: 'local', run } : this.importedCard;
  }

  /** The loaded model's config (for exports that need the base's shape, e.g. GGUF's q/k permutation). */
  get baseConfig(): BaseCheckpoint['config'] {
    if (!this.ckpt) throw new FinetuneError('bad-input', 'load a model first');
    return this.ckpt.config;
  }

  get modelName(): string {
    return this.modelSource;
  }

  /**
   * The name the current adapter's bundle names its base model by (its README, the zip's name): the one its run was
   * given (train --base-model, kept in the run's record), else the loaded model's.
   */
  get baseModelName(): string {
    return this.trainedBy?.baseModelName ?? this.modelSource;
  }

  /** Greedy completion of a prompt with the current adapter (the instruct template is the caller's business). */
  async generate(prompt: string, maxNewTokens: number): Promise<string> {
    return (await this.generateStream(prompt, { maxNewTokens })).text;
  }

  /** Set by stopGeneration, read between tokens by the generation going on. */
  private generationStopped = false;
  private generating = false;

  /**
   * Continues `prompt` with the KV-cache decoder: BOS and the prompt as written, or, with `layout`, laid out as a run
   * lays out its rows' prompts (samplePromptIds: under instruct, in [INST] tags, their control ids with Mistral's v3
   * tokenizer, which text cannot make; an empty prompt is BOS alone either way),
   * streaming each token and its text to onToken. Greedy unless a temperature is given. `useAdapter: false` runs the
   * base model alone (for a side-by-side comparison); otherwise the current adapter, if there is one. One generation
   * at a time; stopGeneration ends it between the prompt's parts (onPrompt hears each) or between tokens. onPrompt hears
   * (0, prompt tokens) first, as the reading starts: until then the generation waits for an estimate's measurement.
   */
  generateStream(
    prompt: string,
    settings: GenerationSettings & { useAdapter?: boolean; layout?: Layout },
    onToken?: (t: StreamedToken) => void,
    onPrompt?: (read: number, total: number) => void,
  ): Promise<GenerationResult & { adapter: boolean }> {
    // A Stop from now on is this generation's, also while it waits for an estimate to finish measuring.
    if (!this.generating) this.generationStopped = false;
    this.generationsWaiting++;
    return this.afterEstimates(() => {
      this.generationsWaiting--;
      return this.generateNow(prompt, settings, onToken, onPrompt);
    });
  }

  /** Generations asked for that wait for an estimate (stopGeneration stops them before their first token). */
  private generationsWaiting = 0;

  private async generateNow(
    prompt: string,
    settings: GenerationSettings & { useAdapter?: boolean; layout?: Layout },
    onToken?: (t: StreamedToken) => void,
    onPrompt?: (read: number, total: number) => void,
  ): Promise<GenerationResult & { adapter: boolean }> {
    if (!this.weights) throw new FinetuneError('bad-input', 'load a model first');
    if (this.generating) throw new FinetuneError('bad-input', 'a generation is already going: stop it first');
    // The page and the CLI check it too; this is what a worker call from anywhere else meets (its KV cache is sized by it).
    if (!withinGenerationLimit('maxNewTokens', settings.maxNewTokens)) throw new FinetuneError('bad-input', generationLimitMessage('maxNewTokens', 'new tokens', settings.maxNewTokens));
    const lora = settings.useAdapter === false ? null : this.lora;
    const ids = generationPromptIds(this.tokenizer, prompt, settings.layout, 'the prompt');
    this.generating = true;
    try {
      // Nothing read yet: the page says "waiting" until here (an estimate measuring holds a generation back).
      onPrompt?.(0, ids.length);
      const r = await generate(this.ctx, this.weights, lora, ids, {
        ...(this.ckpt ? positionLimit(this.ckpt.config) : {}),
        // The GPU memory the user gave: a prompt too long for it is refused before its KV cache is asked for.
        memoryBytes: this.gpuMemoryBytes,
        maxNewTokens: settings.maxNewTokens,
        temperature: settings.temperature,
        topP: settings.topP,
        seed: settings.seed,
        eosId: this.tokenizer.eosId,
        decode: (t) => this.tokenizer.decode(t),
        onToken,
        onPrompt,
        shouldStop: () => this.generationStopped,
      });
      return { ...r, adapter: lora !== null };
    } finally {
      this.generating = false;
    }
  }

  /**
   * A greedy sample of `ids` (the prompt laid out: samplePromptIds) with the current adapter, apart from the page's
   * generations (their guard and Stop); null when the run's Stop (`control`) ended it: 48 tokens are most of a minute
   * on a software adapter, which a Stop used to wait out, and a cut-off sample is not shown as if it were the adapter's
   * answer. The run's Pause holds it between tokens.
   */
  private async sample(ids: readonly number[], maxNewTokens: number, control: TrainControl): Promise<string | null> {
    if (!this.weights) throw new FinetuneError('bad-input', 'load a model first');
    const r = await generate(this.ctx, this.weights, this.lora, ids, { maxNewTokens, ...(this.ckpt ? positionLimit(this.ckpt.config) : {}), eosId: this.tokenizer.eosId, decode: (t) => this.tokenizer.decode(t), shouldStop: () => control.stopped, pausePoint: () => control.pausePoint() });
    return r.stopReason === 'stopped' ? null : r.text;
  }

  /**
   * Ends the generation going on after the prompt's current part or its current token, or one asked for that waits for
   * an estimate before it starts (no-op when there is none).
   */
  stopGeneration(): void {
    if (this.generating || this.generationsWaiting > 0) this.generationStopped = true;
  }
}

/** The layout a run with these hyperparameters gives its adapter (uploadLora's), for checking a saved state first. */
function stateLayoutOf(config: MistralConfig, hp: Hyperparams): TrainStateLayout {
  const targets = targetModules(hp);
  const modules: { layer: number; name: Projection; in: number; out: number }[] = [];
  for (let layer = 0; layer < config.layers; layer++) {
    for (const name of PROJECTIONS) {
      if (!targets.includes(name)) continue;
      const [out, inn] = moduleShape(config, name);
      modules.push({ layer, name, in: inn, out });
    }
  }
  return { r: hp.lora_rank, modules };
}
