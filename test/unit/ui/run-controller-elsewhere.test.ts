// "Resume from step N" (and the saved-run box, and "Get the GPU back and resume") while another tab of the page holds
// the saved run (src/worker/run-lock.ts): the worker refuses the resume, so the page must not first take this tab's run
// apart (its form, its files, its stopped run and adapter) for a run it cannot have.
import { describe, expect, it } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { runController } from '../../../src/ui/run-controller.ts';
import type { DataState, Shared } from '../../../src/ui/state.ts';
import type { DataStats, ModelInfo, SavedRun } from '../../../src/worker/api.ts';
import { fakeRunPage, type FakeRunPage } from '../../helpers/fake-run-page.ts';

/** The run saved in this browser now: the other tab resumed this tab's run and saved step 6. */
const theirs: SavedRun = {
  modelSource: 'mistral-nano-demo',
  quantization: 'nf4-double',
  hp: { ...defaultHyperparams(), learning_rate: 3e-4 },
  trainName: 'theirs.jsonl',
  validationName: null,
  step: 6,
  totalSteps: 8,
  history: [{ step: 6, loss: 1 }],
  savedAt: new Date(0).toISOString(),
};

function page(): FakeRunPage {
  const refused = (): Promise<never> => Promise.reject(new FinetuneError('bad-input', 'another tab of this page is training (or changing the run saved in this browser)'));
  return fakeRunPage({
    runElsewhere: async () => true,
    savedRun: async () => theirs,
    savedRunFiles: async () => null,
    recoverDevice: async () => ({ source: theirs.modelSource, quantization: theirs.quantization }) as ModelInfo,
    resumeSavedRun: refused,
    restoreSavedRun: refused,
  });
}

/** This tab's own run, stopped at step 4 (saved there, then resumed by the other tab). */
function stoppedHere(shared: Shared): void {
  shared.run.dispatch({ type: 'start', totalSteps: 8 });
  shared.run.dispatch({ type: 'event', event: { type: 'plan', stats: { totalSteps: 8 } as DataStats, resumedAt: 0 } });
  shared.run.dispatch({ type: 'event', event: { type: 'step', step: 4, totalSteps: 8, epoch: 0, loss: 1.5, lr: 1e-4, gradNorm: 1, tokens: 10, tokensPerSecond: 10, elapsedSeconds: 4, etaSeconds: 4 } });
  shared.run.dispatch({ type: 'stop' });
  shared.run.dispatch({ type: 'event', event: { type: 'checkpoint', step: 4, savedAt: '2025-01-15T09:30:00.000Z' } });
  shared.run.dispatch({ type: 'finished', result: { steps: 4, skipped: 0, stopped: true, finalLoss: 1.5, finalValLoss: null, seconds: 4 } });
}

describe('resuming while another tab holds the saved run', () => {
  for (const kind of ['resume', 'restore'] as const) {
    it(`${kind}: says so and leaves this tab's run, form and adapter as they were`, async () => {
      const { shared, calls } = page();
      const restored: Record<string, unknown>[] = [];
      const control = runController(shared, { restoreForm: (hp) => restored.push(hp), showFiles: () => undefined });
      stoppedHere(shared);
      const before = shared.run.value;
      const said: string[] = [];
      const ok = await (kind === 'resume' ? control.resumeSaved(theirs, (t) => said.push(t)) : control.restoreSaved(theirs, (t) => said.push(t)));
      await new Promise((r) => setTimeout(r, 0));
      expect(ok).toBe(false);
      expect(shared.run.value).toBe(before);
      expect(shared.run.value).toMatchObject({ phase: 'stopped', step: 4, hasAdapter: true, outcome: { kind: 'stopped' } });
      expect(restored).toEqual([]);
      expect(calls).not.toContain('resumeSavedRun');
      expect(calls).not.toContain('restoreSavedRun');
      expect(calls).not.toContain('savedRunFiles');
      expect(said.at(-1)).toMatch(/another tab of this page/);
    });
  }

  it('after a lost device: gets the GPU back but does not take the run the other tab holds', async () => {
    const { shared, calls } = page();
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    shared.run.dispatch({ type: 'resume', saved: { ...theirs, step: 2, history: [{ step: 2, loss: 1 }] } });
    shared.run.dispatch({ type: 'failed', kind: 'device-lost', message: 'the device was lost' });
    const said: string[] = [];
    expect(await control.recoverAndResume((t) => said.push(t))).toBe(false);
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toContain('recoverDevice');
    expect(calls).not.toContain('resumeSavedRun');
    expect(shared.run.value.phase).toBe('error');
    expect(said.at(-1)).toMatch(/another tab of this page/);
  });
});

