// The engine behind comlink: this dedicated worker owns the GPU device; the page only holds a proxy.

import { type Quantization } from '../core/mistral.ts';
import { baseModelNameProblem, localFilesModelName, type AdapterOrigin } from '../core/file-names.ts';
import * as Comlink from 'comlink';
import type { GpuAdapterInfo } from '../engine/gpu-adapter.ts';
import { runGoldenCheck, type CheckReport } from '../run/check.ts';
import { FinetuneError, isFinetuneError, thrownMessage } from '../core/errors.ts';
import { GpuContext } from '../engine/gpu.ts';
import type { LedgerSnapshot } from '../engine/ledger.ts';
import { checkMatmul, type MatmulCheck } from '../run/selftest.ts';
import { blobFileSet, hubFileSet, httpSource, pickedFolderName, readJson, retryNoteText, urlFileSet, type RetryNote } from '../model/source.ts';
import { parseMistralConfig } from '../model/config.ts';
import { planDtypeOptions } from '../run/plan-dtype.ts';
import { parseHyperparams } from '../config/index.ts';
import { planMemory, samplePromptTokensWith, type MemoryPlan, type PlanGpu } from '../run/planner.ts';
import { adapterZip, importedTrainingCard, withBaseModel } from '../export/index.ts';
import { adapterZipBytes, importAdapterDetailed } from '../model/adapter-import.ts';
import { exportedBaseModelRefusal, importedAdapterInfo, type ImportedAdapterInfo } from '../run/imported-adapter.ts';
import { datasetReport, FinetuneSession, runPlan, type DatasetReport, type ExpectedCheckpoint, type ExpectedSavedRun, type ModelInfo, type SavedRun, type TrainEvent } from '../run/session.ts';
import type { EvaluationResult } from '../run/evaluate-adapter.ts';
import { fileKernelTuningCache, type KernelTuningCache } from '../run/kernel-tuning.ts';
import { checkForgets, forgetSavedRunIn, savedRunIn, type ExpectedForget } from '../run/saved-run.ts';
import type { RunStore } from '../run/run-store.ts';
import type { TrainResult } from '../run/trainer.ts';
import type { LoadProgress } from '../engine/mistral/weights.ts';
import type { DataStats } from '../data/batches.ts';
import { opfsFolderFiles, opfsRunStore } from './opfs-store.ts';
import { runLock, workerLocks } from './run-lock.ts';
import { browserWeightCache, WEIGHT_CACHE_FOLDER } from './opfs-weight-cache.ts';
import { removeOrphanCopies, withOfflineCopy, type OfflineCopyStore } from '../model/offline-copy.ts';
import { checkCacheKey } from '../run/weight-cache.ts';
import { loadDataset, type LoadedDataset } from '../data/dataset.ts';
import { exampleLabels, type Layout } from '../data/layout.ts';
import { loadTokenizer, type Tokenizer } from '../data/tokenizer.ts';
import { installErrorTransfer } from './error-transfer.ts';
import type { GenerationOptions, GenerationOutcome, StreamedToken } from './api.ts';
import type { AdapterSource, CachedModel, DataReadProgress, EncodedExample, EngineApi, EvaluationProgress, ModelSource, ProbeResult, RememberedKernels, RunEstimate, StorageInfo, TrainFiles } from './api.ts';
import { quote } from '../core/quote.ts';

let context: Promise<GpuContext> | null = null;
/**
 * What `context` resolved to, until it is dropped: a call that fails on a lost device drops the device only when it is
 * this one (onGpu).
 */
let contextMade: GpuContext | null = null;

/** The saved run has one writer across this page's tabs (run-lock.ts). */
const runStoreLock = runLock(workerLocks());

function gpuContext(): Promise<GpuContext> {
  const gpu = (self.navigator as Navigator | undefined)?.gpu;
  if (!gpu) return Promise.reject(new FinetuneError('no-webgpu', 'this browser exposes no WebGPU inside workers (navigator.gpu is missing)'));
  if (!context) {
    const making: Promise<GpuContext> = GpuContext.create(gpu).then(
      (ctx) => {
        // Set before any caller has it; a device dropped while it was being made (recoverDevice) is not the current one.
        if (context === making) contextMade = ctx;
        return ctx;
      },
      (e: unknown) => {
        if (context === making) context = null;
        throw e;
      },
    );
    context = making;
  }
  return context;
}

