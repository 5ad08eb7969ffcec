// "Try it": a prompt continued by the loaded model with the current adapter, the tokens appearing as the worker makes
// them (KV-cache generation, src/run/generate.ts), with tokens/s, a Stop button, temperature / top-p / new-token
// controls (greedy by default: the same prompt gives the same text), and optionally the base model alone beside it.
// Prompt and completion are user text: they only ever go into text nodes.

import * as Comlink from 'comlink';
import type { GenerationOptions, GenerationOutcome, StreamedToken } from '../worker/api.ts';
import { h, replaceChildren } from './dom.ts';
import { errorParts } from './format.ts';
import { runBusy, type Shared } from './state.ts';

interface Settings {
  maxNewTokens: number;
  temperature: number;
  topP: number;
}

/** The controls' values, or the first problem in words. */
function readSettings(maxTokens: string, temperature: string, topP: string): Settings | string {
  const n = Number(maxTokens);
  if (!Number.isInteger(n) || n < 1 || n > 512) return 'New tokens must be a whole number from 1 to 512.';
  const t = Number(temperature);
  if (temperature.trim() === '' || !Number.isFinite(t) || t < 0 || t > 2) return 'Temperature must be a number from 0 (greedy) to 2.';
  const p = Number(topP);
  if (topP.trim() === '' || !Number.isFinite(p) || p <= 0 || p > 1) return 'Top-p must be a number above 0 and at most 1.';
  return { maxNewTokens: n, temperature: t, topP: p };
}

function describeSampling(s: Settings): string {
  return s.temperature === 0 ? 'greedy' : `temperature ${s.temperature}, top-p ${s.topP}`;
}

const STOP_WORDS: Record<GenerationOutcome['stopReason'], string> = { eos: 'ended at </s>', 'max-tokens': 'token limit', stopped: 'stopped' };

/**
 * One output column: a title, then the prompt and the streamed completion (shown from the first piece of text on, so
 * that the box never stands empty), and a line of figures.
 */
function column(id: 'adapter' | 'base', title: string, prompt: string) {
  const completion = h('span', { class: 'completion', 'data-testid': `generate-text-${id}` });
  const stats = h('p', { class: 'hint num', 'data-testid': `generate-stats-${id}` }, 'waiting…');
  const text = h('pre', {}, h('span', { class: 'prompt' }, prompt), completion);
  const element = h('div', { class: 'try-column', 'data-testid': `generate-column-${id}` }, h('h4', {}, title), stats);
  /** Appends streamed text (a text node: never parsed as HTML). */
  const add = (piece: string): void => {
    if (piece) completion.append(piece);
    if (piece && text.parentNode === null) element.insertBefore(text, stats);
  };
  const finish = (): void => {
    if (text.parentNode === null) element.insertBefore(text, stats);
  };
  return { element, stats, add, finish };
}

/**
 * The Try-it controls and output, for a panel to hold. `adapterLabel` names the adapter the worker holds now (the run's
 * or an imported one), or null when there is none (then only the base model runs).
 */
