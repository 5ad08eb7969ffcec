// The engine worker opens the run store, the kernel-tuning cache and the weight cache (this origin's private file
// system, OPFS) once and shares them: the session and the calls that read or forget the saved run without one must use
// the same store (a forget runs inside the run lock, which a run of that store holds). An open that failed (the browser
// refused its storage for a moment, or the storage object threw) was kept as the answer for the worker's life, so the
// saved run and the remembered kernels stayed out of reach, and no load cached its weights, until the page was
// reloaded, even where the next open would have worked. Here the storage fails the first open(s), then works.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { EngineApi } from '../../../src/worker/api.ts';
import type { RunStore } from '../../../src/run/run-store.ts';
import { fileKernelTuningCache } from '../../../src/run/kernel-tuning.ts';
import { pointerRunStore } from '../../../src/run/run-store.ts';
import { opfsStoreFiles } from '../../../src/worker/opfs-store.ts';
import { commitFakeCheckpoint } from '../../helpers/fake-checkpoint.ts';
import { FakeOpfs } from '../../helpers/fake-opfs.ts';
import { resetWorkerState, startWorker } from '../../helpers/fake-worker.ts';

const h = await vi.hoisted(async () => ({
  ...(await import('../../helpers/fake-worker.ts')).workerTestState(),
  /** The store each session was made with. */
  sessionStores: [] as unknown[],
  /** The store each savedRunIn / forgetSavedRunIn call was given. */
  readStores: [] as unknown[],
  forgetStores: [] as unknown[],
  /** The weight cache the session had at each load. */
  loadCaches: [] as unknown[],
  /** The kernel-tuning cache the session had at each run and each estimate. */
  runKernelCaches: [] as unknown[],
}));

vi.mock('comlink', async (importOriginal) => (await import('../../helpers/fake-worker.ts')).fakeComlink(await importOriginal(), h));
vi.mock('../../../src/worker/error-transfer.ts', () => ({ installErrorTransfer: () => undefined }));
vi.mock('../../../src/engine/gpu.ts', async (importOriginal) => (await import('../../helpers/fake-worker.ts')).fakeGpuModule(await importOriginal(), h));

vi.mock('../../../src/run/saved-run.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../src/run/saved-run.ts')>();
  return {
    ...original,
    savedRunIn: (store: RunStore | null) => {
      h.readStores.push(store);
      return original.savedRunIn(store);
    },
    forgetSavedRunIn: (store: RunStore | null) => {
      h.forgetStores.push(store);
      return original.forgetSavedRunIn(store);
    },
  };
});

vi.mock('../../../src/run/session.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/run/session.ts')>()),
  FinetuneSession: class {
    weightCache = null;
    kernelCache = null;
    gpuMemoryBytes: number | null = null;
    /** What the worker gave for the store: the store (or null), or a function that opens it when asked. */
    constructor(
      _ctx: unknown,
      _tokenizer: unknown,
      private readonly store: RunStore | null | (() => Promise<RunStore | null>),
    ) {}
    async loadModel(): Promise<object> {
      h.loadCaches.push(this.weightCache);
      return { warnings: [] };
    }
    /** As the session's run does: the store it has when it runs, and a new run's checkpoint saved into it. */
    async train(_hp: unknown, files: { trainName: string } | null): Promise<object> {
      h.runKernelCaches.push(this.kernelCache);
      const store = typeof this.store === 'function' ? await this.store() : this.store;
      h.sessionStores.push(store);
      if (store && files) {
        const { commitFakeCheckpoint } = await import('../../helpers/fake-checkpoint.ts');
        await commitFakeCheckpoint(store, 2, 4, { train: new TextEncoder().encode('{"prompt":"a","completion":"b"}\n'), validation: null }, files.trainName);
      }
      return { steps: 2, skipped: 0, stopped: true, finalLoss: null, finalValLoss: null, seconds: 0 };
    }
  },
}));

vi.mock('../../../src/data/tokenizer.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/data/tokenizer.ts')>()),
  loadTokenizer: () => ({}),
}));

/** This origin's private file system: a folder per name. */
let folders: Map<string, FakeOpfs>;
const folder = (name: string): FakeOpfs => {
  if (!folders.has(name)) folders.set(name, new FakeOpfs());
  return folders.get(name)!;
};
/** How many opens of each folder were asked for. */
let opened: Map<string, number>;
/** While set, every open of these folders is refused (getDirectoryHandle throws). */
let refusedFolders: Set<string>;
/** The next this many getDirectory() calls are refused, as a browser refuses its storage (a private window, a moment's error). */
let refusals: number;
/** The next opens of these folders are refused, this many each (getDirectoryHandle throws, as a browser may). */
let folderRefusals: Map<string, number>;
/** The next this many reads of navigator.storage throw (the open's promise rejects rather than answering null). */
let throwingReads: number;

