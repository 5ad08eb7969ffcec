// "Check this GPU against PyTorch": the worker runs the whole engine (forward, backward, one AdamW step, NF4
// dequantisation) on the tiny model and compares every tensor with the PyTorch/PEFT goldens (src/run/check.ts).
// The page shows progress while it runs, then the verdict and the worst error of each group.

import type { CheckReport, EngineApi, GroupResult } from '../worker/api.ts';
import * as Comlink from 'comlink';
import { isFinetuneError, thrownMessage } from '../core/errors.ts';
import { h, replaceChildren } from './dom.ts';

export type CheckQuantization = 'nf4' | 'none';

/** The groups runGoldenCheck reports, in the order a reader follows the computation, with their names on the page. */
export const GROUP_LABELS: Record<string, string> = {
  adapter: "adapter = the golden's start",
  nf4_dequant: 'NF4 dequantisation',
  hidden_states: 'hidden states',
  logits: 'logits',
  logsumexp: 'logsumexp',
  loss: 'loss',
  grad: 'gradients',
  adamw_step1: 'AdamW step',
};

const CHOICES: { value: CheckQuantization; label: string; golden: string }[] = [
  { value: 'nf4', label: 'NF4 (QLoRA)', golden: 'golden_qlora' },
  { value: 'none', label: 'full precision (LoRA)', golden: 'golden_lora' },
];

/** A tensor key without the PEFT prefix and suffix every key shares: grad/layers.0.self_attn.q_proj.lora_A. */
export function shortTensorName(key: string): string {
  return key.replace('base_model.model.model.', '').replace('base_model.model.', '').replace(/\.weight$/, '');
}

function formatError(x: number): string {
  if (x === 0) return '0';
  return Number.isFinite(x) ? x.toExponential(2) : String(x);
}

function formatTolerance(x: number): string {
  return x === 0 ? 'exact' : `≤ ${x.toExponential(0)}`;
}

/** Which tensor was worst; with no error anywhere (worst 0) no tensor is singled out. */
function whereText(g: GroupResult): string {
  if (!g.where) return g.count > 1 ? `all ${g.count} tensors` : 'no difference';
  return g.count > 1 ? `${shortTensorName(g.where)} (worst of ${g.count})` : shortTensorName(g.where);
}

function groupRow(group: string, g: GroupResult): HTMLTableRowElement {
  return h(
    'tr',
    { 'data-group': group, 'data-ok': String(g.ok) },
    h('td', { class: 'name' }, GROUP_LABELS[group] ?? group),
    h('td', {}, formatError(g.worst)),
    h('td', {}, formatTolerance(g.tolerance)),
    h('td', { class: 'where' }, whereText(g)),
    h('td', { class: g.ok ? 'ok' : 'bad' }, g.ok ? 'ok' : 'FAIL'),
  );
}

/** The verdict, the loss next to PyTorch's, the table of groups and the time taken. */
export function renderCheckReport(report: CheckReport): HTMLElement {
  const choice = CHOICES.find((c) => c.value === report.quantization);
  const known = Object.keys(GROUP_LABELS).filter((g) => report.groups[g]);
  const others = Object.keys(report.groups).filter((g) => !(g in GROUP_LABELS));
  return h(
    'div',
    {},
    h(
      'p',
      { class: `verdict ${report.ok ? 'ok' : 'bad'}` },
      h('span', { 'data-testid': 'golden-verdict' }, report.ok ? 'pass' : 'FAIL'),
      ` — ${choice?.label ?? report.quantization} against PyTorch/PEFT (${choice?.golden ?? 'golden'})`,
    ),
    report.loss
      ? h(
          'p',
          { class: 'loss', 'data-testid': 'golden-loss' },
          'loss: engine ',
          h('span', { 'data-testid': 'golden-loss-engine', 'data-value': report.loss.engine }, report.loss.engine.toPrecision(9)),
          ', PyTorch ',
          h('span', { 'data-testid': 'golden-loss-golden', 'data-value': report.loss.golden }, report.loss.golden.toPrecision(9)),
        )
      : null,
    h(
      'table',
      { class: 'numbers golden', 'data-testid': 'golden-table' },
      h('thead', {}, h('tr', {}, h('th', { class: 'name' }, 'group'), h('th', {}, 'worst error'), h('th', {}, 'tolerance'), h('th', { class: 'where' }, 'where'), h('th', {}, ''))),
      h('tbody', {}, ...[...known, ...others].map((g) => groupRow(g, report.groups[g]))),
    ),
    h(
      'p',
      { class: 'hint' },
      `Took ${report.seconds.toFixed(1)} s. Errors are relative to the largest reference value of each tensor (loss: to the loss). ` +
        `LoRA values: ${report.adapterWeights}.`,
    ),
  );
}

export function describeError(e: unknown): string {
  if (isFinetuneError(e)) return `The check could not run: ${e.message}`;
  // Anything may arrive here (comlink's own errors, the browser's): thrownMessage never throws, as String() did for an
  // object with no prototype, which left the panel without a line.
  return `The check could not run (unexpected error): ${thrownMessage(e)}`;
}

/**
 * The controls and result area; `enable()` once the worker has a GPU. `failed` hears why a check could not run (the
 * page learns of a lost GPU device from it: the model went with the device).
 */
export function goldenCheckSection(engine: Comlink.Remote<EngineApi>, failed?: (e: unknown) => void): { element: HTMLElement; enable(): void } {
  const radios = CHOICES.map((c, i) =>
    h('input', { type: 'radio', name: 'golden-quant', value: c.value, checked: i === 0, 'data-testid': `golden-quant-${c.value}` }),
  );
  const button = h('button', { disabled: true, 'data-testid': 'golden-check' }, 'Check this GPU against PyTorch');
  const progress = h('p', { class: 'progress', 'data-testid': 'golden-progress', hidden: true });
  const result = h('div', { 'data-testid': 'golden-result' });

  button.addEventListener('click', async () => {
    const quantization = (radios.find((r) => r.checked)?.value ?? 'nf4') as CheckQuantization;
    button.disabled = true;
    for (const r of radios) r.disabled = true;
    replaceChildren(result);
    const started = performance.now();
    let step = 'starting';
    const show = (): void => {
      progress.textContent = `${step}… ${Math.round((performance.now() - started) / 1000)} s`;
    };
    progress.hidden = false;
    show();
    const timer = setInterval(show, 1000);
    try {
      const report = await engine.goldenCheck(
        quantization,
        Comlink.proxy((text: string) => {
          step = text;
          show();
        }),
      );
      replaceChildren(result, renderCheckReport(report));
    } catch (e) {
      replaceChildren(result, h('p', { class: 'bad', 'data-testid': 'golden-error' }, describeError(e)));
      failed?.(e);
    } finally {
      clearInterval(timer);
      progress.hidden = true;
      button.disabled = false;
      for (const r of radios) r.disabled = false;
    }
  });

  const element = h(
    'div',
    { class: 'golden-check' },
    h('h3', {}, 'Whole engine against PyTorch'),
    h(
      'p',
      { class: 'hint' },
      'Runs a tiny Mistral with a LoRA adapter through forward, backward and one AdamW step in this tab, and compares ' +
        'every tensor with the PyTorch/PEFT reference. Seconds on a GPU; about a minute on a software adapter.',
    ),
    h(
      'div',
      { class: 'choices' },
      ...CHOICES.map((c, i) => h('label', {}, radios[i], ` ${c.label}`)),
      button,
    ),
    progress,
    result,
  );
  return {
    element,
    enable() {
      button.disabled = false;
    },
  };
}
