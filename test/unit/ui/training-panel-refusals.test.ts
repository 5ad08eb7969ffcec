// What the training panel (src/ui/training-panel.ts) shows when a Resume is refused because another tab of the page
// changed the run saved in this browser: the refusal is said where the person sees it. A Resume pressed in the
// saved-run box says why through that box's note; the refusals that replace or hide the box used to write into a note
// no longer on the page (the "another tab" box had a note of its own; a run forgotten meanwhile hid the box), and the
// train-event line under the chart (where "Resume from step N" says it) was written over as the "another tab" box was
// shown. A Forget refused because another tab holds the run shows that tab's run too, and says that nothing was
// forgotten: the "another tab" box's general note alone never said what came of the Forget the person had confirmed.
// The panel is built on a fake DOM (test/helpers/fake-dom.ts) around a fake engine worker.
import { describe, expect, it, vi } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { ELSEWHERE_TEXT, FORGET_ELSEWHERE_TEXT } from '../../../src/ui/run-controller.ts';
import { RUN_ELSEWHERE_MESSAGE } from '../../../src/worker/run-lock.ts';
import { forgetWithdrawnText, offerGoneText } from '../../../src/ui/saved-run-offer.ts';
import type { Shared } from '../../../src/ui/state.ts';
import { savedSummary, trainingPanel } from '../../../src/ui/training-panel.ts';
import type { SavedRun, TrainResult } from '../../../src/worker/api.ts';
import { asFake, type FakeElement } from '../../helpers/fake-dom.ts';
import { panelOnFakeDom, settled } from '../../helpers/panel-on-fake-dom.ts';
import { fakeRunPage, SAVED_AT_STEP_4 } from '../../helpers/fake-run-page.ts';

/** The run saved in this browser when the page was opened. */
const saved: SavedRun = SAVED_AT_STEP_4;

/** How the worker refuses a resume once another tab holds the saved run (run-lock.ts). */
const elsewhereRefusal = (): FinetuneError => new FinetuneError('bad-input', ELSEWHERE_TEXT, { runElsewhere: true });

vi.mock('../../../src/ui/loss-chart.ts', () => import('../../helpers/fake-loss-chart.ts'));

panelOnFakeDom();

interface Store {
  /** The run saved now (null: none). */
  run: SavedRun | null;
  /** Whether another tab holds the saved run now. */
  elsewhere: boolean;
}

/**
 * The training panel around a worker whose store holds `store.run`; its resume, asked, finds that another tab began
 * on the saved run just before (the page's own checks found none) and refuses it.
 */
async function panelOver(store: Store): Promise<{ shared: Shared; view: FakeElement }> {
  const { shared } = fakeRunPage({
    savedRun: async () => store.run,
    runElsewhere: async () => store.elsewhere,
    resumeSavedRun: async (): Promise<TrainResult> => {
      store.elsewhere = true;
      throw elsewhereRefusal();
    },
  });
  const view = asFake(trainingPanel(shared, { restoreForm: () => undefined, showFiles: () => undefined, applyQuickPreset: () => undefined }));
  await settled();
  return { shared, view };
}

/** Whether the element is in the panel at all (a note taken off the page by a box rebuilt is not). */
function inside(el: FakeElement | null, root: FakeElement): boolean {
  for (let at = el; at; at = at.parentNode) if (at === root) return true;
  return false;
}

/** The saved-run box's note, which must be the one shown in the box. */
function boxNote(view: FakeElement): string | null {
  const box = view.byTestId('saved-run')!;
  expect(box.hidden).toBe(false);
  const note = box.byTestId('saved-run-note');
  expect(inside(note, view)).toBe(true);
  return note?.textContent ?? null;
}

