// The page's run state machine (src/ui/run-state.ts): every phase change and readout comes from this reducer.
import { describe, expect, it } from 'vitest';
import { deviceLostText, etaText, IDLE_RUN, runBusy, runComputing, runReducer, stoppedResumable, type RunAction, type RunState } from '../../../src/ui/run-state.ts';
import type { DataStats, SavedRun, TrainEvent } from '../../../src/worker/api.ts';
import { estimateSubject, paddingText, phaseLine, stepsText } from '../../../src/ui/training-panel.ts';

const stats = { totalSteps: 4, epochs: 1 } as DataStats;
const step = (n: number, loss: number): TrainEvent => ({
  type: 'step',
  step: n,
  totalSteps: 4,
  epoch: 0,
  loss,
  lr: 1e-4,
  gradNorm: 0.5,
  tokens: 100,
  tokensPerSecond: 50,
  elapsedSeconds: 2 * n,
  etaSeconds: 2 * (4 - n),
} as TrainEvent);
const ev = (event: TrainEvent): RunAction => ({ type: 'event', event });
const run = (...actions: RunAction[]): RunState => actions.reduce(runReducer, IDLE_RUN);

describe('run state', () => {
  it('goes idle → starting → running on the plan, and back to running after a validation', () => {
    let s = run({ type: 'start', totalSteps: 4 });
    expect(s.phase).toBe('starting');
    expect(runBusy(s.phase)).toBe(true);
    s = runReducer(s, ev({ type: 'plan', stats, resumedAt: 0 }));
    expect(s).toMatchObject({ phase: 'running', totalSteps: 4, hasAdapter: true, plan: stats });
    s = runReducer(s, ev(step(1, 3)));
    s = runReducer(s, ev({ type: 'validating', step: 1, passes: 5, done: 0, fraction: 0 / 5, seconds: 0, etaSeconds: null }));
    expect(s.phase).toBe('validating');
    expect(s.note).toBe('Validating the adapter after step 1…');
    // Progress: the passes done, and the run's ETA (which now counts this pass's rest and the passes to come).
    s = runReducer(s, ev({ type: 'validating', step: 1, passes: 5, done: 2, fraction: 2 / 5, seconds: 4, etaSeconds: 17 }));
    expect(s).toMatchObject({ phase: 'validating', validating: { step: 1, done: 2, passes: 5 }, note: 'Validating the adapter after step 1: 2 / 5 passes…' });
    expect(s.readouts?.etaSeconds).toBe(17);
    // Paused between its passes (once the worker says the pause took effect), and resumed: still the same pass.
    s = runReducer(s, { type: 'pause' });
    expect(s).toMatchObject({ phase: 'pausing', validating: { step: 1, done: 2 } });
    s = runReducer(s, ev({ type: 'validating', step: 1, passes: 5, done: 3, fraction: 3 / 5, seconds: 5, etaSeconds: 16 }));
    s = runReducer(s, ev({ type: 'paused', step: 1 }));
    expect(s).toMatchObject({ phase: 'paused', validating: { step: 1, done: 3 } });
    s = runReducer(s, { type: 'unpause' });
    // Held until the worker lets it go (what read the adapter during the pause ends first), then the same pass goes on.
    expect(s.phase).toBe('resuming');
    expect(phaseLine(s, null)).toBe('Resuming the validation after step 1 once the export (or other reading of the adapter) under way has finished…');
    s = runReducer(s, { type: 'resumed' });
    expect(s.phase).toBe('validating');
    s = runReducer(s, ev({ type: 'eval', step: 1, valLoss: 2.5, valTokens: 40, seconds: 1 }));
    expect(s.phase).toBe('running');
    // The validation prompt's sample: announced while written, then the note goes back to the validation.
    const sampling = runReducer(s, ev({ type: 'status', text: 'writing a sample for the validation prompt after step 1…' }));
    expect(sampling.note).toBe('writing a sample for the validation prompt after step 1…');
    const sampled = runReducer(sampling, ev({ type: 'sample', step: 1, prompt: 'def', text: ' f(x):' }));
    expect(sampled).toMatchObject({ note: 'Validation loss 2.500 after step 1; its sample is below.', samples: [{ step: 1, prompt: 'def', text: ' f(x):' }] });
    expect(s.validating).toBeNull();
    expect(s.history).toEqual([{ step: 1, loss: 3, valLoss: 2.5 }]);
    expect(s.validation).toEqual({ step: 1, valLoss: 2.5, valTokens: 40, seconds: 1 });
  });

  it("keeps every validation's sample in step order, a step's sample written again replacing its own", () => {
    let s = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev(step(1, 3)));
    s = runReducer(s, ev({ type: 'sample', step: 1, prompt: 'def', text: ' a' }));
    s = runReducer(s, ev(step(2, 2.9)));
    s = runReducer(s, ev({ type: 'sample', step: 2, prompt: 'def', text: ' b' }));
    expect(s.samples).toEqual([{ step: 1, prompt: 'def', text: ' a' }, { step: 2, prompt: 'def', text: ' b' }]);
    // A step's pass made again (a resume that validates first) writes its sample again: one per step.
    s = runReducer(s, ev({ type: 'sample', step: 2, prompt: 'def', text: ' c' }));
    expect(s.samples).toEqual([{ step: 1, prompt: 'def', text: ' a' }, { step: 2, prompt: 'def', text: ' c' }]);
    // A new run starts with none.
    expect(runReducer(runReducer(s, { type: 'finished', result: { steps: 2, skipped: 0, stopped: true, finalLoss: 2.9, finalValLoss: null, seconds: 4 } }), { type: 'start', totalSteps: 4 }).samples).toEqual([]);
  });

  it("restores a saved run's samples from its history, with the run's validation_prompt", () => {
    const saved = {
      step: 3,
      totalSteps: 4,
      trainName: 'short.jsonl',
      hp: { validation_prompt: '# add' },
      history: [{ step: 1, loss: 3, valLoss: 2.9, sample: ' one' }, { step: 2, loss: 2.8 }, { step: 3, loss: 2.7, valLoss: 2.6, sample: ' three' }],
    } as unknown as SavedRun;
    expect(run({ type: 'resume', saved }).samples).toEqual([{ step: 1, prompt: '# add', text: ' one' }, { step: 3, prompt: '# add', text: ' three' }]);
    // A record without samples (older, or a run without validation_prompt) restores none.
    expect(run({ type: 'resume', saved: { ...saved, history: [{ step: 1, loss: 3 }] } }).samples).toEqual([]);
  });

  it('pauses only a moving run and stops only a busy one; a stop settles the readouts (no ETA left ticking)', () => {
    let s = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev(step(1, 3)));
    expect(s.readouts?.etaSeconds).toBe(6);
    s = runReducer(s, { type: 'pause' });
    // Asked, not yet in effect: the step under way still computes, so export and Try it wait.
    expect(s.phase).toBe('pausing');
    expect(runComputing(s.phase)).toBe(true);
    expect(runBusy(s.phase)).toBe(true);
    expect(runReducer(s, { type: 'pause' })).toBe(s);
    // Taken back before it took effect; the worker's late word of a pause it then left is not a pause.
    const back = runReducer(s, { type: 'unpause' });
    expect(back.phase).toBe('running');
    expect(runReducer(back, ev({ type: 'paused', step: 1 })).phase).toBe('running');
    s = runReducer(s, ev({ type: 'paused', step: 1 }));
    expect(s.phase).toBe('paused');
    expect(runComputing(s.phase)).toBe(false);
    expect(runReducer(s, { type: 'pause' })).toBe(s);
    expect(etaText(s)).toBe('0:06'); // a paused run's time left still stands
    s = runReducer(runReducer(s, { type: 'unpause' }), { type: 'stop' });
    expect(s.phase).toBe('stopping');
    // The plan's time left no longer applies: the run ends after this step.
    expect(s.readouts?.etaSeconds).toBe(6);
    expect(etaText(s)).toBe('stopping');
    s = runReducer(s, ev({ type: 'checkpoint', step: 1, savedAt: '2025-01-15T09:30:00.000Z' }));
    s = runReducer(s, { type: 'finished', result: { steps: 1, stopped: true, seconds: 2.5, finalLoss: 3, finalValLoss: null } as never });
    expect(s).toMatchObject({ phase: 'stopped', step: 1, checkpointStep: 1, outcome: { kind: 'stopped', steps: 1, totalSteps: 4 } });
    expect(s.readouts?.etaSeconds).toBeNull();
    expect(s.readouts?.elapsedSeconds).toBe(2.5); // the step said 2
    expect(etaText(s)).toBe('—');
    expect(runReducer(s, { type: 'stop' })).toBe(s);
    expect(runReducer(IDLE_RUN, { type: 'pause' })).toBe(IDLE_RUN);
    expect(etaText(IDLE_RUN)).toBe('—');
  });

  it('says a resumed run waits while an export (or another read of the adapter) ends, and runs once the worker lets it go', () => {
    let s = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev(step(2, 3)), { type: 'pause' }, ev({ type: 'paused', step: 2 }));
    expect(s.phase).toBe('paused');
    s = runReducer(s, { type: 'unpause' });
    // The worker holds the run until the export's reading of the adapter ends (session.resume): it said "running".
    expect(s.phase).toBe('resuming');
    expect(phaseLine(s, null)).toBe('Resuming after step 2 once the export (or other reading of the adapter) under way has finished…');
    // Nothing new may read the adapter meanwhile (it would hold the run longer), and Pause and Resume wait.
    expect(runBusy(s.phase)).toBe(true);
    expect(runComputing(s.phase)).toBe(true);
    expect(runReducer(s, { type: 'pause' })).toBe(s);
    expect(runReducer(s, { type: 'unpause' })).toBe(s);
    expect(etaText(s)).toBe('0:04');
    // The worker's word of the pause it holds, arriving late, leaves it resuming.
    expect(runReducer(s, ev({ type: 'paused', step: 2 })).phase).toBe('resuming');
    // Let go: running; the run's next step says so too.
    expect(runReducer(s, { type: 'resumed' }).phase).toBe('running');
    expect(runReducer(s, ev(step(3, 2.9))).phase).toBe('running');
    // Stopped while held: stopping, and the late word that the run was let go does not undo it.
    const stopping = runReducer(s, { type: 'stop' });
    expect(stopping.phase).toBe('stopping');
    expect(runReducer(stopping, { type: 'resumed' })).toBe(stopping);
    // Resume before the pause took effect: the run never stopped, nothing holds it.
    const back = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), { type: 'pause' }, { type: 'unpause' });
    expect(back.phase).toBe('running');
    expect(runReducer(back, { type: 'resumed' })).toBe(back);
  });

  it('finishes with the outcome and ETA 0; a failure keeps the steps done and says why', () => {
    const done = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev(step(4, 2)), {
      type: 'finished',
      result: { steps: 4, stopped: false, seconds: 9.5, finalLoss: 2, finalValLoss: 1.9 } as never,
    });
    expect(done).toMatchObject({ phase: 'done', outcome: { kind: 'finished', steps: 4, finalValLoss: 1.9 } });
    expect(done.readouts?.etaSeconds).toBe(0);
    // The time the readout says it took is the result's (the final validation pass included), as the result line.
    expect(done.readouts?.elapsedSeconds).toBe(9.5); // the last step said 8
    const failed = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev(step(2, 3)), { type: 'failed', kind: 'out-of-memory', message: 'no room' });
    expect(failed).toMatchObject({ phase: 'error', step: 2, hasAdapter: true, outcome: { kind: 'failed', errorKind: 'out-of-memory', message: 'no room' } });
    expect(failed.readouts?.etaSeconds).toBeNull();
    // A lost device took the adapter with it: the worker has none to export or try.
    const lost = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev(step(2, 3)), { type: 'failed', kind: 'device-lost', message: 'the GPU went away' });
    expect(lost).toMatchObject({ phase: 'error', step: 2, hasAdapter: false, outcome: { kind: 'failed', errorKind: 'device-lost', message: 'the GPU went away' } });
  });

  it('a device lost while the kernels were measured says so, names the combination and what the next run does', () => {
    const lost = run({ type: 'start', totalSteps: 4 }, { type: 'failed', kind: 'device-lost', message: 'gone — while measuring …', lostKernels: 'tiled GEMM, row-split attention' });
    expect(lost.outcome).toEqual({ kind: 'failed', errorKind: 'device-lost', message: 'gone — while measuring …', lostKernels: 'tiled GEMM, row-split attention' });
    const text = deviceLostText(lost.outcome as { lostKernels?: string }, lost.checkpointStep);
    expect(text).toMatch(/^The GPU stopped working while the run measured which kernels are fastest here, before its first step \(it was timing tiled GEMM, row-split attention;/);
    expect(text).toMatch(/train again: the next run leaves that combination out\.$/);
    // Mid-run, with and without a checkpoint: as before.
    expect(deviceLostText({}, 3)).toMatch(/during training .* The checkpoint at step 3 is safe in this browser/);
    expect(deviceLostText({}, null)).toMatch(/No checkpoint was saved before it happened: get the GPU back, then train again\.$/);
  });

  it('resumes a saved run with its history and last validation, and a new start clears everything', () => {
    const saved = { step: 2, totalSteps: 4, trainName: 'short.jsonl', history: [{ step: 1, loss: 3 }, { step: 2, loss: 2.8, valLoss: 2.7 }] } as SavedRun;
    let s = run({ type: 'resume', saved });
    expect(s).toMatchObject({ phase: 'starting', step: 2, totalSteps: 4, resumedFrom: 'short.jsonl', checkpointStep: 2 });
    expect(s.validation).toMatchObject({ step: 2, valLoss: 2.7 });
    s = runReducer(s, ev({ type: 'plan', stats, resumedAt: 2 }));
    expect(s.note).toMatch(/Resumed short\.jsonl from the checkpoint at step 2/);
    expect(s.history).toHaveLength(2);
    s = runReducer(runReducer(s, { type: 'finished', result: { steps: 4, stopped: false, seconds: 1, finalLoss: 2, finalValLoss: null } as never }), { type: 'start', totalSteps: 9 });
    expect(s).toEqual({ ...IDLE_RUN, phase: 'starting', totalSteps: 9 });
  });

  it('keeps the validation before training (step 0) as the baseline, not as a step, says it so, and carries it to the outcome', () => {
    let s = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }));
    s = runReducer(s, ev({ type: 'validating', step: 0, passes: 3, done: 1, fraction: 1 / 3, seconds: 1, etaSeconds: null }));
    expect(s.note).toBe('Validating the untrained adapter, before the first step: 1 / 3 passes…');
    s = runReducer(s, ev({ type: 'eval', step: 0, valLoss: 3.95, valTokens: 100, seconds: 2 }));
    expect(s).toMatchObject({ phase: 'running', baseline: 3.95, history: [], validation: { step: 0, valLoss: 3.95 }, note: 'Validation loss 3.950 before training.' });
    s = runReducer(s, ev({ type: 'sample', step: 0, prompt: 'P', text: 'T' }));
    expect(s.samples).toEqual([{ step: 0, prompt: 'P', text: 'T' }]);
    expect(s.note).toBe('Validation loss 3.950 before training; its sample is below.');
    s = runReducer(runReducer(s, ev(step(1, 3))), ev({ type: 'eval', step: 1, valLoss: 3.9, valTokens: 100, seconds: 2 }));
    expect(s).toMatchObject({ baseline: 3.95, history: [{ step: 1, loss: 3, valLoss: 3.9 }], validation: { step: 1, valLoss: 3.9 } });
    s = runReducer(s, { type: 'finished', result: { steps: 4, skipped: 0, stopped: false, seconds: 9, finalLoss: 2.5, finalValLoss: 3.9, baselineValLoss: 3.95 } });
    expect(s.outcome).toEqual({ kind: 'finished', steps: 4, seconds: 9, finalLoss: 2.5, finalValLoss: 3.9, baselineValLoss: 3.95 });
  });

  it("restores a saved run's validation before training and its sample, before the steps' samples", () => {
    const saved = {
      step: 2,
      totalSteps: 4,
      trainName: 'short.jsonl',
      hp: { validation_prompt: 'P' },
      history: [{ step: 1, loss: 3 }, { step: 2, loss: 2.8, sample: 'later' }],
      baseline: { valLoss: 3.95, sample: 'before' },
    } as unknown as SavedRun;
    const s = run({ type: 'resume', saved });
    expect(s.baseline).toBe(3.95);
    // No step validated yet: the readout is the one before training.
    expect(s.validation).toMatchObject({ step: 0, valLoss: 3.95 });
    expect(s.samples.map((x) => [x.step, x.text])).toEqual([[0, 'before'], [2, 'later']]);
    expect(run({ type: 'resume', saved: { ...saved, baseline: undefined } }).baseline).toBeNull();
  });

  // A stop in the pass before the first step said "the run is saved and can be resumed", and one in the validation after
  // the last step promised a Resume: neither was there.
  it('says what a stop left: nothing saved, the trained adapter saved, or a run to resume', () => {
    const stopped = (steps: number) => ({ type: 'finished', result: { steps, stopped: true, seconds: 1, finalLoss: null, finalValLoss: null } }) as never;
    let s = runReducer(run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 })), stopped(0));
    expect(s).toMatchObject({ phase: 'stopped', checkpointStep: null, note: 'Stopped before the first step; nothing was saved in this browser.' });
    s = runReducer(runReducer(run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 })), ev({ type: 'checkpoint', step: stats.totalSteps, savedAt: 'x' })), stopped(stats.totalSteps));
    expect(s.note).toBe('Stopped in the validation after the last step; the trained adapter is saved.');
    expect(stoppedResumable(s)).toBe(false);
    s = runReducer(runReducer(run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 })), ev({ type: 'checkpoint', step: 1, savedAt: 'x' })), stopped(1));
    expect(s.note).toBe('Stopped at step 1; the run is saved and can be resumed.');
    expect(stoppedResumable(s)).toBe(true);
  });

  it('says a sample under way waits for the resume once paused (its "writing…" line stayed for the whole pause)', () => {
    let s = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev({ type: 'status', text: 'writing a sample for the validation prompt after step 4…' }), { type: 'pause' } as RunAction);
    s = runReducer(s, ev({ type: 'paused', step: 4 }));
    expect(s).toMatchObject({ phase: 'paused', note: 'The sample for the validation prompt after step 4 is written once the run is resumed.' });
  });

  it("restores an unfinished saved run's adapter: said as such, and it ends stopped at its checkpoint, resumable", () => {
    const saved = { step: 2, totalSteps: 4, trainName: 'short.jsonl', history: [{ step: 1, loss: 3 }, { step: 2, loss: 2.8 }] } as SavedRun;
    let s = run({ type: 'resume', saved, restoreOnly: true });
    expect(s).toMatchObject({ phase: 'starting', step: 2, checkpointStep: 2, restoreOnly: true });
    s = runReducer(s, ev({ type: 'plan', stats, resumedAt: 2 }));
    expect(s.note).toBe('Restoring the adapter of short.jsonl at step 2 (nothing is trained)…');
    s = runReducer(s, { type: 'finished', result: { steps: 2, stopped: true, seconds: 1, finalLoss: 2.8, finalValLoss: null } as never });
    expect(s).toMatchObject({ phase: 'stopped', step: 2, hasAdapter: true, checkpointStep: 2, outcome: { kind: 'stopped', steps: 2, totalSteps: 4 } });
    expect(s.note).toBe('The adapter at step 2 is restored; the run is saved and can be resumed.');
    // A plain resume after it says "Resumed" again.
    s = runReducer(run({ type: 'resume', saved }), ev({ type: 'plan', stats, resumedAt: 2 }));
    expect(s).toMatchObject({ restoreOnly: false, note: 'Resumed short.jsonl from the checkpoint at step 2.' });
  });

  it('undoes a resume (or a new run) the worker refused before it began, and only such a one', () => {
    const saved = { step: 2, totalSteps: 4, trainName: 'short.jsonl', history: [{ step: 2, loss: 2.8 }], savedAt: '2025-01-15T09:30:00.000Z' } as SavedRun;
    const stopped = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev(step(1, 3)), { type: 'finished', result: { steps: 1, stopped: true } as never });
    const asked = runReducer(stopped, { type: 'resume', saved });
    expect(runReducer(asked, { type: 'refused', before: stopped })).toBe(stopped);
    // A Stop pressed while it was asked stopped nothing: undone as well.
    expect(runReducer(runReducer(asked, { type: 'stop' }), { type: 'refused', before: stopped })).toBe(stopped);
    // Begun (its plan event came): the run is the resumed one, whatever is said of it later.
    const begun = runReducer(asked, ev({ type: 'plan', stats, resumedAt: 2 }));
    expect(runReducer(begun, { type: 'refused', before: stopped })).toBe(begun);
    // A new run refused (the saved run it was to replace had changed): the stopped run as it was.
    expect(runReducer(runReducer(stopped, { type: 'start', totalSteps: 4 }), { type: 'refused', before: stopped })).toBe(stopped);
  });

  it('a device lost outside the run drops an ended run\'s adapter and keeps its checkpoint; a run going on fails by itself', () => {
    const stopped = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev(step(1, 3)), ev({ type: 'checkpoint', step: 1, savedAt: '2025-01-15T09:30:00.000Z' }), { type: 'finished', result: { steps: 1, stopped: true } as never });
    expect(runReducer(stopped, { type: 'adapter-lost' })).toEqual({ ...stopped, hasAdapter: false });
    const paused = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), { type: 'pause' }, ev({ type: 'paused', step: 0 }));
    expect(runReducer(paused, { type: 'adapter-lost' })).toBe(paused);
    expect(runReducer(IDLE_RUN, { type: 'adapter-lost' })).toBe(IDLE_RUN);
  });

  it('ignores a new start or a model change while busy; a model change after a run drops the adapter', () => {
    const busy = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }));
    expect(runReducer(busy, { type: 'start', totalSteps: 1 })).toBe(busy);
    expect(runReducer(busy, { type: 'model-changed' })).toBe(busy);
    const stopped = runReducer(busy, { type: 'finished', result: { steps: 1, stopped: true, seconds: 1, finalLoss: null, finalValLoss: null } as never });
    expect(runReducer(stopped, { type: 'model-changed' })).toEqual(IDLE_RUN);
    expect(runReducer(stopped, { type: 'inputs-changed' }).plan).toBeNull();
    expect(runReducer(busy, { type: 'inputs-changed' }).plan).toBe(stats);
  });

  it('reports a skipped step without moving the loss curve', () => {
    const s = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev(step(1, 3)), ev({ type: 'skipped', step: 2, totalSteps: 4, epoch: 0, reason: 'the loss is NaN', consecutive: 1 } as TrainEvent));
    expect(s.step).toBe(2);
    expect(s.history).toEqual([{ step: 1, loss: 3 }]);
    expect(s.note).toMatch(/Step 2 skipped: the loss is NaN/);
  });

  it('keeps the run\'s kernel line after later notes, and a new run starts without it', () => {
    const kernels = { type: 'kernels', kernels: { gemm: 'tiled', attention: 'tiled', lora: 'general' }, source: 'measured', speedup: 1.7, trials: [], refused: [], lost: [], text: 'kernels: tiled GEMM, tiled attention, measured' } as TrainEvent;
    const resumed = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 2 }), ev(kernels));
    expect(resumed.note).toMatch(/from the checkpoint at step 2/); // the kernel line does not take the note's place
    let s = run({ type: 'start', totalSteps: 4 }, ev({ type: 'plan', stats, resumedAt: 0 }), ev(kernels), ev(step(1, 3)), ev({ type: 'checkpoint', step: 1, savedAt: '2025-01-15T09:30:00.000Z' }));
    expect(s.kernels).toBe('kernels: tiled GEMM, tiled attention, measured');
    expect(s.note).toMatch(/Checkpoint saved/);
    s = runReducer(runReducer(s, { type: 'stop' }), { type: 'finished', result: { steps: 1, stopped: true } as never });
    expect(runReducer(s, { type: 'start', totalSteps: 4 }).kernels).toBeNull();
  });
});

