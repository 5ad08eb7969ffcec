// "Resume from step N" resumes the checkpoint it offers, or nothing (src/ui/run-controller.ts). The worker resumes
// whatever run is saved in this browser when it is asked, and every tab shares that store: another tab may have saved
// another run since the button was made, or taken this run on to a later step. The button under the chart (this tab's
// own run) and those of the saved-run box (the run as it was read) used to resume that other run in its place.
import { describe, expect, it } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { formValuesOf } from '../../../src/ui/hyperparams-panel.ts';
import { runController, type ReplaceOffer } from '../../../src/ui/run-controller.ts';
import type { DataState, Shared } from '../../../src/ui/state.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import type { DataStats, SavedRun, TrainEvent, TrainResult } from '../../../src/worker/api.ts';
import { fakeRunPage, SAVED_AT_STEP_4 } from '../../helpers/fake-run-page.ts';

/** This tab's run as it saved its checkpoint at step 4. */
const ours: SavedRun = SAVED_AT_STEP_4;

/** Another run, saved since by another tab (now closed). */
const theirs: SavedRun = { ...ours, hp: { ...defaultHyperparams(), learning_rate: 3e-4 }, trainName: 'theirs.jsonl', step: 6, history: [{ step: 6, loss: 1 }], savedAt: '2025-01-15T10:00:00.000Z' };

const result: TrainResult = { steps: 8, skipped: 0, stopped: false, finalLoss: 1, finalValLoss: null, seconds: 1 };