let tokenizerPromise: Promise<Tokenizer> | null = null;

/** Mistral's SentencePiece model, shipped with the app, loaded once. */
function tokenizer(): Promise<Tokenizer> {
  tokenizerPromise ??= (async () => {
    const res = await fetch(new URL(`${import.meta.env.BASE_URL}tokenizer/tokenizer.model`, self.location.origin));
    if (!res.ok) throw new FinetuneError('bad-input', `could not load the tokenizer (HTTP ${res.status})`);
    return loadTokenizer(new Uint8Array(await res.arrayBuffer()), "the app's Mistral tokenizer (tokenizer/tokenizer.model)");
  })().catch((e: unknown) => {
    tokenizerPromise = null;
    throw e;
  });
  return tokenizerPromise;
}

/**
 * `open`, asked once and its answer shared by every caller, except an answer that says the open failed (`failed`; by
 * default null: the browser refused its private file system, or has none) or a rejection. That one is the answer of
 * the calls that waited for it, and the next call opens again: kept, one refusal of a moment (a storage error, a
 * permission not yet given) hid the saved run, the remembered kernels and the cached weights until the page was
 * reloaded, though the next open would have worked.
 */
function openedOnce<T>(open: () => Promise<T>, failed: (answer: T) => boolean = (answer) => answer === null): () => Promise<T> {
  let opening: Promise<T> | null = null;
  return () => {
    if (!opening) {
      const attempt: Promise<T> = open().then(
        (answer) => {
          if (failed(answer) && opening === attempt) opening = null;
          return answer;
        },
        (e: unknown) => {
          if (opening === attempt) opening = null;
          throw e;
        },
      );
      opening = attempt;
    }
    return opening;
  };
}

/**
 * The weight cache in this origin's private file system (OPFS), or why there is none; opened once (an open that failed
 * is tried again at the next call: openedOnce), as runStore is.
 */
const weightCache: () => ReturnType<typeof browserWeightCache> = openedOnce(browserWeightCache, (c) => c.store === null);

/**
 * Loads a model with the weight cache as it opens now, and says so when there is none: the user should know the next
 * load downloads everything again. The session is handed the cache at each load, not once when it was made: one made
 * while the browser refused its storage cached nothing for its life, while the note (the cache opened again) said
 * nothing was wrong.
 */
async function loadCached(s: FinetuneSession, load: () => Promise<ModelInfo>): Promise<ModelInfo> {
  const c = await weightCache();
  s.weightCache = c.store;
  const info = await load();
  return c.store ? info : { ...info, warnings: [...info.warnings, `the weights are not cached: ${c.reason}; the next load reads them from the model's files again`] };
}

/**
 * The run saved in this browser (OPFS), or null where there is no OPFS or it could not be opened; opened once (an open
 * that failed is tried again at the next call: openedOnce). The session's store, and the one the calls that only read
 * or forget the saved run use without a session: one store, whether a session exists or not.
 */
const runStore: () => Promise<RunStore | null> = openedOnce(opfsRunStore);

/**
 * Kernel choices measured on this GPU, remembered in OPFS beside the weights (null where OPFS is missing or could not be
 * opened); opened once, as runStore is. The session's cache, and the one the GPU panel lists and forgets without a
 * session (runStore's reason).
 */
const kernelCache: () => Promise<KernelTuningCache | null> = openedOnce(async () => {
  const files = await opfsFolderFiles('finetune-kernels');
  return files ? fileKernelTuningCache(files) : null;
});

let sessionPromise: Promise<FinetuneSession> | null = null;
/** The GPU memory the user gave (setGpuMemory), kept across sessions: a recovered device is the same GPU. */
let gpuMemoryBytes: number | null = null;