describe('estimateSubject', () => {
  it('names the run about to start, or, once one has ended, the next one', () => {
    expect(estimateSubject('idle')).toBe('This run');
    expect(estimateSubject('running')).toBe('This run');
    for (const phase of ['done', 'stopped', 'error'] as const) expect(estimateSubject(phase)).toBe('A new run of these settings');
  });
});

describe('phaseLine', () => {
  it('says which step a paused run paused after (it said "after the current step" of a step long done)', () => {
    expect(phaseLine({ ...IDLE_RUN, phase: 'paused', step: 3 }, null)).toBe('Paused after step 3. Resume continues; export works while paused.');
    // Paused before the first step (in the validation before training, eval_on_start): no step was done.
    expect(phaseLine({ ...IDLE_RUN, phase: 'paused', step: 0 }, null)).toBe('Paused before the first step. Resume continues; export works while paused.');
    expect(phaseLine({ ...IDLE_RUN, phase: 'pausing', step: 3 }, null)).toBe('Pausing after the current step…');
  });
});

describe('stepsText', () => {
  it('gives the steps of a whole epoch, and says when max_steps ends the run early (it read "5 (5 per epoch)")', () => {
    expect(stepsText({ totalSteps: 30, sequencesPerEpoch: 40, trainBatchSize: 4, stepsByEpoch: [10, 10, 10] })).toBe('30 (10 per epoch)');
    expect(stepsText({ totalSteps: 5, sequencesPerEpoch: 40, trainBatchSize: 4, stepsByEpoch: [5] })).toBe('5 (10 per epoch; max_steps ends it)');
    expect(stepsText({ totalSteps: 14, sequencesPerEpoch: 40, trainBatchSize: 4, stepsByEpoch: [10, 4] })).toBe('14 (10 per epoch; max_steps ends it)');
    expect(stepsText({ totalSteps: 19, sequencesPerEpoch: 37, trainBatchSize: 2, stepsByEpoch: [19] })).toBe('19 (19 per epoch)');
  });
});

describe('paddingText', () => {
  it('gives the padding left, and with padding_free what padded rows would have had', () => {
    expect(paddingText({ paddingFraction: 0.26, paddingFractionPadded: 0.26 })).toBe('26 %');
    expect(paddingText({ paddingFraction: 0.08, paddingFractionPadded: 0.26 })).toBe('8.0 % (26 % without padding_free)');
    expect(paddingText({ paddingFraction: 0, paddingFractionPadded: 0 })).toBe('0 %');
  });
});
