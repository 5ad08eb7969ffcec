// What the training panel's buttons do: the calls to the engine worker, each paired with the run-state action that
// records it (run-state.ts decides the phases). The view (training-panel.ts) only renders and calls these.

import { damagedResumeText, damagedRunProblem, offerGoneText, replaceGoneText, sameCheckpoint, type OfferedCheckpoint } from './saved-run-offer.ts';
import * as Comlink from 'comlink';
import type { RunEstimate, SavedRun, TrainEvent, TrainResult } from '../worker/api.ts';
import { FinetuneError, isFinetuneError } from '../core/errors.ts';
import { visibleText } from '../core/quote.ts';
import { errorParts, quantizationLabel } from './format.ts';
import { formValuesOf } from './hyperparams-panel.ts';
import { afterDeviceLoss, runBusy, type RunPhase, type Shared } from './state.ts';

export const DEMO_MODEL = 'mistral-nano-demo';

/** What a resume says when another tab of the page holds the saved run (trains, resumes or forgets it). */
export const ELSEWHERE_TEXT =
  'A run is training in another tab of this page, on the run saved in this browser: follow it there. This tab can resume it once that run ends or its tab is closed.';

/**
 * What a Forget says when another tab of the page holds the saved run: the "another tab" box takes the saved-run box's
 * place, and its general note said nothing of the Forget the person had just confirmed.
 */
export const FORGET_ELSEWHERE_TEXT =
  'Nothing was forgotten: a run is training in another tab of this page, on the run saved in this browser. Follow it there; this tab can forget it once that run ends or its tab is closed.';

export interface RunControllerHooks {
  /**
   * Puts these values into the form as typed (strings for numbers, as FormState.raw holds them): a saved run's
   * hyperparameters (formValuesOf), once the worker has begun resuming it. A resume refused never changes the form.
   */
  restoreForm(values: Readonly<Record<string, string | boolean>>): void;
  /** Shows a saved run's own data files in the dataset panel. */
  showFiles(train: File, validation: File | null): void;
  /**
   * Shows the run saved in this browser now (null: none) in place of an offer of a checkpoint the store no longer holds.
   * Left out, nothing is shown.
   */
  offerSaved?(run: SavedRun | null): void;
  /**
   * Shows that another tab of the page holds the saved run (`run`: its last checkpoint, or null), in place of a run
   * this tab was to start, resume or restore: the worker refuses those while that tab trains. Left out, nothing is shown.
   */
  offerElsewhere?(run: SavedRun | null): void;
  /**
   * Shows the run saved in this browser as one that cannot be read, or not resumed as it is (`problem`), with an offer
   * to forget it; `why`: what was refused because of it. `record`: the checkpoint a resume was refused for, where the
   * worker refused it for its files (its record reads): a Forget names it, since the store's record is not unreadable.
   * Left out, nothing is shown.
   */
  offerDamaged?(problem: string, why: string, record?: OfferedCheckpoint): void;
  /**
   * Asks again before a new run replaces the run saved in this browser: the worker refused the one asked for, since the
   * store no longer held what the page had named (another tab saved or forgot a run meanwhile). Left out, nothing is
   * shown.
   */
  offerReplace?(offer: ReplaceOffer): void;
}

/** What the store holds after a refused new run, and why nothing started. */
export interface ReplaceOffer {
  /** The run saved now, or null: none, or one that cannot be read (`problem`). */
  now: SavedRun | null;
  /** Why the run saved now cannot be read (the page offers to forget it), or null. */
  problem: string | null;
  /** Nothing was started, and why, in words. */
  why: string;
}