// Train checks for a run in another tab before it asks the person anything (training-panel.ts), but the confirm box's
// "Replace it and train" and "Train" start later, and another tab may have begun a run by then: they went straight to
// the worker, whose refusal (run-lock.ts) the page showed as a failed run. Every start now makes the check, and a
// refusal of the worker's for that reason is shown the same way: the other tab's run, not "Training failed".
describe('a new run while another tab holds the saved run', () => {
  const data = { train: { file: new File(['{"text":"a"}\n'], 'new.jsonl'), report: { ok: true }, status: 'ready', error: null }, validation: null } as unknown as DataState;
  const settled = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  };

  /** The page's check says `elsewhere`; the worker refuses the start as run-lock.ts does. */
  function setUp(elsewhere: boolean) {
    const { shared, calls } = fakeRunPage(
      {
        runElsewhere: async () => elsewhere,
        savedRun: async () => theirs,
        startTraining: () => Promise.reject(new FinetuneError('bad-input', 'another tab of this page is training (or changing the run saved in this browser)', { runElsewhere: true })),
      },
      { data },
    );
    const shown: (SavedRun | null)[] = [];
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined, offerElsewhere: (run) => shown.push(run) });
    return { shared, calls, control, shown };
  }

  for (const replaces of [theirs, null]) {
    it(`${replaces ? '"Replace it and train"' : 'the box\'s "Train"'}: asks nothing of the worker, and shows the other tab's run instead of a failed one`, async () => {
      const t = setUp(true);
      stoppedHere(t.shared);
      const before = t.shared.run.value;
      t.control.start(replaces);
      await settled();
      expect(t.calls).not.toContain('startTraining');
      expect(t.shared.run.value).toBe(before);
      expect(t.shown).toEqual([theirs]);
    });
  }

  it('the worker refusing it (the other tab began after the check): not a failed run, and the other tab\'s run shown', async () => {
    const t = setUp(false);
    t.control.start(null);
    await settled();
    expect(t.calls).toContain('startTraining');
    expect(t.shared.run.value.phase).toBe('idle');
    expect(t.shared.run.value.outcome).toBeNull();
    expect(t.shown).toEqual([theirs]);
  });

  for (const kind of ['resume', 'restore'] as const) {
    it(`${kind} the worker refuses for the same reason: not a failed run, the form as it was, and the other tab's run shown`, async () => {
      const refused = (): Promise<never> => Promise.reject(new FinetuneError('bad-input', 'another tab of this page is training', { runElsewhere: true }));
      const { shared } = fakeRunPage({ runElsewhere: async () => false, savedRun: async () => theirs, resumeSavedRun: refused, restoreSavedRun: refused });
      const forms: Record<string, unknown>[] = [];
      const shown: (SavedRun | null)[] = [];
      const control = runController(shared, { restoreForm: (values) => forms.push(values), showFiles: () => undefined, offerElsewhere: (run) => shown.push(run) });
      const formBefore = { ...shared.form.value.raw };
      const said: string[] = [];
      expect(await (kind === 'resume' ? control.resumeSaved(theirs, (t) => said.push(t)) : control.restoreSaved(theirs, (t) => said.push(t)))).toBe(true);
      await settled();
      expect(shared.run.value.phase).toBe('idle');
      expect(shared.run.value.outcome).toBeNull();
      // The form never showed the run's values.
      expect(forms).toEqual([]);
      expect(shared.form.value.raw).toEqual(formBefore);
      expect(said.at(-1)).toMatch(/another tab of this page/);
      expect(shown).toEqual([theirs]);
    });
  }
});
