// Pause and Stop whose request to the worker fails (src/ui/run-controller.ts): the worker gone, or its session lost with
// the GPU device. The page used to drop the rejection (an unhandled one) and stay on "Pausing…" or "Stopping…" with
// Pause or Stop disabled and not a word said: it must say the request failed and give the controls back.
import { describe, expect, it } from 'vitest';
import { runController } from '../../../src/ui/run-controller.ts';
import type { Shared } from '../../../src/ui/state.ts';
import type { DataStats } from '../../../src/worker/api.ts';
import { fakeRunPage } from '../../helpers/fake-run-page.ts';

const gone = (): Promise<never> => Promise.reject(new Error('the engine worker is not answering'));

/** A run going at step 2 of 4, as the worker's events leave it. */
function running(shared: Shared): void {
  shared.run.dispatch({ type: 'start', totalSteps: 4 });
  shared.run.dispatch({ type: 'event', event: { type: 'plan', stats: { totalSteps: 4 } as DataStats, resumedAt: 0 } });
  shared.run.dispatch({ type: 'event', event: { type: 'step', step: 2, totalSteps: 4, epoch: 0, loss: 1, lr: 1e-4, gradNorm: 1, tokens: 10, tokensPerSecond: 10, elapsedSeconds: 2, etaSeconds: 2 } });
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

function setUp(): { shared: Shared; calls: string[]; control: ReturnType<typeof runController> } {
  const { shared, calls } = fakeRunPage({ pauseTraining: gone, stopTraining: gone, resumeTraining: async () => undefined });
  const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
  running(shared);
  return { shared, calls, control };
}

/** A run asked to start, which the worker has not begun (no plan event yet). */
function setUpStarting(): { shared: Shared; control: ReturnType<typeof runController> } {
  const { shared } = fakeRunPage({ stopTraining: gone });
  const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
  shared.run.dispatch({ type: 'start', totalSteps: 4 });
  return { shared, control };
}

describe('a Pause or Stop the worker could not be asked', () => {
  it('Pause: says the run was not paused, and the run goes on with Pause usable again', async () => {
    const { shared, calls, control } = setUp();
    control.pause();
    expect(shared.run.value.phase).toBe('pausing');
    await tick();
    expect(shared.run.value.phase).toBe('running');
    expect(shared.run.value.note).toBe('The run was not paused: the request to the training worker failed (the engine worker is not answering). Press Pause to try again.');
    control.pause();
    expect(calls).toEqual(['pauseTraining', 'pauseTraining']);
  });

  it('Stop: says the run was not stopped, and the run goes on with Stop usable again', async () => {
    const { shared, calls, control } = setUp();
    control.stop();
    expect(shared.run.value.phase).toBe('stopping');
    await tick();
    expect(shared.run.value.phase).toBe('running');
    expect(shared.run.value.note).toBe('The run was not stopped: the request to the training worker failed (the engine worker is not answering). Press Stop to try again.');
    control.stop();
    expect(calls).toEqual(['stopTraining', 'stopTraining']);
  });

  it('Stop of a paused run: the run stays paused (Resume, not Pause, is offered)', async () => {
    const { shared, control } = setUp();
    shared.run.dispatch({ type: 'pause' });
    shared.run.dispatch({ type: 'event', event: { type: 'paused', step: 2 } });
    control.stop();
    await tick();
    expect(shared.run.value.phase).toBe('paused');
    expect(shared.run.value.note).toMatch(/^The run was not stopped: /);
  });

  it('Stop while the run was starting: the run it begins meanwhile is shown running, not "preparing"', async () => {
    const { shared, control } = setUpStarting();
    control.stop();
    shared.run.dispatch({ type: 'event', event: { type: 'plan', stats: { totalSteps: 4 } as DataStats, resumedAt: 0 } });
    await tick();
    expect(shared.run.value.phase).toBe('running');
  });

  it('a failed request after the run itself ended leaves its outcome as it is', async () => {
    const { shared, control } = setUp();
    control.stop();
    shared.run.dispatch({ type: 'failed', kind: 'device-lost', message: 'the GPU device was lost' });
    const before = shared.run.value;
    await tick();
    expect(shared.run.value).toBe(before);
    expect(shared.run.value.phase).toBe('error');
  });
});

