// Asking before the tab is closed or reloaded while that would throw work away: a training run (the steps since its
// last checkpoint, and the step under way; not a restore, which trains nothing), a failed run's adapter past its last
// checkpoint, or a model still streaming from the Hub or local files (gigabytes read and quantised again next time).
// The browser shows its own question; the reason is for tests and the console.

import { formatCounted } from '../core/units.ts';
import { runBusy, type RunState } from './run-state.ts';
import type { ModelState } from './state.ts';

/** What a reload now would lose, in words, or null when nothing would be lost. */
export function unsavedWork(run: RunState, model: ModelState): string | null {
  if (run.phase === 'paused') {
    // Paused at a step's end: only steps after the last checkpoint are lost (a resume after a reload redoes them).
    const since = run.step - (run.checkpointStep ?? 0);
    return since > 0 ? `the paused run's ${formatCounted(since, 'step')} since its last checkpoint` : null;
  }
  if (runBusy(run.phase) && !trainsPastCheckpoint(run)) return null;
  if (runBusy(run.phase)) return 'the training run under way (it resumes from its last checkpoint)';
  if (run.phase === 'error' && run.hasAdapter) {
    // A run that failed after steps past its last checkpoint (a checkpoint that could not be saved, a full disk, an
    // out-of-memory) leaves their adapter in the worker, which Export offers: the browser keeps only the checkpoint's.
    const since = run.step - (run.checkpointStep ?? 0);
    if (since > 0) return `the failed run's adapter at step ${run.step}, ${formatCounted(since, 'step')} after its last checkpoint (export it first)`;
  }
  // The demo model loads in seconds; a Hub or local model may take minutes, and starts over.
  if (model.status === 'loading' && model.choice !== null && model.choice.kind !== 'demo') return `the load of ${model.choice.label}`;
  return null;
}

/**
 * Whether the run going on can train anything its last checkpoint does not hold. A restore trains nothing: it loads
 * the very adapter the checkpoint holds, which the saved-run box offers again after a reload. Nor does a run with no
 * step left after its checkpoint (a finished run's "Restore the adapter", which resumes it at its last step; a run's
 * last sample after its final checkpoint): a validation pass or a sample then is all that goes, and a resume makes it
 * again.
 */
function trainsPastCheckpoint(run: RunState): boolean {
  if (run.restoreOnly) return false;
  return !(run.checkpointStep !== null && run.checkpointStep >= run.totalSteps && run.step <= run.checkpointStep);
}

/**
 * Installs the guard: `reason()` is asked at each beforeunload, and a reason makes the browser ask the user first (it
 * asks only after the user has interacted with the page, which anyone who started a run or a load has).
 */
export function installLeaveGuard(target: Pick<Window, 'addEventListener'>, reason: () => string | null): void {
  target.addEventListener('beforeunload', (e: BeforeUnloadEvent) => {
    const why = reason();
    if (why === null) return;
    e.preventDefault();
    // Older browsers ask only when returnValue is set; the text itself is never shown.
    e.returnValue = why;
  });
}
