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
import { offerGoneText } from '../../../src/ui/saved-run-offer.ts';
import type { Shared } from '../../../src/ui/state.ts';
import { trainingPanel } from '../../../src/ui/training-panel.ts';
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
