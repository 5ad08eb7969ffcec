// Stop pressed while a run is still starting (src/ui/run-controller.ts). The worker's session can only stop a run it
// has begun (session.stop() with no run going does nothing), and a start waits for an estimate in flight and reads the
// saved run first: a Stop in those moments reached the worker before the run, and the run then trained to its end
// while the page said "Stopping after the current step…".
import { describe, expect, it } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { runController } from '../../../src/ui/run-controller.ts';
import type { Shared } from '../../../src/ui/state.ts';
import type { DataStats, SavedRun, TrainEvent, TrainResult } from '../../../src/worker/api.ts';
import { fakeRunPage, type EngineFakes, type FakeRunPage } from '../../helpers/fake-run-page.ts';

const TOTAL = 4;

/** The run saved in this browser: a resume checks the store still holds the run it was offered. */
const SAVED = { modelSource: 'mistral-nano-demo', quantization: 'nf4-double', hp: defaultHyperparams(), trainName: 'train.jsonl', validationName: null, step: 1, totalSteps: TOTAL, history: [{ step: 1, loss: 1 }], savedAt: new Date(0).toISOString() } as SavedRun;

/** A worker whose session stops only a run it has begun, as FinetuneSession.stop does (this.control?.stop()). */
function worker(): { fakes: EngineFakes; begin(): void } {
  let control: { stopped: boolean } | null = null;
  let pending: { onEvent: (e: TrainEvent) => void; resolve: (r: TrainResult) => void; fromStep: number } | null = null;
  const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));
  const train = (onEvent: (e: TrainEvent) => void, fromStep: number): Promise<TrainResult> => new Promise((resolve) => (pending = { onEvent, resolve, fromStep }));
  const fakes: EngineFakes = {
    startTraining: async (_hp: unknown, _files: unknown, onEvent: (e: TrainEvent) => void) => train(onEvent, 0),
    resumeSavedRun: async (onEvent: (e: TrainEvent) => void) => train(onEvent, 1),
    savedRun: async () => SAVED,
    stopTraining: async () => {
      if (control) control.stopped = true;
    },
  };
  const begin = (): void => {
    const p = pending;
    if (!p) throw new Error('no run asked for');
    void (async () => {
      const c = (control = { stopped: false });
      p.onEvent({ type: 'plan', stats: { totalSteps: TOTAL } as DataStats, resumedAt: p.fromStep });
      let step = p.fromStep;
      for (; step < TOTAL && !c.stopped; ) {
        await tick();
        step++;
        p.onEvent({ type: 'step', step, totalSteps: TOTAL, epoch: 0, loss: 1, lr: 1e-4, gradNorm: 1, tokens: 10, tokensPerSecond: 100, elapsedSeconds: step, etaSeconds: TOTAL - step });
      }
      control = null;
      p.resolve({ steps: step, skipped: 0, stopped: c.stopped, finalLoss: 1, finalValLoss: null, seconds: step });
    })();
  };
  return { fakes, begin };
}

/** The page with the demo model loaded, a training file picked and its plan made, so that Train starts a run. */
function page(fakes: EngineFakes): FakeRunPage {
  const train = { file: new File(['{"text":"a"}\n'], 'train.jsonl'), report: null, status: 'ready', error: null } as const;
  return fakeRunPage(fakes, { data: { train, validation: null }, plan: { status: 'ready', stats: { totalSteps: TOTAL } as DataStats, error: null } });
}

const settled = async (shared: Shared): Promise<void> => {
  for (let i = 0; i < 50 && shared.run.value.phase === 'stopping'; i++) await new Promise((r) => setTimeout(r, 0));
};

describe('Stop while the run is starting', () => {
  it('stops the run once the worker has begun it, instead of letting it train to its end', async () => {
    const w = worker();
    const { shared, calls } = page(w.fakes);
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    control.start();
    control.stop();
    expect(shared.run.value.phase).toBe('stopping');
    await new Promise((r) => setTimeout(r, 0));
    // The worker begins the run after the stop reached it (it waited for an estimate, or for the run lock).
    w.begin();
    await settled(shared);
    expect(shared.run.value.phase).toBe('stopped');
    expect(shared.run.value.step).toBeLessThan(TOTAL);
    expect(calls.filter((c) => c === 'stopTraining').length).toBe(2);
  });

  it('stops a resumed run asked to stop while it read the saved run', async () => {
    const w = worker();
    const { shared, calls } = page(w.fakes);
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    expect(await control.resumeSaved(SAVED, () => undefined)).toBe(true);
    control.stop();
    await new Promise((r) => setTimeout(r, 0));
    w.begin();
    await settled(shared);
    expect(shared.run.value.phase).toBe('stopped');
    expect(shared.run.value.step).toBeLessThan(TOTAL);
  });

  it('asks the worker once when the run had begun before the stop', async () => {
    const w = worker();
    const { shared, calls } = page(w.fakes);
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    control.start();
    await new Promise((r) => setTimeout(r, 0));
    w.begin();
    await new Promise((r) => setTimeout(r, 0));
    expect(shared.run.value.phase).toBe('running');
    control.stop();
    await settled(shared);
    expect(shared.run.value.phase).toBe('stopped');
    expect(calls.filter((c) => c === 'stopTraining').length).toBe(1);
  });
});
