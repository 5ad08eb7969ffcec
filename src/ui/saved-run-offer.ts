// What the saved-run box of the training panel (training-panel.ts) says and offers for the run saved in this browser.
// Pure text, so that the wording is tested without a browser.

import type { SavedRun } from '../worker/api.ts';
import { isFinetuneError } from '../core/errors.ts';
import { visibleText } from '../core/quote.ts';

type RunNames = Pick<SavedRun, 'trainName' | 'validationName' | 'step' | 'totalSteps'>;

/**
 * The question "Forget it" asks first: forgetting deletes the run and its checkpoint at once, with no way back, so the
 * person sees which run, at which step, and what can no longer be done with it.
 */
export function forgetQuestion(run: RunNames): string {
  const files = visibleText(`${run.trainName}${run.validationName ? ` + ${run.validationName}` : ''}`);
  const lost = run.step >= run.totalSteps ? 'its adapter can no longer be restored' : 'the run can no longer be resumed, nor its adapter restored';
  return `Forget the run saved in this browser (${files}, step ${run.step} of ${run.totalSteps})? Its checkpoint at step ${run.step} is deleted with it: ${lost}.`;
}

/** A button of the saved-run box: `resume` continues the run, `restore` loads its adapter at its step and trains nothing. */
export interface SavedRunAction {
  kind: 'resume' | 'restore';
  label: string;
}

/**
 * What the box offers. A finished run's resume trains nothing and restores its adapter, so that is its one button. An
 * unfinished run offers its adapter at its checkpoint's step too: the page promised "the adapter so far can be
 * exported" after a stop, and after a reload the only way to it was to train on.
 */
export function savedRunActions(run: Pick<SavedRun, 'step' | 'totalSteps'>): SavedRunAction[] {
  if (run.step >= run.totalSteps) return [{ kind: 'resume', label: 'Restore the adapter' }];
  return [
    { kind: 'resume', label: `Resume from step ${run.step}` },
    { kind: 'restore', label: `Restore the adapter at step ${run.step}` },
  ];
}

/** A checkpoint as an offer shows it: the saved run's step, and its record's savedAt (each commit writes its own). */
export type OfferedCheckpoint = Pick<SavedRun, 'step' | 'savedAt'>;

/** Whether the run saved now is the checkpoint offered: the same commit, not merely the same step of some run. */
export function sameCheckpoint(offered: OfferedCheckpoint, now: OfferedCheckpoint): boolean {
  return offered.step === now.step && offered.savedAt === now.savedAt;
}

/**
 * What a Resume (or Restore) says when the store no longer holds the checkpoint its button offered: every tab of the
 * page shares the store, so another tab may have saved another run, or this one further on, or forgotten it since.
 * The run saved now (if any) is offered in its place, in the saved-run box above the controls.
 */
export function offerGoneText(offeredStep: number, now: RunNames | null, restoreOnly = false): string {
  const nothing = `Nothing was ${restoreOnly ? 'restored' : 'resumed'}`;
  if (!now) return `${nothing}: the run at step ${offeredStep} is no longer saved in this browser (another tab forgot it since). Train again to start a new run.`;
  const files = visibleText(`${now.trainName}${now.validationName ? ` + ${now.validationName}` : ''}`);
  return `${nothing}: the run saved in this browser is no longer the one at step ${offeredStep} (another tab saved to it since). It now holds ${files} at step ${now.step} of ${now.totalSteps}, offered above.`;
}

/**
 * What Train says when the worker refused a new run because the store no longer holds what the page named before it
 * started: `asked`, the run "Replace it and train" named, or null when none was saved; `now`, the run saved now (null:
 * none, or with `damaged` one that cannot be read). Every tab shares the store: another may have saved or forgotten a
 * run meanwhile, and the new run would have replaced a run the person never saw named. The page then asks again about
 * the run saved now.
 */
export function replaceGoneText(asked: RunNames | null, now: RunNames | null, damaged = false): string {
  const files = (run: RunNames): string => visibleText(`${run.trainName}${run.validationName ? ` + ${run.validationName}` : ''}`);
  const named = asked ? `${files(asked)} at step ${asked.step} of ${asked.totalSteps}` : '';
  if (damaged) {
    return asked
      ? `Nothing was started: the run saved in this browser is no longer ${named}, the one Train asked about (another tab wrote to it since), and it cannot be read now.`
      : 'Nothing was started: another tab wrote to the run saved in this browser since Train was clicked, and it cannot be read now.';
  }
  if (now) {
    const holds = `It now holds ${files(now)} at step ${now.step} of ${now.totalSteps}.`;
    return asked
      ? `Nothing was started: the run saved in this browser is no longer ${named}, the one Train asked about (another tab saved to it since). ${holds}`
      : `Nothing was started: another tab saved a run in this browser since Train was clicked. ${holds}`;
  }
  const gone = asked ? `${named} is no longer saved in this browser (another tab forgot it since)` : 'the run saved in this browser changed since Train was clicked';
  return `Nothing was started: ${gone}. Nothing is saved here now: a new run replaces nothing.`;
}

/**
 * The message of a saved run that cannot be read (a damaged run.json or store, flagged by the worker), or null for any
 * other error (no store in this browser): the page shows it with an offer to forget it, where it used to show nothing
 * and a new run replaced it without a word.
 */
export function damagedRunProblem(e: unknown): string | null {
  return isFinetuneError(e) && e.details?.damagedRun === true ? e.message : null;
}

/**
 * What a Resume (or Restore) says when the run saved in this browser cannot be read, or not resumed as it is: the page,
 * or the worker, found `problem` before anything was given up. The box above then offers to forget the run.
 */
export function damagedResumeText(problem: string, restoreOnly = false): string {
  return `Nothing was ${restoreOnly ? 'restored' : 'resumed'}: ${problem}. Forget it above to train a new run here; the form and the dataset are as they were.`;
}

/** What "Forget it" asks first for a damaged run. */
export function forgetDamagedQuestion(): string {
  return 'Forget the unreadable run saved in this browser? Its files are deleted: whatever checkpoint they hold is lost. A new run can be trained here afterwards.';
}

/**
 * What the saved-run box says when "Forget it?" was asked about a run the store no longer holds: a look at the store
 * the person did not ask for (when the page opens, after a refused Resume) found another run, and rebuilt the box for it,
 * withdrawing the question; or the worker refused the confirmed Forget (details.savedRunChanged), as it named that run.
 * `now`: the run saved now, 'unreadable' for one that cannot be read, or null for none. Said, so that the question the
 * person was reading does not vanish without a word; a run that another tab holds says FORGET_ELSEWHERE_TEXT
 * (run-controller.ts) instead.
 */
export function forgetWithdrawnText(now: RunNames | 'unreadable' | null): string {
  const nothing = 'Nothing was forgotten: the run saved in this browser is no longer the one Forget asked about';
  if (now === 'unreadable') return `${nothing} (another tab wrote to it since), and it cannot be read now.`;
  if (!now) return `${nothing} (another tab forgot it since). Nothing is saved here now.`;
  const files = visibleText(`${now.trainName}${now.validationName ? ` + ${now.validationName}` : ''}`);
  return `${nothing} (another tab saved to it since). It now holds ${files} at step ${now.step} of ${now.totalSteps}, shown above.`;
}
