// The GPU panel: what adapter the worker found, the features and limits that matter for training, and a
// "Check this GPU" action that runs the kernels against a float64 reference (drivers differ; users should know), and
// beside it "Check this GPU against PyTorch", the whole engine against the PyTorch goldens (check-panel.ts).

import type { GpuAdapterInfo, EngineApi, RememberedKernels } from '../worker/api.ts';
import { SOFTWARE_ADAPTER_BROWSER_FLAG } from '../core/software-adapter.ts';
import { formatBytes } from '../core/units.ts';
import { formatDateTime } from './format.ts';
import type * as Comlink from 'comlink';
import { describeError, goldenCheckSection } from './check-panel.ts';
import { h, replaceChildren } from './dom.ts';

export const WEBGPU_HELP =
  'WebGPU is needed. It works in Chrome and Edge 113+ (Windows, macOS, ChromeOS, Android 12+), Safari 26+, and ' +
  'Firefox 141+ on Windows. On Linux, Chrome needs chrome://flags/#enable-unsafe-webgpu and ' +
  '--enable-features=Vulkan. Check that hardware acceleration is on (chrome://gpu).';

/** A page cannot set Dawn's toggles: how to start the browser so that its software adapter compiles faster. */
function softwareTip(): HTMLElement {
  return h(
    'p',
    { class: 'hint', 'data-testid': 'software-tip' },
    'Chrome or Chromium started with ',
    h('code', {}, SOFTWARE_ADAPTER_BROWSER_FLAG),
    ' compiles and runs this page\'s shaders faster on a software adapter, with the same results.',
  );
}

function yesNo(v: boolean): string {
  return v ? 'yes' : 'no';
}

