// "Try it": a prompt continued by the loaded model with the current adapter, the tokens appearing as the worker makes
// them (KV-cache generation, src/run/generate.ts), with tokens/s, a Stop button, temperature / top-p / new-token
// controls (greedy by default: the same prompt gives the same text; sampled text is repeatable by its seed), and
// optionally the base model alone beside it.
// Prompt and completion are user text: they only ever go into text nodes.

import * as Comlink from 'comlink';
import type { GenerationOptions, GenerationOutcome, StreamedToken } from '../worker/api.ts';
import { h, replaceChildren } from './dom.ts';
import { formatCounted } from '../core/units.ts';
import { errorParts, formatCount } from './format.ts';
import { parseGenerationSetting } from '../config/generation.ts';
import { afterDeviceLoss, formLayout, runComputing, type ModelState, type RunPhase, type Shared } from './state.ts';

interface Settings {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  /**
   * The sampling stream's seed: the same seed, settings and prompt give the same text (and both columns one stream).
   * Absent for greedy generation, which draws nothing (its field is disabled then).
   */
  seed?: number;
}

/**
 * The controls' values, or the first problem in words: the limits, number syntax and messages of `finetune generate`
 * (src/config/generation.ts), each named by its label here. At temperature 0 the seed is neither checked nor returned:
 * its field is disabled then, and whatever it still holds must not block Generate.
 */
export function readSettings(maxTokens: string, temperature: string, topP: string, seed = '0'): Settings | string {
  const n = parseGenerationSetting('maxNewTokens', maxTokens, 'New tokens');
  if (!n.ok) return n.error;
  const t = parseGenerationSetting('temperature', temperature, 'Temperature');
  if (!t.ok) return t.error;
  const p = parseGenerationSetting('topP', topP, 'Top-p');
  if (!p.ok) return p.error;
  if (t.value === 0) return { maxNewTokens: n.value, temperature: t.value, topP: p.value };
  const r = parseGenerationSetting('seed', seed, 'Seed');
  if (!r.ok) return r.error;
  return { maxNewTokens: n.value, temperature: t.value, topP: p.value, seed: r.value };
}

/** Why Generate cannot run now, shown beside the button, or null when it can (or is running: Stop says so). */
export function generateBlockedReason(phase: RunPhase, model: ModelState['status'], generating: boolean): string | null {
  if (generating) return null;
  if (model === 'loading') return 'The model is loading…';
  if (model !== 'ready') return 'Load a model first (Model panel).';
  // Generation reads the GPU between steps: fine while paused, not while a step is running.
  if (phase === 'pausing') return 'The run is pausing: Try it can run once the work under way ends.';
  if (phase === 'resuming') return 'The run is resuming: pause it again to generate.';
  if (runComputing(phase)) return 'Training is using the GPU: pause the run (or wait until it ends) to generate.';
  return null;
}

