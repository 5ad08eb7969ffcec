// The plan and the demo model follow the form and the files (src/ui/follow-inputs.ts), but not while a run goes. A
// resume the worker has begun puts its run's values and data files into the form and the dataset panel then, while the
// run goes (a refused one never changes them: run-controller.ts), so what they changed is followed once the run ends,
// or once a refused resume shows this tab's run as it was.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { formState, formValuesOf } from '../../../src/ui/hyperparams-panel.ts';
import { demoFollowsQuantization, planFollowsInputs } from '../../../src/ui/follow-inputs.ts';
import type { DataState } from '../../../src/ui/state.ts';
import type { DataStats, SavedRun } from '../../../src/worker/api.ts';
import { fakeRunPage, SAVED_AT_STEP_4 } from '../../helpers/fake-run-page.ts';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
});
afterEach(() => {
  vi.useRealTimers();
});

const data = { train: { file: new File(['{"text":"a"}\n'], 'ours.jsonl'), report: { ok: true }, status: 'ready', error: null }, validation: null } as unknown as DataState;

describe('the plan', () => {
  it('made for the values a resumed run put into the form while it went, once that run has ended', async () => {
    const planned: unknown[] = [];
    const { shared } = fakeRunPage({ planRun: async (hp: never) => (planned.push((hp as { learning_rate: number }).learning_rate), { totalSteps: 8 } as DataStats) }, { data });
    planFollowsInputs(shared, 10);
    await vi.advanceTimersByTimeAsync(50);
    expect(shared.plan.value.status).toBe('ready');
    planned.length = 0;
    // The saved run resumed: the worker began it (its plan event), then the form took its values.
    const saved: SavedRun = { ...SAVED_AT_STEP_4, hp: { ...defaultHyperparams(), learning_rate: 5e-4 } };
    shared.run.dispatch({ type: 'resume', saved });
    shared.run.dispatch({ type: 'event', event: { type: 'plan', stats: { totalSteps: 8 } as DataStats, resumedAt: 4 } });
    shared.form.set(formState(formValuesOf(saved.hp)));
    await vi.advanceTimersByTimeAsync(50);
    expect(planned).toEqual([]);
    shared.run.dispatch({ type: 'stop' });
    shared.run.dispatch({ type: 'finished', result: { steps: 5, skipped: 0, stopped: true, finalLoss: 1, finalValLoss: null, seconds: 1 } });
    await vi.advanceTimersByTimeAsync(50);
    // The plan Train uses next is the form's, not the one made before the resume.
    expect(planned).toEqual([5e-4]);
    expect(shared.plan.value.status).toBe('ready');
  });
});

describe('the demo model', () => {
  it("follows the form again after a refused resume loaded it in the saved run's quantization", async () => {
    const loads: string[] = [];
    const { shared } = fakeRunPage({}, { form: formState({ ...formValuesOf(defaultHyperparams()), peft_method: 'qlora', quantization: '' }) });
    shared.loadModel = async (_source, _label, q) => (loads.push(q), null);
    demoFollowsQuantization(shared, 'mistral-nano-demo', 10);
    await vi.advanceTimersByTimeAsync(50);
    expect(loads).toEqual([]);
    // The resume loaded the demo model unquantised, the saved run's way, and asked the worker, which refused it: the
    // run is shown as it was, the form never changed.
    const before = shared.run.value;
    shared.model.set({ ...shared.model.value, quantization: 'none', info: { ...shared.model.value.info!, quantization: 'none' } });
    shared.run.dispatch({ type: 'resume', saved: { ...SAVED_AT_STEP_4, quantization: 'none' } });
    await vi.advanceTimersByTimeAsync(50);
    expect(loads).toEqual([]);
    shared.run.dispatch({ type: 'refused', before });
    await vi.advanceTimersByTimeAsync(50);
    expect(loads).toEqual(['nf4-double']);
  });
});