export interface RunController {
  /**
   * Trains on what the form and the dataset panel hold. `replaces`: the run saved in this browser as the page named it
   * before the person agreed to replace it, or null when the page found none. The worker starts only while the store
   * holds exactly that; otherwise nothing starts, this tab's run is shown as it was, and offerReplace asks again about
   * the run saved now. Left out, nothing is checked.
   */
  start(replaces?: SavedRun | null): void;
  /**
   * Continues the run saved in this browser, `saved` as the page offered it: its model, hyperparameters and data. False
   * (with a note, and the run saved now offered instead) when the store no longer holds that checkpoint.
   */
  resumeSaved(saved: SavedRun, say: (text: string) => void): Promise<boolean>;
  /**
   * The saved run's adapter at its checkpoint's step, for export and Try it, training nothing: the run ends stopped
   * there, its checkpoint as it was, so Resume continues it later. Refused as resumeSaved is.
   */
  restoreSaved(saved: SavedRun, say: (text: string) => void): Promise<boolean>;
  /**
   * "Resume from step N" of this tab's run: continues it from its newest checkpoint, when the store still holds that
   * checkpoint; false (with a note, and the run saved now offered instead) when it does not, or when there is none.
   */
  resumeCheckpoint(say: (text: string) => void): Promise<boolean>;
  pause(): void;
  unpause(): void;
  stop(): void;
  /**
   * After the GPU device was lost: a new device, the same model reloaded, then the saved run continued from its last
   * checkpoint. False (with a note) when the device or the model cannot be had again.
   */
  recoverAndResume(say: (text: string) => void): Promise<boolean>;
  /** The run saved in this browser, or null (no store, or nothing saved). */
  savedRun(): Promise<SavedRun | null>;
  /** Why the run saved in this browser cannot be read (a damaged record or store), or null when it can or there is none. */
  savedRunProblem(): Promise<string | null>;
  /** Whether another tab of this page holds the saved run now (trains it): this tab can neither train nor resume. */
  runElsewhere(): Promise<boolean>;
  /** The current inputs' duration on this GPU (one measured pass, cached per model and adapter shape in the worker). */
  estimate(): Promise<RunEstimate>;
}

/**
 * Whether a start, resume or forget was refused because another tab holds the saved run: by the worker (run-lock.ts
 * flags its refusal), or by the controller's own check before it asked.
 */
export function isRunElsewhere(e: unknown): boolean {
  return isFinetuneError(e) && e.details?.runElsewhere === true;
}

