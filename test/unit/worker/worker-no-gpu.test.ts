// The engine worker's calls that read only the run saved in this browser, the remembered kernel choices, the weight
// cache or the tokenizer answer on a page without a GPU device. They made a session for it, and a session needs a GPU
// context: where WebGPU had no adapter, refused a device or had lost it, the Training panel could not offer the run
// saved here, nor the GPU panel forget the kernel choices, nor the Dataset panel read a file; after a handled device
// loss, each made a new GPU device on the way. Here every request for a GPU context is counted, and refused.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import type { EngineApi } from '../../../src/worker/api.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { fileKernelTuningCache } from '../../../src/run/kernel-tuning.ts';
import { pointerRunStore } from '../../../src/run/run-store.ts';
import { loadDataset } from '../../../src/data/dataset.ts';
import { loadTokenizer } from '../../../src/data/tokenizer.ts';
import { opfsStoreFiles } from '../../../src/worker/opfs-store.ts';
import { commitFakeCheckpoint } from '../../helpers/fake-checkpoint.ts';
import { FakeOpfs } from '../../helpers/fake-opfs.ts';
import { resetWorkerState, startWorker } from '../../helpers/fake-worker.ts';

const h = await vi.hoisted(async () => (await import('../../helpers/fake-worker.ts')).workerTestState());

vi.mock('comlink', async (importOriginal) => (await import('../../helpers/fake-worker.ts')).fakeComlink(await importOriginal(), h));
vi.mock('../../../src/worker/error-transfer.ts', () => ({ installErrorTransfer: () => undefined }));
vi.mock('../../../src/engine/gpu.ts', async (importOriginal) => (await import('../../helpers/fake-worker.ts')).fakeGpuModule(await importOriginal(), h));

const TOKENIZER = readFileSync('test/fixtures/mistral-tokenizer/tokenizer.model');
const ROWS = '{"prompt":"Two and two?","completion":" Four."}\n{"prompt":"The capital of France?","completion":" Paris."}\n{"prompt":"Red and blue?","completion":" Purple."}\n';
const VALIDATION_ROWS = '{"prompt":"One and one?","completion":" Two."}\n';

/** This origin's private file system: a folder per name, as navigator.storage.getDirectory() gives them. */
let folders: Map<string, FakeOpfs>;
const folder = (name: string): FakeOpfs => {
  if (!folders.has(name)) folders.set(name, new FakeOpfs());
  return folders.get(name)!;
};
const storage = {
  getDirectory: async () => ({ getDirectoryHandle: async (name: string) => folder(name).dir() }),
  estimate: async () => ({ usage: 1024, quota: 1024 ** 3 }),
  persisted: async () => false,
};

let api: EngineApi;

beforeEach(async () => {
  resetWorkerState(h);
  folders = new Map();
  // A page whose GPU is absent, lost for good or refused: every request for one fails (and is counted).
  h.refuseGpu = new FinetuneError('no-webgpu', 'WebGPU is available but no GPU adapter was found');
  api = await startWorker(h, { navigator: { storage }, fetched: () => new Uint8Array(TOKENIZER) });
});

afterEach(() => {
  vi.unstubAllGlobals();
});

const runStore = () => pointerRunStore(opfsStoreFiles(folder('finetune-run').dir()));
const kernelCache = () => fileKernelTuningCache(opfsStoreFiles(folder('finetune-kernels').dir()));
const remembered = { gemm: 'tiled', attention: 'rows', lora: 'general', speedup: 1.5, measuredAt: '2025-01-15T09:30:00.000Z' } as const;

describe('without a GPU, the worker', () => {
  it('offers the run saved in this browser, with its files', async () => {
    await commitFakeCheckpoint(runStore(), 2, 4, { train: new TextEncoder().encode(ROWS), validation: null }, 'rows.jsonl');
    expect(await api.savedRun()).toMatchObject({ step: 2, trainName: 'rows.jsonl', modelSource: 'tiny-mistral' });
    // Its files are those a resume read under the run lock (session.savedRunFiles): with no session, none, and no device.
    const run = await api.savedRun();
    expect(await api.savedRunFiles({ step: 2, savedAt: run!.savedAt })).toBeNull();
    expect(h.gpuRequests).toBe(0);
  });

  it('says when no run is saved', async () => {
    expect(await api.savedRun()).toBeNull();
    expect(await api.savedRunFiles({ step: 1, savedAt: '2026-01-01T00:00:00.000Z' })).toBeNull();
    expect(h.gpuRequests).toBe(0);
  });

  it('forgets the run saved in this browser', async () => {
    await commitFakeCheckpoint(runStore(), 2, 4, { train: new TextEncoder().encode(ROWS), validation: null });
    const run = (await api.savedRun())!;
    await api.forgetSavedRun({ step: run.step, savedAt: run.savedAt });
    expect(await api.savedRun()).toBeNull();
    expect(await runStore().load('train.jsonl')).toBeNull();
    expect(h.gpuRequests).toBe(0);
  });

  it('lists and forgets the kernel choices remembered here', async () => {
    await kernelCache().put('{"gpu":["fake"]}', remembered);
    expect(await api.rememberedKernels()).toEqual(await kernelCache().list());
    expect(await api.rememberedKernels()).toHaveLength(1);
    await api.forgetRememberedKernels();
    expect(await api.rememberedKernels()).toEqual([]);
    expect(await kernelCache().list()).toEqual([]);
    expect(h.gpuRequests).toBe(0);
  });

  it('reads a dataset file as training will', async () => {
    const report = await api.inspectDataset(new Blob([ROWS]), 'rows.jsonl', 'replicate', 512);
    const read = await loadDataset(new Blob([ROWS]).stream(), { tokenizer: await loadTokenizer(new Uint8Array(TOKENIZER)), layout: 'replicate', maxSeqLen: 512 });
    expect(report).toMatchObject({ name: 'rows.jsonl', ok: true, summary: read.summary, omitted: 0, problems: [] });
    expect(report.rowLengths).toEqual(read.lengths);
    expect(h.gpuRequests).toBe(0);
  });

  it('plans a run', async () => {
    const stats = await api.planRun({ num_train_epochs: 2, train_batch_size: 1, micro_batch_size: 1, num_validation_samples: 1 }, new Blob([ROWS]), new Blob([VALIDATION_ROWS]));
    expect(stats).toMatchObject({ trainExamples: 3, validationExamples: 1, epochs: 2 });
    expect(stats.totalSteps).toBe(stats.stepsByEpoch.reduce((a, b) => a + b, 0));
    expect(stats.learningRates?.steps.at(-1)).toBe(stats.totalSteps);
    expect(h.gpuRequests).toBe(0);
  });

  it('refuses hyperparameters that break the schema, as a plan does', async () => {
    await expect(api.planRun({ train_batch_size: 3, micro_batch_size: 2 }, new Blob([ROWS]), null)).rejects.toMatchObject({ kind: 'bad-input' });
    expect(h.gpuRequests).toBe(0);
  });

  it('answers the calls that never needed one, as before', async () => {
    expect(await api.tokenize(['Hello'])).toEqual([(await loadTokenizer(new Uint8Array(TOKENIZER))).encode('Hello')]);
    expect((await api.encodeDataset(ROWS, 'replicate')).examples).toHaveLength(3);
    expect(await api.runElsewhere()).toBe(false);
    expect(await api.listCachedModels()).toEqual([]);
    expect(await api.storageInfo()).toEqual({ cacheUnavailable: null, usage: 1024, quota: 1024 ** 3, persisted: false });
    await api.deleteCachedModel('0'.repeat(40));
    expect(h.gpuRequests).toBe(0);
  });
});