/** The page with `savedNow` in the store, and what its saved-run box was asked to show. */
function setUp(savedNow: SavedRun | null) {
  // The worker begins the run (its plan event), then ends it.
  const begun = async (onEvent: (e: TrainEvent) => void): Promise<TrainResult> => {
    onEvent({ type: 'plan', stats: { totalSteps: 8 } as DataStats, resumedAt: 4 });
    return result;
  };
  const { shared, calls } = fakeRunPage({ savedRun: async () => savedNow, resumeSavedRun: begun, restoreSavedRun: begun });
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
    // Once the worker has begun it, the form shows the run's values.
    expect(t.restored).toEqual([formValuesOf(ours.hp)]);
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

// The page's check and the worker's resume are two calls: another tab can save between them. The page hands the worker
// the checkpoint it offered, and the worker refuses any other under the run lock (src/run/session.ts), with
// details.checkpointGone; the page then does what its own check does: nothing resumed, the run saved now offered.
describe('a resume the worker refuses: another tab saved between the check and the resume', () => {
  /** The store holds `ours` when the page checks, `theirs` from then on; the worker refuses, having read theirs. */
  function setUpRace() {
    let reads = 0;
    const asked: { call: string; expected: unknown }[] = [];
    const refuse = async (call: string, expected: unknown): Promise<TrainResult> => {
      asked.push({ call, expected });
      throw new FinetuneError('bad-input', 'the run saved here is no longer the checkpoint asked for (step 4, saved 2025-01-15T09:30:00.000Z): it now holds theirs.jsonl at step 6 of 8, saved 2025-01-15T10:00:00.000Z. Nothing was resumed', { checkpointGone: true });
    };
    const { shared, calls } = fakeRunPage({
      savedRun: async () => (reads++ === 0 ? ours : theirs),
      resumeSavedRun: (_onEvent: never, expected: never) => refuse('resumeSavedRun', expected),
      restoreSavedRun: (_onEvent: never, expected: never) => refuse('restoreSavedRun', expected),
      savedRunFiles: async () => ({ train: new File(['{"text":"theirs"}\n'], 'theirs.jsonl'), validation: null }),
    });
    const restored: Record<string, unknown>[] = [];
    const offered: (SavedRun | null)[] = [];
    const shown: string[] = [];
    const control = runController(shared, { restoreForm: (hp) => restored.push(hp), showFiles: (train) => shown.push(train.name), offerSaved: (run) => offered.push(run) });
    const said: string[] = [];
    return { shared, calls, asked, control, restored, offered, shown, said, say: (t: string) => void said.push(t) };
  }
  const settled = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  };
  const expected = { step: ours.step, savedAt: ours.savedAt };

  it('"Resume from step N": asks the worker for that checkpoint, and on its refusal leaves this tab\'s run as it was and offers the run saved now', async () => {
    const t = setUpRace();
    stoppedHere(t.shared);
    const formBefore = t.shared.form.value.raw;
    const before = t.shared.run.value;
    await t.control.resumeCheckpoint(t.say);
    await settled();
    expect(t.asked).toEqual([{ call: 'resumeSavedRun', expected }]);
    // Not a failed run: this tab's stopped run and its adapter (the worker kept it) are as they were, less the checkpoint
    // the store no longer holds.
    expect(t.shared.run.value).toEqual({ ...before, checkpointStep: null, checkpointSavedAt: null });
    expect(t.said.at(-1)).toBe('Nothing was resumed: the run saved in this browser is no longer the one at step 4 (another tab saved to it since). It now holds theirs.jsonl at step 6 of 8, offered above.');
    expect(t.offered).toEqual([theirs]);
    // The form never showed the run's values (nor was put back: it kept what was typed); the dataset panel never showed
    // the other run's files.
    expect(t.restored).toEqual([]);
    expect(t.shared.form.value.raw).toBe(formBefore);
    expect(t.shown).toEqual([]);
  });

  it('leaves the form as the person left it, a value being typed (not valid yet) included', async () => {
    const t = setUpRace();
    // Half-typed: the form holds no valid hyperparameters, only what was typed.
    const typed = { ...formValuesOf(defaultHyperparams()), learning_rate: '3e-', lora_rank: '16' };
    t.shared.form.set({ raw: typed, hp: null, errors: { learning_rate: ['learning_rate must be a number'] } });
    await t.control.resumeSaved(ours, t.say);
    await settled();
    expect(t.restored).toEqual([]);
    expect(t.shared.form.value.raw).toEqual(typed);
  });

  it("leaves the form as it was when the run's model is not the one loaded (nothing is resumed then either)", async () => {
    const hub: SavedRun = { ...ours, modelSource: 'mistralai/Mistral-7B-Instruct-v0.2' };
    const { shared, calls } = fakeRunPage({ savedRun: async () => hub, resumeSavedRun: async () => result });
    const restored: Record<string, unknown>[] = [];
    const control = runController(shared, { restoreForm: (values) => restored.push(values), showFiles: () => undefined });
    const typed = { ...formValuesOf(defaultHyperparams()), learning_rate: '3e-' };
    shared.form.set({ raw: typed, hp: null, errors: {} });
    const said: string[] = [];
    expect(await control.resumeSaved(hub, (text) => said.push(text))).toBe(false);
    expect(calls).not.toContain('resumeSavedRun');
    expect(said.at(-1)).toBe('Load mistralai/Mistral-7B-Instruct-v0.2 with quantization nf4-double in the Model panel, then resume.');
    expect(restored).toEqual([]);
    expect(shared.form.value.raw).toEqual(typed);
  });

  for (const kind of ['resume', 'restore'] as const) {
    it(`the box's ${kind}: asks the worker for the run the box was made from, and on its refusal resumes nothing and offers the run saved now`, async () => {
      const t = setUpRace();
      await (kind === 'resume' ? t.control.resumeSaved(ours, t.say) : t.control.restoreSaved(ours, t.say));
      await settled();
      expect(t.asked).toEqual([{ call: kind === 'resume' ? 'resumeSavedRun' : 'restoreSavedRun', expected }]);
      expect(t.shared.run.value.phase).toBe('idle');
      expect(t.shared.run.value.outcome).toBeNull();
      expect(t.said.at(-1)).toBe(`Nothing was ${kind}d: the run saved in this browser is no longer the one at step 4 (another tab saved to it since). It now holds theirs.jsonl at step 6 of 8, offered above.`);
      expect(t.offered).toEqual([theirs]);
      expect(t.shown).toEqual([]);
    });
  }

  it('a resume the worker began shows the data it trains on (those its resume read with that checkpoint)', async () => {
    const files = { train: new File(['{"text":"ours"}\n'], 'ours.jsonl'), validation: null };
    const askedFiles: unknown[] = [];
    const { shared } = fakeRunPage({
      savedRun: async () => ours,
      savedRunFiles: async (checkpoint: never) => (askedFiles.push(checkpoint), files),
      resumeSavedRun: async (onEvent: never) => {
        (onEvent as (e: TrainEvent) => void)({ type: 'plan', stats: { totalSteps: 8 } as DataStats, resumedAt: 4 });
        await new Promise((r) => setTimeout(r, 0));
        return result;
      },
    });
    const shown: string[] = [];
    const control = runController(shared, { restoreForm: () => undefined, showFiles: (train) => shown.push(train.name) });
    expect(await control.resumeSaved(ours, () => undefined)).toBe(true);
    await settled();
    expect(askedFiles).toEqual([expected]);
    expect(shown).toEqual(['ours.jsonl']);
  });
});

