// Resume after Pause, on the page (src/ui/run-controller.ts): the worker lets the run go only once what reads its
// adapter (an export, Try it) has ended, so the page says "resuming" until engine.resumeTraining settles, not "running".
import { describe, expect, it } from 'vitest';
import { runController } from '../../../src/ui/run-controller.ts';
import type { Shared } from '../../../src/ui/state.ts';
import type { DataStats } from '../../../src/worker/api.ts';
import { fakeRunPage, NO_MODEL, type FakeRunPage } from '../../helpers/fake-run-page.ts';

function page(resumeTraining: () => Promise<void>): FakeRunPage {
  return fakeRunPage({ pauseTraining: async () => undefined, resumeTraining }, { model: NO_MODEL });
}

/** A run paused after step 2 (the worker said the pause took effect). */
function paused(shared: Shared): void {
  shared.run.dispatch({ type: 'start', totalSteps: 4 });
  shared.run.dispatch({ type: 'event', event: { type: 'plan', stats: { totalSteps: 4 } as DataStats, resumedAt: 0 } });
  shared.run.dispatch({ type: 'pause' });
  shared.run.dispatch({ type: 'event', event: { type: 'paused', step: 2 } });
}

describe('Resume while the adapter is being read', () => {
  it('says "resuming" until the worker lets the run go, then "running"', async () => {
    let letGo!: () => void;
    const { shared, calls } = page(() => new Promise<void>((r) => (letGo = r)));
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    paused(shared);
    expect(shared.run.value.phase).toBe('paused');
    control.unpause();
    expect(calls).toEqual(['resumeTraining']);
    // The export still reads the adapter: the worker holds the run.
    await new Promise((r) => setTimeout(r, 0));
    expect(shared.run.value.phase).toBe('resuming');
    // A second press does nothing (the button is disabled meanwhile), nor does Pause.
    control.unpause();
    control.pause();
    expect(calls).toEqual(['resumeTraining']);
    letGo();
    await new Promise((r) => setTimeout(r, 0));
    expect(shared.run.value.phase).toBe('running');
  });

  it('does not stay "resuming" when the worker could not be asked', async () => {
    const { shared } = page(() => Promise.reject(new Error('the worker is gone')));
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    paused(shared);
    control.unpause();
    await new Promise((r) => setTimeout(r, 0));
    expect(shared.run.value.phase).toBe('running');
  });
});
