// The engine worker (src/worker/worker.ts) after a lost GPU device: the call that met the loss drops the device and the
// session on it (dropGpu), so that the next GPU call makes a new device instead of failing on the dead one for good, and
// a run going on in that session (paused, here) ends with the loss instead of waiting for a Resume that cannot reach it.
// The worker runs here over fakes (test/helpers/fake-worker.ts: a GPU context per GpuContext.create, counted) and a
// session whose GPU work fails with 'device-lost'. What is tested is the worker's wiring, not the GPU.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { EngineApi, TrainFiles } from '../../../src/worker/api.ts';
import { resetWorkerState, startWorker } from '../../helpers/fake-worker.ts';

/** What the fakes share with the tests: the exposed api, every context and session the worker made, and its calls on them. */
const h = await vi.hoisted(async () => ({
  ...(await import('../../helpers/fake-worker.ts')).workerTestState(),
  sessions: [] as { gpuMemoryBytes: number | null }[],
  calls: [] as string[],
  /** Set: train is a run paused between steps, waiting at its control's pause point (as session.train's does). */
  pausedRun: false,
  /** Set: an estimate answers (a session's GPU work that succeeds) instead of meeting a lost device. */
  estimates: false,
}));

vi.mock('comlink', async (importOriginal) => (await import('../../helpers/fake-worker.ts')).fakeComlink(await importOriginal(), h));
vi.mock('../../../src/worker/error-transfer.ts', () => ({ installErrorTransfer: () => undefined }));
vi.mock('../../../src/engine/gpu.ts', async (importOriginal) => (await import('../../helpers/fake-worker.ts')).fakeGpuModule(await importOriginal(), h));

/** What the GPU says once its device is gone (GpuContext.check). */
async function lost(): Promise<never> {
  const { FinetuneError } = await import('../../../src/core/errors.ts');
  throw new FinetuneError('device-lost', 'the GPU device was lost (unknown): test');
}

vi.mock('../../../src/run/session.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/run/session.ts')>()),
  // Every call that would run on the GPU meets a lost device; the rest answer as a session with no model does, and
  // those that act on a run, a generation or a validation loss going on are only recorded.
  FinetuneSession: class {
    /** The (fake) GPU context the worker made the session on: the device its calls run on. */
    constructor(readonly ctx: object) {
      h.sessions.push(this);
    }
    weightCache = null;
    kernelCache = null;
    gpuMemoryBytes: number | null = null;
    model = null;
    modelName = 'tiny-mistral';
    baseConfig = {};
    loadModel = lost;
    estimate = async (): Promise<object> => (h.estimates ? {} : lost());
    evaluate = lost;
    generate = lost;
    generateStream = lost;
    /** The paused run's control (h.pausedRun), which deviceLost tells as session.deviceLost tells the run's. */
    control: import('../../../src/run/trainer.ts').TrainControl | null = null;
    train = async (): Promise<never> => {
      if (!h.pausedRun) return lost();
      const { TrainControl } = await import('../../../src/run/trainer.ts');
      const control = (this.control = new TrainControl());
      control.onPaused = () => void h.calls.push('paused');
      control.pause();
      await control.pausePoint();
      throw new Error('the paused run went on without a Resume');
    };
    deviceLost = (e: import('../../../src/core/errors.ts').FinetuneError): void => {
      h.calls.push('deviceLost');
      this.control?.lose(e);
    };
    adapterNow = lost;
    useImportedAdapter = lost;
    trainingCard = (): null => null;
    pause = (): void => void h.calls.push('pause');
    resume = async (): Promise<void> => void h.calls.push('resume');
    stop = (): void => void h.calls.push('stop');
    stopGeneration = (): void => void h.calls.push('stopGeneration');
    stopEvaluation = (): void => void h.calls.push('stopEvaluation');
    forgetEstimate = (): void => void h.calls.push('forgetEstimate');
    forgetImportedAdapter = (): void => void h.calls.push('forgetImportedAdapter');
  },
}));

vi.mock('../../../src/run/selftest.ts', () => ({ checkMatmul: lost }));
vi.mock('../../../src/run/check.ts', () => ({ runGoldenCheck: lost }));
vi.mock('../../../src/model/source.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/model/source.ts')>()),
  httpSource: async () => ({}),
}));
vi.mock('../../../src/model/adapter-import.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/model/adapter-import.ts')>()),
  adapterZipBytes: async () => new Uint8Array(0),
  importAdapterDetailed: async () => ({ adapter: {}, readme: null, folder: null, weightsFile: 'adapter_model.safetensors' }),
}));
vi.mock('../../../src/data/tokenizer.ts', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/data/tokenizer.ts')>()),
  loadTokenizer: () => ({}),
}));

let api: EngineApi;

beforeEach(async () => {
  resetWorkerState(h);
  h.sessions.length = 0;
  h.calls.length = 0;
  h.pausedRun = false;
  h.estimates = false;
  // No OPFS: the worker's navigator has WebGPU only.
  api = await startWorker(h);
});

afterEach(() => {
  vi.unstubAllGlobals();
});

