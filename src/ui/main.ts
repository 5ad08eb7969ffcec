// The page: starts the engine worker, holds what the panels share (src/ui/state.ts) and lays the panels out:
// Model · Dataset · Hyperparameters · Training · Export · GPU. On open it loads the demo model and the sample dataset,
// so the page is ready to train at once.

import { installErrorTransfer, type EngineApi, type LedgerSnapshot, type LoadProgress, type ModelSource, type Quantization } from '../worker/api.ts';
import * as Comlink from 'comlink';
import { adapterImportPanel } from './adapter-import-panel.ts';
import { datasetPanel } from './dataset-panel.ts';
import { h, installEscapeAnswers } from './dom.ts';
import { exportPanel } from './export-panel.ts';
import { errorParts } from './format.ts';
import { demoFollowsQuantization, planFollowsInputs } from './follow-inputs.ts';
import { gpuPanel, noWebGpuPanel } from './gpu-panel.ts';
import { documentTitle, headerStatus } from './header-status.ts';
import { installLeaveGuard, unsavedWork } from './leave-guard.ts';
import { browserNotifierEnv, installRunNotifier } from './run-notifier.ts';
import { formState, hyperparamsPanel, initialForm, presetForm, QUICK_PRESET } from './hyperparams-panel.ts';
import { modelPanel } from './model-panel.ts';
import { remotePanel } from './remote-panel.ts';
import { afterDeviceLoss, Cell, formValuesForQuantization, RunCell, runBusy, wantedQuantization, type DataState, type ModelState, type PlanState, type Shared } from './state.ts';
import { notReadyReason, trainingPanel } from './training-panel.ts';

installErrorTransfer();
const app = document.getElementById('app');
if (!app) throw new Error('index.html has no #app');