describe('a Resume refused in the saved-run box', () => {
  it('because another tab began on the run: the "another tab" box says why nothing was resumed, and keeps saying it', async () => {
    const store: Store = { run: saved, elsewhere: false };
    const { shared, view } = await panelOver(store);
    expect(view.byTestId('saved-run-summary')?.textContent).toContain('ours.jsonl');
    view.byTestId('saved-run-resume')!.click();
    await settled();
    const box = view.byTestId('saved-run')!;
    expect(box.childNodes[0]?.textContent).toBe('A run is training in another tab of this page');
    expect(shared.runElsewhere.value).toBe(true);
    expect(boxNote(view)).toBe(ELSEWHERE_TEXT);
    // The box looks again while the other tab trains: the refusal stays said.
    await vi.advanceTimersByTimeAsync(3000);
    await settled();
    expect(box.childNodes[0]?.textContent).toBe('A run is training in another tab of this page');
    expect(boxNote(view)).toBe(ELSEWHERE_TEXT);
  });

  it('because another tab forgot the run: the box stays to say that nothing was resumed', async () => {
    const store: Store = { run: saved, elsewhere: false };
    const { view } = await panelOver(store);
    store.run = null;
    view.byTestId('saved-run-resume')!.click();
    await settled();
    expect(boxNote(view)).toBe(offerGoneText(saved.step, null));
    // Nothing is offered of a run that is gone.
    expect(view.byTestId('saved-run-resume')).toBe(null);
    expect(view.byTestId('saved-run-forget')).toBe(null);
  });
});

describe('"Resume from step N" refused because another tab began on the run', () => {
  it('says why under the chart, beside the "another tab" box', async () => {
    const store: Store = { run: null, elsewhere: false };
    const { shared, view } = await panelOver(store);
    // This tab's run, stopped at step 4 after its checkpoint there, which the store holds.
    shared.run.dispatch({ type: 'start', totalSteps: 8 });
    shared.run.dispatch({ type: 'event', event: { type: 'checkpoint', step: 4, savedAt: saved.savedAt } });
    shared.run.dispatch({ type: 'stop' });
    shared.run.dispatch({ type: 'finished', result: { steps: 4, skipped: 0, stopped: true, finalLoss: 1.5, finalValLoss: null, seconds: 4 } });
    store.run = saved;
    view.byTestId('train-resume-here')!.click();
    await settled();
    expect(view.byTestId('saved-run')!.childNodes[0]?.textContent).toBe('A run is training in another tab of this page');
    expect(view.byTestId('train-event')?.textContent).toBe(ELSEWHERE_TEXT);
    await vi.advanceTimersByTimeAsync(3000);
    await settled();
    expect(view.byTestId('train-event')?.textContent).toBe(ELSEWHERE_TEXT);
  });
});

/** The panel with the saved-run box for `store.run` (or, read as `damaged`, for a run that cannot be read). */
async function forgetPanelOver(store: Store, forgetSavedRun: () => Promise<void>, damaged?: string): Promise<{ shared: Shared; view: FakeElement; calls: string[] }> {
  const { shared, calls } = fakeRunPage({
    savedRun: async () => {
      if (damaged) throw new FinetuneError('bad-input', damaged, { damagedRun: true });
      return store.run;
    },
    runElsewhere: async () => store.elsewhere,
    forgetSavedRun,
  });
  const view = asFake(trainingPanel(shared, { restoreForm: () => undefined, showFiles: () => undefined, applyQuickPreset: () => undefined }));
  await settled();
  return { shared, view, calls };
}

/** Asks "Forget it" in the saved-run box, and answers the question yes. */
function forgetIt(view: FakeElement): void {
  view.byTestId('saved-run-forget')!.click();
  view.byTestId('saved-run-confirm-forget-yes')!.click();
}

