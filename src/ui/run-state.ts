// The page's training run as a state machine: one reducer decides every phase change and every readout, from the
// user's actions and the worker's events. Panels render `RunState`; nothing else sets the phase. Pure (no DOM, no
// engine), so its transitions are unit-tested (test/unit/ui/run-state.test.ts).

import { passPlace } from '../core/run-words.ts';
import type { DataStats, SavedRun, TrainEvent, TrainResult } from '../worker/api.ts';
import { visibleText } from '../core/quote.ts';
import { formatCounted, formatDuration } from './format.ts';

// 'pausing': Pause was asked, and the worker has not yet stopped at a pause point (the step, the validation pass or the
// sample under way finishes first); 'paused' once it says it has, and only then do export and Try it use the GPU.
// 'resuming': Resume was asked of a paused run, and the worker has not yet let it go: it waits for what reads the
// adapter (an export reading it whole, a generation stopping at its next token) to end (src/run/session.ts resume).
export type RunPhase = 'idle' | 'starting' | 'running' | 'validating' | 'pausing' | 'paused' | 'resuming' | 'stopping' | 'done' | 'stopped' | 'error';

export interface LossPoint {
  step: number;
  loss: number;
  valLoss?: number;
}

export interface StepReadouts {
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  tokensPerStep: number;
  elapsedSeconds: number;
  /** null once the run is no longer moving (finished, stopped, failed): no stale countdown. */
  etaSeconds: number | null;
}

export interface ValidationReadout {
  step: number;
  valLoss: number;
  valTokens: number | null;
  seconds: number | null;
}

/** How the last run ended, for the result line. */
export type RunOutcome =
  | { kind: 'finished'; steps: number; seconds: number; finalLoss: number | null; finalValLoss: number | null; baselineValLoss: number | null }
  | { kind: 'stopped'; steps: number; totalSteps: number }
  | { kind: 'failed'; errorKind: string; message: string; lostKernels?: string };

export interface RunState {
  phase: RunPhase;
  /** Optimizer steps done (the adapter's step, for the export file name). */
  step: number;
  totalSteps: number;
  /** A trained (or restored) adapter lives in the worker: export and generation can use it. */
  hasAdapter: boolean;
  /** The run's own plan (from its 'plan' event), shown instead of the form's until the inputs change. */
  plan: DataStats | null;
  readouts: StepReadouts | null;
  validation: ValidationReadout | null;
  history: LossPoint[];
  /** The validation loss before the first step (eval_on_start; a restored run's from its record), or null: none made. */
  baseline: number | null;
  /** The latest thing worth a line under the chart (checkpoint saved, step skipped, resumed …). */
  note: string;
  /** The validation_prompt samples of the run so far (a restored run's from its record), in step order, one a step. */
  samples: RunSample[];
  outcome: RunOutcome | null;
  /** The step of the newest checkpoint in this browser's store during this page's life, or null. */
  checkpointStep: number | null;
  /**
   * That checkpoint's run record's savedAt, or null: with its step, which checkpoint it is. The store is shared by the
   * page's tabs, so "Resume from step N" checks the store still holds this one (saved-run-offer.ts sameCheckpoint).
   */
  checkpointSavedAt: string | null;
  /** When the run was resumed from a saved run: its training file's name. */
  resumedFrom: string | null;
  /** The saved run was only restored (its adapter at its checkpoint's step), not trained further: the notes say so. */
  restoreOnly: boolean;
  /** Which kernels the run trains with and how they were chosen (its 'kernels' event), for the line under the readouts. */
  kernels: string | null;
  /** The validation under way (phase 'validating', or paused in one): how many of its forward passes are done. */
  validating: { step: number; done: number; passes: number } | null;
}

/** A validation_prompt sample: what the adapter wrote for the prompt after a step's validation pass. */
export interface RunSample {
  step: number;
  prompt: string;
  text: string;
}

/** A saved run's samples, from its history (records from before samples were kept, or without a prompt, have none). */
function savedSamples(saved: SavedRun): RunSample[] {
  const prompt = typeof saved.hp?.validation_prompt === 'string' ? saved.hp.validation_prompt : '';
  const before = typeof saved.baseline?.sample === 'string' ? [{ step: 0, prompt, text: saved.baseline.sample }] : [];
  return [...before, ...saved.history.flatMap((h) => (typeof h.sample === 'string' ? [{ step: h.step, prompt, text: h.sample }] : []))];
}

