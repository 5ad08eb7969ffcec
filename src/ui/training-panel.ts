// The training panel: the plan for the current data and hyperparameters (steps, tokens, accumulation), Train / Pause /
// Stop, live readouts (step, epoch, loss, validation loss, lr, grad norm, tokens/s, elapsed, ETA), the loss chart,
// the validation prompt's sample, and the run saved in this browser (offered for resume after a reload).

import type { DataStats, SavedRun, TrainEvent, TrainResult } from '../worker/api.ts';
import * as Comlink from 'comlink';
import { h, replaceChildren } from './dom.ts';
import { errorParts, formatCount, formatDuration, formatLoss, formatPercent, formatRate, formatSci } from './format.ts';
import { LossChart } from './loss-chart.ts';
import { runBusy, wantedQuantization, type Shared } from './state.ts';

const DEMO_MODEL = 'mistral-nano-demo';

/** Why Train is not possible right now (what the user can fix first), or null when it is. */
export function notReadyReason(shared: Shared): string | null {
  const m = shared.model.value;
  const form = shared.form.value;
  const d = shared.data.value;
  const plan = shared.plan.value;
  if (!form.hp) return 'Fix the hyperparameters marked in red.';
  if (!d.train) return 'Choose a training file (Dataset panel).';
  if (d.train.status === 'error') return 'The training file could not be read: see the Dataset panel.';
  if (d.train.report && !d.train.report.ok) return `The training file has ${d.train.report.summary.errors} error(s): see the Dataset panel.`;
  if (d.validation?.status === 'error' || (d.validation?.report && !d.validation.report.ok)) return 'The validation file has errors: see the Dataset panel.';
  if (plan.status === 'error') return 'The run cannot be planned: see the message above.';
  if (m.status === 'loading') return 'The model is loading…';
  if (m.status !== 'ready' || !m.info) return 'Load a model first (Model panel).';
  const q = wantedQuantization(form);
  if (q && m.info.quantization !== q) return `The model is loaded as ${m.info.quantization}; this run needs ${q}. Load it again.`;
  if (d.train.status === 'inspecting' || d.validation?.status === 'inspecting') return 'Reading the dataset…';
  if (plan.status !== 'ready') return 'Planning the run…';
  return null;
}

export function planView(s: DataStats): HTMLElement {
  const items: [string, string][] = [
    ['training rows', formatCount(s.trainExamples)],
    ['validation rows', formatCount(s.validationExamples)],
    ['epochs', formatCount(s.epochs)],
    ['steps', `${formatCount(s.totalSteps)} (${formatCount(s.stepsPerEpoch)} per epoch)`],
    ['batch', `${s.trainBatchSize} = ${s.microBatchSize} × ${s.gradientAccumulationSteps}`],
    ['tokens per epoch', formatCount(s.tokensPerEpoch)],
    ['longest sequence', `${formatCount(s.longestSequence)} tokens`],
    ['padding', formatPercent(s.paddingFraction)],
  ];
  const titles: Record<string, string> = { batch: 'train_batch_size = micro_batch_size × gradient accumulation steps' };
  return h('dl', { class: 'plan-facts', 'data-testid': 'plan-facts' }, ...items.flatMap(([k, v]) => [h('div', { title: titles[k] }, h('dt', {}, k), h('dd', { class: 'num' }, v))]));
}

function readout(label: string, testid: string): { el: HTMLElement; value: HTMLElement; sub: HTMLElement } {
  const value = h('span', { class: 'value num', 'data-testid': testid }, '—');
  const sub = h('span', { class: 'sub num' });
  return { el: h('div', { class: 'readout' }, h('span', { class: 'label' }, label), value, sub), value, sub };
}