describe('a Forget refused because another tab holds the run', () => {
  it('found by the page before it asked: the "another tab" box says that nothing was forgotten, and keeps saying it', async () => {
    const store: Store = { run: saved, elsewhere: false };
    const { view, calls } = await forgetPanelOver(store, async () => undefined);
    store.elsewhere = true;
    forgetIt(view);
    await settled();
    expect(calls).not.toContain('forgetSavedRun');
    const box = view.byTestId('saved-run')!;
    expect(box.childNodes[0]?.textContent).toBe('A run is training in another tab of this page');
    expect(boxNote(view)).toBe(FORGET_ELSEWHERE_TEXT);
    await vi.advanceTimersByTimeAsync(3000);
    await settled();
    expect(box.childNodes[0]?.textContent).toBe('A run is training in another tab of this page');
    expect(boxNote(view)).toBe(FORGET_ELSEWHERE_TEXT);
  });

  it('refused by the worker: the "another tab" box, not a failed Forget, says that nothing was forgotten', async () => {
    const store: Store = { run: saved, elsewhere: false };
    // Another tab takes the run lock between the page's check and the worker's forget (run-lock.ts refuses it).
    const { view } = await forgetPanelOver(store, async () => {
      store.elsewhere = true;
      throw new FinetuneError('bad-input', RUN_ELSEWHERE_MESSAGE, { runElsewhere: true });
    });
    forgetIt(view);
    await settled();
    expect(view.byTestId('saved-run')!.childNodes[0]?.textContent).toBe('A run is training in another tab of this page');
    expect(boxNote(view)).toBe(FORGET_ELSEWHERE_TEXT);
  });

  it('of a run that cannot be read: the "another tab" box says that nothing was forgotten', async () => {
    const store: Store = { run: null, elsewhere: false };
    const { view, calls } = await forgetPanelOver(store, async () => undefined, 'the saved run is unreadable (run.json: Unexpected end of JSON input)');
    expect(view.byTestId('saved-run')!.childNodes[0]?.textContent).toBe('The run saved in this browser cannot be read');
    store.elsewhere = true;
    forgetIt(view);
    await settled();
    expect(calls).not.toContain('forgetSavedRun');
    expect(view.byTestId('saved-run')!.childNodes[0]?.textContent).toBe('A run is training in another tab of this page');
    expect(boxNote(view)).toBe(FORGET_ELSEWHERE_TEXT);
  });
});

