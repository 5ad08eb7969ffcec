// The training panel (src/ui/training-panel.ts) looks for a saved run that cannot be read by itself: when the page
// opens, and after a Resume refused because the run it offered is no longer saved. That look ends when the worker
// answers, which may be after the person acted in the saved-run box and was told what came of it in the box's note
// ("Could not forget it: …" after a refused Forget, "Nothing was started: …", "Nothing was resumed: …"). Its answer,
// a box for the run as it found it, used to put the box's own words in that note, so the person's answer vanished
// before it could be read. A note said in answer to the person's own action now stays until their next action: a look
// ending later may rebuild the box around it. The panel is built on a fake DOM (test/helpers/fake-dom.ts) around a
// fake engine worker whose answers the tests release.
import { describe, expect, it, vi } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { FORGET_ELSEWHERE_TEXT } from '../../../src/ui/run-controller.ts';
import { forgetWithdrawnText, offerGoneText, replaceGoneText } from '../../../src/ui/saved-run-offer.ts';
import type { DataState, PlanState, Shared } from '../../../src/ui/state.ts';
import { savedSummary, trainingPanel } from '../../../src/ui/training-panel.ts';
import type { DataStats, ModelInfo, RunEstimate, SavedRun, TrainResult } from '../../../src/worker/api.ts';
import { asFake, type FakeElement } from '../../helpers/fake-dom.ts';
import { panelOnFakeDom, settled } from '../../helpers/panel-on-fake-dom.ts';
import { DEMO_SOURCE, demoModel, fakeRunPage, SAVED_AT_STEP_4, type EngineFakes } from '../../helpers/fake-run-page.ts';

vi.mock('../../../src/ui/loss-chart.ts', () => import('../../helpers/fake-loss-chart.ts'));

panelOnFakeDom();

const PROBLEM = 'the saved run is unreadable (run.json: Unexpected end of JSON input)';
/** How the worker answers a read of a saved run that cannot be read. */
const damaged = (): FinetuneError => new FinetuneError('bad-input', PROBLEM, { damagedRun: true });
/** What the damaged-run box says of its own. */
const DAMAGED_OWN_NOTE = 'Training a new run here needs it forgotten first.';

/** A read of the store that the test answers when it likes. */
interface Held {
  answer: () => void;
}

/**
 * The training panel around `fakes`, everything ready to train (the demo model as the default form asks, a training
 * file read without errors, its plan); the time estimate is not measured.
 */
async function panelOver(fakes: EngineFakes): Promise<{ shared: Shared; view: FakeElement }> {
  const data = { train: { file: new File(['{"text":"a"}\n'], 'new.jsonl'), report: { ok: true }, status: 'ready', error: null }, validation: null } as unknown as DataState;
  const plan: PlanState = { status: 'ready', stats: { totalSteps: 8, stepsByEpoch: [8], sequencesPerEpoch: 8, trainBatchSize: 1 } as DataStats, error: null };
  const model = demoModel({ source: DEMO_SOURCE, quantization: defaultHyperparams().quantization } as ModelInfo);
  const { shared } = fakeRunPage({ estimateRun: (): Promise<RunEstimate> => Promise.reject(new Error('not measured in these tests')), ...fakes }, { data, plan, model });
  const view = asFake(trainingPanel(shared, { restoreForm: () => undefined, showFiles: () => undefined, applyQuickPreset: () => undefined }));
  await settled();
  return { shared, view };
}

const note = (view: FakeElement): string | null => view.byTestId('saved-run')!.byTestId('saved-run-note')?.textContent ?? null;