/**
 * The session, handed the kernel-tuning cache as it opens now, for a run or an estimate that measures kernels: handed
 * once when the session was made, a session made while the browser refused its storage measured the kernels at every
 * run and remembered none, though rememberedKernels (opening again) found the cache.
 */
async function sessionWithKernelCache(): Promise<FinetuneSession> {
  const s = await session();
  s.kernelCache = await kernelCache();
  return s;
}

function session(): Promise<FinetuneSession> {
  sessionPromise ??= (async () => {
    // The store opener, not the store: each run asks for it (inside the run lock), so a session made while the browser
    // refused its storage saves its runs once the store opens, into the one store savedRun and forgetSavedRun use.
    const s = new FinetuneSession(await gpuContext(), await tokenizer(), runStore);
    s.gpuMemoryBytes = gpuMemoryBytes;
    return s;
  })().catch((e: unknown) => {
    sessionPromise = null;
    throw e;
  });
  return sessionPromise;
}

/**
 * The session made or being made, else null, without making one: a pause, a stop or a question about the model acts on
 * the session there is, and one made for it (after a lost device, a new GPU device) would only answer "nothing" slower.
 * A session that fails to be made is none: its maker is told why.
 */
async function existingSession(): Promise<FinetuneSession | null> {
  return sessionPromise ? sessionPromise.catch(() => null) : null;
}

/**
 * The tokenizer the loaded model reads with: its own tokenizer.model for a model of another vocabulary than the app's
 * (Mistral-7B-Instruct-v0.3), else the app's. The dataset's counts and a run's plan are read with it.
 */
async function modelTokenizer(): Promise<Tokenizer> {
  return (await existingSession())?.tokenizer ?? tokenizer();
}

/** The GPU context made or being made, else null, without making one (existingSession's reason). */
async function existingContext(): Promise<GpuContext | null> {
  return context ? context.catch(() => null) : null;
}

/** The model last loaded, so that recoverDevice can load it again on a new device. */
let loadedModel: { source: ModelSource; quantization: Quantization; streamLayers: boolean } | null = null;

/**
 * Forgets the GPU context and the session on it (after a device loss): the next call makes new ones. The session is
 * told why (`error`): a run on it, paused or between steps, ends with that error. Forgotten, it was out of reach of the
 * page's Resume and Stop, and a paused run waited at its pause point for good (holding the run lock), while the page
 * showed it running with no step and no failure.
 */
function dropGpu(error: FinetuneError): void {
  const old = context;
  const oldSession = sessionPromise;
  context = null;
  contextMade = null;
  sessionPromise = null;
  void oldSession?.then((s) => s.deviceLost(error)).catch(() => undefined);
  void old?.then((ctx) => ctx.destroyDevice()).catch(() => undefined);
}

/**
 * Runs a call on the GPU `ranOn`; a lost device is dropped on the way out, so that nothing keeps using it. Every call
 * below that runs GPU work goes through it: one that did not kept a device lost under it, and each later call failed on
 * it. Only `ranOn` is dropped, and only while it is the current device: a run that an earlier drop ended (dropGpu)
 * fails after that drop, when the page may already have made a new device (recoverDevice), which its failure would
 * have destroyed and forgotten as well.
 */
async function onGpu<T>(ranOn: GpuContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (isFinetuneError(e, 'device-lost') && ranOn === contextMade) dropGpu(e);
    throw e;
  }
}

/**
 * Where a Hub repository's offline copy lives (src/model/offline-copy.ts): the weight cache's folder, opened at each
 * use. Without a private file system there is none to read, and a write fails (the session writes only with a cache).
 */
const offlineCopies: OfflineCopyStore = {
  read: async (name) => (await opfsFolderFiles(WEIGHT_CACHE_FOLDER))?.read(name) ?? null,
  write: async (name, bytes) => {
    const folder = await opfsFolderFiles(WEIGHT_CACHE_FOLDER);
    if (!folder) throw new Error("this browser gives the page no private file system");
    await folder.write(name, bytes);
  },
};