export type RunAction =
  | { type: 'start'; totalSteps: number }
  | { type: 'resume'; saved: SavedRun; restoreOnly?: boolean }
  | { type: 'event'; event: TrainEvent }
  | { type: 'pause' }
  | { type: 'unpause' }
  /** The worker let the paused run go (its resumeTraining settled): it runs again. */
  | { type: 'resumed' }
  | { type: 'stop' }
  /** The worker could not be asked to pause (it is gone, or its session went with the GPU device). */
  | { type: 'pause-failed'; message: string }
  /** The worker could not be asked to stop; `from`: the phase the run was in when Stop was pressed. */
  | { type: 'stop-failed'; message: string; from: RunPhase }
  | { type: 'finished'; result: TrainResult }
  /** lostKernels: the kernel combination being measured when the GPU device was lost (before the first step), in words. */
  | { type: 'failed'; kind: string; message: string; lostKernels?: string }
  /** A different base model was loaded: the adapter trained on the old one is gone. */
  | { type: 'model-changed' }
  /**
   * A worker call outside the run (Try it, an estimate, an export…) met a lost GPU device: the worker dropped the
   * device and the session on it, the run's adapter with them. A run going on fails by itself ('failed').
   */
  | { type: 'adapter-lost' }
  /** The store no longer holds the run's checkpoint (another tab saved over it, or forgot it): nothing offers it. */
  | { type: 'checkpoint-gone' }
  /**
   * The worker refused a resume or a new run before it began (the store no longer held the checkpoint asked for, or the
   * saved run a new run was to replace): the run is shown as it was before the 'resume' or 'start' (`before`), since
   * the worker kept what it had, this tab's adapter included.
   */
  | { type: 'refused'; before: RunState }
  /** The form or the files changed after a run: the plan box shows the plan for them again. */
  | { type: 'inputs-changed' };

export const IDLE_RUN: RunState = {
  phase: 'idle',
  step: 0,
  totalSteps: 0,
  hasAdapter: false,
  plan: null,
  readouts: null,
  validation: null,
  history: [],
  baseline: null,
  note: '',
  samples: [],
  outcome: null,
  checkpointStep: null,
  checkpointSavedAt: null,
  resumedFrom: null,
  restoreOnly: false,
  kernels: null,
  validating: null,
};

/** True while a run holds the engine (inputs that would change it are locked). */
export function runBusy(phase: RunPhase): boolean {
  return phase === 'starting' || phase === 'running' || phase === 'validating' || phase === 'pausing' || phase === 'paused' || phase === 'resuming' || phase === 'stopping';
}

/**
 * The ETA readout: the time left while a run goes; "stopping" once Stop is asked (the run ends after this step, whatever
 * the plan's remaining time says: it used to count down on), and none when no run is going.
 */
export function etaText(run: Pick<RunState, 'phase' | 'readouts'>): string {
  if (run.phase === 'done') return 'done';
  if (run.phase === 'stopping') return 'stopping';
  const eta = run.readouts?.etaSeconds ?? null;
  return eta !== null && runBusy(run.phase) ? formatDuration(eta) : '—';
}

/**
 * True while steps are being computed (export and generation must wait; they may read the GPU between steps), and
 * while a Resume waits for the reading under way: a new one would hold the run longer.
 */
export function runComputing(phase: RunPhase): boolean {
  return runBusy(phase) && phase !== 'paused';
}

