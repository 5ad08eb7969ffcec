// What the Try it panel says beside a disabled Generate button (src/ui/try-panel.ts): why it cannot run now, in each
// state that disables it, and nothing when it can run (or is running: Stop is the control then).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { generateBlockedReason, readSettings, trySection } from '../../../src/ui/try-panel.ts';
import type { DataStats } from '../../../src/worker/api.ts';
import { asFake, installFakeDocument } from '../../helpers/fake-dom.ts';
import { fakeRunPage } from '../../helpers/fake-run-page.ts';

describe('generateBlockedReason', () => {
  it('says that training holds the GPU while steps run, and nothing while the run is paused or over', () => {
    for (const phase of ['starting', 'running', 'validating', 'stopping'] as const) {
      expect(generateBlockedReason(phase, 'ready', false)).toBe('Training is using the GPU: pause the run (or wait until it ends) to generate.');
    }
    for (const phase of ['idle', 'paused', 'done', 'stopped', 'error'] as const) expect(generateBlockedReason(phase, 'ready', false)).toBeNull();
    // Pause asked, not yet in effect: the step (or sample) under way still holds the GPU.
    expect(generateBlockedReason('pausing', 'ready', false)).toBe('The run is pausing: Try it can run once the work under way ends.');
    // Resume asked: the run waits only for what reads the adapter now; a new generation would hold it longer.
    expect(generateBlockedReason('resuming', 'ready', false)).toBe('The run is resuming: pause it again to generate.');
  });

  it('asks for a model first, whatever the run does', () => {
    expect(generateBlockedReason('idle', 'none', false)).toBe('Load a model first (Model panel).');
    expect(generateBlockedReason('idle', 'error', false)).toBe('Load a model first (Model panel).');
    expect(generateBlockedReason('idle', 'loading', false)).toBe('The model is loading…');
  });

  it('gives no reason while a generation runs', () => {
    expect(generateBlockedReason('idle', 'ready', true)).toBeNull();
  });
});

describe('readSettings', () => {
  it('ignores the seed of greedy generation (its field is disabled): not checked, not sent', () => {
    // Temperature 0.7, seed "1.5" typed, then temperature 0: the disabled field still holds "1.5".
    expect(readSettings('16', '0', '1', '1.5')).toEqual({ maxNewTokens: 16, temperature: 0, topP: 1 });
    expect(readSettings('16', '0', '1', undefined)).toEqual({ maxNewTokens: 16, temperature: 0, topP: 1 });
  });

  it('checks and sends the seed of sampled generation', () => {
    expect(readSettings('16', '0.7', '1', '1.5')).toBe('Seed must be a whole number from -(2^53 - 1) to 2^53 - 1, got "1.5"');
    expect(readSettings('16', '0.7', '0.9', '42')).toEqual({ maxNewTokens: 16, temperature: 0.7, topP: 0.9, seed: 42 });
  });
});

// A generation that meets a lost GPU device: the worker drops the device and the session on it (worker.ts dropGpu), the
// model and the adapter with them. The page used to go on showing the model loaded and ready and the adapter there,
// so Generate (and Export) stayed offered on a model the worker no longer had.
describe('Try it after a lost GPU device', () => {
  let restore: () => void;
  beforeEach(() => (restore = installFakeDocument()));
  afterEach(() => restore());

  it('shows the model as gone with the device, the adapter as gone, and runs no further column', async () => {
    const lost = new FinetuneError('device-lost', 'the GPU device was lost (unknown): the driver reset');
    const { shared, calls } = fakeRunPage({ generateStream: async () => Promise.reject(lost) });
    // A stopped run's adapter at step 4, which Try it runs, with the base model beside it.
    shared.run.dispatch({ type: 'start', totalSteps: 8 });
    shared.run.dispatch({ type: 'event', event: { type: 'plan', stats: { totalSteps: 8 } as DataStats, resumedAt: 0 } });
    shared.run.dispatch({ type: 'stop' });
    shared.run.dispatch({ type: 'finished', result: { steps: 4, skipped: 0, stopped: true, finalLoss: 1, finalValLoss: null, seconds: 1 } });
    const tryIt = trySection(shared, () => (shared.run.value.hasAdapter ? `the adapter at step ${shared.run.value.step}` : null));
    const view = asFake(tryIt.element);
    tryIt.render();
    view.byTestId('generate-prompt')!.value = '# add';
    view.byTestId('generate-compare')!.checked = true;
    view.byTestId('generate-run')!.click();
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));

    expect(view.byTestId('generate-stats-adapter')?.textContent).toBe('Generation failed: the GPU device was lost (unknown): the driver reset');
    expect(shared.model.value).toMatchObject({ status: 'error', info: null, error: { kind: 'device-lost', lostWithDevice: true } });
    expect(shared.run.value).toMatchObject({ phase: 'stopped', hasAdapter: false });
    // The base model went with the device too: its column is not run on a session that has no model.
    expect(calls).toEqual(['generateStream']);
    expect(view.byTestId('generate-stats-base')?.textContent).toBe('not run (the GPU device was lost)');
    expect(view.byTestId('generate-reason')?.textContent).toBe('Load a model first (Model panel).');
  });
});