/** Lets the dropped device's destroyDevice (chained on its context's promise) run. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

/** Whether `p` has settled once the pending callbacks ran, and how: a run that never ends reads 'pending'. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  const pending = new Promise((r) => setTimeout(() => r('pending'), 20));
  return Promise.race([p.then(() => 'resolved', (e: unknown) => e), pending]);
}

const data = new Blob(['{"text":"a"}\n']);
const files: TrainFiles = { train: data, trainName: 'train.jsonl', validation: null, validationName: null };

/** Each worker call that runs on the GPU, as the page makes it. */
const gpuCalls: [string, (a: EngineApi) => Promise<unknown>][] = [
  ['selfTestMatmul', (a) => a.selfTestMatmul()],
  ['goldenCheck', (a) => a.goldenCheck('nf4')],
  ['loadModel', (a) => a.loadModel({ kind: 'demo' }, 'nf4-double')],
  ['estimateRun', (a) => a.estimateRun({}, data, null)],
  ['startTraining', (a) => a.startTraining({}, files, () => undefined)],
  ['resumeSavedRun', (a) => a.resumeSavedRun(() => undefined)],
  ['restoreSavedRun', (a) => a.restoreSavedRun(() => undefined)],
  ['exportAdapterZip', (a) => a.exportAdapterZip({ full: false, step: 4 })],
  ['importAdapter', (a) => a.importAdapter({ kind: 'zip', name: 'adapter.zip', bytes: new Uint8Array(0) })],
  ['evaluateAdapter', (a) => a.evaluateAdapter({}, files)],
  ['generate', (a) => a.generate('Hello', 4)],
  ['generateStream', (a) => a.generateStream('Hello', { maxNewTokens: 4 }, () => undefined)],
];

describe('a device lost in a worker call', () => {
  it.each(gpuCalls)('%s drops it, and the next call makes a new device', async (_name, call) => {
    await expect(call(api)).rejects.toMatchObject({ kind: 'device-lost' });
    await settle();
    expect(h.contexts).toHaveLength(1);
    expect(h.contexts[0].destroyed).toBe(true);
    // Kept, the dead device failed this call and every later one the same way.
    await expect(call(api)).rejects.toMatchObject({ kind: 'device-lost' });
    expect(h.contexts).toHaveLength(2);
  });
});

/** Each worker call that only acts on the session there is (or reads its device), and what it answers without one. */
const sessionCalls: [string, (a: EngineApi) => Promise<unknown>, unknown][] = [
  ['pauseTraining', (a) => a.pauseTraining(), undefined],
  ['resumeTraining', (a) => a.resumeTraining(), undefined],
  ['stopTraining', (a) => a.stopTraining(), undefined],
  ['stopGeneration', (a) => a.stopGeneration(), undefined],
  ['stopEvaluation', (a) => a.stopEvaluation(), undefined],
  ['forgetEstimate', (a) => a.forgetEstimate(), undefined],
  ['forgetImportedAdapter', (a) => a.forgetImportedAdapter(), undefined],
  ['setGpuMemory', (a) => a.setGpuMemory(8), undefined],
  ['currentModel', (a) => a.currentModel(), null],
  ['memory', (a) => a.memory(), null],
];

describe('a call that acts on the session there is', () => {
  it.each(sessionCalls)('%s makes no device when there is none', async (_name, call, nothing) => {
    await expect(call(api)).resolves.toBe(nothing);
    expect(h.contexts).toHaveLength(0);
  });

  it.each(sessionCalls)('%s makes no new device after a lost one', async (_name, call, nothing) => {
    await expect(api.generateStream('Hello', { maxNewTokens: 4 }, () => undefined)).rejects.toMatchObject({ kind: 'device-lost' });
    // A Stop pressed as the run failed, the memory shown after it: a new device for them was made for nothing, and
    // its empty ledger was shown as this GPU's memory.
    await expect(call(api)).resolves.toBe(nothing);
    expect(h.contexts).toHaveLength(1);
    expect(h.sessions).toHaveLength(1);
  });

  it('reaches the session there is, also while it is being made', async () => {
    // The session is made by the first call that needs one (a training run, here an estimate); a Pause pressed
    // meanwhile waits for it.
    h.estimates = true;
    const estimating = api.estimateRun({}, data, null);
    await api.pauseTraining();
    await estimating;
    await api.resumeTraining();
    await api.stopTraining();
    await api.stopGeneration();
    await api.stopEvaluation();
    await api.forgetEstimate();
    await api.forgetImportedAdapter();
    await api.setGpuMemory(8);
    expect(h.calls).toEqual(['pause', 'resume', 'stop', 'stopGeneration', 'stopEvaluation', 'forgetEstimate', 'forgetImportedAdapter']);
    expect(h.sessions).toHaveLength(1);
    expect(h.sessions[0].gpuMemoryBytes).toBe(8 * 1024 ** 3);
    expect(await api.currentModel()).toBeNull();
    expect(await api.memory()).toMatchObject({ currentBytes: 0, peakBytes: 0 });
    expect(h.contexts).toHaveLength(1);
  });
});