const storage = {
  getDirectory: async () => {
    if (refusals > 0) {
      refusals--;
      throw Object.assign(new Error('The request was denied.'), { name: 'SecurityError' });
    }
    return {
      getDirectoryHandle: async (name: string) => {
        if (refusedFolders.has(name)) throw Object.assign(new Error('The request was denied.'), { name: 'SecurityError' });
        const refused = folderRefusals.get(name) ?? 0;
        if (refused > 0) {
          folderRefusals.set(name, refused - 1);
          throw Object.assign(new Error('The request was denied.'), { name: 'SecurityError' });
        }
        opened.set(name, (opened.get(name) ?? 0) + 1);
        return folder(name).dir();
      },
    };
  },
  estimate: async () => ({ usage: 0, quota: 1024 ** 3 }),
  persisted: async () => false,
};
/** navigator.storage as the worker reads it, each time (startWorker copies the navigator it is given, getters read). */
function storageGetter(): typeof storage {
  if (throwingReads > 0) {
    throwingReads--;
    throw new Error('storage is not ready');
  }
  return storage;
}

let api: EngineApi;

beforeEach(async () => {
  resetWorkerState(h);
  h.sessionStores.length = 0;
  h.readStores.length = 0;
  h.forgetStores.length = 0;
  h.loadCaches.length = 0;
  h.runKernelCaches.length = 0;
  folderRefusals = new Map();
  refusedFolders = new Set();
  folders = new Map();
  opened = new Map();
  refusals = 0;
  throwingReads = 0;
  api = await startWorker(h);
  Object.defineProperty((self as unknown as { navigator: object }).navigator, 'storage', { get: storageGetter });
});

afterEach(() => {
  vi.unstubAllGlobals();
});

const runStore = () => pointerRunStore(opfsStoreFiles(folder('finetune-run').dir()));
const kernelCache = () => fileKernelTuningCache(opfsStoreFiles(folder('finetune-kernels').dir()));
const saveRun = () => commitFakeCheckpoint(runStore(), 2, 4, { train: new TextEncoder().encode('{"prompt":"a","completion":"b"}\n'), validation: null }, 'rows.jsonl');
const remembered = { gemm: 'tiled', attention: 'rows', lora: 'general', speedup: 1.5, measuredAt: '2025-01-15T09:30:00.000Z' } as const;

describe('a run store the browser refused once', () => {
  it('is opened again at the next call, which sees the saved run', async () => {
    await saveRun();
    refusals = 1;
    // Refused: no store, as a browser without OPFS answers (the page offers no saved run).
    expect(await api.savedRun()).toBeNull();
    expect(await api.savedRun()).toMatchObject({ step: 2, trainName: 'rows.jsonl' });
  });

  it('is opened again after a storage read that threw, which was no store (not a failed call)', async () => {
    await saveRun();
    throwingReads = 1;
    expect(await api.savedRun()).toBeNull();
    expect(await api.savedRun()).toMatchObject({ step: 2 });
  });

  it('once opened, is the one store of the session and of the saved-run calls, opened once', async () => {
    await saveRun();
    refusals = 1;
    expect(await api.savedRun()).toBeNull();
    expect(await api.savedRun()).toMatchObject({ step: 2 });
    await api.resumeSavedRun(() => undefined);
    await api.forgetSavedRun({ step: 2, savedAt: (await api.savedRun())!.savedAt });
    expect(await api.savedRun()).toBeNull();
    const store = h.readStores[1];
    expect(store).not.toBeNull();
    expect(h.sessionStores).toEqual([store]);
    expect(h.sessionStores[0]).toBe(store);
    expect(h.forgetStores).toHaveLength(1);
    expect(h.forgetStores[0]).toBe(store);
    expect(h.readStores[2]).toBe(store);
    expect(opened.get('finetune-run')).toBe(1);
  });

  it('opened by calls at once, is opened once', async () => {
    await saveRun();
    const [a, b] = await Promise.all([api.savedRun(), api.savedRun()]);
    expect(a).toMatchObject({ step: 2 });
    expect(b).toMatchObject({ step: 2 });
    expect(h.readStores[0]).toBe(h.readStores[1]);
    expect(opened.get('finetune-run')).toBe(1);
  });
});

