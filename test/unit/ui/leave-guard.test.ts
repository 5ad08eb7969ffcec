// Whether a reload or a closed tab now would lose work, and the beforeunload guard that makes the browser ask.
import { describe, expect, it } from 'vitest';
import { installLeaveGuard, unsavedWork } from '../../../src/ui/leave-guard.ts';
import { IDLE_RUN, runReducer, type RunAction, type RunState } from '../../../src/ui/run-state.ts';
import type { DataStats, SavedRun, TrainEvent } from '../../../src/worker/api.ts';
import type { ModelState } from '../../../src/ui/state.ts';

const at = (s: Partial<RunState>): RunState => ({ ...IDLE_RUN, ...s });
const model = (status: ModelState['status'], kind: 'demo' | 'hub' | 'files' | null): ModelState => ({
  status,
  choice: kind === null ? null : { kind, label: kind === 'hub' ? 'mistralai/Mistral-7B-Instruct-v0.2' : kind },
  quantization: null,
  info: null,
  progress: null,
  error: null,
  failure: null,
});
const ready = model('ready', 'demo');

describe('unsavedWork', () => {
  it('holds a run under way in every busy phase', () => {
    for (const phase of ['starting', 'running', 'validating', 'pausing', 'stopping'] as const) {
      expect(unsavedWork(at({ phase, step: 3, totalSteps: 8, checkpointStep: 3 }), ready), phase).toBe('the training run under way (it resumes from its last checkpoint)');
    }
  });

  it('holds a paused run only for the steps after its last checkpoint', () => {
    expect(unsavedWork(at({ phase: 'paused', step: 5, totalSteps: 8, checkpointStep: 3 }), ready)).toBe("the paused run's 2 steps since its last checkpoint");
    expect(unsavedWork(at({ phase: 'paused', step: 1, totalSteps: 8, checkpointStep: null }), ready)).toBe("the paused run's 1 step since its last checkpoint");
    expect(unsavedWork(at({ phase: 'paused', step: 5, totalSteps: 8, checkpointStep: 5 }), ready)).toBeNull();
  });

  it('lets an ended run go (its checkpoint is saved), and holds a long model load but not the demo model\'s', () => {
    for (const phase of ['idle', 'done', 'stopped', 'error'] as const) expect(unsavedWork(at({ phase, step: 4, totalSteps: 8 }), ready), phase).toBeNull();
    expect(unsavedWork(IDLE_RUN, model('loading', 'hub'))).toBe('the load of mistralai/Mistral-7B-Instruct-v0.2');
    expect(unsavedWork(IDLE_RUN, model('loading', 'files'))).toBe('the load of files');
    expect(unsavedWork(IDLE_RUN, model('loading', 'demo'))).toBeNull();
    expect(unsavedWork(IDLE_RUN, model('error', 'hub'))).toBeNull();
  });
});

describe('unsavedWork after a failed run', () => {
  it("holds the adapter a failed run trained past its last checkpoint (the page offers to export it; a reload loses it)", () => {
    // A checkpoint that could not be saved (a full disk) ends the run; the worker keeps the adapter at step 6, which
    // Export offers, while the browser holds step 4's.
    const failed = at({ phase: 'error', step: 6, totalSteps: 8, checkpointStep: 4, hasAdapter: true });
    expect(unsavedWork(failed, ready)).toBe("the failed run's adapter at step 6, 2 steps after its last checkpoint (export it first)");
    expect(unsavedWork({ ...failed, checkpointStep: null }, ready)).toBe("the failed run's adapter at step 6, 6 steps after its last checkpoint (export it first)");
    // Nothing past the checkpoint, or no adapter left (a lost device takes it): nothing to lose.
    expect(unsavedWork({ ...failed, checkpointStep: 6 }, ready)).toBeNull();
    expect(unsavedWork({ ...failed, hasAdapter: false }, ready)).toBeNull();
  });
});