// Train asks before a new run replaces the run saved in this browser ("Replace it and train", naming it), or starts at
// once when none is saved. Another tab can save a different run, or forget that one, between that read and the start:
// the page hands the worker what it named, the worker refuses anything else under the run lock (src/run/session.ts,
// details.savedRunChanged), and the page then asks again about the run saved now, starting nothing.
describe('Train over the run saved in this browser', () => {
  const data = { train: { file: new File(['{"text":"a"}\n'], 'new.jsonl'), report: { ok: true }, status: 'ready', error: null }, validation: null } as unknown as DataState;
  const damaged = new FinetuneError('bad-input', 'the saved run is unreadable (run.json: Unexpected end of JSON input)', { damagedRun: true });

  /** The worker refuses the start (it found `now` in the store, or a damaged run), and the page reads `now` after. */
  function setUpRefused(now: SavedRun | null | 'damaged') {
    const asked: unknown[] = [];
    const { shared, calls } = fakeRunPage(
      {
        savedRun: async () => {
          if (now === 'damaged') throw damaged;
          return now;
        },
        startTraining: async (_hp: never, _files: never, _onEvent: never, replaces: never) => {
          asked.push(replaces);
          throw new FinetuneError('bad-input', 'the run saved here is no longer the one this run was to replace (…). Nothing was started', { savedRunChanged: true });
        },
      },
      { data },
    );
    const offers: ReplaceOffer[] = [];
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined, offerReplace: (o) => offers.push(o) });
    return { shared, calls, asked, control, offers };
  }
  const settled = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  };

  it('hands the worker the run it asked about, or null for none', async () => {
    const asked: unknown[] = [];
    const { shared } = fakeRunPage({ startTraining: async (_hp: never, _files: never, _onEvent: never, replaces: never) => (asked.push(replaces), result) }, { data });
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    control.start(ours);
    await settled();
    control.start(null);
    await settled();
    expect(asked).toEqual([{ step: ours.step, savedAt: ours.savedAt }, null]);
  });

  it('another run saved since "Replace it and train" named ours: nothing starts, and the page asks about theirs', async () => {
    const t = setUpRefused(theirs);
    t.control.start(ours);
    await settled();
    expect(t.asked).toEqual([{ step: 4, savedAt: ours.savedAt }]);
    // Not a failed run: the panel is as it was before Train.
    expect(t.shared.run.value.phase).toBe('idle');
    expect(t.shared.run.value.outcome).toBeNull();
    expect(t.offers).toEqual([
      {
        now: theirs,
        problem: null,
        why: 'Nothing was started: the run saved in this browser is no longer ours.jsonl at step 4 of 8, the one Train asked about (another tab saved to it since). It now holds theirs.jsonl at step 6 of 8.',
      },
    ]);
  });

  it('a run saved since Train found none: nothing starts, and the page asks about it', async () => {
    const t = setUpRefused(theirs);
    t.control.start(null);
    await settled();
    expect(t.asked).toEqual([null]);
    expect(t.shared.run.value.phase).toBe('idle');
    expect(t.offers).toEqual([{ now: theirs, problem: null, why: 'Nothing was started: another tab saved a run in this browser since Train was clicked. It now holds theirs.jsonl at step 6 of 8.' }]);
  });

  it('the run named forgotten since: nothing starts, and the page says nothing is saved now', async () => {
    const t = setUpRefused(null);
    t.control.start(ours);
    await settled();
    expect(t.offers).toEqual([
      { now: null, problem: null, why: 'Nothing was started: ours.jsonl at step 4 of 8 is no longer saved in this browser (another tab forgot it since). Nothing is saved here now: a new run replaces nothing.' },
    ]);
  });

  it('a run that cannot be read now: nothing starts, and the page offers to forget it', async () => {
    const t = setUpRefused('damaged');
    t.control.start(null);
    await settled();
    expect(t.offers).toEqual([
      { now: null, problem: damaged.message, why: 'Nothing was started: another tab wrote to the run saved in this browser since Train was clicked, and it cannot be read now.' },
    ]);
  });

  it("this tab's stopped run stays as it was, less the checkpoint another tab's run has replaced", async () => {
    const t = setUpRefused(theirs);
    stoppedHere(t.shared);
    const before = t.shared.run.value;
    t.control.start(ours);
    await settled();
    expect(t.shared.run.value).toEqual({ ...before, checkpointStep: null, checkpointSavedAt: null });
  });
});