function describeSampling(s: Settings): string {
  return s.temperature === 0 ? 'greedy' : `temperature ${s.temperature}, top-p ${s.topP}, seed ${s.seed}`;
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
  // Only sampling draws from it (greedy ignores it), so it is enabled only when the temperature is above 0.
  const seed = h('input', { type: 'text', id: 'generate-seed', value: '0', inputmode: 'numeric', class: 'short', 'data-testid': 'generate-seed' });
  const compare = h('input', { type: 'checkbox', id: 'generate-compare', 'data-testid': 'generate-compare' });
  const generateButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'generate-run', disabled: true }, 'Generate');
  const stopButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'generate-stop', disabled: true }, 'Stop');
  const reason = h('p', { class: 'hint', 'data-testid': 'generate-reason', hidden: true });
  const output = h('div', { class: 'generation', 'data-testid': 'generate-output', 'aria-live': 'polite' });
  let generating = false;
  let stopRequested = false;
  /** The generation going on met a lost GPU device: the model went with it, so no further column can run. */
  let deviceLost = false;

  /** Streams one generation into its column; resolves with the outcome (null when it failed: the column says why). */
  const runColumn = async (col: ReturnType<typeof column>, text: string, options: GenerationOptions, s: Settings): Promise<GenerationOutcome | null> => {
    // The figures say what the final line says: the prompt's time (from the reading's start to the first token), then
    // tokens/s over the tokens after the first. Timed from the click, a generation that waited for an estimate's
    // measurement showed a rate several times too low.
    let readingFrom = performance.now();
    let firstTokenAt = 0;
    let count = 0;
    const onToken = (t: StreamedToken): void => {
      count = t.index + 1;
      col.add(t.text);
      const now = performance.now();
      if (t.index === 0) {
        firstTokenAt ||= now;
        col.stats.textContent = `1 token · prompt ${((firstTokenAt - readingFrom) / 1000).toFixed(1)} s`;
      } else {
        col.stats.textContent = `${formatCounted(count, 'token')} · ${((count - 1) / Math.max((now - firstTokenAt) / 1000, 1e-3)).toFixed(2)} tokens/s so far`;
      }
    };
    // A long prompt is read in parts (seconds each on a software adapter): how far, and Stop works between them.
    const onPrompt = (read: number, total: number): void => {
      if (read === 0) {
        readingFrom = performance.now();
        col.stats.textContent = 'reading the prompt…';
      } else if (read < total) {
        col.stats.textContent = `reading the prompt: ${formatCount(read)} of ${formatCounted(total, 'token')}…`;
      }
    };
    // Until the worker starts reading: an estimate measuring on the one GPU holds a generation back (seconds at most).
    col.stats.textContent = 'waiting for the GPU…';
    try {
      const r = await engine.generateStream(text, options, Comlink.proxy(onToken), Comlink.proxy(onPrompt));
      // A rate needs two tokens (the first one's time is the prompt's).
      const rate = r.tokensPerSecond > 0 ? [`${r.tokensPerSecond.toFixed(2)} tokens/s`] : [];
      col.stats.textContent = [formatCounted(r.ids.length, 'token'), ...rate, `prompt ${formatCounted(r.promptTokens, 'token')}, ${r.prefillSeconds.toFixed(1)} s`, describeSampling(s), STOP_WORDS[r.stopReason]].join(' · ');
      col.element.dataset.stop = r.stopReason;
      col.finish();
      return r;
    } catch (e) {
      col.stats.className = 'bad';
      col.stats.textContent = `Generation failed: ${errorParts(e).message}`;
      col.element.dataset.stop = 'error';
      // The worker dropped the device, and the model and adapter on it: the page stops offering them.
      if (afterDeviceLoss(shared, e)) deviceLost = true;
      return null;
    }
  };

  generateButton.addEventListener('click', async () => {
    const text = prompt.value;
    const s = readSettings(maxTokens.value, temperature.value, topP.value, seed.value);
    if (typeof s === 'string') {
      replaceChildren(output, h('p', { class: 'bad' }, s));
      return;
    }
    // Laid out as the rows' prompts are under the form's layout (instruct: in [INST] tags, unless written in).
    const layout = formLayout(shared.form.value);
    const adapter = adapterLabel();
    const columns: { col: ReturnType<typeof column>; useAdapter: boolean }[] = [];
    if (adapter) columns.push({ col: column('adapter', `Completion with ${adapter}`, text), useAdapter: true });
    if (!adapter || compare.checked) columns.push({ col: column('base', 'Base model (no adapter)', text), useAdapter: false });
    replaceChildren(output, h('div', { class: 'try-columns' }, ...columns.map((c) => c.col.element)));
    generating = true;
    stopRequested = false;
    deviceLost = false;
    render();
    // One GPU: the columns run one after the other; Stop ends the one going and skips the rest, as a lost device does.
    for (const c of columns) {
      if (stopRequested || deviceLost) {
        c.col.stats.textContent = deviceLost ? 'not run (the GPU device was lost)' : 'not run (stopped)';
        break;
      }
      await runColumn(c.col, text, { ...s, useAdapter: c.useAdapter, layout }, s);
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
    const why = generateBlockedReason(shared.run.value.phase, shared.model.value.status, generating);
    generateButton.disabled = generating || why !== null;
    // A text node: the reason is ours, but nothing here is ever parsed as HTML.
    reason.textContent = why ?? '';
    reason.hidden = why === null;
    stopButton.disabled = !generating || stopRequested;
    compare.disabled = generating;
    // The same rule readSettings follows: a valid temperature of 0 (any other text fails on the temperature first).
    seed.disabled = Number(temperature.value.trim()) === 0;
    seed.title = seed.disabled ? 'Greedy generation draws nothing: set a temperature above 0 to sample' : 'The same seed, settings and prompt give the same text';
  };
  temperature.addEventListener('input', render);

  const element = h(
    'div',
    { class: 'try-it' },
    h('h3', {}, 'Try it'),
    h('label', { for: 'generate-prompt', class: 'hint' }, 'Prompt (laid out as the rows’ prompts are: under the instruct layout in [INST] tags, unless you write them in; empty: from <s> alone)'),
    prompt,
    h(
      'div',
      { class: 'actions' },
      // Each name with its box, never split by a line break (at 390 px one line once ended in a name and the next
      // began with its box, beside the next name).
      h('label', { for: 'generate-max', class: 'hint pair' }, 'new tokens ', maxTokens),
      h('label', { for: 'generate-temperature', class: 'hint pair' }, 'temperature (0 = greedy) ', temperature),
      h('label', { for: 'generate-top-p', class: 'hint pair' }, 'top-p ', topP),
      h('label', { for: 'generate-seed', class: 'hint pair' }, 'seed ', seed),
    ),
    h('div', { class: 'actions' }, h('label', { class: 'hint' }, compare, ' Side by side with the base model'), generateButton, stopButton),
    reason,
    output,
  );
  return { element, render };
}