// Every tab shares the store: another may save a different run (or forget it, or leave it unreadable) between the box
// being shown and the person confirming "Forget it". The Forget names the run the box showed, and the worker refuses it
// (details.savedRunChanged) when the store holds anything else; the box then shows the run saved now, and says why
// nothing was forgotten. A Forget that named nothing deleted the other tab's run, which the person never saw.
describe('a Forget of a run another tab saved over since the box was shown', () => {
  /** Another tab's run: saved over the one the box shows. */
  const theirs: SavedRun = { ...saved, trainName: 'theirs.jsonl', step: 6, savedAt: '2025-01-15T10:00:00.000Z' };
  const problem = 'the saved run is unreadable (run.json: Unexpected end of JSON input)';
  const changed = (): FinetuneError => new FinetuneError('bad-input', 'the run saved here is no longer the one Forget asked about. Nothing was forgotten', { savedRunChanged: true });

  /** The panel over a store that holds `store.run` (or, `store.damaged`, a run that cannot be read); forgets checked as the worker checks them. */
  async function panel(store: { run: SavedRun | null; damaged: boolean }): Promise<{ view: FakeElement; asked: unknown[] }> {
    const asked: unknown[] = [];
    const { shared } = fakeRunPage({
      savedRun: async () => {
        if (store.damaged) throw new FinetuneError('bad-input', problem, { damagedRun: true });
        return store.run;
      },
      runElsewhere: async () => false,
      forgetSavedRun: async (expected: { step: number; savedAt: string } | { damaged: true }) => {
        asked.push(expected);
        const same = 'damaged' in expected ? store.damaged : !store.damaged && store.run?.step === expected.step && store.run.savedAt === expected.savedAt;
        if (!same) throw changed();
        store.run = null;
        store.damaged = false;
      },
    });
    const view = asFake(trainingPanel(shared, { restoreForm: () => undefined, showFiles: () => undefined, applyQuickPreset: () => undefined }));
    await settled();
    return { view, asked };
  }

  it('names the run the box showed; refused, the box shows the run saved now and says that nothing was forgotten', async () => {
    const store = { run: saved as SavedRun | null, damaged: false };
    const { view, asked } = await panel(store);
    view.byTestId('saved-run-forget')!.click();
    store.run = theirs;
    view.byTestId('saved-run-confirm-forget-yes')!.click();
    await settled();
    expect(asked).toEqual([{ step: saved.step, savedAt: saved.savedAt }]);
    expect(store.run).toBe(theirs);
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(savedSummary(theirs));
    expect(boxNote(view)).toBe(forgetWithdrawnText(theirs));
    // The box offers the run saved now: a Forget of it names it.
    forgetIt(view);
    await settled();
    expect(asked[1]).toEqual({ step: theirs.step, savedAt: theirs.savedAt });
    expect(view.byTestId('saved-run')!.hidden).toBe(true);
  });

  it('of a run that cannot be read, saved over with a run that can: shows that run and says that nothing was forgotten', async () => {
    const store = { run: null as SavedRun | null, damaged: true };
    const { view, asked } = await panel(store);
    expect(view.byTestId('saved-run')!.childNodes[0]?.textContent).toBe('The run saved in this browser cannot be read');
    view.byTestId('saved-run-forget')!.click();
    store.damaged = false;
    store.run = theirs;
    view.byTestId('saved-run-confirm-forget-yes')!.click();
    await settled();
    expect(asked).toEqual([{ damaged: true }]);
    expect(store.run).toBe(theirs);
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(savedSummary(theirs));
    expect(boxNote(view)).toBe(forgetWithdrawnText(theirs));
  });

  it('left unreadable by another tab: the box for a run that cannot be read says that nothing was forgotten', async () => {
    const store = { run: saved as SavedRun | null, damaged: false };
    const { view } = await panel(store);
    view.byTestId('saved-run-forget')!.click();
    store.damaged = true;
    view.byTestId('saved-run-confirm-forget-yes')!.click();
    await settled();
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(`${problem}.`);
    expect(boxNote(view)).toBe(forgetWithdrawnText('unreadable'));
  });

  it('forgotten by another tab: the box stays, with its note alone, to say that nothing was forgotten', async () => {
    const store = { run: saved as SavedRun | null, damaged: false };
    const { view } = await panel(store);
    view.byTestId('saved-run-forget')!.click();
    store.run = null;
    view.byTestId('saved-run-confirm-forget-yes')!.click();
    await settled();
    expect(boxNote(view)).toBe(forgetWithdrawnText(null));
    expect(view.byTestId('saved-run-forget')).toBe(null);
  });
});