describe('a session made while the browser refused the run store', () => {
  const files = { train: new Blob(['{"prompt":"a","completion":"b"}\n']), trainName: 'mine.jsonl', validation: null, validationName: null };

  it('saves the checkpoints of a run started once the store opens, into the store savedRun reads', async () => {
    refusedFolders.add('finetune-run');
    // The page's first look, and the session made by the load, while the browser refuses its storage.
    expect(await api.savedRun()).toBeNull();
    await api.loadModel({ kind: 'demo' }, 'none');
    refusedFolders.delete('finetune-run');
    await api.startTraining({}, files, () => undefined, null);
    expect(await api.savedRun()).toMatchObject({ step: 2, trainName: 'mine.jsonl' });
    // One store: the run's and savedRun's, opened once it could be.
    expect(h.sessionStores).toHaveLength(1);
    expect(h.sessionStores[0]).not.toBeNull();
    expect(h.sessionStores[0]).toBe(h.readStores[1]);
    expect(opened.get('finetune-run')).toBe(1);
  });

  it('a run while it is refused saves nothing; the next, once it opens, saves into it', async () => {
    refusedFolders.add('finetune-run');
    await api.startTraining({}, files, () => undefined, null);
    expect(h.sessionStores).toEqual([null]);
    refusedFolders.delete('finetune-run');
    expect(await api.savedRun()).toBeNull();
    await api.startTraining({}, files, () => undefined, null);
    expect(await api.savedRun()).toMatchObject({ step: 2, trainName: 'mine.jsonl' });
    expect(h.sessionStores[1]).toBe(h.readStores[1]);
  });
});

describe('a kernel-tuning cache the browser refused once', () => {
  it('is opened again at the next call, which lists and forgets the remembered kernels', async () => {
    await kernelCache().put('{"gpu":["fake"]}', remembered);
    refusals = 1;
    expect(await api.rememberedKernels()).toEqual([]);
    expect(await api.rememberedKernels()).toEqual(await kernelCache().list());
    expect(await api.rememberedKernels()).toHaveLength(1);
    await api.forgetRememberedKernels();
    expect(await kernelCache().list()).toEqual([]);
    expect(opened.get('finetune-kernels')).toBe(1);
  });

  it('is opened again after a storage read that threw, which was no cache (not a failed call)', async () => {
    await kernelCache().put('{"gpu":["fake"]}', remembered);
    throwingReads = 1;
    expect(await api.rememberedKernels()).toEqual([]);
    expect(await api.rememberedKernels()).toHaveLength(1);
  });
});

describe('a session made while the browser refused the kernel-tuning cache', () => {
  it('remembers the kernels of a run started once the cache opens, in the cache the GPU panel lists', async () => {
    refusedFolders.add('finetune-kernels');
    await api.loadModel({ kind: 'demo' }, 'none');
    const files = { train: new Blob(['{"prompt":"a","completion":"b"}\n']), trainName: 'mine.jsonl', validation: null, validationName: null };
    await api.startTraining({}, files, () => undefined, null);
    expect(h.runKernelCaches).toEqual([null]);
    refusedFolders.delete('finetune-kernels');
    await api.startTraining({}, files, () => undefined, null);
    expect(h.runKernelCaches[1]).not.toBeNull();
    // The one cache, opened once it could be: the run's choices land where rememberedKernels reads.
    await (h.runKernelCaches[1] as ReturnType<typeof kernelCache>).put('{"gpu":["fake"]}', remembered);
    expect(await api.rememberedKernels()).toHaveLength(1);
    expect(opened.get('finetune-kernels')).toBe(1);
  });
});

describe('a weight cache the browser refused once', () => {
  const notCached =
    "the weights are not cached: the browser refused its origin-private file system (The request was denied.), as private windows may; the next load reads them from the model's files again";

  it("is opened again at the next load, which caches the weights in it and says nothing of a cache; the refused load said so", async () => {
    folderRefusals.set('finetune-weights', 1);
    expect((await api.loadModel({ kind: 'demo' }, 'none')).warnings).toEqual([notCached]);
    expect(h.loadCaches).toEqual([null]);
    expect((await api.loadModel({ kind: 'demo' }, 'none')).warnings).toEqual([]);
    expect(h.loadCaches[1]).not.toBeNull();
    // One cache, opened once it could be: the session's loads and the Model panel's list use the same.
    expect(await api.listCachedModels()).toEqual([]);
    expect((await api.storageInfo()).cacheUnavailable).toBeNull();
    expect(opened.get('finetune-weights')).toBe(1);
  });

  it("says why in the Model panel's note while every storage read throws, with no usage, quota or persistence", async () => {
    throwingReads = 100;
    expect(await api.storageInfo()).toEqual({
      cacheUnavailable: 'the browser refused its origin-private file system (storage is not ready), as private windows may',
      usage: null,
      quota: null,
      persisted: null,
    });
  });

  it("is opened again for the Model panel's storage note", async () => {
    refusals = 1;
    expect((await api.storageInfo()).cacheUnavailable).toBe('the browser refused its origin-private file system (The request was denied.), as private windows may');
    expect((await api.storageInfo()).cacheUnavailable).toBeNull();
  });

  it('is opened again after a storage read that threw, which was a reason (not a failed call)', async () => {
    throwingReads = 1;
    expect((await api.storageInfo()).cacheUnavailable).toBe('the browser refused its origin-private file system (storage is not ready), as private windows may');
    expect(opened.get('finetune-weights')).toBeUndefined();
    expect((await api.storageInfo()).cacheUnavailable).toBeNull();
    expect(opened.get('finetune-weights')).toBe(1);
  });
});

