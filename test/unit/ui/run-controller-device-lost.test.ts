// A run whose GPU device is lost (src/ui/run-controller.ts): the worker drops the dead device and the session on it
// (worker.ts dropGpu), the model and the adapter with them, so the page must stop saying they are there: Export, Try it
// and Train again were offered for a model and an adapter the worker no longer had ("there is no trained adapter yet:
// train first", "load a model first"). "Get the GPU back and resume" loads the model again, and the page says so.
import { describe, expect, it } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { runController } from '../../../src/ui/run-controller.ts';
import { notReadyReason } from '../../../src/ui/training-panel.ts';
import type { DataState, Engine } from '../../../src/ui/state.ts';
import type { DataStats, ModelInfo, SavedRun, TrainEvent, TrainResult } from '../../../src/worker/api.ts';
import { demoModel, fakeRunPage, type FakeRunPage } from '../../helpers/fake-run-page.ts';

const info = { source: 'mistral-nano-demo', quantization: 'nf4-double', seconds: 2, warnings: [] } as unknown as ModelInfo;

const saved: SavedRun = {
  modelSource: 'mistral-nano-demo',
  quantization: 'nf4-double',
  hp: defaultHyperparams(),
  trainName: 'train.jsonl',
  validationName: null,
  step: 2,
  totalSteps: 4,
  history: [{ step: 2, loss: 1 }],
  savedAt: new Date(0).toISOString(),
};

function page(): FakeRunPage {
  const step = (n: number): TrainEvent => ({ type: 'step', step: n, totalSteps: 4, epoch: 0, loss: 1, lr: 1e-4, gradNorm: 1, tokens: 10, tokensPerSecond: 10, elapsedSeconds: n, etaSeconds: 4 - n });
  const train = { file: new File(['{"text":"a"}\n'], 'train.jsonl'), report: { ok: true }, status: 'ready', error: null } as unknown as DataState['train'];
  return fakeRunPage(
    {
      startTraining: async (_hp: unknown, _files: unknown, onEvent: (e: TrainEvent) => void): Promise<TrainResult> => {
        onEvent({ type: 'plan', stats: { totalSteps: 4 } as DataStats, resumedAt: 0 });
        onEvent(step(1));
        onEvent(step(2));
        onEvent({ type: 'checkpoint', step: 2, savedAt: saved.savedAt });
        onEvent(step(3));
        throw new FinetuneError('device-lost', 'the GPU device was lost (unknown): the GPU process restarted');
      },
      recoverDevice: async () => ({ ...info, seconds: 3 }),
      savedRun: async () => saved,
      resumeSavedRun: () => new Promise<TrainResult>(() => undefined),
    },
    {
      model: demoModel(info),
      form: { raw: {}, hp: { ...defaultHyperparams(), quantization: 'nf4-double' }, errors: {} },
      data: { train, validation: null },
      plan: { status: 'ready', stats: { totalSteps: 4 } as DataStats, error: null },
    },
  );
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));
/** A start ends after a few turns: the estimate in flight, the other-tab check, then the worker's call. */
const settled = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await tick();
};

describe('a run whose GPU device was lost', () => {
  it('no longer offers the adapter and the model that went with the device', async () => {
    const { shared } = page();
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    expect(notReadyReason(shared)).toBeNull();
    control.start();
    await settled();
    expect(shared.run.value).toMatchObject({ phase: 'error', step: 3, checkpointStep: 2, outcome: { kind: 'failed', errorKind: 'device-lost' } });
    // Export and Try it read hasAdapter; the worker's adapter was on the lost device.
    expect(shared.run.value.hasAdapter).toBe(false);
    expect(shared.model.value.status).toBe('error');
    expect(shared.model.value.error).toMatchObject({ kind: 'device-lost', lostWithDevice: true });
    expect(shared.model.value.choice).toEqual({ kind: 'demo', label: 'mistral-nano-demo' });
    expect(notReadyReason(shared)).toBe('Load a model first (Model panel).');
  });

  it('says the model is loaded again once the GPU is back, and resumes on it without loading it twice', async () => {
    const { shared, calls } = page();
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    control.start();
    await settled();
    expect(await control.recoverAndResume(() => undefined)).toBe(true);
    expect(shared.model.value).toMatchObject({ status: 'ready', choice: { kind: 'demo', label: 'mistral-nano-demo' }, info: { source: 'mistral-nano-demo', seconds: 3 }, error: null });
    await settled();
    expect(calls).toEqual(['startTraining', 'recoverDevice', 'savedRun', 'resumeSavedRun']);
    expect(shared.run.value.phase).toBe('starting');
  });

  it('a failure of another kind keeps the adapter and the model (the worker still has both)', async () => {
    const { shared } = page();
    shared.engine.startTraining = (async (_hp: unknown, _files: unknown, onEvent: (e: TrainEvent) => void) => {
      onEvent({ type: 'plan', stats: { totalSteps: 4 } as DataStats, resumedAt: 0 });
      onEvent({ type: 'step', step: 1, totalSteps: 4, epoch: 0, loss: 1, lr: 1e-4, gradNorm: 1, tokens: 10, tokensPerSecond: 10, elapsedSeconds: 1, etaSeconds: 3 });
      throw new FinetuneError('bad-input', 'the checkpoint at step 2 could not be saved: QuotaExceededError');
    }) as unknown as Engine['startTraining'];
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    control.start();
    await settled();
    expect(shared.run.value).toMatchObject({ phase: 'error', hasAdapter: true });
    expect(shared.model.value.status).toBe('ready');
  });
});

describe('a time estimate whose GPU device was lost', () => {
  it('no longer offers the model, nor the adapter of the run before it (both went with the device)', async () => {
    const { shared } = page();
    shared.engine.estimateRun = (async () => {
      throw new FinetuneError('device-lost', 'the GPU device was lost (unknown): the driver reset');
    }) as unknown as Engine['estimateRun'];
    shared.run.dispatch({ type: 'start', totalSteps: 4 });
    shared.run.dispatch({ type: 'event', event: { type: 'plan', stats: { totalSteps: 4 } as DataStats, resumedAt: 0 } });
    shared.run.dispatch({ type: 'finished', result: { steps: 4, skipped: 0, stopped: false, finalLoss: 1, finalValLoss: null, seconds: 4 } });
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    await expect(control.estimate()).rejects.toMatchObject({ kind: 'device-lost' });
    await tick();
    expect(shared.model.value).toMatchObject({ status: 'error', info: null, error: { kind: 'device-lost', lostWithDevice: true } });
    expect(shared.run.value).toMatchObject({ phase: 'done', hasAdapter: false });
    expect(notReadyReason(shared)).toBe('Load a model first (Model panel).');
  });

  it('a failure of another kind leaves them', async () => {
    const { shared } = page();
    shared.engine.estimateRun = (async () => {
      throw new FinetuneError('out-of-memory', 'the measured step did not fit');
    }) as unknown as Engine['estimateRun'];
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    await expect(control.estimate()).rejects.toMatchObject({ kind: 'out-of-memory' });
    await tick();
    expect(shared.model.value.status).toBe('ready');
  });
});