// A Resume the worker refused because the run's files cannot be read though its record can (a checkpoint file removed
// from the store, a state of another step) shows the box of a run that cannot be read. Its Forget named only
// "a run that cannot be read", which the worker refused since the record reads: such a run could never be forgotten from
// the page. It names the record the Resume was refused for too.
describe('a Forget of a run whose Resume was refused because its files cannot be read', () => {
  const problem = "the run store's current.json names 000002-state.safetensors for its state.safetensors, and that file is missing";

  async function panel(store: { run: SavedRun | null }): Promise<{ view: FakeElement; asked: unknown[] }> {
    const asked: unknown[] = [];
    const { shared } = fakeRunPage({
      savedRun: async () => store.run,
      runElsewhere: async () => false,
      resumeSavedRun: async (): Promise<TrainResult> => {
        throw new FinetuneError('bad-input', problem, { damagedRun: true });
      },
      forgetSavedRun: async (expected: { damaged: true; record?: { step: number; savedAt: string } }) => {
        asked.push(expected);
        // As the worker checks it (checkForgets): the record reads, so only the record named lets it through.
        if (!(store.run && expected.record?.step === store.run.step && expected.record.savedAt === store.run.savedAt)) {
          throw new FinetuneError('bad-input', 'the run saved here is no longer the one Forget asked about. Nothing was forgotten', { savedRunChanged: true });
        }
        store.run = null;
      },
    });
    const view = asFake(trainingPanel(shared, { restoreForm: () => undefined, showFiles: () => undefined, applyQuickPreset: () => undefined }));
    await settled();
    view.byTestId('saved-run-resume')!.click();
    await settled();
    expect(view.byTestId('saved-run')!.childNodes[0]?.textContent).toBe('The run saved in this browser cannot be read');
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(`${problem}.`);
    return { view, asked };
  }

  it('names the record the Resume was refused for, and forgets it', async () => {
    const store = { run: saved as SavedRun | null };
    const { view, asked } = await panel(store);
    forgetIt(view);
    await settled();
    expect(asked).toEqual([{ damaged: true, record: { step: saved.step, savedAt: saved.savedAt } }]);
    expect(store.run).toBe(null);
    expect(view.byTestId('saved-run')!.hidden).toBe(true);
  });

  it('deletes nothing once another tab saved another run over it, and shows that run', async () => {
    const store = { run: saved as SavedRun | null };
    const { view, asked } = await panel(store);
    const theirs: SavedRun = { ...saved, trainName: 'theirs.jsonl', step: 6, savedAt: '2025-01-15T10:00:00.000Z' };
    store.run = theirs;
    forgetIt(view);
    await settled();
    expect(asked).toEqual([{ damaged: true, record: { step: saved.step, savedAt: saved.savedAt } }]);
    expect(store.run).toBe(theirs);
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(savedSummary(theirs));
    expect(boxNote(view)).toBe(forgetWithdrawnText(theirs));
  });
});

// While another tab trains, the "another tab" box looks again every 3 s, and offers the saved run once that tab's run
// ends. A run that tab left unreadable (killed mid-write) hid the box: nothing said it was there, until Train found it.
describe('the "another tab" box, once that tab\'s run ends', () => {
  it('offers to forget a run that tab left unreadable', async () => {
    const problem = 'the saved run is unreadable (run.json: Unexpected end of JSON input)';
    const store = { elsewhere: true, damaged: false };
    const { shared } = fakeRunPage({
      savedRun: async () => {
        if (store.damaged) throw new FinetuneError('bad-input', problem, { damagedRun: true });
        return saved;
      },
      runElsewhere: async () => store.elsewhere,
      forgetEstimate: async () => undefined,
    });
    const view = asFake(trainingPanel(shared, { restoreForm: () => undefined, showFiles: () => undefined, applyQuickPreset: () => undefined }));
    await settled();
    const box = view.byTestId('saved-run')!;
    expect(box.childNodes[0]?.textContent).toBe('A run is training in another tab of this page');
    store.elsewhere = false;
    store.damaged = true;
    await vi.advanceTimersByTimeAsync(3000);
    await settled();
    expect(shared.runElsewhere.value).toBe(false);
    expect(box.hidden).toBe(false);
    expect(box.childNodes[0]?.textContent).toBe('The run saved in this browser cannot be read');
    expect(view.byTestId('saved-run-summary')?.textContent).toBe(`${problem}.`);
    expect(view.byTestId('saved-run-forget')).not.toBe(null);
  });

  it('offers the run that tab saved', async () => {
    const store = { elsewhere: true };
    const { shared } = fakeRunPage({ savedRun: async () => saved, runElsewhere: async () => store.elsewhere, forgetEstimate: async () => undefined });
    const view = asFake(trainingPanel(shared, { restoreForm: () => undefined, showFiles: () => undefined, applyQuickPreset: () => undefined }));
    await settled();
    store.elsewhere = false;
    await vi.advanceTimersByTimeAsync(3000);
    await settled();
    expect(view.byTestId('saved-run')!.childNodes[0]?.textContent).toBe('A run is saved in this browser');
    expect(view.byTestId('saved-run-resume')).not.toBe(null);
  });
});
