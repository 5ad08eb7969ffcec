// The header chip for every phase of a run (src/ui/header-status.ts).
import { describe, expect, it } from 'vitest';
import { documentTitle, headerStatus, type HeaderContext } from '../../../src/ui/header-status.ts';
import { IDLE_RUN, type RunState } from '../../../src/ui/run-state.ts';

const ready: HeaderContext = { gpuOk: true, notReady: null, planSteps: 14000 };
const at = (s: Partial<RunState>): RunState => ({ ...IDLE_RUN, ...s });

describe('header status', () => {
  it('says what is going on, with counts formatted and the step count in the singular when it is one', () => {
    expect(headerStatus(IDLE_RUN, ready)).toEqual({ text: 'Ready to train · 14,000 steps ↓', state: 'ready', href: '#panel-training' });
    expect(headerStatus(IDLE_RUN, { ...ready, planSteps: 1 }).text).toBe('Ready to train · 1 step ↓');
    expect(headerStatus(IDLE_RUN, { ...ready, planSteps: null }).text).toBe('Ready to train ↓');
    expect(headerStatus(at({ phase: 'running', step: 1200, totalSteps: 14000 }), ready)).toEqual({ text: 'Training · step 1,200 / 14,000', state: 'busy', href: '#panel-training' });
    expect(headerStatus(at({ phase: 'starting' }), ready).text).toBe('Training · step 0 / …');
    expect(headerStatus(at({ phase: 'running', step: 1200, totalSteps: 14000, readouts: { etaSeconds: 3754 } as RunState['readouts'] }), ready).text).toBe('Training · step 1,200 / 14,000 · 1:02:34 left');
    expect(headerStatus(at({ phase: 'stopping', step: 1200, totalSteps: 14000, readouts: { etaSeconds: 3754 } as RunState['readouts'] }), ready).text).toBe('Stopping · step 1,200 / 14,000');
    expect(headerStatus(at({ phase: 'validating', step: 4, totalSteps: 8, validating: { step: 4, passes: 4, done: 1 } }), ready).text).toBe('Validating · step 4 · 1 / 4');
    // The pass before the first step (eval_on_start) is no step's.
    expect(headerStatus(at({ phase: 'validating', step: 0, totalSteps: 8, validating: { step: 0, passes: 4, done: 1 } }), ready).text).toBe('Validating · before training · 1 / 4');
    expect(headerStatus(at({ phase: 'paused', step: 3, totalSteps: 8 }), ready)).toMatchObject({ text: 'Paused · step 3 / 8', state: 'paused' });
    expect(headerStatus(at({ phase: 'pausing', step: 3, totalSteps: 8 }), ready)).toMatchObject({ text: 'Pausing · step 3 / 8', state: 'busy' });
    // Resume asked while an export reads the adapter: the run is still held.
    expect(headerStatus(at({ phase: 'resuming', step: 3, totalSteps: 8 }), ready)).toMatchObject({ text: 'Resuming · step 3 / 8', state: 'paused' });
    expect(headerStatus(at({ phase: 'done', step: 1, totalSteps: 1 }), ready)).toEqual({ text: 'Finished · 1 step · export ↓', state: 'done', href: '#panel-export' });
  });

  it('keeps a stopped or failed run in view instead of saying "Ready to train"', () => {
    // Stopped at step 6 with its checkpoint saved: the panel offers the resume.
    expect(headerStatus(at({ phase: 'stopped', step: 6, totalSteps: 8, checkpointStep: 6 }), ready)).toEqual({ text: 'Stopped at step 6 / 8 · resume ↓', state: 'stopped', href: '#panel-training' });
    // Nothing saved (stopped before the first step), or saved at the last step (stopped in its validation): no resume.
    expect(headerStatus(at({ phase: 'stopped', step: 0, totalSteps: 8, checkpointStep: null }), ready).text).toBe('Stopped at step 0 / 8');
    expect(headerStatus(at({ phase: 'stopped', step: 8, totalSteps: 8, checkpointStep: 8 }), ready).text).toBe('Stopped at step 8 / 8');
    expect(headerStatus(at({ phase: 'stopped', step: 6, totalSteps: 8 }), ready).text).toBe('Stopped at step 6 / 8');
    expect(headerStatus(at({ phase: 'error', step: 2, totalSteps: 8 }), ready)).toEqual({ text: 'Training failed at step 2 / 8 · see why ↓', state: 'error', href: '#panel-training' });
    // After a reload: the unfinished run saved in this browser, offered in the panel (it said "Ready to train · 8 steps").
    expect(headerStatus(IDLE_RUN, { ...ready, savedRun: { step: 4, totalSteps: 1200 } })).toEqual({ text: 'Saved run at step 4 / 1,200 · resume ↓', state: 'stopped', href: '#panel-training' });
    expect(headerStatus(IDLE_RUN, { ...ready, savedRun: null }).text).toBe('Ready to train · 14,000 steps ↓');
  });

  it('says why nothing can start: no GPU first, then what Train waits for', () => {
    expect(headerStatus(IDLE_RUN, { ...ready, gpuOk: false })).toEqual({ text: 'No usable GPU: see the GPU panel', state: 'waiting', href: '#gpu' });
    expect(headerStatus(IDLE_RUN, { ...ready, notReady: 'Load a model first' })).toEqual({ text: 'Load a model first', state: 'waiting', href: '#panel-training' });
    // Another tab trains the run saved in this browser: this tab is not "ready to train".
    expect(headerStatus(IDLE_RUN, { ...ready, elsewhere: true })).toEqual({ text: 'Training in another tab ↓', state: 'waiting', href: '#panel-training' });
  });
});