// A Restore loads the saved run's adapter at its checkpoint and trains nothing (the saved-run box's "Restore the adapter
// at step N", and "Restore the adapter" of a finished run, which resumes a run with no step left). Leaving during it
// loses nothing: the checkpoint holds exactly that adapter, and the box offers it again after the reload. The guard asked
// "the training run under way" all the same, for as long as the restore read the run's data and checkpoint.
describe('unsavedWork while a saved run is restored', () => {
  const saved = (step: number): SavedRun =>
    ({ modelSource: 'mistral-nano-demo', quantization: 'nf4-double', hp: {}, trainName: 'train.jsonl', validationName: null, step, totalSteps: 8, history: [{ step, loss: 1 }], savedAt: '2025-01-15T09:30:00.000Z' }) as unknown as SavedRun;
  const ev = (event: TrainEvent): RunAction => ({ type: 'event', event });
  const plan = (resumedAt: number): RunAction => ev({ type: 'plan', stats: { totalSteps: 8 } as DataStats, resumedAt });
  /** The run state after each action, from idle. */
  const states = (...actions: RunAction[]): RunState[] => actions.map((_, i) => actions.slice(0, i + 1).reduce(runReducer, IDLE_RUN));
  const stoppedThere: RunAction = { type: 'finished', result: { steps: 4, skipped: 0, stopped: true, finalLoss: 1, finalValLoss: null, seconds: 1 } };

  it('holds nothing at any point of a restore of an unfinished run', () => {
    for (const s of states({ type: 'resume', saved: saved(4), restoreOnly: true }, plan(4), { type: 'stop' }, stoppedThere)) expect(unsavedWork(s, ready), s.phase).toBeNull();
  });

  it('holds nothing while a finished run is restored (its resume has no step left to train)', () => {
    const validating = ev({ type: 'validating', step: 8, done: 1, passes: 2, etaSeconds: 1 } as TrainEvent);
    const done: RunAction = { type: 'finished', result: { steps: 8, skipped: 0, stopped: false, finalLoss: 1, finalValLoss: 1, seconds: 8 } };
    for (const s of states({ type: 'resume', saved: saved(8) }, plan(8), validating, done)) expect(unsavedWork(s, ready), s.phase).toBeNull();
  });

  it('still holds a resume that trains, the restored run resumed included', () => {
    expect(unsavedWork(states({ type: 'resume', saved: saved(4) }, plan(4)).at(-1)!, ready)).toBe('the training run under way (it resumes from its last checkpoint)');
    const restored = states({ type: 'resume', saved: saved(4), restoreOnly: true }, plan(4), stoppedThere).at(-1)!;
    const resumed = ([{ type: 'resume', saved: saved(4) }, plan(4)] as RunAction[]).reduce(runReducer, restored);
    expect(unsavedWork(resumed, ready)).toBe('the training run under way (it resumes from its last checkpoint)');
    // A run that trained past its last checkpoint and was paused there, as before.
    expect(unsavedWork(at({ phase: 'paused', step: 6, totalSteps: 8, checkpointStep: 4, restoreOnly: false }), ready)).toBe("the paused run's 2 steps since its last checkpoint");
  });
});

describe('installLeaveGuard', () => {
  it('cancels beforeunload (so the browser asks) exactly while there is a reason', () => {
    let listener: ((e: BeforeUnloadEvent) => void) | null = null;
    let why: string | null = null;
    installLeaveGuard({ addEventListener: ((type: string, fn: (e: BeforeUnloadEvent) => void) => { if (type === 'beforeunload') listener = fn; }) as Window['addEventListener'] }, () => why);
    const fire = (): { prevented: boolean; returnValue: unknown } => {
      const e = { prevented: false, returnValue: undefined as unknown, preventDefault() { this.prevented = true; } };
      listener!(e as unknown as BeforeUnloadEvent);
      return e;
    };
    expect(fire()).toMatchObject({ prevented: false, returnValue: undefined });
    why = 'the training run under way';
    expect(fire()).toMatchObject({ prevented: true, returnValue: 'the training run under way' });
  });
});
