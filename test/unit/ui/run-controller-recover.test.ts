// "Get the GPU back and resume" after a lost device: it continues the run that was lost, from that run's checkpoint.
// The store keeps an earlier run until a new run's first checkpoint, so a new run lost before that one must not be
// "resumed" by continuing the earlier run in its place.
import { describe, expect, it } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { runController } from '../../../src/ui/run-controller.ts';
import type { ModelInfo, SavedRun, TrainResult } from '../../../src/worker/api.ts';
import { fakeRunPage, type FakeRunPage } from '../../helpers/fake-run-page.ts';

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

function page(): FakeRunPage {
  const result: TrainResult = { steps: 5, skipped: 0, stopped: true, finalLoss: 1, finalValLoss: null, seconds: 1 };
  return fakeRunPage({
    recoverDevice: async () => ({ source: earlier.modelSource, quantization: earlier.quantization }) as ModelInfo,
    savedRun: async () => earlier,
    resumeSavedRun: async () => result,
    restoreSavedRun: async () => result,
  });
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