export function trainingPanel(shared: Shared, options: { restoreForm(hp: Readonly<Record<string, unknown>>): void }): HTMLElement {
  const engine = shared.engine;
  const chart = new LossChart(340);
  const startButton = h('button', { type: 'button', 'data-testid': 'train-start', class: 'primary' }, 'Train');
  const pauseButton = h('button', { type: 'button', 'data-testid': 'train-pause', class: 'secondary', disabled: true }, 'Pause');
  const stopButton = h('button', { type: 'button', 'data-testid': 'train-stop', class: 'secondary danger', disabled: true }, 'Stop');
  const reason = h('p', { class: 'hint', 'data-testid': 'train-reason' });
  const planBox = h('div', { class: 'plan', 'data-testid': 'plan' });
  const bar = h('progress', { max: 1, value: 0, 'data-testid': 'train-progress' });
  const phaseText = h('p', { class: 'status', 'data-testid': 'train-status' }, 'Ready when you are.');
  const events = h('p', { class: 'hint event', 'data-testid': 'train-event' });
  const result = h('div', { 'data-testid': 'train-result' });
  const sample = h('div', { class: 'sample', 'data-testid': 'sample', hidden: true });
  const saved = h('div', { class: 'saved-run', 'data-testid': 'saved-run', hidden: true });

  const r = {
    step: readout('step', 'step-counter'),
    loss: readout('train loss', 'train-loss'),
    val: readout('validation loss', 'val-loss'),
    rate: readout('tokens / s', 'tokens-per-second'),
    eta: readout('ETA', 'eta'),
    lr: readout('learning rate', 'lr'),
    grad: readout('grad norm', 'grad-norm'),
    epoch: readout('epoch', 'epoch'),
  };

  let lastStep = 0;
  let total = 0;
  let started = 0;
  // The plan box shows the run's own plan (from its 'plan' event) until the form or the files change after it.
  let runPlan: DataStats | null = null;
  let resumedName: string | null = null;

  const resetReadouts = (): void => {
    for (const x of Object.values(r)) {
      x.value.textContent = '—';
      x.sub.textContent = '';
    }
    bar.value = 0;
    replaceChildren(result);
    events.textContent = '';
    sample.hidden = true;
  };

  const onEvent = (e: TrainEvent): void => {
    switch (e.type) {
      case 'plan':
        total = e.stats.totalSteps;
        bar.max = Math.max(1, total);
        bar.value = e.resumedAt;
        lastStep = e.resumedAt;
        chart.setTotal(total);
        runPlan = e.stats;
        replaceChildren(planBox, planView(e.stats));
        r.step.value.textContent = `${e.resumedAt} / ${total}`;
        if (shared.run.value.phase === 'starting') shared.run.update({ phase: 'running', totalSteps: total, step: e.resumedAt, hasAdapter: true });
        events.textContent = e.resumedAt > 0 ? `Resumed ${resumedName ?? 'the saved run'} from the checkpoint at step ${e.resumedAt}.` : 'Training started.';
        break;
      case 'step': {
        lastStep = e.step;
        total = e.totalSteps;
        chart.addStep(e.step, e.loss);
        bar.max = Math.max(1, total);
        bar.value = e.step;
        r.step.value.textContent = `${e.step} / ${e.totalSteps}`;
        r.step.sub.textContent = formatPercent(e.step / Math.max(1, e.totalSteps));
        r.epoch.value.textContent = String(e.epoch + 1);
        r.loss.value.textContent = formatLoss(e.loss);
        r.lr.value.textContent = formatSci(e.lr);
        r.grad.value.textContent = e.gradNorm.toPrecision(3);
        r.rate.value.textContent = formatRate(e.tokensPerSecond);
        r.rate.sub.textContent = `${formatCount(e.tokens)} tokens / step`;
        r.eta.value.textContent = e.step >= e.totalSteps ? 'done' : formatDuration(e.etaSeconds);
        r.eta.sub.textContent = `elapsed ${formatDuration(e.elapsedSeconds)}`;
        shared.run.update({ step: e.step, totalSteps: e.totalSteps });
        shared.refreshMemory();
        break;
      }
      case 'eval':
        chart.addValidation(e.step, e.valLoss);
        r.val.value.textContent = formatLoss(e.valLoss);
        r.val.value.dataset.value = String(e.valLoss);
        r.val.sub.textContent = `at step ${e.step} · ${formatCount(e.valTokens)} tokens · ${e.seconds.toFixed(1)} s`;
        break;
      case 'sample':
        sample.hidden = false;
        replaceChildren(sample, h('h3', {}, `Sample at step ${e.step}`), h('p', { class: 'prompt' }, e.prompt), h('p', { class: 'completion' }, e.text));
        break;
      case 'checkpoint':
        events.textContent = `Checkpoint saved in this browser at step ${e.step}: a reload can resume from here.`;
        break;
      case 'status':
        events.textContent = e.text;
        break;
    }
  };

  const finish = (p: Promise<TrainResult>): void => {
    started = performance.now();
    p.then(
      (res) => {
        const stopped = res.stopped;
        shared.run.update({ phase: stopped ? 'stopped' : 'done', step: res.steps, hasAdapter: true });
        replaceChildren(
          result,
          h(
            'p',
            { class: stopped ? 'warn' : 'ok' },
            stopped
              ? `Stopped at step ${res.steps} of ${total}. The adapter so far can be exported; the run is saved and can be resumed.`
              : `Finished: ${res.steps} steps in ${formatDuration(res.seconds)}` +
                  (res.finalLoss !== null ? ` · final loss ${formatLoss(res.finalLoss)}` : '') +
                  (res.finalValLoss !== null ? ` · validation loss ${formatLoss(res.finalValLoss)}` : ''),
          ),
        );
        shared.refreshMemory();
      },
      (e: unknown) => {
        const { kind, message } = errorParts(e);
        shared.run.update({ phase: 'error', hasAdapter: lastStep > 0 });
        replaceChildren(result, h('p', { class: 'bad', 'data-testid': 'train-error' }, `Training failed (${kind}): ${message}`));
        shared.refreshMemory();
      },
    );
  };

  startButton.addEventListener('click', () => {
    const form = shared.form.value;
    const d = shared.data.value;
    if (!form.hp || !d.train || notReadyReason(shared)) return;
    resetReadouts();
    chart.reset([], shared.plan.value.stats?.totalSteps ?? 0);
    saved.hidden = true;
    lastStep = 0;
    runPlan = null;
    resumedName = null;
    shared.run.set({ phase: 'starting', step: 0, totalSteps: shared.plan.value.stats?.totalSteps ?? 0, hasAdapter: false });
    finish(
      engine.startTraining(
        { ...form.hp },
        { train: d.train.file, trainName: d.train.file.name, validation: d.validation?.file ?? null, validationName: d.validation?.file.name ?? null },
        Comlink.proxy(onEvent),
      ),
    );
  });

  pauseButton.addEventListener('click', () => {
    const phase = shared.run.value.phase;
    if (phase === 'running') {
      void engine.pauseTraining();
      shared.run.update({ phase: 'paused' });
    } else if (phase === 'paused') {
      void engine.resumeTraining();
      shared.run.update({ phase: 'running' });
    }
  });

  stopButton.addEventListener('click', () => {
    void engine.stopTraining();
    shared.run.update({ phase: 'stopping' });
  });

  // ---- the run saved in this browser ----------------------------------------------------------------------------
  const showSaved = (run: SavedRun): void => {
    const finished = run.step >= run.totalSteps;
    const resume = h('button', { type: 'button', 'data-testid': 'saved-run-resume' }, finished ? 'Restore the adapter' : `Resume from step ${run.step}`);
    const forget = h('button', { type: 'button', class: 'secondary', 'data-testid': 'saved-run-forget' }, 'Forget it');
    const note = h('p', { class: 'hint', 'data-testid': 'saved-run-note' });
    const when = new Date(run.savedAt);
    saved.hidden = false;
    replaceChildren(
      saved,
      h('h3', {}, finished ? 'A finished run is saved in this browser' : 'A run is saved in this browser'),
      h(
        'p',
        { class: 'num', 'data-testid': 'saved-run-summary' },
        `${run.trainName}${run.validationName ? ` + ${run.validationName}` : ''} · ${run.modelSource} (${run.quantization}) · step ${run.step} / ${run.totalSteps} · saved ${Number.isNaN(when.getTime()) ? run.savedAt : when.toLocaleString()}`,
      ),
      h('div', { class: 'actions' }, resume, forget),
      note,
    );
    forget.addEventListener('click', async () => {
      forget.disabled = resume.disabled = true;
      try {
        await engine.forgetSavedRun();
        saved.hidden = true;
      } catch (e) {
        const { kind, message } = errorParts(e);
        note.textContent = `Could not forget it (${kind}): ${message}`;
        forget.disabled = resume.disabled = false;
      }
    });
    resume.addEventListener('click', async () => {
      if (runBusy(shared.run.value.phase)) return;
      resume.disabled = forget.disabled = true;
      options.restoreForm(run.hp as unknown as Record<string, unknown>);
      const m = shared.model.value;
      const loaded = m.status === 'ready' && m.info?.source === run.modelSource && m.info.quantization === run.quantization;
      if (!loaded) {
        if (run.modelSource !== DEMO_MODEL) {
          note.textContent = `Load ${run.modelSource} with quantization ${run.quantization} in the Model panel, then resume.`;
          resume.disabled = forget.disabled = false;
          return;
        }
        note.textContent = `Loading ${DEMO_MODEL} (${run.quantization})…`;
        const info = await shared.loadModel({ kind: 'demo' }, DEMO_MODEL, run.quantization);
        if (!info) {
          note.textContent = 'The model could not be loaded: see the Model panel.';
          resume.disabled = forget.disabled = false;
          return;
        }
      }
      note.textContent = '';
      saved.hidden = true;
      resetReadouts();
      chart.reset(run.history, run.totalSteps);
      const last = run.history[run.history.length - 1];
      if (last) r.loss.value.textContent = formatLoss(last.loss);
      const lastVal = [...run.history].reverse().find((x) => x.valLoss !== undefined);
      if (lastVal?.valLoss !== undefined) {
        r.val.value.textContent = formatLoss(lastVal.valLoss);
        r.val.value.dataset.value = String(lastVal.valLoss);
        r.val.sub.textContent = `at step ${lastVal.step}`;
      }
      lastStep = run.step;
      total = run.totalSteps;
      runPlan = null;
      resumedName = run.trainName;
      shared.run.set({ phase: 'starting', step: run.step, totalSteps: run.totalSteps, hasAdapter: false });
      finish(engine.resumeSavedRun(Comlink.proxy(onEvent)));
    });
  };

  void shared.gpuReady.then(async (ok) => {
    if (!ok) return;
    try {
      const run = await engine.savedRun();
      if (run && shared.run.value.phase === 'idle') showSaved(run);
    } catch {
      // No store in this browser (no OPFS): nothing to offer.
    }
  });

  // ---- state → controls ---------------------------------------------------------------------------------------
  const render = (): void => {
    const run = shared.run.value;
    const busy = runBusy(run.phase);
    const why = busy ? null : notReadyReason(shared);
    startButton.disabled = busy || why !== null;
    startButton.textContent = run.phase === 'done' || run.phase === 'stopped' || run.phase === 'error' ? 'Train again' : 'Train';
    reason.textContent = why ?? '';
    reason.hidden = why === null;
    pauseButton.disabled = !(run.phase === 'running' || run.phase === 'paused');
    pauseButton.textContent = run.phase === 'paused' ? 'Resume' : 'Pause';
    stopButton.disabled = !(run.phase === 'running' || run.phase === 'paused' || run.phase === 'starting');
    phaseText.className = `status phase-${run.phase}`;
    phaseText.dataset.phase = run.phase;
    phaseText.textContent = {
      idle: why ? 'Not ready yet.' : 'Ready when you are.',
      starting: 'Preparing the data and the adapter…',
      running: 'Training…',
      paused: 'Paused after the current step. Resume continues; export works while paused.',
      stopping: 'Stopping after the current step…',
      done: 'Training finished.',
      stopped: 'Stopped.',
      error: 'Training failed.',
    }[run.phase];
    if (runPlan) {
      if (!planBox.querySelector('[data-testid="plan-facts"]')) replaceChildren(planBox, planView(runPlan));
    } else if (!busy) {
      const plan = shared.plan.value;
      if (plan.status === 'ready' && plan.stats) {
        replaceChildren(planBox, planView(plan.stats));
        if (chart.element.dataset.trainPoints === '0') chart.setTotal(plan.stats.totalSteps);
      } else if (plan.status === 'error' && plan.error) {
        replaceChildren(planBox, h('p', { class: 'bad', 'data-testid': 'plan-error' }, `${plan.error.kind}: ${plan.error.message}`));
      } else if (plan.status === 'planning') {
        replaceChildren(planBox, plan.stats ? h('div', { class: 'stale' }, planView(plan.stats)) : h('p', { class: 'hint' }, 'Planning…'));
      } else replaceChildren(planBox);
    }
  };
  shared.run.watch(render);
  shared.model.watch(render);
  shared.form.watch(render);
  shared.data.watch(render);
  shared.plan.watch(render);
  // A change of the form or the files after a run makes the plan box show the plan for them instead of the run's.
  const inputsChanged = (): void => {
    if (runPlan && !runBusy(shared.run.value.phase)) {
      runPlan = null;
      render();
    }
  };
  shared.form.watch(inputsChanged);
  shared.data.watch(inputsChanged);

  // The elapsed clock keeps moving between steps (a step can take a while on a slow GPU).
  setInterval(() => {
    if (shared.run.value.phase === 'starting') events.textContent = `Preparing… ${formatDuration((performance.now() - started) / 1000)}`;
  }, 1000);

  return h(
    'section',
    { class: 'panel wide', id: 'panel-training' },
    h('h2', {}, 'Training'),
    saved,
    planBox,
    h('div', { class: 'controls' }, startButton, pauseButton, stopButton, phaseText),
    reason,
    bar,
    h('div', { class: 'readouts' }, ...Object.values(r).map((x) => x.el)),
    chart.element,
    events,
    result,
    sample,
  );
}