export function renderAdapter(report: GpuAdapterInfo): HTMLElement {
  const rows: [string, string][] = [
    ['Vendor', report.vendor || '—'],
    ['Architecture', report.architecture || '—'],
    ['Device', report.device || report.description || '—'],
    ['shader-f16', yesNo(report.features.shaderF16)],
    ['subgroups', yesNo(report.features.subgroups)],
    ['maxBufferSize', formatBytes(report.limits.maxBufferSize)],
    ['maxStorageBufferBindingSize', formatBytes(report.limits.maxStorageBufferBindingSize)],
    ['maxComputeWorkgroupStorageSize', formatBytes(report.limits.maxComputeWorkgroupStorageSize)],
  ];
  return h(
    'div',
    {},
    ...(report.software
      ? [h('p', { class: 'warn' }, 'This is a software (CPU) implementation of WebGPU: results are correct but training will be very slow.'), softwareTip()]
      : []),
    h('dl', { class: 'facts', 'data-testid': 'adapter-facts' }, ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
  );
}

/** One remembered kernel choice: what it was measured for, what won, by how much, when. */
function rememberedRow(k: RememberedKernels): HTMLElement {
  const shape = [k.hidden !== null ? `hidden ${k.hidden}` : null, k.tokens !== null ? `≤ ${k.tokens} tokens per micro-batch` : null, k.rank !== null ? `rank ${k.rank}` : null].filter(Boolean).join(', ');
  const speed = k.speedup > 1 ? `${k.speedup.toFixed(2)}× the defaults` : 'the defaults were fastest';
  const when = Date.parse(k.measuredAt);
  const lost = k.lost.length ? `; left out, having lost the GPU device when measured: ${k.lost.map((l) => `${l.text} (${l.at.slice(0, 10)})`).join('; ')}` : '';
  return h('li', { 'data-testid': 'kernel-choice' }, `${k.text} (${speed}) for ${shape || 'a shape from another version'}${k.gpu ? ` on ${k.gpu}` : ''}, measured ${Number.isFinite(when) ? formatDateTime(when) : 'at an unknown time'}${lost}`);
}

/**
 * The kernel choices runs measured on this GPU and remembered (src/run/kernel-tuning.ts), and a way to forget them: a
 * driver or browser update can change which kernels are fastest, and only a new measurement says so.
 */
function rememberedKernelsSection(engine: Comlink.Remote<EngineApi>): { element: HTMLElement; enable(software: boolean): void } {
  const list = h('div', { 'data-testid': 'kernel-choices' });
  const forget = h('button', { type: 'button', class: 'secondary', hidden: true, 'data-testid': 'kernel-choices-forget' }, 'Forget them: measure again at the next run');
  let software = false;
  const refresh = async (): Promise<void> => {
    let choices: RememberedKernels[];
    try {
      choices = await engine.rememberedKernels();
    } catch (e) {
      replaceChildren(list, h('p', { class: 'hint' }, `The remembered kernel choices could not be read: ${describeError(e)}`));
      return;
    }
    forget.hidden = choices.length === 0;
    const none = software
      ? 'This software adapter keeps the default kernels: nothing is measured here.'
      : 'None yet: the first run of each shape measures which kernels are fastest on this GPU (a few seconds) and remembers it.';
    replaceChildren(
      list,
      choices.length === 0
        ? h('p', { class: 'hint', 'data-testid': 'kernel-choices-none' }, none)
        : h('ul', { class: 'kernel-choices' }, ...choices.map(rememberedRow)),
    );
  };
  forget.addEventListener('click', async () => {
    forget.disabled = true;
    try {
      await engine.forgetRememberedKernels();
    } catch (e) {
      replaceChildren(list, h('p', { class: 'bad' }, `Could not forget them: ${describeError(e)}`));
      return;
    } finally {
      forget.disabled = false;
    }
    await refresh();
  });
  return {
    element: h(
      'div',
      { class: 'kernel-choices-section' },
      h('h3', {}, 'Kernels chosen for this GPU'),
      h('p', { class: 'hint' }, 'Before its first step a run on a GPU times the GEMM, attention and LoRA-product kernels on one layer of the model and trains with the fastest that agrees with the reference; the choice is remembered per GPU, model shape and adapter. A combination during which the GPU device was lost is not measured again until you forget them.'),
      list,
      forget,
    ),
    enable(isSoftware: boolean) {
      software = isSoftware;
      void refresh();
    },
  };
}

/** The GPU panel; `failed` hears why a check could not run (a lost device takes the model with it: main.ts says so). */
export function gpuPanel(engine: Comlink.Remote<EngineApi>, failed?: (e: unknown) => void): HTMLElement {
  const status = h('p', { 'data-testid': 'adapter-status', class: 'status' }, 'Looking for a GPU…');
  const details = h('div');
  const checkResult = h('div', { 'data-testid': 'selftest-result' });
  const checkButton = h('button', { disabled: true, 'data-testid': 'selftest' }, 'Check this GPU');
  const golden = goldenCheckSection(engine, failed);
  const kernels = rememberedKernelsSection(engine);
  checkButton.addEventListener('click', async () => {
    checkButton.disabled = true;
    replaceChildren(checkResult, h('p', {}, 'Running the kernels against a float64 reference…'));
    try {
      const checks = await engine.selfTestMatmul();
      const ok = checks.every((c) => c.ok);
      replaceChildren(
        checkResult,
        h('p', { class: ok ? 'ok' : 'bad', 'data-testid': 'selftest-verdict' }, ok ? 'pass' : 'FAIL'),
        h(
          'table',
          { class: 'numbers' },
          h('tr', {}, h('th', {}, 'shape M×N×K'), h('th', {}, 'Y = X·Wᵀ'), h('th', {}, 'dX = dY·W'), h('th', {}, 'dW = dYᵀ·X')),
          ...checks.map((c) =>
            h('tr', {}, h('td', {}, `${c.M}×${c.N}×${c.K}`), h('td', {}, c.forward.toExponential(2)), h('td', {}, c.backwardInput.toExponential(2)), h('td', {}, c.backwardWeight.toExponential(2))),
          ),
        ),
        h('p', { class: 'hint' }, 'Largest error relative to the largest reference value; pass means ≤ 1e-5.'),
      );
    } catch (e) {
      replaceChildren(checkResult, h('p', { class: 'bad' }, describeError(e)));
      failed?.(e);
    } finally {
      checkButton.disabled = false;
    }
  });

  void (async () => {
    const probe = await engine.probe();
    if (!probe.ok) {
      status.className = 'status bad';
      status.textContent = `No usable GPU: ${probe.reason}`;
      replaceChildren(details, h('p', { class: 'help', 'data-testid': 'webgpu-help' }, WEBGPU_HELP));
      return;
    }
    status.className = 'status ok';
    const r = probe.report;
    status.textContent = `GPU ready: ${[r.vendor, r.architecture, r.description].filter(Boolean).join(' · ')}`;
    status.dataset.state = 'ready';
    replaceChildren(details, renderAdapter(probe.report), probe.kernelNote ? h('p', { class: 'hint', 'data-testid': 'kernel-note' }, `Kernels: ${probe.kernelNote}.`) : null);
    checkButton.disabled = false;
    golden.enable();
    kernels.enable(r.software);
  })();

  return h(
    'section',
    { class: 'panel', id: 'gpu' },
    h('h2', {}, 'GPU'),
    status,
    details,
    h('div', { class: 'selftest' }, h('h3', {}, 'Kernels against a float64 reference'), checkButton, checkResult),
    golden.element,
    kernels.element,
  );
}

export function noWebGpuPanel(): HTMLElement {
  return h(
    'section',
    { class: 'panel', id: 'gpu' },
    h('h2', {}, 'GPU'),
    h('p', { class: 'status bad', 'data-testid': 'adapter-status' }, 'This browser does not offer WebGPU.'),
    h('p', { class: 'help', 'data-testid': 'webgpu-help' }, WEBGPU_HELP),
  );
}