function onEvent(s: RunState, e: TrainEvent): RunState {
  switch (e.type) {
    case 'plan':
      return {
        ...s,
        phase: s.phase === 'starting' ? 'running' : s.phase,
        plan: e.stats,
        totalSteps: e.stats.totalSteps,
        step: e.resumedAt,
        hasAdapter: true,
        // The saved run's file name with visibleText's escapes: a bidirectional control in it would reorder the note.
        note: s.restoreOnly
          ? `Restoring the adapter of ${s.resumedFrom === null ? 'the saved run' : visibleText(s.resumedFrom)} at step ${e.resumedAt} (nothing is trained)…`
          : e.resumedAt > 0
            ? `Resumed ${s.resumedFrom === null ? 'the saved run' : visibleText(s.resumedFrom)} from the checkpoint at step ${e.resumedAt}.`
            : 'Training started.',
      };
    case 'step': {
      const history = [...s.history.filter((p) => p.step !== e.step), { step: e.step, loss: e.loss }];
      return {
        ...s,
        // Validation ends with its own event; a step event means training goes on (a resumed run's too).
        phase: s.phase === 'validating' || s.phase === 'resuming' ? 'running' : s.phase,
        validating: null,
        step: e.step,
        totalSteps: e.totalSteps,
        history,
        readouts: {
          epoch: e.epoch,
          loss: e.loss,
          lr: e.lr,
          gradNorm: e.gradNorm,
          tokensPerSecond: e.tokensPerSecond,
          tokensPerStep: e.tokens,
          elapsedSeconds: e.elapsedSeconds,
          // The trainer's ETA counts the validation passes still to come (the last step's included).
          etaSeconds: e.etaSeconds,
        },
      };
    }
    case 'validating':
      return {
        ...s,
        phase: s.phase === 'running' || s.phase === 'resuming' ? 'validating' : s.phase,
        validating: { step: e.step, done: e.done, passes: e.passes },
        note: validatingText(e),
        readouts: s.readouts && e.etaSeconds !== null ? { ...s.readouts, etaSeconds: e.etaSeconds } : s.readouts,
      };
    case 'eval': {
      // Step 0 is the pass before the first step (eval_on_start): the baseline, no step of the history.
      const history = s.history.map((p) => (p.step === e.step ? { ...p, valLoss: e.valLoss } : p));
      return {
        ...s,
        phase: s.phase === 'validating' || s.phase === 'resuming' ? 'running' : s.phase,
        validating: null,
        history,
        baseline: e.step === 0 ? e.valLoss : s.baseline,
        validation: { step: e.step, valLoss: e.valLoss, valTokens: e.valTokens, seconds: e.seconds },
        note: `Validation loss ${e.valLoss.toPrecision(4)} ${afterStepText(e.step)}.`,
      };
    }
    case 'sample':
      // The note said the sample was being written; now it is shown below, and the note goes back to the validation.
      return {
        ...s,
        samples: [...s.samples.filter((x) => x.step !== e.step), { step: e.step, prompt: e.prompt, text: e.text }].sort((a, b) => a.step - b.step),
        note: s.validation?.step === e.step ? `Validation loss ${s.validation.valLoss.toPrecision(4)} ${afterStepText(e.step)}; its sample is below.` : `The sample ${afterStepText(e.step)} is below.`,
      };
    case 'checkpoint':
      return { ...s, checkpointStep: e.step, checkpointSavedAt: e.savedAt, note: `Checkpoint saved in this browser at step ${e.step}.` };
    case 'status':
      return { ...s, note: e.text };
    case 'paused': {
      // The worker has stopped at a pause point: only now is the GPU free for export and Try it. A sample being
      // written waits too: its "writing…" line, left as it was, said it was under way for as long as the pause lasted.
      if (s.phase !== 'pausing') return s;
      const sample = /^writing a sample for the validation prompt (.*)…$/.exec(s.note);
      return { ...s, phase: 'paused', ...(sample ? { note: `The sample for the validation prompt ${sample[1]} is written once the run is resumed.` } : {}) };
    }
    case 'kernels':
      // Its own line under the readouts: the note keeps what it said (e.g. which checkpoint a resume continued from).
      return { ...s, kernels: e.text };
    case 'skipped':
      return { ...s, step: e.step, note: `Step ${e.step} skipped: ${e.reason}; the adapter was left as it was (${e.consecutive} in a row).` };
    default:
      return s;
  }
}

/** Where a validation pass sits in a run: after a step, or before the first (step 0: eval_on_start). */
export function afterStepText(step: number): string {
  return passPlace(step, `after step ${step}`);
}

/** What the page says during the validation pass after a step: which step, and how far it has come. */
export function validatingText(p: { step: number; done: number; passes: number }): string {
  const where = p.done > 0 ? `: ${p.done} / ${formatCounted(p.passes, 'pass', 'passes')}` : '';
  return p.step === 0 ? `Validating the untrained adapter, before the first step${where}…` : `Validating the adapter after step ${p.step}${where}…`;
}

/** Readouts frozen at the end of a run: no countdown keeps ticking. */
function settled(r: StepReadouts | null): StepReadouts | null {
  return r ? { ...r, etaSeconds: null } : null;
}