function start(root: HTMLElement): void {
  const worker = new Worker(new URL('../worker/worker.ts', import.meta.url), { type: 'module', name: 'engine' });
  const engine = Comlink.wrap<EngineApi>(worker);
  // The engine proxy, for the browser console and for automation (the browser test tier drives it).
  (window as unknown as { finetuneEngine: Comlink.Remote<EngineApi> }).finetuneEngine = engine;

  const model = new Cell<ModelState>({ status: 'none', choice: null, quantization: null, info: null, progress: null, error: null, failure: null });
  const run = new RunCell();

  let loading: Promise<unknown> = Promise.resolve();
  const loadModel: Shared['loadModel'] = (source: ModelSource, label: string, quantization: Quantization, options?: { streamLayers?: boolean }) => {
    const before = loading;
    const p = (async () => {
      await before.catch(() => undefined);
      if (runBusy(run.value.phase)) return null;
      const previous = model.value;
      model.set({ status: 'loading', choice: { kind: source.kind, label }, quantization, info: null, progress: null, error: null, failure: null });
      let pending: LoadProgress | null = null;
      let scheduled = false;
      const onProgress = (p: LoadProgress): void => {
        pending = p;
        if (scheduled) return;
        scheduled = true;
        requestAnimationFrame(() => {
          scheduled = false;
          if (model.value.status === 'loading') model.update({ progress: pending });
        });
      };
      try {
        const info = await engine.loadModel(source, quantization, Comlink.proxy(onProgress), options);
        model.set({ status: 'ready', choice: { kind: source.kind, label }, quantization, info, progress: null, error: null, failure: null });
        return info;
      } catch (e) {
        const error = errorParts(e);
        // A load that fails before it replaces anything (a bad token, a 404, a dropped connection) leaves the model
        // before it loaded in the worker: the page keeps it usable and says what went wrong beside it.
        const still = await engine.currentModel().catch(() => null);
        const kept = previous.status === 'ready' && previous.info && still?.source === previous.info.source && still.quantization === previous.info.quantization;
        if (kept) model.set({ ...previous, failure: { label, ...error } });
        else model.set({ status: 'error', choice: { kind: source.kind, label }, quantization, info: null, progress: null, error, failure: null });
        return null;
      } finally {
        // A new base drops the adapter trained on the old one (a failed load that kept the old base keeps it too).
        if (model.value.failure === null) run.dispatch({ type: 'model-changed' });
        shared.refreshMemory();
      }
    })();
    loading = p;
    return p;
  };

  let memoryTimer: ReturnType<typeof setTimeout> | null = null;
  const shared: Shared = {
    engine,
    gpuReady: engine.probe().then(
      (p) => p.ok,
      () => false,
    ),
    form: new Cell(formState(initialForm())),
    model,
    data: new Cell<DataState>({ train: null, validation: null }),
    plan: new Cell<PlanState>({ status: 'idle', stats: null, error: null }),
    run,
    memory: new Cell<LedgerSnapshot | null>(null),
    runElsewhere: new Cell(false),
    savedRunOffered: new Cell<{ step: number; totalSteps: number } | null>(null),
    loadModel,
    refreshMemory() {
      if (memoryTimer) return;
      memoryTimer = setTimeout(() => {
        memoryTimer = null;
        engine.memory().then(
          (m) => shared.memory.set(m),
          () => undefined,
        );
      }, 300);
    },
  };

  const form = hyperparamsPanel(shared);
  const dataset = datasetPanel(shared);
  // The checks run on the session's GPU device: one they lose takes the model and the adapter with it.
  const gpu = gpuPanel(engine, (e) => afterDeviceLoss(shared, e));
  const adapterImport = adapterImportPanel(shared);
  gpu.classList.add('half');
  root.append(
    // QLoRA offered where the plan says the unquantised base does not simply fit: quantization follows it again.
    modelPanel(shared, { useQuantization: (q) => form.setValues(formValuesForQuantization(q)) }),
    dataset.element,
    form.element,
    trainingPanel(shared, {
      restoreForm: (values) => form.setValues(values),
      showFiles: (train, validation) => dataset.showFiles(train, validation),
      applyQuickPreset: () => form.setValues(presetForm(QUICK_PRESET)),
    }),
    remotePanel(shared, adapterImport.imported),
    exportPanel(shared, adapterImport.imported),
    adapterImport.element,
    gpu,
  );

  // ---- the header says where things stand and jumps to the training panel ---------------------------------------
  const top = document.querySelector('header.top');
  if (top) {
    const chip = h('a', { class: 'jump', href: '#panel-training', 'data-testid': 'header-status' });
    top.append(chip);
    let gpuOk = true;
    const pageTitle = document.title;
    const show = (): void => {
      const s = headerStatus(run.value, { gpuOk, notReady: gpuOk ? notReadyReason(shared) : null, planSteps: shared.plan.value.stats?.totalSteps ?? null, elsewhere: shared.runElsewhere.value, savedRun: shared.savedRunOffered.value });
      chip.textContent = s.text;
      chip.dataset.state = s.state;
      chip.href = s.href;
      document.title = documentTitle(run.value, pageTitle);
    };
    for (const c of [run, model, shared.form, shared.data, shared.plan, shared.runElsewhere, shared.savedRunOffered] as const) (c as { watch(fn: () => void): unknown }).watch(show);
    void shared.gpuReady.then((ok) => {
      gpuOk = ok;
      show();
    });
  }

  // ---- a reload or a closed tab would lose a run's steps or a long model load: the browser asks first ------------
  installLeaveGuard(window, () => unsavedWork(run.value, model.value));
  // ---- Escape answers a question box with its safe answer (Keep, Cancel) ------------------------------------------
  installEscapeAnswers(document);
  // ---- a run that ends while the tab is hidden says so on the desktop, where the person allowed it -------------
  installRunNotifier(run, browserNotifierEnv());

  // ---- the plan follows the form and the files; the demo model, the run's quantization ------------------------------
  planFollowsInputs(shared);
  demoFollowsQuantization(shared, 'mistral-nano-demo');

  // ---- ready to train on open: the demo model and the sample dataset ---------------------------------------------
  void shared.gpuReady.then((ok) => {
    if (!ok) {
      // Nothing else works without it: the GPU panel (with what to do) goes first.
      gpu.classList.remove('half');
      root.prepend(gpu);
      return;
    }
    void dataset.preselectSample();
    if (model.value.status === 'none') void loadModel({ kind: 'demo' }, 'mistral-nano-demo', wantedQuantization(shared.form.value) ?? 'none');
  });
}

if (!('gpu' in navigator)) {
  app.append(noWebGpuPanel());
  app.append(h('p', { class: 'hint wide' }, 'The fine-tuner (model, dataset, hyperparameters, training, export) needs WebGPU.'));
} else {
  start(app);
}
