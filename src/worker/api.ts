// The front door: everything the page may ask of the engine worker, and every type that crosses the boundary. The
// worker's implementation `satisfies EngineApi`; the page imports this module (and core/, config/), never the engine,
// the run or the model code behind it. Calls go through comlink; callbacks must be wrapped in Comlink.proxy, and our
// typed errors keep their `kind` across (installErrorTransfer, on both sides, before the first call).

import type { Quantization } from '../core/mistral.ts';
import type { AdapterOrigin } from '../core/file-names.ts';
import type { DataStats } from '../data/batches.ts';
import type { DatasetSummary, LengthHistogram } from '../data/dataset.ts';
import type { Layout } from '../data/layout.ts';
import type { Problem } from '../data/problems.ts';
import type { GpuAdapterInfo } from '../engine/gpu-adapter.ts';
import type { LedgerSnapshot } from '../engine/ledger.ts';
import type { LoadProgress } from '../engine/mistral/weights.ts';
import type { CheckReport, GroupResult } from '../run/check.ts';
import type { EvaluationResult } from '../run/evaluate-adapter.ts';
import type { ImportedAdapterInfo } from '../run/imported-adapter.ts';
import type { RemoteTrainingSummary } from '../core/remote-training.ts';
import type { RememberedKernels } from '../run/kernel-tuning.ts';
import type { RunEstimate } from '../run/calibrate.ts';
import type { WeightCacheEntryInfo } from '../run/weight-cache.ts';
import type { MemoryPlan } from '../run/planner.ts';
import type { MatmulCheck } from '../run/selftest.ts';
import type { DatasetReport, ExpectedCheckpoint, ExpectedSavedRun, ModelInfo, SavedRun, TrainEvent } from '../run/session.ts';
import type { EvaluationProgress, TrainResult } from '../run/trainer.ts';
import type { ExpectedForget } from '../run/saved-run.ts';
import type { GenerationResult, GenerationSettings, StreamedToken } from '../run/generate.ts';

export { installErrorTransfer } from './error-transfer.ts';
export type {
  StreamedToken,
  GpuAdapterInfo,
  CheckReport,
  DataStats,
  DatasetReport,
  DatasetSummary,
  LengthHistogram,
  EvaluationProgress,
  ExpectedCheckpoint,
  ExpectedForget,
  ExpectedSavedRun,
  GroupResult,
  ImportedAdapterInfo,
  Layout,
  LedgerSnapshot,
  LoadProgress,
  MatmulCheck,
  MemoryPlan,
  ModelInfo,
  RememberedKernels,
  Problem,
  Quantization,
  RunEstimate,
  SavedRun,
  TrainEvent,
  TrainResult,
};

/** Where the weights come from. Hub tokens travel only in the Authorization header (src/model/source.ts). */
export type ModelSource = { kind: 'demo' } | { kind: 'hub'; repo: string; revision?: string; token?: string } | { kind: 'files'; files: File[] };

/**
 * An adapter to load: a zip (a PEFT zip, Replicate's training_output.zip as downloaded, then with `trainedOn`: that
 * training, for the README of an export) or the files of a PEFT folder (adapter_config.json with
 * adapter_model.safetensors or adapter_model.bin).
 */
export type AdapterSource = { kind: 'zip'; name: string; bytes: Blob | Uint8Array; trainedOn?: RemoteTrainingSummary } | { kind: 'files'; files: File[] };

/** Whether the worker could get a WebGPU device, and what it found. */
export type ProbeResult =
  /** kernelNote: why the engine starts on other kernels than usual here (too little workgroup memory), or null. */
  | { ok: true; report: GpuAdapterInfo; kernelNote: string | null }
  | { ok: false; reason: string };

/** One JSONL row as the tokenizer and layout turn it into training input (tests and the tokenizer page use it). */
export interface EncodedExample {
  line: number;
  ids: number[];
  labels: number[];
}

/** The training files as the page holds them. */
export interface TrainFiles {
  train: Blob;
  trainName: string;
  validation: Blob | null;
  validationName: string | null;
}

/** One model in the browser's weight cache: its key, size, and (from the entry's footer) source and quantisation. */
export type CachedModel = WeightCacheEntryInfo;

/**
 * This site's storage as the worker sees it. `cacheUnavailable` says why weights are not cached (no OPFS), or is null.
 * `usage` and `quota` come from navigator.storage.estimate(); `persisted` from navigator.storage.persisted(). Asking
 * for persistence (navigator.storage.persist()) is the page's own call: browsers expose it to pages, not to workers.
 */
export interface StorageInfo {
  cacheUnavailable: string | null;
  usage: number | null;
  quota: number | null;
  persisted: boolean | null;
}

/**
 * What generateStream takes: length, temperature (0 = greedy), top_p, seed, whether to use the adapter, and the layout
 * the prompt is laid out in (none: as written).
 */
export type GenerationOptions = GenerationSettings & { useAdapter?: boolean; layout?: Layout };
/** What generateStream returns; `adapter` says whether an adapter took part. */
export type GenerationOutcome = GenerationResult & { adapter: boolean };