/** `onRetry`: told when a request to the model's server failed and is tried again (a load shows it). */
function modelFiles(src: ModelSource, onRetry?: (r: RetryNote) => void): { files: ReturnType<typeof urlFileSet>; name: string } {
  switch (src.kind) {
    case 'demo': {
      // The demo's files are known: listing them means no probe for a sharded index, which some static hosts answer
      // with index.html instead of a 404.
      const files = urlFileSet(new URL(`${import.meta.env.BASE_URL}models/mistral-nano-demo/`, self.location.origin).href, { onRetry });
      return { files: { ...files, list: () => ['config.json', 'generation_config.json', 'model.safetensors'] }, name: 'mistral-nano-demo' };
    }
    case 'hub': {
      const name = `${src.repo}${src.revision ? `@${src.revision}` : ''}`;
      // With its offline copy beside the cached weights: a repository loaded before loads again without the network.
      // The browser's word that it is offline sends the load to the copy at once, not after 15 s of retries.
      const knownOffline = (): boolean => (self.navigator as Navigator | undefined)?.onLine === false;
      return { files: withOfflineCopy(hubFileSet(src.repo, { revision: src.revision, token: src.token, onRetry }), offlineCopies, name, { knownOffline }), name };
    }
    case 'files':
      // A picked folder names the model (as the CLI names it after its --model folder); loose files by their names.
      return { files: blobFileSet(src.files), name: pickedFolderName(src.files) ?? localFilesModelName(src.files.map((f) => f.name)) };
  }
}