export function runController(shared: Shared, hooks: RunControllerHooks): RunController {
  const engine = shared.engine;
  const run = shared.run;
  // Estimates and training share the GPU: a start waits for an estimate in flight.
  let estimating: Promise<unknown> = Promise.resolve();

  // A resume asked for: its checkpoint, whose data files the dataset panel shows, and its hyperparameters, which the
  // form shows, once the worker has begun it. Not before: the worker may still refuse it, and a form filled with the
  // run's values and put back after showed them for a moment (the plan, the estimate and the demo model's
  // quantization, which follow the form, were redone for them too).
  let resumeAsked: { checkpoint: OfferedCheckpoint; form: Readonly<Record<string, string | boolean>> } | null = null;

  /** Follows a run to its end; `refused` takes a failure the run never began with (true: handled, not a failed run). */
  const settle = (p: Promise<TrainResult>, refused?: (e: unknown) => boolean): void => {
    p.then(
      (result) => run.dispatch({ type: 'finished', result }),
      (e: unknown) => {
        if (refused?.(e)) return;
        const { kind, message } = errorParts(e);
        // A device lost while the run measured its kernels names the combination (src/run/kernel-tuning.ts).
        const lost = isFinetuneError(e, 'device-lost') ? e.details?.kernelsLost : undefined;
        run.dispatch({ type: 'failed', kind, message, ...(typeof lost === 'string' ? { lostKernels: lost } : {}) });
        // The model went with the device: Train, Try it and export must not offer it (the worker has none until
        // recoverDevice or a new load).
        afterDeviceLoss(shared, e);
      },
    ).finally(() => {
      // Its plan event, if any, came before its end: a later run's must not show this one's files and form.
      resumeAsked = null;
      shared.refreshMemory();
    });
  };
  // Pause and Stop ask the worker, which may not answer (it is gone, or its session went with a lost GPU device): a
  // failed request is said, and the run shown as it is, instead of an unhandled rejection under "Pausing…"/"Stopping…".
  const askPause = (): void => {
    engine.pauseTraining().catch((e: unknown) => run.dispatch({ type: 'pause-failed', message: errorParts(e).message }));
  };
  // The phase Stop was pressed in, for a failed request to go back to (a paused run stays paused).
  let stopFrom: RunPhase = 'idle';
  const askStop = (): void => {
    engine.stopTraining().catch((e: unknown) => run.dispatch({ type: 'stop-failed', from: stopFrom, message: errorParts(e).message }));
  };
  const onEvent = Comlink.proxy((event: TrainEvent) => {
    run.dispatch({ type: 'event', event });
    // The worker stops only a run it has begun (session.stop): a Stop pressed while the run was starting (waiting for
    // an estimate, reading the saved run) found none there, and the run trained to its end under "Stopping…". Its
    // plan event says it has begun: the Stop is asked again.
    if (event.type === 'plan' && run.value.phase === 'stopping') askStop();
    if (event.type === 'plan' && resumeAsked) {
      hooks.restoreForm(resumeAsked.form);
      void showFilesOf(resumeAsked.checkpoint);
      resumeAsked = null;
    }
    if (event.type === 'step') shared.refreshMemory();
  });

  /**
   * Shows the resumed run's data files in the dataset panel once the worker has begun the resume: the files its resume
   * read with the checkpoint, under the run lock, which it gives for that checkpoint only. Read from the store instead
   * (a restore lets the lock go as soon as it has begun), another tab's save between two reads could give one
   * checkpoint's names with another run's data.
   */
  const showFilesOf = async (resumed: OfferedCheckpoint): Promise<void> => {
    try {
      const files = await engine.savedRunFiles({ step: resumed.step, savedAt: resumed.savedAt });
      if (files) hooks.showFiles(files.train, files.validation);
    } catch {
      // No store in this browser, or the worker is gone: the panel keeps what it shows.
    }
  };

  /** Loads the saved run's model when another one (or none) is loaded; false (with a note) when it cannot. */
  const ensureModel = async (saved: SavedRun, say: (text: string) => void): Promise<boolean> => {
    const m = shared.model.value;
    if (m.status === 'ready' && m.info?.source === saved.modelSource && m.info.quantization === saved.quantization) return true;
    if (saved.modelSource !== DEMO_MODEL) {
      // The record's model name with visibleText's escapes: a bidirectional control in it would reorder the sentence.
      say(`Load ${visibleText(saved.modelSource)} with quantization ${saved.quantization} in the Model panel, then resume.`);
      return false;
    }
    say(`Loading ${DEMO_MODEL} (${quantizationLabel(saved.quantization)})…`);
    const info = await shared.loadModel({ kind: 'demo' }, DEMO_MODEL, saved.quantization);
    if (!info) say('The model could not be loaded: see the Model panel.');
    return info !== null;
  };

  /**
   * The run saved now, when it is the checkpoint `offered`: the worker resumes whatever the store holds when it is
   * asked, and the store is shared by the page's tabs. Otherwise null: this tab's own checkpoint, if it was that one, is
   * no longer offered, the run saved now is offered instead, and the refusal is said.
   */
  const stillSaved = async (offered: OfferedCheckpoint, say: (text: string) => void, restoreOnly: boolean): Promise<SavedRun | null> => {
    const now = await savedNow();
    if (now.run && sameCheckpoint(offered, now.run)) return now.run;
    refuseOffered(offered, now, say, restoreOnly);
    return null;
  };

  /**
   * The run saved now, or why it cannot be read (`problem`: a damaged record or store). Neither: nothing is saved, or
   * there is no store (the worker is gone), which is nothing to offer.
   */
  const savedNow = async (): Promise<{ run: SavedRun | null; problem: string | null }> => {
    try {
      return { run: await engine.savedRun(), problem: null };
    } catch (e) {
      return { run: null, problem: damagedRunProblem(e) };
    }
  };

  /**
   * Nothing is resumed of the checkpoint `offered`, the store holding `now` instead: this tab's own checkpoint, if it
   * was that one, is no longer offered, the run saved now is offered instead (or, when it cannot be read, to be
   * forgotten), and the refusal is said.
   */
  const refuseOffered = (offered: OfferedCheckpoint, now: { run: SavedRun | null; problem: string | null }, say: (text: string) => void, restoreOnly: boolean): void => {
    if (now.problem !== null) return refuseDamaged(now.problem, say, restoreOnly);
    ownGoneUnless(now.run);
    hooks.offerSaved?.(now.run);
    say(offerGoneText(offered.step, now.run, restoreOnly));
  };

  /**
   * Nothing is resumed because the run saved in this browser cannot be read, or not resumed as it is (`problem`, found
   * by the page or by the worker before it gave anything up): said, naming what is wrong, and offered to be forgotten.
   * This tab's own checkpoint is no longer offered: it is that run, or gone. `record`: the checkpoint the worker refused
   * (see offerDamaged).
   */
  const refuseDamaged = (problem: string, say: (text: string) => void, restoreOnly: boolean, record?: OfferedCheckpoint): void => {
    ownGoneUnless(null);
    hooks.offerDamaged?.(problem, `Nothing was ${restoreOnly ? 'restored' : 'resumed'}.`, record);
    say(damagedResumeText(problem, restoreOnly));
  };

  /**
   * Another tab holds the saved run: its run shown in place of the start or resume, as Train's own check shows it, then
   * said (where there is a line to say it). In that order, as refuseDamaged does: showing the run takes the place of the
   * saved-run box, whose note a Resume pressed there says this in, and sets the page's other-tab state, which redraws the
   * line under the chart that "Resume from step N" says it in. Said first, it was written over either way.
   */
  const refuseElsewhere = async (say?: (text: string) => void): Promise<void> => {
    hooks.offerElsewhere?.(await controller.savedRun());
    say?.(ELSEWHERE_TEXT);
  };

  /**
   * The worker's call for a new run, resumed or restored one, once an estimate in flight has ended, and unless another
   * tab holds the saved run: the worker would refuse it then (run-lock.ts), and the page shows that tab's run instead.
   * Asked here, and not only where a button is pressed, so that every way to a run (the confirm box's "Replace it and
   * train" and "Train" too) asks.
   */
  const whenFree = (call: () => Promise<TrainResult>): Promise<TrainResult> =>
    estimating
      .catch(() => undefined)
      .then(async () => {
        if (await controller.runElsewhere()) throw new FinetuneError('bad-input', ELSEWHERE_TEXT, { runElsewhere: true });
        return call();
      });

  /** This tab's own checkpoint is no longer offered (Resume from step N) unless the store's run `now` is that one. */
  const ownGoneUnless = (now: SavedRun | null): void => {
    const own = ownCheckpoint();
    if (own && !(now && sameCheckpoint(own, now))) run.dispatch({ type: 'checkpoint-gone' });
  };

  /**
   * After the worker refused a new run that was to replace `asked` (null: none saved): the store is read again, and the
   * page asks about what it holds now, saying why nothing started.
   */
  const offerReplaceNow = async (asked: SavedRun | null): Promise<void> => {
    // A damaged run is offered to be forgotten; no store at all (the worker is gone) is nothing to offer.
    const { run: now, problem } = await savedNow();
    ownGoneUnless(now);
    hooks.offerReplace?.({ now, problem, why: replaceGoneText(asked, now, problem !== null) });
  };

  /** This tab's run's newest checkpoint in the store, as the run state knows it, or null. */
  const ownCheckpoint = (): OfferedCheckpoint | null => {
    const { checkpointStep: step, checkpointSavedAt: savedAt } = run.value;
    return step !== null && savedAt !== null ? { step, savedAt } : null;
  };

  /** Resumes the checkpoint offered, or with `restoreOnly` loads its adapter at its step and trains nothing. */
  const fromOffered = async (offered: OfferedCheckpoint, say: (text: string) => void, restoreOnly: boolean): Promise<boolean> => {
    if (runBusy(run.value.phase)) return false;
    // Another tab holds the saved run: the worker refuses the resume (run-lock.ts). Asked first, so that this tab's form,
    // files and run (a stopped one with its adapter) are not replaced by a run it cannot have and a 'Training failed'.
    if (await controller.runElsewhere()) {
      await refuseElsewhere(say);
      return false;
    }
    const saved = await stillSaved(offered, say, restoreOnly);
    if (!saved) return false;
    // The form keeps what the person typed until the worker has begun the resume (its plan event): every refusal below
    // leaves it as it is.
    if (!(await ensureModel(saved, say))) return false;
    const before = run.value;
    run.dispatch({ type: 'resume', saved, restoreOnly });
    const expected: OfferedCheckpoint = { step: saved.step, savedAt: saved.savedAt };
    // The form and the dataset panel show what this run trains with, not whatever was typed or picked since.
    resumeAsked = { checkpoint: expected, form: formValuesOf(saved.hp) };
    // Another tab may save between the check above and the worker's resume: the worker refuses any checkpoint but this
    // one, under the run lock, before it gives anything up. Then the page does what its own check does.
    // A record the worker cannot resume (details.damagedRun) is refused the same way, before it gave anything up.
    const refused = (e: unknown): boolean => {
      const elsewhere = isRunElsewhere(e);
      const problem = damagedRunProblem(e);
      if (!elsewhere && problem === null && !(isFinetuneError(e) && e.details?.checkpointGone === true)) return false;
      run.dispatch({ type: 'refused', before });
      if (elsewhere) void refuseElsewhere(say);
      // The worker reads the record it was asked for before its files: refused as damaged, the record was unreadable or
      // was that one (offerDamaged's `record`).
      else if (problem !== null) refuseDamaged(problem, say, restoreOnly, expected);
      else void savedNow().then((now) => refuseOffered(offered, now, say, restoreOnly));
      return true;
    };
    settle(
      whenFree(() => (restoreOnly ? engine.restoreSavedRun(onEvent, expected) : engine.resumeSavedRun(onEvent, expected))),
      refused,
    );
    return true;
  };

  const controller: RunController = {
    start(replaces) {
      const form = shared.form.value;
      const d = shared.data.value;
      if (!form.hp || !d.train || runBusy(run.value.phase)) return;
      const before = run.value;
      run.dispatch({ type: 'start', totalSteps: shared.plan.value.stats?.totalSteps ?? 0 });
      const files = { train: d.train.file, trainName: d.train.file.name, validation: d.validation?.file ?? null, validationName: d.validation?.file.name ?? null };
      const hp = { ...form.hp };
      // The page read the store before it asked the person (or found nothing and asked nothing); another tab can save or
      // forget a run before the worker starts. The worker refuses anything else under the run lock, before it gives
      // anything up: then nothing has started, and the person is asked again about the run saved now.
      const expected = replaces === undefined ? undefined : replaces && { step: replaces.step, savedAt: replaces.savedAt };
      const refused = (e: unknown): boolean => {
        const elsewhere = isRunElsewhere(e);
        if (!elsewhere && !(isFinetuneError(e) && e.details?.savedRunChanged === true)) return false;
        run.dispatch({ type: 'refused', before });
        void (elsewhere ? refuseElsewhere() : offerReplaceNow(replaces ?? null));
        return true;
      };
      settle(
        whenFree(() => engine.startTraining(hp, files, onEvent, expected)),
        refused,
      );
    },

    resumeSaved(saved, say) {
      return fromOffered(saved, say, false);
    },

    restoreSaved(saved, say) {
      return fromOffered(saved, say, true);
    },

    async resumeCheckpoint(say) {
      const own = ownCheckpoint();
      return own !== null && fromOffered(own, say, false);
    },

    pause() {
      if (run.value.phase !== 'running' && run.value.phase !== 'validating') return;
      run.dispatch({ type: 'pause' });
      askPause();
    },

    unpause() {
      if (run.value.phase !== 'paused' && run.value.phase !== 'pausing') return;
      run.dispatch({ type: 'unpause' });
      // The worker lets a paused run go once what reads its adapter (an export, Try it) has ended, and resumeTraining
      // settles then: until it does the page says "resuming", not "running". A failed call leaves it to the run's end.
      const resumed = (): void => run.dispatch({ type: 'resumed' });
      engine.resumeTraining().then(resumed, resumed);
    },

    stop() {
      if (!runBusy(run.value.phase)) return;
      if (run.value.phase !== 'stopping') stopFrom = run.value.phase;
      run.dispatch({ type: 'stop' });
      askStop();
    },

    async recoverAndResume(say) {
      if (runBusy(run.value.phase)) return false;
      say('Getting a new GPU device and reloading the model…');
      try {
        const info = await engine.recoverDevice();
        if (!info) {
          say('A new GPU device is ready; load the model again in the Model panel, then resume.');
          return false;
        }
        // The model is on the new device: the page says so (the run's resume below checks it is the saved run's).
        const m = shared.model.value;
        const choice = m.choice ?? { kind: info.source === DEMO_MODEL ? 'demo' : 'hub', label: info.source };
        shared.model.set({ status: 'ready', choice, quantization: info.quantization, info, progress: null, error: null, failure: null });
      } catch (e) {
        say(`The GPU could not be had again: ${errorParts(e).message}. Reload the page to try once more.`);
        return false;
      }
      // A new run keeps the earlier run saved here until its own first checkpoint: lost before that, the saved run is
      // the earlier one, which "resume" used to continue in its place (its form and files put over this run's).
      if (run.value.checkpointStep === null) {
        say('The GPU is back, but this run saved no checkpoint before the device was lost: train again.');
        return false;
      }
      say('');
      // This run's checkpoint, which another tab may have saved over meanwhile: then nothing is resumed.
      return this.resumeCheckpoint(say);
    },

    async savedRun() {
      try {
        return await engine.savedRun();
      } catch {
        return null; // no store in this browser (no OPFS)
      }
    },

    async savedRunProblem() {
      try {
        await engine.savedRun();
        return null;
      } catch (e) {
        return damagedRunProblem(e);
      }
    },

    async runElsewhere() {
      try {
        return await engine.runElsewhere();
      } catch {
        return false; // the worker is not up: nothing to say of other tabs
      }
    },

    estimate() {
      const form = shared.form.value;
      const d = shared.data.value;
      if (!form.hp || !d.train) return Promise.reject(new Error('nothing to estimate yet'));
      const p = engine.estimateRun({ ...form.hp }, d.train.file, d.validation?.file ?? null);
      estimating = p;
      // The measurement runs a training step on the GPU: a lost device took the model and the adapter with it.
      p.catch((e: unknown) => afterDeviceLoss(shared, e));
      return p;
    },
  };
  return controller;
}
