// What follows the form and the dataset by itself: the plan, checked against the data whenever either changes, and the
// demo model, loaded again in the quantization the form's peft_method asks for (it is small: reloading takes a
// moment). Neither is done while a run goes: the run has its own plan, and the model is the run's. What changed
// meanwhile is followed once the run is no longer busy: a resume the worker has begun puts its run's values and data
// files into the form and the dataset panel while it goes, and a resume refused after it loaded the saved run's model
// (in that run's quantization) never changed the form (run-controller.ts).

import { errorMessages, errorParts } from './format.ts';
import { runBusy, wantedQuantization, type Shared } from './state.ts';

function debounce(fn: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

/** The plan (shared.plan) follows the form and the files, `waitMs` after the last change. */
export function planFollowsInputs(shared: Shared, waitMs = 350): void {
  const run = shared.run;
  let planId = 0;
  const replan = debounce(() => {
    const f = shared.form.value;
    const d = shared.data.value;
    if (runBusy(run.value.phase)) return;
    const trainOk = d.train?.status === 'ready' && d.train.report?.ok;
    const validationOk = !d.validation || (d.validation.status === 'ready' && d.validation.report?.ok);
    if (!f.hp || !d.train || !trainOk || !validationOk) {
      shared.plan.set({ status: 'idle', stats: null, error: null });
      return;
    }
    const id = ++planId;
    shared.engine.planRun({ ...f.hp }, d.train.file, d.validation?.file ?? null).then(
      (stats) => {
        if (id === planId) shared.plan.set({ status: 'ready', stats, error: null });
      },
      (e: unknown) => {
        if (id === planId) shared.plan.set({ status: 'error', stats: null, error: { ...errorParts(e), messages: errorMessages(e) } });
      },
    );
  }, waitMs);
  // Mark the plan out of date at once (Train waits for the new one); keep the old figures on show meanwhile. Marked
  // while a run goes too, so that the plan is made once it ends (replan does nothing while it goes).
  const schedulePlan = (): void => {
    const p = shared.plan.value;
    if (p.status !== 'planning') shared.plan.set({ status: 'planning', stats: p.stats, error: null });
    replan();
  };
  shared.form.watch(schedulePlan);
  shared.data.watch(schedulePlan);
  run.watch((r) => {
    if (!runBusy(r.phase) && shared.plan.value.status === 'planning') replan();
  });
}

/** The demo model, when it is the one loaded, follows the form's quantization, `waitMs` after the last change. */
export function demoFollowsQuantization(shared: Shared, demoName: string, waitMs = 600): void {
  const model = shared.model;
  const followQuantization = debounce(() => {
    const m = model.value;
    const q = wantedQuantization(shared.form.value);
    if (!q || m.status !== 'ready' || m.choice?.kind !== 'demo' || m.info?.quantization === q || runBusy(shared.run.value.phase)) return;
    void shared.loadModel({ kind: 'demo' }, demoName, q);
  }, waitMs);
  shared.form.watch(followQuantization);
  model.watch(followQuantization);
  shared.run.watch((r) => {
    if (!runBusy(r.phase)) followQuantization();
  });
}