export function trySection(shared: Shared, adapterLabel: () => string | null): { element: HTMLElement; render(): void } {
  const engine = shared.engine;
  const prompt = h('textarea', { id: 'generate-prompt', rows: 3, 'data-testid': 'generate-prompt', placeholder: '# Return the largest of two numbers.' });
  const maxTokens = h('input', { type: 'text', id: 'generate-max', value: '16', inputmode: 'numeric', class: 'short', 'data-testid': 'generate-max' });
  const temperature = h('input', { type: 'text', id: 'generate-temperature', value: '0', inputmode: 'decimal', class: 'short', 'data-testid': 'generate-temperature' });
  const topP = h('input', { type: 'text', id: 'generate-top-p', value: '1', inputmode: 'decimal', class: 'short', 'data-testid': 'generate-top-p' });
  const compare = h('input', { type: 'checkbox', id: 'generate-compare', 'data-testid': 'generate-compare' });
  const generateButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'generate-run', disabled: true }, 'Generate');
  const stopButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'generate-stop', disabled: true }, 'Stop');
  const output = h('div', { class: 'generation', 'data-testid': 'generate-output', 'aria-live': 'polite' });
  let generating = false;
  let stopRequested = false;

  /** Streams one generation into its column; resolves with the outcome (null when it failed: the column says why). */
  const runColumn = async (col: ReturnType<typeof column>, text: string, options: GenerationOptions, s: Settings): Promise<GenerationOutcome | null> => {
    const t0 = performance.now();
    let count = 0;
    const onToken = (t: StreamedToken): void => {
      count = t.index + 1;
      col.add(t.text);
      const seconds = (performance.now() - t0) / 1000;
      col.stats.textContent = `${count} tokens · ${(count / Math.max(seconds, 1e-3)).toFixed(2)} tokens/s so far`;
    };
    col.stats.textContent = 'reading the prompt…';
    try {
      const r = await engine.generateStream(text, options, Comlink.proxy(onToken));
      const rate = r.tokensPerSecond > 0 ? `${r.tokensPerSecond.toFixed(2)} tokens/s` : 'one token';
      col.stats.textContent = `${r.ids.length} tokens · ${rate} · prompt ${r.prefillSeconds.toFixed(1)} s · ${describeSampling(s)} · ${STOP_WORDS[r.stopReason]}`;
      col.element.dataset.stop = r.stopReason;
      col.finish();
      return r;
    } catch (e) {
      col.stats.className = 'bad';
      col.stats.textContent = `Generation failed: ${errorParts(e).message}`;
      col.element.dataset.stop = 'error';
      return null;
    }
  };

  generateButton.addEventListener('click', async () => {
    const text = prompt.value;
    const s = readSettings(maxTokens.value, temperature.value, topP.value);
    if (typeof s === 'string') {
      replaceChildren(output, h('p', { class: 'bad' }, s));
      return;
    }
    if (text.trim() === '') {
      replaceChildren(output, h('p', { class: 'bad' }, 'Write a prompt first.'));
      return;
    }
    const adapter = adapterLabel();
    const columns: { col: ReturnType<typeof column>; useAdapter: boolean }[] = [];
    if (adapter) columns.push({ col: column('adapter', `Completion with ${adapter}`, text), useAdapter: true });
    if (!adapter || compare.checked) columns.push({ col: column('base', 'Base model (no adapter)', text), useAdapter: false });
    replaceChildren(output, h('div', { class: 'try-columns' }, ...columns.map((c) => c.col.element)));
    generating = true;
    stopRequested = false;
    render();
    // One GPU: the columns run one after the other; Stop ends the one going and skips the rest.
    for (const c of columns) {
      if (stopRequested) {
        c.col.stats.textContent = 'not run (stopped)';
        break;
      }
      await runColumn(c.col, text, { ...s, useAdapter: c.useAdapter }, s);
    }
    generating = false;
    render();
  });

  stopButton.addEventListener('click', () => {
    stopRequested = true;
    stopButton.disabled = true;
    void engine.stopGeneration();
  });

  const render = (): void => {
    const run = shared.run.value;
    // Generation reads the GPU between steps: fine while paused, not while a step is running.
    const quiet = !runBusy(run.phase) || run.phase === 'paused';
    generateButton.disabled = generating || !quiet || shared.model.value.status !== 'ready';
    stopButton.disabled = !generating || stopRequested;
    compare.disabled = generating;
  };

  const element = h(
    'div',
    { class: 'try-it' },
    h('h3', {}, 'Try it'),
    h('label', { for: 'generate-prompt', class: 'hint' }, 'Prompt (continued as written: use the layout you trained with)'),
    prompt,
    h(
      'div',
      { class: 'actions' },
      h('label', { for: 'generate-max', class: 'hint' }, 'new tokens '),
      maxTokens,
      h('label', { for: 'generate-temperature', class: 'hint' }, 'temperature (0 = greedy) '),
      temperature,
      h('label', { for: 'generate-top-p', class: 'hint' }, 'top-p '),
      topP,
    ),
    h('div', { class: 'actions' }, h('label', { class: 'hint' }, compare, ' Side by side with the base model'), generateButton, stopButton),
    output,
  );
  return { element, render };
}
