// "Get the GPU back and resume" after a lost device: it continues the run that was lost, from that run's checkpoint.
// The store keeps an earlier run until a new run's first checkpoint, so a new run lost before that one must not be
// "resumed" by continuing the earlier run in its place.
import { describe, expect, it } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { runController } from '../../../src/ui/run-controller.ts';
import { Cell, RunCell, type DataState, type Engine, type FormState, type ModelState, type PlanState, type Shared } from '../../../src/ui/state.ts';
import type { LedgerSnapshot, ModelInfo, SavedRun, TrainResult } from '../../../src/worker/api.ts';

const earlier: SavedRun = {
  modelSource: 'mistral-nano-demo',
  quantization: 'nf4-double',
  hp: defaultHyperparams(),
  trainName: 'earlier.jsonl',
  validationName: null,
  step: 5,
  totalSteps: 10,
  history: [{ step: 5, loss: 1 }],
  savedAt: new Date(0).toISOString(),
};

function page(): { shared: Shared; calls: string[] } {
  const calls: string[] = [];
  const result: TrainResult = { steps: 5, skipped: 0, stopped: true, finalLoss: 1, finalValLoss: null, seconds: 1 };
  const engine = {
    recoverDevice: async () => (calls.push('recoverDevice'), { source: earlier.modelSource, quantization: earlier.quantization } as ModelInfo),
    savedRun: async () => (calls.push('savedRun'), earlier),
    savedRunFiles: async () => null,
    resumeSavedRun: async () => (calls.push('resumeSavedRun'), result),
    restoreSavedRun: async () => (calls.push('restoreSavedRun'), result),
  } as unknown as Engine;
  const model: ModelState = {
    status: 'ready',
    choice: { kind: 'demo', label: earlier.modelSource },
    quantization: earlier.quantization,
    info: { source: earlier.modelSource, quantization: earlier.quantization } as ModelInfo,
    progress: null,
    error: null,
    failure: null,
  };
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

describe('recoverAndResume', () => {
  it('does not continue the earlier saved run in place of a new run lost before its first checkpoint', async () => {
    const { shared, calls } = page();
    const restored: Record<string, unknown>[] = [];
    const control = runController(shared, { restoreForm: (hp) => restored.push(hp), showFiles: () => undefined });
    // A new run over the earlier one (its checkpoint kept until this run's first), lost at step 2 with none saved.
    shared.run.dispatch({ type: 'start', totalSteps: 8 });
    shared.run.dispatch({ type: 'event', event: { type: 'step', step: 2, totalSteps: 8, epoch: 0, loss: 1, lr: 1e-4, gradNorm: 1, tokens: 10, tokensPerSecond: 10, elapsedSeconds: 1, etaSeconds: 1 } });
    shared.run.dispatch({ type: 'failed', kind: 'device-lost', message: 'the device was lost' });
    const said: string[] = [];
    expect(await control.recoverAndResume((t) => said.push(t))).toBe(false);
    expect(calls).toContain('recoverDevice');
    expect(calls).not.toContain('resumeSavedRun');
    expect(restored).toEqual([]);
    expect(said.at(-1)).toMatch(/no checkpoint .*train again/);
  });

  it("continues a run lost after its checkpoint (or a resumed run) from that checkpoint", async () => {
    const { shared, calls } = page();
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    shared.run.dispatch({ type: 'resume', saved: earlier });
    shared.run.dispatch({ type: 'failed', kind: 'device-lost', message: 'the device was lost' });
    expect(await control.recoverAndResume(() => undefined)).toBe(true);
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toEqual(['recoverDevice', 'savedRun', 'resumeSavedRun']);
  });
});
