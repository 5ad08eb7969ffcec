// The engine worker's resumeSavedRun and restoreSavedRun hand the checkpoint the page offered to the session, and
// startTraining the saved run the page named as the one a new run replaces (or none); the session checks the saved
// record against it (src/run/session.ts): inside the run lock, so that no other tab of the page can save between that
// check and the run. The worker runs here over fakes (test/helpers/fake-worker.ts; the session records what it was
// asked and whether the lock was held); what is tested is the worker's wiring.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { EngineApi } from '../../../src/worker/api.ts';
import { resetWorkerState, startWorker } from '../../helpers/fake-worker.ts';

const h = await vi.hoisted(async () => ({
  ...(await import('../../helpers/fake-worker.ts')).workerTestState(),
  /** True while the fake Web Lock is held. */
  locked: false,
  /** Each train call: its options, and whether the run lock was held when it was made. */
  trains: [] as { options: Record<string, unknown>; locked: boolean }[],
  /** Set: a run goes on until this settles. */
  runGoesOn: null as Promise<void> | null,
}));

vi.mock('comlink', async (importOriginal) => (await import('../../helpers/fake-worker.ts')).fakeComlink(await importOriginal(), h));
vi.mock('../../../src/worker/error-transfer.ts', () => ({ installErrorTransfer: () => undefined }));
vi.mock('../../../src/engine/gpu.ts', async (importOriginal) => (await import('../../helpers/fake-worker.ts')).fakeGpuModule(await importOriginal(), h));

vi.mock('../../../src/run/session.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/run/session.ts')>()),
  FinetuneSession: class {
    weightCache = null;
    kernelCache = null;
    gpuMemoryBytes: number | null = null;
    async train(_hp: unknown, _files: unknown, _onEvent: unknown, options: Record<string, unknown>): Promise<object> {
      h.trains.push({ options, locked: h.locked });
      await h.runGoesOn;
      return { steps: 4, skipped: 0, stopped: true, finalLoss: null, finalValLoss: null, seconds: 0 };
    }
  },
}));

vi.mock('../../../src/data/tokenizer.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/data/tokenizer.ts')>()),
  loadTokenizer: () => ({}),
}));

/** navigator.locks as run-lock.ts uses it: one holder at a time. */
const locks = {
  async request<T>(_name: string, _o: { ifAvailable: true }, callback: (lock: unknown) => Promise<T>): Promise<T> {
    if (h.locked) return callback(null);
    h.locked = true;
    try {
      return await callback({});
    } finally {
      h.locked = false;
    }
  },
  async query(): Promise<{ held: { name: string }[] }> {
    return { held: h.locked ? [{ name: 'finetune-run' }] : [] };
  },
};

let api: EngineApi;

beforeEach(async () => {
  resetWorkerState(h);
  h.locked = false;
  h.trains.length = 0;
  h.runGoesOn = null;
  api = await startWorker(h, { navigator: { locks } });
});

afterEach(() => {
  vi.unstubAllGlobals();
});

const offered = { step: 4, savedAt: '2025-01-15T09:30:00.000Z' };

describe('a resume of the checkpoint the page offered', () => {
  it('resumeSavedRun hands it to the session, inside the run lock', async () => {
    await api.resumeSavedRun(() => undefined, offered);
    expect(h.trains).toEqual([{ options: { resume: true, expected: offered }, locked: true }]);
  });

  it('restoreSavedRun hands it to the session, inside the run lock', async () => {
    await api.restoreSavedRun(() => undefined, offered);
    expect(h.trains).toEqual([{ options: { resume: true, restoreOnly: true, expected: offered }, locked: true }]);
  });

  it('without one, the session continues whatever run is saved', async () => {
    await api.resumeSavedRun(() => undefined);
    expect(h.trains).toEqual([{ options: { resume: true, expected: undefined }, locked: true }]);
  });
});

// A new run replaces the run saved in this browser: the page names what it asked the person about (the run saved then,
// or none), and the session checks the store still holds exactly that, inside the same lock.
describe('a new run over the saved run the page named', () => {
  const files = { train: new Blob(['{"text":"a"}\n']), trainName: 'train.jsonl', validation: null, validationName: null };

  it('startTraining hands the run named to the session, inside the run lock', async () => {
    await api.startTraining({}, files, () => undefined, offered);
    expect(h.trains).toEqual([{ options: { replaces: offered }, locked: true }]);
  });

  it('startTraining hands "none saved" over as null', async () => {
    await api.startTraining({}, files, () => undefined, null);
    expect(h.trains).toEqual([{ options: { replaces: null }, locked: true }]);
  });

  it('without one, the session checks nothing (it starts over whatever is saved, as before)', async () => {
    await api.startTraining({}, files, () => undefined);
    expect(h.trains).toEqual([{ options: { replaces: undefined }, locked: true }]);
  });
});

// The saved run is read and forgotten without a session (and its GPU device); a forget still goes through the run lock,
// which a run of this worker holds while it goes, so that it cannot take the data and checkpoints from under the run.
describe('forgetting the saved run while a run of this worker goes', () => {
  const files = { train: new Blob(['{"text":"a"}\n']), trainName: 'train.jsonl', validation: null, validationName: null };

  it('is refused until the run ends', async () => {
    let end = (): void => undefined;
    h.runGoesOn = new Promise((resolve) => (end = resolve));
    const run = api.startTraining({}, files, () => undefined, null);
    await vi.waitFor(() => expect(h.trains).toHaveLength(1));
    await expect(api.forgetSavedRun(offered)).rejects.toThrow('a training run is already going');
    end();
    await run;
    // Past the lock now, it reaches the check of the run it names: this worker has no store (no OPFS here), so none is
    // saved and that is what refuses it (worker-storage-retry.test.ts forgets over a store).
    await expect(api.forgetSavedRun(offered)).rejects.toMatchObject({ details: { savedRunChanged: true } });
  });
});