export function runReducer(s: RunState, a: RunAction): RunState {
  switch (a.type) {
    case 'start':
      if (runBusy(s.phase)) return s;
      return { ...IDLE_RUN, phase: 'starting', totalSteps: a.totalSteps };
    case 'resume':
      if (runBusy(s.phase)) return s;
      return {
        ...IDLE_RUN,
        phase: 'starting',
        step: a.saved.step,
        totalSteps: a.saved.totalSteps,
        // The chart's points; the samples (kept in the same entries) go to their own list.
        history: a.saved.history.map(({ sample: _sample, ...p }) => p),
        baseline: a.saved.baseline?.valLoss ?? null,
        samples: savedSamples(a.saved),
        validation: lastValidation(a.saved.history) ?? (a.saved.baseline ? { step: 0, valLoss: a.saved.baseline.valLoss, valTokens: null, seconds: null } : null),
        resumedFrom: a.saved.trainName,
        restoreOnly: a.restoreOnly === true,
        checkpointStep: a.saved.step,
        checkpointSavedAt: a.saved.savedAt,
      };
    case 'event':
      return onEvent(s, a.event);
    case 'pause':
      return s.phase === 'running' || s.phase === 'validating' ? { ...s, phase: 'pausing' } : s;
    case 'unpause':
      // Paused: the worker holds the run until what reads its adapter has ended ('resumed' then). Pausing: the run
      // never stopped, and nothing read its adapter meanwhile.
      if (s.phase === 'paused') return { ...s, phase: 'resuming' };
      return s.phase === 'pausing' ? { ...s, phase: s.validating ? 'validating' : 'running' } : s;
    case 'resumed':
      return s.phase === 'resuming' ? { ...s, phase: s.validating ? 'validating' : 'running' } : s;
    case 'stop':
      return runBusy(s.phase) ? { ...s, phase: 'stopping' } : s;
    // A request that never reached the worker changed nothing there: the run is shown as it is, not left "Pausing…" or
    // "Stopping…" with the button disabled. A run that ended meanwhile keeps its outcome.
    case 'pause-failed':
      return s.phase === 'pausing' ? { ...s, phase: goingPhase(s), note: requestFailedText('pause', a.message) } : s;
    case 'stop-failed':
      if (s.phase !== 'stopping') return s;
      return { ...s, phase: heldPhase(a.from) ?? goingPhase(s), note: requestFailedText('stop', a.message) };
    case 'finished': {
      const r = a.result;
      const outcome: RunOutcome = r.stopped
        ? { kind: 'stopped', steps: r.steps, totalSteps: s.totalSteps }
        : { kind: 'finished', steps: r.steps, seconds: r.seconds, finalLoss: r.finalLoss, finalValLoss: r.finalValLoss, baselineValLoss: r.baselineValLoss ?? s.baseline };
      return {
        ...s,
        phase: r.stopped ? 'stopped' : 'done',
        validating: null,
        step: r.steps,
        hasAdapter: true,
        // The run's training time in the end (its final validation pass included), as the result line says it.
        readouts: s.readouts ? { ...s.readouts, etaSeconds: r.stopped ? null : 0, elapsedSeconds: r.seconds } : null,
        outcome,
        note: r.stopped ? stoppedNote(r.steps, s) : '',
      };
    }
    case 'failed':
      return {
        ...s,
        phase: 'error',
        validating: null,
        // A lost device took the adapter with it (the worker drops the device and its session); other failures leave it.
        hasAdapter: a.kind !== 'device-lost' && s.step > 0 && s.hasAdapter,
        readouts: settled(s.readouts),
        outcome: { kind: 'failed', errorKind: a.kind, message: a.message, ...(a.lostKernels !== undefined ? { lostKernels: a.lostKernels } : {}) },
      };
    case 'model-changed':
      return runBusy(s.phase) ? s : { ...IDLE_RUN };
    case 'adapter-lost':
      // The run's checkpoint, if any, is in the store, not on the GPU: "Resume from step N" still continues it.
      return runBusy(s.phase) || !s.hasAdapter ? s : { ...s, hasAdapter: false };
    case 'refused':
      // Only a run that has not begun (no plan event yet; a Stop pressed meanwhile stopped nothing) is undone.
      return (s.phase === 'starting' || s.phase === 'stopping') && s.plan === null ? a.before : s;
    case 'checkpoint-gone':
      return runBusy(s.phase) || s.checkpointStep === null ? s : { ...s, checkpointStep: null, checkpointSavedAt: null };
    case 'inputs-changed':
      return !runBusy(s.phase) && s.plan ? { ...s, plan: null } : s;
  }
}