/**
 * How far a data file's reading has come, in bytes: called at most every DATA_PROGRESS_EVERY_MS while it is read and
 * tokenised, and once at its end (a 150 MB file takes half a minute, which the dataset panel showed as "reading…").
 */
export type DataReadProgress = (bytesRead: number) => void;

export interface EngineApi {
  /** SentencePiece ids of each text (dummy prefix, no BOS/EOS). */
  tokenize(texts: string[]): Promise<number[][]>;
  /** JSONL text read as a File would be: each row's ids and loss labels in `layout`, the summary and every problem. */
  encodeDataset(jsonl: string, layout: Layout): Promise<{ examples: EncodedExample[]; summary: DatasetSummary; problems: string[] }>;
  /**
   * Whether this worker can get a GPU device (never throws), answered for a live one: a device lost that no call has
   * met yet is dropped (a run on it ends with the loss) and the answer is the new device's.
   */
  probe(): Promise<ProbeResult>;
  /** The matmul family against the float64 reference on odd shapes. */
  selfTestMatmul(): Promise<MatmulCheck[]>;
  /** The whole engine against the PyTorch/PEFT goldens on the tiny model. */
  goldenCheck(quantization: 'nf4' | 'none', onProgress?: (text: string) => void): Promise<CheckReport>;
  /**
   * Will it fit? The GPU memory a run of this model needs with these hyperparameters, by category, and a verdict against
   * this worker's adapter limits and `gpuMemoryGiB` (a guess when absent). Reads config.json only: nothing else downloads.
   */
  planModelMemory(source: ModelSource, hp: Record<string, unknown>, gpuMemoryGiB?: number): Promise<MemoryPlan>;
  /**
   * The GPU's memory in GiB as the user gave it (WebGPU cannot report it), or null. With it, a training run keeps as
   * many layers' intermediates as fit under 85 % of it instead of recomputing them: faster, the same numbers.
   */
  setGpuMemory(gpuMemoryGiB: number | null): Promise<void>;
  /**
   * Loads a model's base weights onto the GPU (NF4-quantised as they stream in, unless quantization is none).
   * `streamLayers`: keep the layers in CPU memory and upload them layer by layer (when the plan says 'fits-with-streaming').
   */
  loadModel(source: ModelSource, quantization: Quantization, onProgress?: (p: LoadProgress) => void, options?: { streamLayers?: boolean }): Promise<ModelInfo>;
  /** The models whose quantised weights this browser has cached (newest first); none without OPFS. */
  listCachedModels(): Promise<CachedModel[]>;
  /** Deletes one cached model by its key (40 hex digits); the next load of it downloads again. */
  deleteCachedModel(key: string): Promise<void>;
  /** The site's storage usage and quota, whether it is persistent, and whether weights are cached at all. */
  storageInfo(): Promise<StorageInfo>;
  /** The model on the GPU now (a failed load leaves the one before it), or null (none, or the device was lost). */
  currentModel(): Promise<{ source: string; quantization: Quantization } | null>;
  /**
   * A JSONL file read the way training will read it: every problem with its line, and token statistics. This,
   * planRun, savedRun, savedRunFiles, forgetSavedRun, rememberedKernels and forgetRememberedKernels read only the
   * tokenizer and this browser's storage: they answer without a GPU (none, refused or lost) and never make a device.
   */
  inspectDataset(file: Blob, name: string, layout: Layout, maxSeqLen: number, onProgress?: DataReadProgress): Promise<DatasetReport>;
  /** Hyperparameters checked against the one schema and the data; the plan (steps, tokens, accumulation). */
  planRun(hp: Record<string, unknown>, train: Blob, validation: Blob | null): Promise<DataStats>;
  /** The run's duration on this GPU, from one short training pass measured on the loaded model. */
  estimateRun(hp: Record<string, unknown>, train: Blob, validation: Blob | null): Promise<RunEstimate>;
  /**
   * The data files of the checkpoint `expected` as this worker's resume (or restore) of it read them under the run lock
   * (so the page shows what a resumed run trains on), or null when its last resume was of another checkpoint, or none.
   * Handed over once.
   */
  savedRunFiles(expected: ExpectedCheckpoint): Promise<{ train: File; validation: File | null } | null>;
  /**
   * Trains; events stream to onEvent in order. Settles when the run ends, stops or fails. A new run replaces the run
   * saved in this browser at its first checkpoint: `replaces` is the one the page named to the person (its step and
   * savedAt), or null when it found none. Every tab shares the store, so another may have saved or forgotten a run
   * since: anything else in the store is refused, under the run lock and before this worker's adapter is given up, with
   * a 'bad-input' FinetuneError whose details.savedRunChanged is true. Left out, nothing is checked.
   */
  startTraining(hp: Record<string, unknown>, files: TrainFiles, onEvent: (e: TrainEvent) => void, replaces?: ExpectedSavedRun): Promise<TrainResult>;
  /**
   * Continues the run saved in this browser: same model, data and hyperparameters. `expected`: the checkpoint the page
   * offered (its step and savedAt). Every tab shares the store, so another may have saved a different run since: that
   * is refused, under the run lock and before this worker's adapter is given up, with a 'bad-input' FinetuneError whose
   * details.checkpointGone is true. Left out, whatever run is saved is continued.
   */
  resumeSavedRun(onEvent: (e: TrainEvent) => void, expected?: ExpectedCheckpoint): Promise<TrainResult>;
  /**
   * The saved run's adapter at its checkpoint's step, for export and Try it, training nothing: settles as a run stopped
   * there, and leaves the checkpoint as it was, so resumeSavedRun still continues from it. `expected` as for
   * resumeSavedRun.
   */
  restoreSavedRun(onEvent: (e: TrainEvent) => void, expected?: ExpectedCheckpoint): Promise<TrainResult>;
  /**
   * After a `device-lost` error: a new GPU device and session, with the model that was loaded loaded again (null when
   * none was). The run's last checkpoint is kept, so resumeSavedRun then continues it.
   */
  recoverDevice(onProgress?: (p: LoadProgress) => void): Promise<ModelInfo | null>;
  savedRun(): Promise<SavedRun | null>;
  /**
   * Forgets the run saved in this browser, inside the run lock (run-lock.ts) that a run of this tab or another holds.
   * `expected`: the run the page's box showed (its step and savedAt), or `{ damaged: true }` for a box of a run that
   * cannot be read (with `record`, the checkpoint a Resume was refused for when its files, not its record, cannot be
   * read). Every tab shares the store, so another may have saved since: a store that holds anything else is
   * refused, under the lock and before anything is deleted, with a 'bad-input' FinetuneError whose
   * details.savedRunChanged is true.
   */
  forgetSavedRun(expected: ExpectedForget): Promise<void>;
  /**
   * True while another tab of this page holds the saved run (trains, resumes or forgets it): this tab's startTraining,
   * resumeSavedRun and forgetSavedRun are refused until it lets go (src/worker/run-lock.ts).
   */
  runElsewhere(): Promise<boolean>;
  /** Forgets the time estimate's measurements (taken while another tab's run shared the GPU): the next one measures. */
  forgetEstimate(): Promise<void>;
  /** The kernel choices runs measured on this browser's GPUs and remembered (newest first); none without OPFS. */
  rememberedKernels(): Promise<RememberedKernels[]>;
  /** Forgets them: the next run measures its kernels again (after a driver or browser update, say). */
  forgetRememberedKernels(): Promise<void>;
  /**
   * Pause, Resume and Stop of the run going on. These, stopEvaluation, stopGeneration, forgetEstimate and
   * forgetImportedAdapter act on the engine's session there is, and do nothing without one (none made yet, or it went
   * with a lost device): they never make a GPU device only to find nothing to act on.
   */
  pauseTraining(): Promise<void>;
  resumeTraining(): Promise<void>;
  stopTraining(): Promise<void>;
  /** The trained adapter as one deterministic zip: the PEFT pair alone, or with adapter.gguf and a README (`full`). */
  exportAdapterZip(o: { full: boolean; step: AdapterOrigin; baseModel?: string }): Promise<{ fileName: string; bytes: Uint8Array }>;
  /**
   * Loads an adapter, checked against the loaded model, as the current one: generate tries it, exportAdapterZip
   * writes it, evaluateAdapter scores it, and new runs start from it (their lora_rank, lora_alpha and targets must
   * match it) until forgetImportedAdapter. A .bin is read without running any code from it.
   */
  importAdapter(source: AdapterSource): Promise<ImportedAdapterInfo>;
  /** New runs start from a fresh adapter again. */
  forgetImportedAdapter(): Promise<void>;
  /**
   * Mean validation loss of the current adapter (the base model alone when there is none) on the run's validation set;
   * onProgress (wrap it in Comlink.proxy) hears each batch as it finishes.
   */
  evaluateAdapter(hp: Record<string, unknown>, files: TrainFiles, onProgress?: (p: EvaluationProgress) => void): Promise<EvaluationResult>;
  /** Ends evaluateAdapter's validation loss after its current forward pass (it settles with `stopped`). */
  stopEvaluation(): Promise<void>;
  /** A completion of `prompt` with the current adapter. */
  generate(prompt: string, maxNewTokens: number): Promise<string>;
  /**
   * Streams a completion of `prompt` token by token to onToken (wrap it in Comlink.proxy): greedy unless temperature
   * > 0, ending at </s>, after maxNewTokens, or after stopGeneration. `useAdapter: false` runs the base model alone.
   * Settles with every id, the text, why it ended and the tokens/s. onPrompt (proxied too) hears (0, total) as the
   * reading starts (a generation asked for while an estimate measures waits for it until then), then how much of a
   * long prompt has been read, part by part, before the first token.
   */
  generateStream(prompt: string, options: GenerationOptions, onToken: (t: StreamedToken) => void, onPrompt?: (read: number, total: number) => void): Promise<GenerationOutcome>;
  /** Ends the streamed generation going on, between the prompt's parts or after its current token. */
  stopGeneration(): Promise<void>;
  /** GPU memory by category, current and peak; null while the worker has no GPU device (none yet, or it was lost). */
  memory(): Promise<LedgerSnapshot | null>;
}
