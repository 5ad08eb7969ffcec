// What the hyperparameter form shows while a Resume pressed in the training panel's saved-run box is decided
// (src/ui/training-panel.ts, src/ui/run-controller.ts). A resume refused (another tab began on the run, the saved run
// cannot be resumed as it is, the store no longer holds the checkpoint, the run's model could not be loaded) changes
// nothing: the form used to be filled with the saved run's values first and put back after, so that it showed them
// for a moment, and the plan, the estimate and the demo model's quantization, which follow the form, were redone for
// them. The form now takes the run's values once the worker has begun the resume. The panel is built on a fake DOM
// (test/helpers/fake-dom.ts) around a fake engine worker; the form is the page's form cell, which the hyperparameter
// panel and every listener read, and every value it takes is recorded.
import { describe, expect, it, vi } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { formState, formValuesOf } from '../../../src/ui/hyperparams-panel.ts';
import { ELSEWHERE_TEXT } from '../../../src/ui/run-controller.ts';
import { damagedResumeText, offerGoneText } from '../../../src/ui/saved-run-offer.ts';
import type { Shared } from '../../../src/ui/state.ts';
import { trainingPanel } from '../../../src/ui/training-panel.ts';
import type { DataStats, SavedRun, TrainEvent, TrainResult } from '../../../src/worker/api.ts';
import { asFake, type FakeElement } from '../../helpers/fake-dom.ts';
import { panelOnFakeDom, settled } from '../../helpers/panel-on-fake-dom.ts';
import { fakeRunPage, SAVED_AT_STEP_4 } from '../../helpers/fake-run-page.ts';

vi.mock('../../../src/ui/loss-chart.ts', () => import('../../helpers/fake-loss-chart.ts'));

panelOnFakeDom();

/** The run saved in this browser: its learning rate is not the one the person typed. */
const saved: SavedRun = { ...SAVED_AT_STEP_4, hp: { ...defaultHyperparams(), learning_rate: 5e-4 } };

/** The form as the person typed it before pressing Resume. */
const typed = { ...formValuesOf(defaultHyperparams()), learning_rate: '3e-4' };

/** What the worker does when asked to resume: refuses, or begins the run (its plan event) and holds it. */
type Resume = (onEvent: (e: TrainEvent) => void) => Promise<TrainResult>;

interface Page {
  shared: Shared;
  view: FakeElement;
  /** Every learning_rate the form took once the saved-run box was shown, in order. */
  shown: string[];
}

/**
 * The training panel, its saved-run box offering `run` (the store holds it until `store.run` says otherwise), around a
 * worker whose resume does `resume`. restoreForm puts the values into the form cell as the hyperparameter panel's
 * setValues does (main.ts).
 */
async function pageWith(store: { run: SavedRun | null }, resume: Resume, run: SavedRun = saved): Promise<Page> {
  store.run = run;
  const { shared } = fakeRunPage({ savedRun: async () => store.run, resumeSavedRun: resume as never }, { form: formState(typed) });
  const view = asFake(
    trainingPanel(shared, {
      restoreForm: (values) => shared.form.set(formState({ ...shared.form.value.raw, ...values })),
      showFiles: () => undefined,
      applyQuickPreset: () => undefined,
    }),
  );
  await settled();
  expect(view.byTestId('saved-run-resume')).not.toBe(null);
  const shown: string[] = [];
  shared.form.watch((f) => shown.push(String(f.raw.learning_rate)));
  shown.length = 0; // watch calls at once with the value already shown
  return { shared, view, shown };
}

const refusedBy =
  (e: FinetuneError, after?: () => void): Resume =>
  async () => {
    after?.();
    throw e;
  };

describe('a Resume refused', () => {
  it('because another tab began on the run: the form never shows the run\'s values', async () => {
    const store = { run: null as SavedRun | null };
    const p = await pageWith(store, refusedBy(new FinetuneError('bad-input', ELSEWHERE_TEXT, { runElsewhere: true })));
    p.view.byTestId('saved-run-resume')!.click();
    await settled();
    expect(p.view.byTestId('saved-run-note')?.textContent).toBe(ELSEWHERE_TEXT);
    expect(p.shown).toEqual([]);
    expect(p.shared.form.value.raw).toEqual(typed);
  });

  it('because the saved run cannot be resumed as it is: the form never shows the run\'s values', async () => {
    const problem = 'the saved run cannot be resumed: its hyperparameters are not valid: lora_rank must be at least 1';
    const store = { run: null as SavedRun | null };
    const p = await pageWith(store, refusedBy(new FinetuneError('bad-input', problem, { damagedRun: true })));
    p.view.byTestId('saved-run-resume')!.click();
    await settled();
    expect(p.view.byTestId('saved-run-note')?.textContent).toBe(damagedResumeText(problem));
    expect(p.shown).toEqual([]);
    expect(p.shared.form.value.raw).toEqual(typed);
  });

  it('because the store no longer holds its checkpoint (nothing to resume): the form never shows the run\'s values', async () => {
    const store = { run: null as SavedRun | null };
    const gone = new FinetuneError('bad-input', 'the run saved here is no longer the checkpoint asked for', { checkpointGone: true });
    const p = await pageWith(store, refusedBy(gone, () => (store.run = null)));
    p.view.byTestId('saved-run-resume')!.click();
    await settled();
    expect(p.view.byTestId('saved-run-note')?.textContent).toBe(offerGoneText(saved.step, null));
    expect(p.shown).toEqual([]);
    expect(p.shared.form.value.raw).toEqual(typed);
  });

  it("because the run's model could not be loaded: the form never shows the run's values", async () => {
    // Saved unquantised: the demo model, loaded as nf4-double, is loaded again for it, and that load fails.
    const store = { run: null as SavedRun | null };
    const p = await pageWith(store, refusedBy(new FinetuneError('internal', 'the worker was not to be asked')), { ...saved, quantization: 'none' });
    p.view.byTestId('saved-run-resume')!.click();
    await settled();
    expect(p.view.byTestId('saved-run-note')?.textContent).toBe('The model could not be loaded: see the Model panel.');
    expect(p.shown).toEqual([]);
    expect(p.shared.form.value.raw).toEqual(typed);
  });
});

/** The plan of the resumed run as its plan event gives it (the fields the panel draws). */
const resumedPlan = {
  trainExamples: 8,
  validationExamples: 0,
  epochs: 1,
  totalSteps: saved.totalSteps,
  stepsByEpoch: [saved.totalSteps],
  sequencesPerEpoch: 8,
  trainBatchSize: 1,
  microBatchSize: 1,
  gradientAccumulationSteps: 1,
  tokensPerEpoch: 80,
  longestSequence: 10,
  paddingFraction: 0,
  paddingFractionPadded: 0,
  paddingFree: true,
} as DataStats;

describe('a Resume the worker begins', () => {
  it("shows the run's values in the form once the worker has begun it, and not before", async () => {
    let begin: (() => void) | undefined;
    const store = { run: null as SavedRun | null };
    const p = await pageWith(store, (onEvent) => {
      begin = () => onEvent({ type: 'plan', stats: resumedPlan, resumedAt: saved.step });
      return new Promise<TrainResult>(() => undefined);
    });
    p.view.byTestId('saved-run-resume')!.click();
    await settled();
    // Asked, not begun yet: the worker may still refuse it.
    expect(begin).toBeDefined();
    expect(p.shown).toEqual([]);
    begin!();
    await settled();
    expect(p.shown).toEqual(['0.0005']);
    expect(p.shared.form.value.raw).toMatchObject(formValuesOf(saved.hp));
  });
});
