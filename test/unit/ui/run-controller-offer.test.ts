// "Resume from step N" resumes the checkpoint it offers, or nothing (src/ui/run-controller.ts). The worker resumes
// whatever run is saved in this browser when it is asked, and every tab shares that store: another tab may have saved
// another run since the button was made, or taken this run on to a later step. The button under the chart (this tab's
// own run) and those of the saved-run box (the run as it was read) used to resume that other run in its place.
import { describe, expect, it } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { runController } from '../../../src/ui/run-controller.ts';
import type { Shared } from '../../../src/ui/state.ts';
import type { DataStats, SavedRun, TrainResult } from '../../../src/worker/api.ts';
import { fakeRunPage } from '../../helpers/fake-run-page.ts';

/** This tab's run as it saved its checkpoint at step 4. */
const ours: SavedRun = {
  modelSource: 'mistral-nano-demo',
  quantization: 'nf4-double',
  hp: defaultHyperparams(),
  trainName: 'ours.jsonl',
  validationName: null,
  step: 4,
  totalSteps: 8,
  history: [{ step: 4, loss: 1.5 }],
  savedAt: '2025-01-15T09:30:00.000Z',
};

/** Another run, saved since by another tab (now closed). */
const theirs: SavedRun = { ...ours, hp: { ...defaultHyperparams(), learning_rate: 3e-4 }, trainName: 'theirs.jsonl', step: 6, history: [{ step: 6, loss: 1 }], savedAt: '2025-01-15T10:00:00.000Z' };

const result: TrainResult = { steps: 8, skipped: 0, stopped: false, finalLoss: 1, finalValLoss: null, seconds: 1 };

/** The page with `savedNow` in the store, and what its saved-run box was asked to show. */
function setUp(savedNow: SavedRun | null) {
  const { shared, calls } = fakeRunPage({ savedRun: async () => savedNow, resumeSavedRun: async () => result, restoreSavedRun: async () => result });
  const restored: Record<string, unknown>[] = [];
  const offered: (SavedRun | null)[] = [];
  const control = runController(shared, { restoreForm: (hp) => restored.push(hp), showFiles: () => undefined, offerSaved: (run) => offered.push(run) });
  const said: string[] = [];
  return { shared, calls, control, restored, offered, said, say: (t: string) => void said.push(t) };
}

/** This tab's own run, stopped at step 5 after its checkpoint at step 4. */
function stoppedHere(shared: Shared): void {
  shared.run.dispatch({ type: 'start', totalSteps: 8 });
  shared.run.dispatch({ type: 'event', event: { type: 'plan', stats: { totalSteps: 8 } as DataStats, resumedAt: 0 } });
  shared.run.dispatch({ type: 'event', event: { type: 'checkpoint', step: 4, savedAt: ours.savedAt } });
  shared.run.dispatch({ type: 'event', event: { type: 'step', step: 5, totalSteps: 8, epoch: 0, loss: 1.5, lr: 1e-4, gradNorm: 1, tokens: 10, tokensPerSecond: 10, elapsedSeconds: 5, etaSeconds: 3 } });
  shared.run.dispatch({ type: 'stop' });
  shared.run.dispatch({ type: 'finished', result: { steps: 5, skipped: 0, stopped: true, finalLoss: 1.5, finalValLoss: null, seconds: 5 } });
}

describe('"Resume from step N" of this tab\'s run', () => {
  it('resumes its checkpoint while the store still holds it', async () => {
    const t = setUp(ours);
    stoppedHere(t.shared);
    expect(await t.control.resumeCheckpoint(t.say)).toBe(true);
    await new Promise((r) => setTimeout(r, 0));
    expect(t.calls).toEqual(['savedRun', 'resumeSavedRun']);
    expect(t.restored).toEqual([ours.hp]);
  });

  it('resumes nothing when another tab has saved another run since, says so and offers that run instead', async () => {
    const t = setUp(theirs);
    stoppedHere(t.shared);
    const before = t.shared.run.value;
    expect(await t.control.resumeCheckpoint(t.say)).toBe(false);
    await new Promise((r) => setTimeout(r, 0));
    expect(t.calls).not.toContain('resumeSavedRun');
    expect(t.restored).toEqual([]);
    expect(t.said.at(-1)).toBe('Nothing was resumed: the run saved in this browser is no longer the one at step 4 (another tab saved to it since). It now holds theirs.jsonl at step 6 of 8, offered above.');
    expect(t.offered).toEqual([theirs]);
    // The checkpoint is gone from the store: the button no longer offers it; the run is otherwise as it was.
    expect(t.shared.run.value).toEqual({ ...before, checkpointStep: null, checkpointSavedAt: null });
  });

  it('resumes nothing when the store holds the same step of another save (the run taken on elsewhere, or a new one)', async () => {
    const t = setUp({ ...ours, savedAt: theirs.savedAt });
    stoppedHere(t.shared);
    expect(await t.control.resumeCheckpoint(t.say)).toBe(false);
    expect(t.calls).not.toContain('resumeSavedRun');
    expect(t.said.at(-1)).toMatch(/^Nothing was resumed: /);
  });

  it('resumes nothing when no run is saved any more', async () => {
    const t = setUp(null);
    stoppedHere(t.shared);
    expect(await t.control.resumeCheckpoint(t.say)).toBe(false);
    expect(t.calls).not.toContain('resumeSavedRun');
    expect(t.said.at(-1)).toBe('Nothing was resumed: the run at step 4 is no longer saved in this browser (another tab forgot it since). Train again to start a new run.');
    expect(t.offered).toEqual([null]);
  });
});

describe("the saved-run box's Resume and Restore", () => {
  for (const kind of ['resume', 'restore'] as const) {
    it(`${kind}: refuses the run the box was made from once another save has replaced it`, async () => {
      const t = setUp(theirs);
      const ok = await (kind === 'resume' ? t.control.resumeSaved(ours, t.say) : t.control.restoreSaved(ours, t.say));
      await new Promise((r) => setTimeout(r, 0));
      expect(ok).toBe(false);
      expect(t.calls).not.toContain('resumeSavedRun');
      expect(t.calls).not.toContain('restoreSavedRun');
      expect(t.restored).toEqual([]);
      expect(t.shared.run.value.phase).toBe('idle');
      expect(t.said.at(-1)).toBe(`Nothing was ${kind}d: the run saved in this browser is no longer the one at step 4 (another tab saved to it since). It now holds theirs.jsonl at step 6 of 8, offered above.`);
      expect(t.offered).toEqual([theirs]);
    });
  }

  it('resumes the run the box was made from while it is still the one saved', async () => {
    const t = setUp(ours);
    expect(await t.control.resumeSaved(ours, t.say)).toBe(true);
    await new Promise((r) => setTimeout(r, 0));
    expect(t.calls).toEqual(['savedRun', 'resumeSavedRun']);
  });
});