describe("the look for a damaged saved run when the page opens", () => {
  it('says in the box what to do, when nothing was said to the person before it', async () => {
    const { view } = await panelOver({ savedRun: () => Promise.reject(damaged()) });
    expect(view.byTestId('saved-run')!.hidden).toBe(false);
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(`${PROBLEM}.`);
    expect(note(view)).toBe(DAMAGED_OWN_NOTE);
  });

  it('ending after a refused Forget keeps what the refusal said', async () => {
    // The page's look reads the store twice (the run, then why it cannot be read): the second read is held.
    let reads = 0;
    const held: Held = { answer: () => undefined };
    const savedRun = (): Promise<SavedRun | null> => {
      reads++;
      if (reads !== 2) return Promise.reject(damaged());
      return new Promise((_resolve, reject) => (held.answer = () => reject(damaged())));
    };
    const { view } = await panelOver({
      savedRun,
      forgetSavedRun: () => Promise.reject(new FinetuneError('bad-input', 'the browser refused to delete the files')),
    });
    expect(view.byTestId('saved-run')!.hidden).toBe(true);
    // Train finds the run that cannot be read and offers to forget it; the person tries, and the worker refuses.
    view.byTestId('train-start')!.click();
    await settled();
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(`${PROBLEM}.`);
    view.byTestId('saved-run-forget')!.click();
    view.byTestId('saved-run-confirm-forget-yes')!.click();
    await settled();
    const refusal = 'Could not forget it: the browser refused to delete the files';
    expect(note(view)).toBe(refusal);
    // The page's own look ends now.
    held.answer();
    await settled();
    expect(view.byTestId('saved-run')!.hidden).toBe(false);
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(`${PROBLEM}.`);
    expect(note(view)).toBe(refusal);
    // Until the person's next action: Train, pressed again, shows what it found in its own words.
    view.byTestId('train-start')!.click();
    await settled();
    expect(note(view)).toBe(DAMAGED_OWN_NOTE);
  });

  it('ending after a refused Train keeps what the refusal said', async () => {
    // The page's look: its second read (why the run cannot be read) is held. Train then finds nothing saved, and the
    // worker refuses the start: another tab wrote a run that cannot be read meanwhile.
    let reads = 0;
    const held: Held = { answer: () => undefined };
    const savedRun = (): Promise<SavedRun | null> => {
      reads++;
      if (reads === 2) return new Promise((_resolve, reject) => (held.answer = () => reject(damaged())));
      if (reads === 3 || reads === 4) return Promise.resolve(null);
      return Promise.reject(damaged());
    };
    const { view } = await panelOver({
      savedRun,
      startTraining: async (): Promise<TrainResult> => {
        throw new FinetuneError('bad-input', 'the run saved here is not the one this run was to replace', { savedRunChanged: true });
      },
    });
    view.byTestId('train-start')!.click();
    await settled();
    const refusal = `${replaceGoneText(null, null, true)} ${DAMAGED_OWN_NOTE}`;
    expect(note(view)).toBe(refusal);
    held.answer();
    await settled();
    expect(note(view)).toBe(refusal);
  });
});

// The page's look on open reads the store once the GPU is ready; a slow read may end after the person pressed Train,
// whose own read is newer. It showed the box for the run as it had found it: "Resume" and "Forget it" for run A while
// Train asked about replacing run B, saved by another tab in between. A look that began before the person's last
// action, or before the box last changed, is now left unshown.
describe('a look at the store that began before the person acted', () => {
  it("is not shown over what Train found since: the question about the run saved now stands alone", async () => {
    const older: SavedRun = { ...SAVED_AT_STEP_4, trainName: 'older.jsonl' };
    const newer: SavedRun = { ...SAVED_AT_STEP_4, trainName: 'newer.jsonl', step: 6, savedAt: '2025-01-15T10:00:00.000Z' };
    let reads = 0;
    const held: Held = { answer: () => undefined };
    const savedRun = (): Promise<SavedRun | null> => {
      reads++;
      if (reads === 1) return new Promise((resolve) => (held.answer = () => resolve(older)));
      return Promise.resolve(newer);
    };
    const { view } = await panelOver({ savedRun });
    view.byTestId('train-start')!.click();
    await settled();
    expect(view.byTestId('train-confirm')!.hidden).toBe(false);
    expect(view.byTestId('train-confirm')!.textContent).toContain('newer.jsonl');
    held.answer();
    await settled();
    expect(view.byTestId('saved-run')!.hidden).toBe(true);
    expect(view.byTestId('train-confirm')!.hidden).toBe(false);
  });
});

describe('the look for a damaged saved run after a refused Resume', () => {
  it('ending after the refusal was said keeps what it said', async () => {
    // Saved with the model as it is loaded (nothing is loaded for the resume).
    const saved: SavedRun = { ...SAVED_AT_STEP_4, quantization: defaultHyperparams().quantization };
    // The store holds the run offered until the worker refuses its resume (another tab forgot it); the look that
    // follows finds a run there that cannot be read (that tab saved a run and was killed mid-write), and is held.
    let store: 'saved' | 'none' | 'held' = 'saved';
    const held: Held = { answer: () => undefined };
    const savedRun = (): Promise<SavedRun | null> => {
      if (store === 'saved') return Promise.resolve(saved);
      if (store === 'none') {
        store = 'held';
        return Promise.resolve(null);
      }
      return new Promise((_resolve, reject) => (held.answer = () => reject(damaged())));
    };
    const { view } = await panelOver({
      savedRun,
      resumeSavedRun: async (): Promise<TrainResult> => {
        store = 'none';
        throw new FinetuneError('bad-input', 'the run saved here is no longer the checkpoint asked for', { checkpointGone: true });
      },
    });
    view.byTestId('saved-run-resume')!.click();
    await settled();
    const refusal = offerGoneText(saved.step, null);
    expect(note(view)).toBe(refusal);
    held.answer();
    await settled();
    // The box may show the run that cannot be read now, but the person's answer stays.
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(`${PROBLEM}.`);
    expect(note(view)).toBe(refusal);
  });
});