const api = {
  /** SentencePiece ids of each text (dummy prefix, no BOS/EOS). */
  async tokenize(texts: string[]): Promise<number[][]> {
    const tok = await modelTokenizer();
    return texts.map((t) => tok.encode(t));
  },

  /**
   * Reads JSONL text through the streaming reader (as a File would be read) and returns each row's ids and loss
   * labels in the given layout, with the dataset summary and every problem.
   */
  async encodeDataset(jsonl: string, layout: Layout): Promise<{ examples: EncodedExample[]; summary: LoadedDataset['summary']; problems: string[] }> {
    const ds = await loadDataset(new Blob([jsonl]).stream(), { tokenizer: await modelTokenizer(), layout });
    return {
      examples: ds.examples.map((e) => ({ line: e.line, ids: Array.from(e.ids), labels: Array.from(exampleLabels(e)) })),
      summary: ds.summary,
      problems: ds.problems.lines(),
    };
  },

  /**
   * Whether a GPU device can be had, answered for a live one: a device lost that no call has met yet (device.lost
   * resolved while nothing ran on it) is dropped as a call meeting the loss drops it, a run on it ending with the loss,
   * and the answer is the new device's, the one the next call gets. The page probes as it opens, before any model is
   * loaded; its GPU panel said "GPU ready" for a dead device.
   */
  async probe(): Promise<ProbeResult> {
    try {
      let ctx = await gpuContext();
      const lost = ctx.lossError();
      if (lost) {
        // Only while it is the current device: one a recoverDevice replaced meanwhile is dropped already.
        if (ctx === contextMade) dropGpu(lost);
        ctx = await gpuContext();
        const again = ctx.lossError();
        if (again) return { ok: false, reason: again.message };
      }
      return { ok: true, report: ctx.report, kernelNote: ctx.kernelNote };
    } catch (e) {
      // Whatever was thrown (a browser's refusal need not be an Error), the page shows words.
      return { ok: false, reason: thrownMessage(e) };
    }
  },

  /** Runs the matmul family against the float64 reference on odd shapes (the page's "Check this GPU"). */
  async selfTestMatmul(): Promise<MatmulCheck[]> {
    const ctx = await gpuContext();
    return onGpu(ctx, async () => [await checkMatmul(ctx, 17, 33, 65, 1), await checkMatmul(ctx, 130, 7, 300, 2)]);
  },

  /**
   * The whole engine against the PyTorch/PEFT goldens (the page's "Check this GPU against PyTorch"): the tiny model,
   * its adapter and the golden are fetched from /check/… (vite.config.ts serves them). 'nf4' checks QLoRA against
   * golden_qlora, 'none' full precision against golden_lora. Pass the callback wrapped in Comlink.proxy.
   */
  async goldenCheck(quantization: 'nf4' | 'none', onProgress?: (text: string) => void): Promise<CheckReport> {
    if (quantization !== 'nf4' && quantization !== 'none') throw new FinetuneError('bad-input', `unknown quantization ${quote(quantization)}`);
    const ctx = await gpuContext();
    const say = (text: string): void => void onProgress?.(text);
    say('fetching the reference model and golden');
    const base = new URL(`${import.meta.env.BASE_URL}check/`, self.location.href).toString();
    return onGpu(ctx, async () =>
      runGoldenCheck(ctx, {
        model: urlFileSet(`${base}tiny-mistral`),
        adapter: urlFileSet(`${base}tiny-adapter`),
        golden: await httpSource(`${base}${quantization === 'nf4' ? 'golden_qlora' : 'golden_lora'}.safetensors`),
        quantization,
        onProgress: say,
      }),
    );
  },

  /** The GPU's memory as the user gave it (null: unknown): runs keep layers' intermediates where it allows. */
  async setGpuMemory(gpuMemoryGiB: number | null): Promise<void> {
    gpuMemoryBytes = gpuMemoryGiB !== null && Number.isFinite(gpuMemoryGiB) && gpuMemoryGiB > 0 ? gpuMemoryGiB * 1024 ** 3 : null;
    // Kept for the session made next; the one there is takes it now.
    const s = await existingSession();
    if (s) s.gpuMemoryBytes = gpuMemoryBytes;
  },

  /**
   * The memory plan against this worker's adapter, from config.json and, for picked files and the demo, the
   * safetensors headers (the dtype the weights are stored in: config.json's torch_dtype can say otherwise). From the
   * Hub only config.json is read.
   */
  async planModelMemory(source: ModelSource, hp: Record<string, unknown>, gpuMemoryGiB?: number): Promise<MemoryPlan> {
    const { files, name } = modelFiles(source);
    // A config.json that cannot be read or is not a Mistral model's is one the load refuses too: marked (modelUnloadable),
    // so that the page disables Load for picked files instead of offering a click that can only fail.
    const config = await readJson(await files.open('config.json'))
      .then((json) => parseMistralConfig(json, `${name}/config.json`))
      .catch((e: unknown) => {
        throw isFinetuneError(e, 'bad-input') ? new FinetuneError('bad-input', e.message, { ...e.details, modelUnloadable: true }) : e;
      });
    const dtype = await planDtypeOptions(files, source.kind !== 'hub');
    const gpu: PlanGpu = { memoryBytes: gpuMemoryGiB && gpuMemoryGiB > 0 ? gpuMemoryGiB * 1024 ** 3 : undefined };
    // Without a device the plan still answers, and says that the limits were not checked.
    const ctx = await gpuContext().catch(() => null);
    if (ctx) {
      const r = ctx.report;
      Object.assign(gpu, {
        maxBufferSize: ctx.device.limits.maxBufferSize,
        maxStorageBufferBindingSize: ctx.device.limits.maxStorageBufferBindingSize,
        name: [r.vendor, r.device || r.architecture].filter(Boolean).join(' ') || undefined,
        software: r.software,
      });
    }
    const parsed = parseHyperparams(hp);
    // The validation_prompt sample's KV cache is sized by the prompt's tokens, as the run will lay it out: counted with
    // the loaded model's tokenizer when it is this model's vocabulary, else (a v0.3 repository not loaded yet) bounded.
    const samplePromptTokens = samplePromptTokensWith(await modelTokenizer(), config, parsed);
    return planMemory(config, parsed, { gpu, ...dtype, ...(samplePromptTokens !== undefined ? { samplePromptTokens } : {}) });
  },

  /** Loads a model's weights onto the GPU (NF4-quantised on the GPU as they stream in, unless quantization is none). */
  async loadModel(source: ModelSource, quantization: Quantization, onProgress?: (p: LoadProgress) => void, options?: { streamLayers?: boolean }): Promise<ModelInfo> {
    const s = await session();
    // A failed request about to be made again is said in the progress, with the counts of the last report.
    let last: LoadProgress | null = null;
    const report = (p: LoadProgress): void => {
      last = p;
      onProgress?.(p);
    };
    const { files, name } = modelFiles(source, (r) => onProgress?.({ ...(last ?? { tensor: '', done: 0, total: 0, bytesDone: 0, bytesTotal: 0 }), retry: retryNoteText(r) }));
    const streamLayers = options?.streamLayers === true;
    const info = await loadCached(s, () => onGpu(s.ctx, () => s.loadModel(files, name, quantization, report, { streamLayers })));
    loadedModel = { source, quantization, streamLayers };
    return info;
  },

  /** After a lost device: a new device and session, and the model that was loaded loaded again (resume is the page's call). */
  async recoverDevice(onProgress?: (p: LoadProgress) => void): Promise<ModelInfo | null> {
    // The page asks only once its run has ended; one still going on the old device ends with this.
    dropGpu(new FinetuneError('device-lost', 'the GPU device was replaced by a new one (Get the GPU back) while the run was going on it'));
    const s = await session();
    if (!loadedModel) return null;
    const { files, name } = modelFiles(loadedModel.source);
    const { quantization, streamLayers } = loadedModel;
    return loadCached(s, () => onGpu(s.ctx, () => s.loadModel(files, name, quantization, onProgress, { streamLayers })));
  },

  async listCachedModels(): Promise<CachedModel[]> {
    const { store } = await weightCache();
    return store ? store.list() : [];
  },

  /** The key comes from the page: checked before it names a file. */
  async deleteCachedModel(key: string): Promise<void> {
    if (typeof key !== 'string') throw new FinetuneError('bad-input', 'a weight-cache key is a string');
    checkCacheKey(key);
    const { store } = await weightCache();
    if (!store) return;
    await store.remove(key);
    // A Hub model's offline copy goes with its last entry (it serves only a load whose weights are cached).
    const folder = await opfsFolderFiles(WEIGHT_CACHE_FOLDER);
    if (folder) await removeOrphanCopies(folder, (await store.list()).flatMap((e) => (e.source === undefined ? [] : [e.source])));
  },

  async storageInfo(): Promise<StorageInfo> {
    const c = await weightCache();
    // Each read in a try: where storage is denied, the getter or a call can throw rather than reject, and the Model
    // panel's note (why nothing is cached) must still come back.
    const asked = async <T>(ask: (s: StorageManager | undefined) => Promise<T> | undefined): Promise<T | null> => {
      try {
        return (await ask((self.navigator as Navigator | undefined)?.storage)) ?? null;
      } catch {
        return null;
      }
    };
    const estimate = await asked((s) => s?.estimate?.());
    const persisted = await asked((s) => s?.persisted?.());
    return {
      cacheUnavailable: c.store ? null : c.reason,
      usage: typeof estimate?.usage === 'number' ? estimate.usage : null,
      quota: typeof estimate?.quota === 'number' ? estimate.quota : null,
      persisted,
    };
  },

  async currentModel(): Promise<{ source: string; quantization: Quantization } | null> {
    const s = await existingSession();
    return s?.model ? { source: s.modelName, quantization: s.model.quantization } : null;
  },

  /**
   * Reads a JSONL file the way training will: every problem with its line, and token statistics. Only the tokenizer
   * takes part: a page whose GPU is absent, refused or lost still reads its files (and makes no device for them).
   */
  async inspectDataset(file: Blob, name: string, layout: Layout, maxSeqLen: number, onProgress?: DataReadProgress): Promise<DatasetReport> {
    const s = await existingSession();
    return s ? s.inspectDataset(file, name, layout, maxSeqLen, undefined, onProgress) : datasetReport(await tokenizer(), file, name, layout, maxSeqLen, undefined, undefined, onProgress);
  },

  /** Checks hyperparameters (one schema) against the data and returns the plan: steps, tokens, accumulation (no GPU). */
  async planRun(hp: Record<string, unknown>, train: Blob, validation: Blob | null): Promise<DataStats> {
    return runPlan(await modelTokenizer(), hp, train, validation);
  },

  async estimateRun(hp: Record<string, unknown>, train: Blob, validation: Blob | null): Promise<RunEstimate> {
    const s = await sessionWithKernelCache();
    return onGpu(s.ctx, () => s.estimate(hp, train, validation));
  },

  /**
   * The data of the checkpoint `expected` as the session's resume or restore of it read them, inside the run lock: not
   * read from the store again, where another tab may have saved since the lock was let go.
   */
  async savedRunFiles(expected: ExpectedCheckpoint): Promise<{ train: File; validation: File | null } | null> {
    // The session that resumed it, if any: one made now never read a checkpoint (and would make a GPU device).
    return (await existingSession())?.savedRunFiles(expected) ?? null;
  },

  /**
   * Trains; events (plan, kernels, step, eval, sample, checkpoint, status) stream to onEvent. Settles when the run ends.
   * The session checks the store against `replaces` (the saved run the page named, or null for none) inside the run
   * lock that keeps other tabs from saving.
   */
  async startTraining(hp: Record<string, unknown>, files: TrainFiles, onEvent: (e: TrainEvent) => void, replaces?: ExpectedSavedRun): Promise<TrainResult> {
    const s = await sessionWithKernelCache();
    return runStoreLock.exclusive(() => onGpu(s.ctx, () => s.train(hp, files, onEvent, { replaces })));
  },

  /**
   * Continues the run saved in this browser (after a reload): same model, data and hyperparameters. The session reads
   * the record, and checks it is the checkpoint `expected`, inside the run lock that keeps other tabs from saving.
   */
  async resumeSavedRun(onEvent: (e: TrainEvent) => void, expected?: ExpectedCheckpoint): Promise<TrainResult> {
    const s = await sessionWithKernelCache();
    return runStoreLock.exclusive(() => onGpu(s.ctx, () => s.train({}, null, onEvent, { resume: true, expected })));
  },

  /** The saved run's adapter at its checkpoint, without training on (an unfinished run's "Restore the adapter"). */
  async restoreSavedRun(onEvent: (e: TrainEvent) => void, expected?: ExpectedCheckpoint): Promise<TrainResult> {
    const s = await sessionWithKernelCache();
    return runStoreLock.exclusive(() => onGpu(s.ctx, () => s.train({}, null, onEvent, { resume: true, restoreOnly: true, expected })));
  },

  async savedRun(): Promise<SavedRun | null> {
    return savedRunIn(await runStore());
  },

  /**
   * Inside the run lock, which a run of this worker holds while it goes (and another tab's too): a forget is refused
   * then, as it was when it went through the session. It needs no session, so no GPU device. The store must hold the
   * run `expected` names (checkForgets), checked under the same lock, so that no other tab saves between check and delete.
   */
  async forgetSavedRun(expected: ExpectedForget): Promise<void> {
    const store = await runStore();
    await runStoreLock.exclusive(async () => {
      await checkForgets(store, expected);
      await forgetSavedRunIn(store);
    });
  },

  async runElsewhere(): Promise<boolean> {
    return runStoreLock.heldElsewhere();
  },

  async forgetEstimate(): Promise<void> {
    (await existingSession())?.forgetEstimate();
  },

  /** The session's cache, read without one (kernelCache): the GPU panel lists them also where no device can be had. */
  async rememberedKernels(): Promise<RememberedKernels[]> {
    return (await (await kernelCache())?.list()) ?? [];
  },

  async forgetRememberedKernels(): Promise<void> {
    await (await kernelCache())?.clear();
  },

  async pauseTraining(): Promise<void> {
    (await existingSession())?.pause();
  },

  async resumeTraining(): Promise<void> {
    await (await existingSession())?.resume();
  },

  async stopTraining(): Promise<void> {
    (await existingSession())?.stop();
  },

  /** The trained adapter as one zip: the PEFT pair alone, or with adapter.gguf and a README (`full`). */
  async exportAdapterZip(o: { full: boolean; step: AdapterOrigin; baseModel?: string }): Promise<{ fileName: string; bytes: Uint8Array }> {
    const s = await session();
    // The user's name for the base (local files have none worth writing) goes into the config, the README and the
    // file name; checked before the adapter is read from the GPU.
    if (o.baseModel !== undefined) {
      const problem = typeof o.baseModel === 'string' ? baseModelNameProblem(o.baseModel) : 'the base model name is not text';
      if (problem) throw new FinetuneError('bad-input', problem);
    }
    const trained = await onGpu(s.ctx, () => s.adapterNow());
    // Without a name typed, the adapter's own is written: an imported file's is held to what a typed one is.
    const refusal = o.baseModel === undefined ? exportedBaseModelRefusal(trained.config.baseModel) : null;
    if (refusal) throw new FinetuneError('bad-input', refusal);
    const adapter = o.baseModel === undefined ? trained : withBaseModel(trained, o.baseModel);
    // A trained adapter's README says how it was trained; one imported from a Replicate training, that training; one
    // imported with a README that had a "Training" section, that section (other imported adapters have none).
    // Without a name asked for, the one the run was given (a restored run's record's), else the loaded model's.
    return adapterZip(adapter, s.baseConfig, { name: o.baseModel ?? s.baseModelName, full: o.full, step: o.step, training: s.trainingCard() });
  },

  /** Loads an adapter (PEFT folder or zip, Replicate's training_output.zip) as the current one, checked against the model. */
  async importAdapter(source: AdapterSource): Promise<ImportedAdapterInfo> {
    const s = await session();
    const base = s.baseConfig; // throws 'load a model first' before any file is read
    // A folder is named as the user picked it ("my-adapter"), and the paths in messages start from it: the page once
    // said "Loaded adapter_model.safetensors, adapter_config.json (adapter_model.safetensors)", the files twice over.
    const folder = source.kind === 'files' ? pickedFolderName(source.files) : null;
    const name = source.kind === 'zip' ? source.name : (folder ?? source.files.map((f) => f.name).join(', '));
    const where = source.kind === 'zip' ? source.name : (folder ?? 'the picked adapter folder');
    // A zip is read whole: by its size first, as the command line does (a 100 GB file was asked for whole).
    const input = source.kind === 'zip' ? await adapterZipBytes(source.name, source.bytes) : blobFileSet(source.files, where);
    const got = await importAdapterDetailed(input, { base, where });
    await onGpu(s.ctx, () => s.useImportedAdapter(got.adapter, importedTrainingCard(got.readme, source.kind === 'zip' ? (source.trainedOn ?? null) : null)));
    return importedAdapterInfo(got.adapter, name, [got.folder, got.weightsFile].filter(Boolean).join('/'), s.modelName);
  },

  async forgetImportedAdapter(): Promise<void> {
    (await existingSession())?.forgetImportedAdapter();
  },

  /** Validation loss of the current adapter (or the base model) on the validation set of these files. */
  async evaluateAdapter(hp: Record<string, unknown>, files: TrainFiles, onProgress?: (p: EvaluationProgress) => void): Promise<EvaluationResult> {
    const s = await session();
    return onGpu(s.ctx, () => s.evaluate(hp, files.train, files.validation, onProgress));
  },

  async stopEvaluation(): Promise<void> {
    (await existingSession())?.stopEvaluation();
  },

  /** Greedy completion of a prompt with the current adapter. */
  async generate(prompt: string, maxNewTokens: number): Promise<string> {
    const s = await session();
    return onGpu(s.ctx, () => s.generate(prompt, maxNewTokens));
  },

  async generateStream(prompt: string, options: GenerationOptions, onToken: (t: StreamedToken) => void, onPrompt?: (read: number, total: number) => void): Promise<GenerationOutcome> {
    const s = await session();
    return onGpu(s.ctx, () => s.generateStream(prompt, options, onToken, onPrompt));
  },

  /** Not queued behind the GPU: it only raises the flag the generation reads between tokens. */
  async stopGeneration(): Promise<void> {
    (await existingSession())?.stopGeneration();
  },

  async memory(): Promise<LedgerSnapshot | null> {
    return (await existingContext())?.ledger.snapshot() ?? null;
  },
} satisfies EngineApi;

installErrorTransfer();
Comlink.expose(api);
