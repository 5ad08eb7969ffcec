// The GPU panel: what adapter the worker found, the features and limits that matter for training, and a
// "Check this GPU" action that runs the kernels against a float64 reference (drivers differ; users should know), and
// beside it "Check this GPU against PyTorch", the whole engine against the PyTorch goldens (check-panel.ts).

import type { GpuAdapterInfo, EngineApi } from '../worker/api.ts';
import { formatBytes } from '../core/units.ts';
import type * as Comlink from 'comlink';
import { describeError, goldenCheckSection } from './check-panel.ts';
import { h, replaceChildren } from './dom.ts';

export const WEBGPU_HELP =
  'WebGPU is needed. It works in Chrome and Edge 113+ (Windows, macOS, ChromeOS, Android 12+), Safari 26+, and ' +
  'Firefox 141+ on Windows. On Linux, Chrome needs chrome://flags/#enable-unsafe-webgpu and ' +
  '--enable-features=Vulkan. Check that hardware acceleration is on (chrome://gpu).';

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
    report.software
      ? h('p', { class: 'warn' }, 'This is a software (CPU) implementation of WebGPU: results are correct but training will be very slow.')
      : null,
    h('dl', { class: 'facts', 'data-testid': 'adapter-facts' }, ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
  );
}

export function gpuPanel(engine: Comlink.Remote<EngineApi>): HTMLElement {
  const status = h('p', { 'data-testid': 'adapter-status', class: 'status' }, 'Looking for a GPU…');
  const details = h('div');
  const checkResult = h('div', { 'data-testid': 'selftest-result' });
  const checkButton = h('button', { disabled: true, 'data-testid': 'selftest' }, 'Check this GPU');
  const golden = goldenCheckSection(engine);
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
    replaceChildren(details, renderAdapter(probe.report));
    checkButton.disabled = false;
    golden.enable();
  })();

  return h(
    'section',
    { class: 'panel', id: 'gpu' },
    h('h2', {}, 'GPU'),
    status,
    details,
    h('div', { class: 'selftest' }, h('h3', {}, 'Kernels against a float64 reference'), checkButton, checkResult),
    golden.element,
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
