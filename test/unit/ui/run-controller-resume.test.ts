// Resume after Pause, on the page (src/ui/run-controller.ts): the worker lets the run go only once what reads its
// adapter (an export, Try it) has ended, so the page says "resuming" until engine.resumeTraining settles, not "running".
import { describe, expect, it } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { runController } from '../../../src/ui/run-controller.ts';
import { Cell, RunCell, type DataState, type Engine, type FormState, type ModelState, type PlanState, type Shared } from '../../../src/ui/state.ts';
import type { DataStats, LedgerSnapshot } from '../../../src/worker/api.ts';

function page(resumeTraining: () => Promise<void>): { shared: Shared; calls: string[] } {
  const calls: string[] = [];
  const engine = {
    pauseTraining: async () => void calls.push('pauseTraining'),
    resumeTraining: () => (calls.push('resumeTraining'), resumeTraining()),
  } as unknown as Engine;
  const model: ModelState = { status: 'none', choice: null, quantization: 'nf4-double', info: null, progress: null, error: null, failure: null };
  const shared: Shared = {
    engine,
    gpuReady: Promise.resolve(true),
    form: new Cell<FormState>({ raw: {}, hp: defaultHyperparams(), errors: {} }),
    model: new Cell(model),
    data: new Cell<DataState>({ train: null, validation: null }),
    plan: new Cell<PlanState>({ stats: null, error: null } as unknown as PlanState),
    run: new RunCell(),
    memory: new Cell<LedgerSnapshot | null>(null),
    runElsewhere: new Cell(false),
    refreshMemory: () => undefined,
    loadModel: async () => null,
  };
  return { shared, calls };
}

/** A run paused after step 2 (the worker said the pause took effect). */
function paused(shared: Shared): void {
  shared.run.dispatch({ type: 'start', totalSteps: 4 });
  shared.run.dispatch({ type: 'event', event: { type: 'plan', stats: { totalSteps: 4 } as DataStats, resumedAt: 0 } });
  shared.run.dispatch({ type: 'pause' });
  shared.run.dispatch({ type: 'event', event: { type: 'paused', step: 2 } });
}

describe('Resume while the adapter is being read', () => {
  it('says "resuming" until the worker lets the run go, then "running"', async () => {
    let letGo!: () => void;
    const { shared, calls } = page(() => new Promise<void>((r) => (letGo = r)));
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    paused(shared);
    expect(shared.run.value.phase).toBe('paused');
    control.unpause();
    expect(calls).toEqual(['resumeTraining']);
    // The export still reads the adapter: the worker holds the run.
    await new Promise((r) => setTimeout(r, 0));
    expect(shared.run.value.phase).toBe('resuming');
    // A second press does nothing (the button is disabled meanwhile), nor does Pause.
    control.unpause();
    control.pause();
    expect(calls).toEqual(['resumeTraining']);
    letGo();
    await new Promise((r) => setTimeout(r, 0));
    expect(shared.run.value.phase).toBe('running');
  });

  it('does not stay "resuming" when the worker could not be asked', async () => {
    const { shared } = page(() => Promise.reject(new Error('the worker is gone')));
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    paused(shared);
    control.unpause();
    await new Promise((r) => setTimeout(r, 0));
    expect(shared.run.value.phase).toBe('running');
  });
});