/** Each worker call that reads only the run store, the kernel cache or the tokenizer, and its answer without OPFS. */
const storeCalls: [string, (a: EngineApi) => Promise<unknown>, unknown][] = [
  ['savedRun', (a) => a.savedRun(), null],
  ['savedRunFiles', (a) => a.savedRunFiles({ step: 1, savedAt: '2026-01-01T00:00:00.000Z' }), null],
  // Without OPFS no run is saved: a Forget naming one is refused for that (details.savedRunChanged), with no device.
  ['forgetSavedRun', (a) => a.forgetSavedRun({ step: 1, savedAt: '2026-01-01T00:00:00.000Z' }).then(() => 'forgotten', (e: { details?: { savedRunChanged?: boolean } }) => e.details?.savedRunChanged), true],
  ['rememberedKernels', (a) => a.rememberedKernels(), []],
  ['forgetRememberedKernels', (a) => a.forgetRememberedKernels(), undefined],
];

describe('a call that needs no GPU', () => {
  it.each(storeCalls)('%s makes no new device after a lost one', async (_name, call, answer) => {
    await expect(api.generateStream('Hello', { maxNewTokens: 4 }, () => undefined)).rejects.toMatchObject({ kind: 'device-lost' });
    // Each went through a session: after the loss, a new one on a new GPU device, to read a file of this browser's.
    await expect(call(api)).resolves.toEqual(answer);
    expect(h.contexts).toHaveLength(1);
    expect(h.sessions).toHaveLength(1);
  });
});

describe('the GPU probe', () => {
  it('answers for a live device: one lost that no call has met yet is dropped for a new one', async () => {
    await expect(api.probe()).resolves.toMatchObject({ ok: true });
    // device.lost resolved (a driver reset, the browser's GPU process restarted) while nothing ran on it: the probe
    // said "GPU ready" for a dead device, and the GPU panel's checks that followed failed on it.
    h.contexts[0].lose();
    await expect(api.probe()).resolves.toMatchObject({ ok: true, report: { vendor: 'fake' } });
    await settle();
    expect(h.contexts).toHaveLength(2);
    expect(h.contexts[0].destroyed).toBe(true);
    expect(h.contexts[1].lossError()).toBeNull();
    // The next call uses the probed device.
    await api.probe();
    expect(h.contexts).toHaveLength(2);
  });

  it('ends a run going on a device it finds lost', async () => {
    h.pausedRun = true;
    const run = api.startTraining({}, files, () => undefined);
    await settle();
    h.contexts[0].lose();
    await api.probe();
    expect(await outcome(run)).toMatchObject({ kind: 'device-lost', message: 'the GPU device was lost (unknown): test' });
  });

  it('says why no device can be had, in words, whatever was thrown', async () => {
    h.refuseGpu = 'the adapter went away';
    await expect(api.probe()).resolves.toEqual({ ok: false, reason: 'the adapter went away' });
    h.refuseGpu = Object.create(null);
    await expect(api.probe()).resolves.toEqual({ ok: false, reason: 'a thrown value that has no text' });
  });
});

describe('a run going on when another call meets a lost device', () => {
  /** Each call the page may make while a run is paused, which then meets the lost device. */
  const whilePaused = gpuCalls.filter(([name]) => ['estimateRun', 'exportAdapterZip', 'generate', 'generateStream'].includes(name));

  it.each(whilePaused)('ends the paused run with the loss when %s drops the device', async (_name, call) => {
    h.pausedRun = true;
    const run = api.startTraining({}, files, () => undefined);
    await settle();
    expect(h.calls).toEqual(['paused']);
    await expect(call(api)).rejects.toMatchObject({ kind: 'device-lost' });
    // The page's Resume then found no session and did nothing, and the run waited at its pause point for good: the page
    // showed it running with no step and no failure, its adapter past the checkpoint silently gone.
    expect(await outcome(run)).toMatchObject({ kind: 'device-lost', message: 'the GPU device was lost (unknown): test' });
    expect(h.calls).toEqual(['paused', 'deviceLost']);
    // Its end lets the run lock go: the page's "Get the GPU back and resume" continues from the checkpoint on a new device.
    h.pausedRun = false;
    await expect(api.resumeSavedRun(() => undefined)).rejects.toMatchObject({ kind: 'device-lost' });
    expect(h.contexts).toHaveLength(2);
  });

  it('ends it also when the device is given up for a new one', async () => {
    h.pausedRun = true;
    const run = api.startTraining({}, files, () => undefined);
    await settle();
    await api.recoverDevice();
    expect(await outcome(run)).toMatchObject({ kind: 'device-lost', message: 'the GPU device was replaced by a new one (Get the GPU back) while the run was going on it' });
    await settle();
    // The run failed after the new device was made: its failure drops its own device, not the new one (dropped too,
    // the new device would have taken the model recoverDevice loads on it along).
    expect(h.contexts).toHaveLength(2);
    expect(h.contexts[0].destroyed).toBe(true);
    expect(h.contexts[1].destroyed).toBe(false);
    await api.probe();
    expect(h.contexts).toHaveLength(2);
  });
});