// Forget names the run the page's box showed: every tab shares the store, so another may have saved a different run
// between the box being shown and the person confirming, and a Forget that named nothing deleted that run unseen.
describe('a Forget that names the run the box showed', () => {
  const rows = { train: new TextEncoder().encode('{"prompt":"a","completion":"b"}\n'), validation: null };
  const damage = () => runStore().commit({ 'run.json': new TextEncoder().encode('{not json') });

  it('is refused when the store holds another run now, which survives', async () => {
    // The box showed run A at step 2; another tab then saved run B (step 3) over it.
    await commitFakeCheckpoint(runStore(), 2, 4, rows, 'a.jsonl');
    const shown = (await api.savedRun())!;
    await commitFakeCheckpoint(runStore(), 3, 4, rows, 'b.jsonl');
    const refused = api.forgetSavedRun({ step: shown.step, savedAt: shown.savedAt });
    await expect(refused).rejects.toMatchObject({ kind: 'bad-input', details: { savedRunChanged: true, expected: { step: 2, savedAt: shown.savedAt } } });
    await expect(refused).rejects.toThrow('it now holds "b.jsonl" at step 3');
    await expect(refused).rejects.toThrow('Nothing was forgotten');
    expect(await api.savedRun()).toMatchObject({ step: 3, trainName: 'b.jsonl' });
    expect(await runStore().load('train.jsonl')).not.toBeNull();
    expect(h.forgetStores).toHaveLength(0);
  });

  it('is refused when nothing is saved any more', async () => {
    await expect(api.forgetSavedRun({ step: 2, savedAt: '2026-01-01T00:00:00.000Z' })).rejects.toMatchObject({ details: { savedRunChanged: true } });
    expect(h.forgetStores).toHaveLength(0);
  });

  it('forgets the run it names', async () => {
    await commitFakeCheckpoint(runStore(), 2, 4, rows, 'a.jsonl');
    const shown = (await api.savedRun())!;
    await api.forgetSavedRun({ step: shown.step, savedAt: shown.savedAt });
    expect(await api.savedRun()).toBeNull();
    expect(await runStore().load('train.jsonl')).toBeNull();
  });

  it('of a run that cannot be read: refused once the store holds a readable run, forgotten while it holds one', async () => {
    await commitFakeCheckpoint(runStore(), 2, 4, rows, 'a.jsonl');
    await damage();
    await expect(api.savedRun()).rejects.toMatchObject({ details: { damagedRun: true } });
    // Another tab saved a run it can read over it since the box showed the damaged one.
    await commitFakeCheckpoint(runStore(), 3, 4, rows, 'b.jsonl');
    await expect(api.forgetSavedRun({ damaged: true })).rejects.toMatchObject({ details: { savedRunChanged: true } });
    expect(await api.savedRun()).toMatchObject({ step: 3, trainName: 'b.jsonl' });
    await damage();
    await api.forgetSavedRun({ damaged: true });
    expect(await runStore().load('run.json')).toBeNull();
  });

  it('of a run that cannot be read: refused when nothing is saved', async () => {
    await expect(api.forgetSavedRun({ damaged: true })).rejects.toMatchObject({ details: { savedRunChanged: true } });
  });

  it('is refused when it names no run the page could have shown', async () => {
    await commitFakeCheckpoint(runStore(), 2, 4, rows, 'a.jsonl');
    await expect(api.forgetSavedRun({ step: 2 } as never)).rejects.toMatchObject({ kind: 'bad-input' });
    expect(await api.savedRun()).toMatchObject({ step: 2 });
  });
});