// A look the person did not ask for, ending while "Forget it?" is asked in the box, used to rebuild the box and so take
// the question away as it was read. The box it would show, when it is the one shown, now stays as it is, question
// and all; when the store holds something else, the box is rebuilt for that, and says why the question went.
describe('a look at the store ending while "Forget it?" is asked', () => {
  /** Opens the question in the box shown, and returns it. */
  const ask = (view: FakeElement): FakeElement => {
    view.byTestId('saved-run-forget')!.click();
    const question = view.byTestId('saved-run-confirm-forget')!;
    expect(question.hidden).toBe(false);
    return question;
  };

  it('on open, finding the run the box shows: the question stays open, and its answer forgets the run', async () => {
    // The page's look reads the store twice (the run, then why it cannot be read): the second read is held.
    let reads = 0;
    const held: Held = { answer: () => undefined };
    const savedRun = (): Promise<SavedRun | null> => {
      reads++;
      if (reads !== 2) return Promise.reject(damaged());
      return new Promise((_resolve, reject) => (held.answer = () => reject(damaged())));
    };
    let forgotten = 0;
    const { view } = await panelOver({ savedRun, forgetSavedRun: async () => void forgotten++ });
    view.byTestId('train-start')!.click();
    await settled();
    const question = ask(view);
    held.answer();
    await settled();
    // The question on the page is still open, and it is the one the person was reading.
    expect(view.byTestId('saved-run-confirm-forget')?.hidden).toBe(false);
    expect(view.byTestId('saved-run-confirm-forget') === question).toBe(true);
    expect(note(view)).toBe(DAMAGED_OWN_NOTE);
    view.byTestId('saved-run-confirm-forget-yes')!.click();
    await settled();
    expect(forgotten).toBe(1);
    expect(view.byTestId('saved-run')!.hidden).toBe(true);
  });

  it('after a refused Resume, finding the run the box shows: the question stays open', async () => {
    const saved: SavedRun = { ...SAVED_AT_STEP_4, quantization: defaultHyperparams().quantization };
    // The store holds the run offered until the worker refuses its resume (another tab forgot it); then none, then a
    // run that cannot be read (that tab saved a run and was killed mid-write). The look after the refusal is held.
    let store: 'saved' | 'none' | 'held' | 'damaged' = 'saved';
    const held: Held = { answer: () => undefined };
    const savedRun = (): Promise<SavedRun | null> => {
      if (store === 'saved') return Promise.resolve(saved);
      if (store === 'none') {
        store = 'held';
        return Promise.resolve(null);
      }
      if (store === 'held') {
        store = 'damaged';
        return new Promise((_resolve, reject) => (held.answer = () => reject(damaged())));
      }
      return Promise.reject(damaged());
    };
    const { view } = await panelOver({
      savedRun,
      resumeSavedRun: async (): Promise<TrainResult> => {
        store = 'none';
        throw new FinetuneError('bad-input', 'the run saved here is no longer the checkpoint asked for', { checkpointGone: true });
      },
    });
    view.byTestId('saved-run-resume')!.click();
    await settled();
    // Train finds the run that cannot be read; the person asks to forget it.
    view.byTestId('train-start')!.click();
    await settled();
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(`${PROBLEM}.`);
    const question = ask(view);
    held.answer();
    await settled();
    // The question on the page is still open, and it is the one the person was reading.
    expect(view.byTestId('saved-run-confirm-forget')?.hidden).toBe(false);
    expect(view.byTestId('saved-run-confirm-forget') === question).toBe(true);
  });

  // These two looks began before the person pressed Train, whose own reads are newer: they used to rebuild the box
  // with what they found (and withdraw the question asked of what Train found); they are now left unshown.
  it('on open, ending after Train found another run: left unshown, the question about what Train found stays open', async () => {
    // The page's look: its read of the run is held, and finds the run at step 4. Train, meanwhile, finds a run that
    // cannot be read.
    let reads = 0;
    const held: Held = { answer: () => undefined };
    const savedRun = (): Promise<SavedRun | null> => {
      reads++;
      if (reads === 1) return new Promise((resolve) => (held.answer = () => resolve(SAVED_AT_STEP_4)));
      return Promise.reject(damaged());
    };
    let forgotten = 0;
    const { view } = await panelOver({ savedRun, forgetSavedRun: async () => void forgotten++ });
    view.byTestId('train-start')!.click();
    await settled();
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(`${PROBLEM}.`);
    const question = ask(view);
    held.answer();
    await settled();
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(`${PROBLEM}.`);
    expect(view.byTestId('saved-run-confirm-forget') === question).toBe(true);
    expect(question.hidden).toBe(false);
    expect(note(view)).toBe(DAMAGED_OWN_NOTE);
    expect(forgotten).toBe(0);
  });

  it('on open, finding a run in another tab after Train found none there: left unshown, the question stays open', async () => {
    let looks = 0;
    const held: { answer: () => void } = { answer: () => undefined };
    const runElsewhere = (): Promise<boolean> => {
      looks++;
      if (looks === 1) return new Promise((resolve) => (held.answer = () => resolve(true)));
      return Promise.resolve(false);
    };
    const { view } = await panelOver({ savedRun: () => Promise.reject(damaged()), runElsewhere });
    view.byTestId('train-start')!.click();
    await settled();
    const question = ask(view);
    held.answer();
    await settled();
    expect(view.byTestId('saved-run')!.childNodes[0]?.textContent).toBe('The run saved in this browser cannot be read');
    expect(question.hidden).toBe(false);
    expect(note(view)).toBe(DAMAGED_OWN_NOTE);
  });
});