describe('the tab title', () => {
  const page = 'finetune — QLoRA in your browser';
  const readouts = (etaSeconds: number | null): RunState['readouts'] => ({ etaSeconds }) as RunState['readouts'];

  it('leads with the share done and the time left while a run is busy, since a tab strip cuts titles short', () => {
    expect(documentTitle(at({ phase: 'running', step: 1200, totalSteps: 14000, readouts: readouts(754) }), page)).toBe('8.6 % · 12:34 left · step 1,200 / 14,000 · finetune');
    expect(documentTitle(at({ phase: 'validating', step: 7, totalSteps: 8, readouts: readouts(3) }), page)).toBe('88 % · 0:03 left · step 7 / 8 · finetune');
    // No estimate yet (or none left): no "left"; no plan yet: the step alone.
    expect(documentTitle(at({ phase: 'running', step: 1, totalSteps: 8, readouts: readouts(null) }), page)).toBe('13 % · step 1 / 8 · finetune');
    expect(documentTitle(at({ phase: 'running', step: 0, totalSteps: 0 }), page)).toBe('step 0 · finetune');
    expect(documentTitle(at({ phase: 'starting' }), page)).toBe('Starting · finetune');
  });

  it('keeps the news of an ended run, and is the page\'s own title when there is none', () => {
    expect(documentTitle(at({ phase: 'paused', step: 3, totalSteps: 8 }), page)).toBe('Paused at 38 % · finetune');
    expect(documentTitle(at({ phase: 'resuming', step: 3, totalSteps: 8 }), page)).toBe('Resuming at 38 % · finetune');
    expect(documentTitle(at({ phase: 'done', step: 8, totalSteps: 8 }), page)).toBe('Finished · 8 steps · finetune');
    expect(documentTitle(at({ phase: 'stopped', step: 6, totalSteps: 8 }), page)).toBe('Stopped at step 6 / 8 · finetune');
    // Stopping: not "training" with time left (the panel said "Stopping after the current step…").
    expect(documentTitle(at({ phase: 'stopping', step: 1, totalSteps: 8, readouts: { etaSeconds: 38 } as RunState['readouts'] }), page)).toBe('Stopping at 13 % · finetune');
    expect(documentTitle(at({ phase: 'error', step: 2, totalSteps: 8 }), page)).toBe('Training failed · finetune');
    expect(documentTitle(IDLE_RUN, page)).toBe(page);
  });
});