/** The phase of a run the worker is training: events move it on from here (a 'plan' event says it has begun). */
function goingPhase(s: RunState): RunPhase {
  if (s.validating) return 'validating';
  return s.plan ? 'running' : 'starting';
}

/**
 * A phase that only the worker's answer to an earlier request moves on from (its 'paused' event, resumeTraining
 * settling), which a Stop that failed leaves the run in; null for the phases of a run training on.
 */
function heldPhase(phase: RunPhase): RunPhase | null {
  return phase === 'pausing' || phase === 'paused' || phase === 'resuming' ? phase : null;
}

/** What the page says when Pause or Stop could not be asked of the worker. */
function requestFailedText(request: 'pause' | 'stop', message: string): string {
  const [done, button] = request === 'pause' ? ['paused', 'Pause'] : ['stopped', 'Stop'];
  return `The run was not ${done}: the request to the training worker failed (${message}). Press ${button} to try again.`;
}

function lastValidation(history: readonly LossPoint[]): ValidationReadout | null {
  for (let i = history.length - 1; i >= 0; i--) {
    const p = history[i];
    if (p.valLoss !== undefined) return { step: p.step, valLoss: p.valLoss, valTokens: null, seconds: null };
  }
  return null;
}

/**
 * Whether the run failed because its GPU device was lost: the training panel then offers "Get the GPU back and resume"
 * (a device lost under Try it, an estimate or an export fails no run, and that button is not offered).
 */
export function runLostDevice(run: Pick<RunState, 'phase' | 'outcome'>): boolean {
  return run.phase === 'error' && run.outcome?.kind === 'failed' && run.outcome.errorKind === 'device-lost';
}

/**
 * Whether a stopped run can be resumed from here: a checkpoint of it, before its last step. Stopped in the pass before
 * the first step, nothing was saved; stopped in the validation after the last step, it is trained and saved (what was
 * left is that validation, which a reload's Restore makes). Both once promised a Resume that was not there.
 */
export function stoppedResumable(s: Pick<RunState, 'checkpointStep' | 'totalSteps'>): boolean {
  return stopLeft(s) === 'resumable';
}

/** What a stop left: nothing saved, the trained adapter (saved at the last step), or a run to resume. */
export function stopLeft(s: Pick<RunState, 'checkpointStep' | 'totalSteps'>): 'nothing' | 'trained' | 'resumable' {
  return s.checkpointStep === null ? 'nothing' : s.checkpointStep < s.totalSteps ? 'resumable' : 'trained';
}

/** What a stop left, in the line under the run. */
function stoppedNote(steps: number, s: RunState): string {
  if (s.restoreOnly) return `The adapter at step ${steps} is restored; the run is saved and can be resumed.`;
  switch (stopLeft(s)) {
    case 'nothing':
      return `Stopped ${steps === 0 ? 'before the first step' : `at step ${steps}`}; nothing was saved in this browser.`;
    case 'trained':
      return 'Stopped in the validation after the last step; the trained adapter is saved.';
    case 'resumable':
      return `Stopped at step ${steps}; the run is saved and can be resumed.`;
  }
}

/** What the page says when the GPU device was lost during a run: what happened, what is safe, what to do. */
export function deviceLostText(outcome: { lostKernels?: string }, checkpointStep: number | null): string {
  if (outcome.lostKernels !== undefined) {
    return `The GPU stopped working while the run measured which kernels are fastest here, before its first step (it was timing ${outcome.lostKernels}; a driver that hangs or resets on one kernel does this). Get the GPU back, then train again: the next run leaves that combination out.`;
  }
  const saved = checkpointStep !== null ? `The checkpoint at step ${checkpointStep} is safe in this browser: "Get the GPU back and resume" continues from it.` : 'No checkpoint was saved before it happened: get the GPU back, then train again.';
  return `The GPU stopped working during training (its driver reset or the browser's GPU process restarted). ${saved}`;
}