// A saved run whose record cannot be read (not JSON, fields missing or out of range) is not a failed run, nor a run
// "another tab forgot": the page's check, or the worker's, refuses the resume, names what is wrong, offers to forget
// the saved run, and leaves this tab's form, files and run as they were.
describe('a resume of a saved run that cannot be read', () => {
  const unreadable = new FinetuneError('bad-input', 'the saved run is unreadable (run.json: Unexpected end of JSON input)', { damagedRun: true });
  const invalid = new FinetuneError('bad-input', 'the saved run cannot be resumed: its hyperparameters are not valid: lora_rank must be at least 1', { damagedRun: true });
  const settled = async (): Promise<void> => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  };

  /** The store read as `read` says; the worker refuses the resume and restore with `refusal`. */
  function setUpDamaged(read: () => Promise<SavedRun | null>, refusal: FinetuneError) {
    const refuse = (): Promise<never> => Promise.reject(refusal);
    const { shared, calls } = fakeRunPage({ savedRun: read, resumeSavedRun: refuse, restoreSavedRun: refuse });
    const restored: Record<string, unknown>[] = [];
    const damaged: { problem: string; why: string }[] = [];
    const shown: string[] = [];
    const control = runController(shared, {
      restoreForm: (values) => restored.push(values),
      showFiles: (train) => shown.push(train.name),
      offerDamaged: (problem, why) => damaged.push({ problem, why }),
    });
    const typed = { ...formValuesOf(defaultHyperparams()), learning_rate: '3e-' };
    shared.form.set({ raw: typed, hp: null, errors: {} });
    const said: string[] = [];
    return { shared, calls, control, restored, damaged, shown, typed, said, say: (t: string) => void said.push(t) };
  }

  for (const kind of ['resume', 'restore'] as const) {
    it(`${kind}: the worker's refusal of a record it cannot resume is said, and the run offered to be forgotten`, async () => {
      const t = setUpDamaged(async () => ours, invalid);
      stoppedHere(t.shared);
      const before = t.shared.run.value;
      expect(await (kind === 'resume' ? t.control.resumeSaved(ours, t.say) : t.control.restoreSaved(ours, t.say))).toBe(true);
      await settled();
      // Not a failed run: this tab's stopped run is as it was, its checkpoint no longer offered (the store's cannot be read).
      expect(t.shared.run.value).toEqual({ ...before, checkpointStep: null, checkpointSavedAt: null });
      expect(t.restored).toEqual([]);
      expect(t.shared.form.value.raw).toEqual(t.typed);
      expect(t.shown).toEqual([]);
      const verb = kind === 'resume' ? 'resumed' : 'restored';
      expect(t.damaged).toEqual([{ problem: invalid.message, why: `Nothing was ${verb}.` }]);
      expect(t.said.at(-1)).toBe(
        `Nothing was ${verb}: the saved run cannot be resumed: its hyperparameters are not valid: lora_rank must be at least 1. Forget it above to train a new run here; the form and the dataset are as they were.`,
      );
    });
  }

  it('found by the page before it asks the worker: nothing asked, nothing changed, and not "another tab forgot it"', async () => {
    const t = setUpDamaged(() => Promise.reject(unreadable), unreadable);
    stoppedHere(t.shared);
    expect(await t.control.resumeCheckpoint(t.say)).toBe(false);
    await settled();
    expect(t.calls).not.toContain('resumeSavedRun');
    expect(t.restored).toEqual([]);
    expect(t.damaged).toEqual([{ problem: unreadable.message, why: 'Nothing was resumed.' }]);
    expect(t.said.at(-1)).toBe(
      'Nothing was resumed: the saved run is unreadable (run.json: Unexpected end of JSON input). Forget it above to train a new run here; the form and the dataset are as they were.',
    );
    expect(t.shared.run.value.phase).toBe('stopped');
  });
});
