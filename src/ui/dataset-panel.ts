// The dataset panel: the training file (picked, dropped, or the sample preselected) and an optional validation file,
// each read by the worker exactly as training will read it: a summary (rows, token counts, truncation) and every
// problem with its line and column, errors and warnings apart. Re-read when layout or max_seq_len change.

import * as Comlink from 'comlink';
import type { DatasetReport, DatasetSummary, Problem } from '../worker/api.ts';
import { visibleText } from '../core/quote.ts';
import { formatBytes } from '../core/units.ts';
import { h, replaceChildren } from './dom.ts';
import { errorParts, formatCount, roughDuration } from './format.ts';
import { formLayout, runBusy, type DataFile, type Shared } from './state.ts';
import { RereadOnSettings } from './reread-on-settings.ts';
import { lengthHistogramView } from './length-histogram.ts';

/** Problems drawn at most per file; the rest are counted in "… and N more". */
export const PROBLEMS_SHOWN = 100;

type Which = 'train' | 'validation';

function where(p: Problem): string {
  if (p.line === null) return 'file';
  return p.column !== undefined ? `line ${p.line}, column ${p.column}` : `line ${p.line}`;
}

export function problemList(report: DatasetReport, testid: string): HTMLElement | null {
  const problems = report.problems;
  if (problems.length === 0 && report.omitted === 0) return null;
  const shown = problems.slice(0, PROBLEMS_SHOWN);
  const more = problems.length - shown.length + report.omitted;
  return h(
    'div',
    { class: 'problems' },
    h(
      'ol',
      { 'data-testid': testid },
      ...shown.map((p) =>
        h(
          'li',
          { class: p.severity, 'data-line': p.line ?? 'file', 'data-severity': p.severity, 'data-code': p.code },
          h('span', { class: 'where num' }, where(p)),
          // A note explains errors listed beside it: muted, as it is not one more thing to fix.
          h('span', { class: `badge ${p.severity === 'note' ? 'muted' : p.severity}` }, p.severity),
          h('span', { class: 'message' }, p.message),
        ),
      ),
    ),
    more > 0 ? h('p', { class: 'hint more', 'data-testid': `${testid}-more` }, `… and ${formatCount(more)} more`) : null,
  );
}

/**
 * The summary's facts, in order. The size is the file's own (`fileBytes`): the reader stops at once on a binary file,
 * so the bytes it read are not the file's size. Statistics over rows are left out when there are none to take them
 * over (zeros would read as measurements), and a binary file gets no row or line counts at all.
 */
export function summaryFacts(s: DatasetSummary, fileBytes: number): [string, string][] {
  if (s.notText) return [['content', 'not a JSONL text file (binary data)'], ['size', formatBytes(fileBytes)]];
  const facts: [string, string][] = [
    ['rows', formatCount(s.rows)],
    ['rejected rows', formatCount(s.rejectedRows)],
    ['lines', formatCount(s.lines)],
    ['size', formatBytes(fileBytes)],
    ['shape', s.shape === 'prompt_completion' ? 'prompt / completion' : (s.shape ?? '—')],
    ['layout', s.layout],
  ];
  const t = s.tokens;
  if (t && s.rows === 0) facts.push(['tokens', 'no usable rows']);
  else if (t) {
    facts.push(['tokens', formatCount(t.total)], ['per row', `min ${formatCount(t.min)} · median ${formatCount(t.median)} · max ${formatCount(t.max)}`], ['loss tokens', formatCount(t.lossTokens)]);
  }
  if (s.rows > 0) {
    facts.push(['truncated rows', s.rowsTruncated > 0 ? `${formatCount(s.rowsTruncated)} at ${formatCount(s.maxSeqLen)} tokens (${formatCount(s.tokensLost)} tokens lost)` : `none (max_seq_len ${formatCount(s.maxSeqLen)})`]);
  }
  return facts;
}

export function summaryView(report: DatasetReport, testid: string, fileBytes: number): HTMLElement {
  return h(
    'dl',
    { class: 'facts', 'data-testid': testid },
    ...summaryFacts(report.summary, fileBytes).flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-key': k }, v)]),
  );
}

/**
 * The verdict on a file with errors: their count as the list shows them (summary.errors leaves the notes out), and
 * in words when no row is usable, rather than counting that as one error more.
 */
export function errorsText(s: DatasetSummary): string {
  const count = `${formatCount(s.errors)} error${s.errors === 1 ? '' : 's'}`;
  return s.rows === 0 && s.rejectedRows > 0 ? `${count} · no usable rows` : count;
}

/**
 * How far a file's reading has come: "41.0 MiB of 150.0 MiB (27 %) · 5.1 MB/s · 22 s left" (the rate and the time left
 * once a second has passed: before, they say little).
 */
export function readProgressText(bytesRead: number, totalBytes: number, seconds: number): string {
  const parts = [`${formatBytes(bytesRead)} of ${formatBytes(totalBytes)} (${Math.floor((100 * bytesRead) / Math.max(1, totalBytes))} %)`];
  if (seconds >= 1 && bytesRead > 0) {
    const rate = bytesRead / seconds;
    parts.push(`${(rate / 1e6).toFixed(1)} MB/s`);
    if (bytesRead < totalBytes) parts.push(`${roughDuration((totalBytes - bytesRead) / rate)} left`);
  }
  return parts.join(' · ');
}

function verdict(f: DataFile): HTMLElement {
  if (f.status === 'inspecting') return h('span', { class: 'badge muted' }, 'reading…');
  if (f.status === 'error') return h('span', { class: 'badge error' }, 'unreadable');
  const s = f.report!.summary;
  if (!f.report!.ok) return h('span', { class: 'badge error' }, errorsText(s));
  if (s.warnings > 0) return h('span', { class: 'badge warning' }, `ready · ${formatCount(s.warnings)} warning${s.warnings === 1 ? '' : 's'}`);
  return h('span', { class: 'badge ok' }, 'ready');
}

export function datasetPanel(shared: Shared): { element: HTMLElement; preselectSample(): Promise<void>; showFiles(train: File, validation: File | null): void } {
  // Named for what they pick: their visible labels ("choose one", "choose") say little when read out alone.
  const trainInput = h('input', { type: 'file', id: 'train-file', accept: '.jsonl,.json,.txt,application/jsonl,application/json', 'data-testid': 'train-file', class: 'visually-hidden', 'aria-label': 'Choose a training file (JSONL)' });
  const validationInput = h('input', { type: 'file', id: 'validation-file', accept: '.jsonl,.json,.txt,application/jsonl,application/json', 'data-testid': 'validation-file', class: 'visually-hidden', 'aria-label': 'Choose a validation file (JSONL)' });
  const trainView = h('div', { class: 'file-view', 'data-testid': 'train-view' });
  const validationView = h('div', { class: 'file-view', 'data-testid': 'validation-view' });
  const drop = h(
    'div',
    { class: 'dropzone', 'data-testid': 'dataset-drop' },
    h('p', {}, 'Drop a JSONL file here, or ', h('label', { for: 'train-file', class: 'link' }, 'choose one'), '.'),
    h('p', { class: 'hint' }, 'One JSON object per line: {"prompt", "completion"} or {"text"}.'),
    trainInput,
  );
  const sampleButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'use-sample' }, 'Use the sample dataset');
  const clearValidation = h('button', { type: 'button', class: 'link', hidden: true, 'data-testid': 'clear-validation' }, 'remove');

  const generation = { train: 0, validation: 0 };
  /**
   * The tokenizer the worker reads with, as DatasetReport.tokenizer names it: the loaded model's own, else 'app'; null
   * while a model loads (the worker still reads with the one before it: nothing is read again until the new one is in
   * place). A report says which tokenizer counted it.
   */
  const tokenizerKey = (): string | null => {
    const m = shared.model.value;
    if (m.status === 'loading') return null;
    return m.status === 'ready' && m.info?.tokenizer ? m.info.tokenizer.key : 'app';
  };
  const settings = new RereadOnSettings(() => {
    const d = shared.data.value;
    if (d.train) void inspect('train', d.train.file);
    if (d.validation) void inspect('validation', d.validation.file);
  });

  // How far each file's reading has come (a 150 MB file takes half a minute): a bar and its words, updated in place
  // from the worker's reports (not through shared.data, whose every watcher would redraw a few times a second).
  const reading = {
    train: { bar: h('progress', { max: 1, value: 0, 'aria-label': 'Training file read' }) as HTMLProgressElement, text: h('p', { class: 'progress-text' }) },
    validation: { bar: h('progress', { max: 1, value: 0, 'aria-label': 'Validation file read' }) as HTMLProgressElement, text: h('p', { class: 'progress-text' }) },
  };
  const readingView = (which: Which): HTMLElement =>
    h('div', { class: 'read-progress', 'data-testid': `${which}-reading` }, reading[which].bar, reading[which].text);

  const inspect = async (which: Which, file: File): Promise<void> => {
    const id = ++generation[which];
    const started = performance.now();
    reading[which].bar.value = 0;
    reading[which].text.textContent = '';
    const onProgress = Comlink.proxy((bytesRead: number): void => {
      if (id !== generation[which]) return;
      reading[which].bar.value = bytesRead / Math.max(1, file.size);
      reading[which].text.textContent = readProgressText(bytesRead, file.size, (performance.now() - started) / 1000);
    });
    const form = shared.form.value;
    const layout = formLayout(form);
    const maxSeqLen = form.hp?.max_seq_len ?? (Number.isInteger(Number(form.raw.max_seq_len)) && Number(form.raw.max_seq_len) >= 1 ? Number(form.raw.max_seq_len) : 4096);
    shared.data.update({ [which]: { file, report: null, status: 'inspecting', error: null } });
    settings.readWithKey(`${layout}|${maxSeqLen}|${tokenizerKey()}`);
    try {
      const report = await shared.engine.inspectDataset(file, file.name, layout, maxSeqLen, onProgress);
      if (id !== generation[which]) return;
      // Read with the tokenizer the worker had, which may not be the one the page knew of (a model loading meanwhile).
      settings.readWithKey(`${layout}|${maxSeqLen}|${report.tokenizer}`);
      shared.data.update({ [which]: { file, report, status: 'ready', error: null } });
    } catch (e) {
      if (id !== generation[which]) return;
      shared.data.update({ [which]: { file, report: null, status: 'error', error: errorParts(e) } });
    }
  };

  const take = (which: Which, list: FileList | null | undefined): void => {
    const file = list?.[0];
    if (file) void inspect(which, file);
  };

  trainInput.addEventListener('change', () => {
    take('train', trainInput.files);
    trainInput.value = '';
  });
  validationInput.addEventListener('change', () => {
    take('validation', validationInput.files);
    validationInput.value = '';
  });
  clearValidation.addEventListener('click', () => {
    generation.validation++;
    shared.data.update({ validation: null });
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (!runBusy(shared.run.value.phase)) take('train', (e as DragEvent).dataTransfer?.files);
  });

  const loadSample = async (): Promise<void> => {
    const url = `${import.meta.env.BASE_URL}datasets/sample.jsonl`;
    // A file chosen while the sample downloads wins: the sample, arriving later, must not replace it.
    const asked = generation.train;
    const superseded = (): boolean => generation.train !== asked;
    try {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
      const file = new File([await res.blob()], 'sample.jsonl', { type: 'application/jsonl' });
      if (!superseded()) await inspect('train', file);
    } catch (e) {
      if (superseded()) return;
      const { message } = errorParts(e);
      shared.data.update({ train: { file: new File([], 'sample.jsonl'), report: null, status: 'error', error: { kind: 'bad-input', message: `could not fetch the sample dataset: ${message}` } } });
    }
  };
  sampleButton.addEventListener('click', () => void loadSample());
  /**
   * The sample, preselected as the page opens (once the GPU is ready), unless a training file is already there: one
   * picked or dropped, or a saved run's, before the GPU probe answered. The sample is an offer, never a replacement.
   */
  const preselectSample = async (): Promise<void> => {
    if (generation.train === 0) await loadSample();
  };

  const fileView = (which: Which, f: DataFile | null, el: HTMLElement): void => {
    if (!f) {
      replaceChildren(el, which === 'train' ? h('p', { class: 'hint' }, 'No training file yet.') : null);
      return;
    }
    const report = f.report;
    replaceChildren(
      el,
      // The file's name with visibleText's escapes: a bidirectional control in it would show the name reordered.
      h('div', { class: 'file-head' }, h('span', { class: 'file-name', 'data-testid': `${which}-name` }, visibleText(f.file.name)), h('span', { class: 'num hint' }, formatBytes(f.file.size)), verdict(f)),
      f.status === 'inspecting' ? readingView(which) : null,
      f.status === 'error' && f.error ? h('p', { class: 'bad', 'data-testid': `${which}-error` }, `Could not read it: ${f.error.message}`) : null,
      report ? summaryView(report, `${which}-summary`, f.file.size) : null,
      report?.summary.tokens && report.summary.rows > 0 ? lengthHistogramView(report.summary.tokens.histogram, report.summary.maxSeqLen, `${which}-lengths`) : null,
      report ? problemList(report, `${which}-problems`) : null,
    );
  };

  shared.data.watch((d) => {
    fileView('train', d.train, trainView);
    fileView('validation', d.validation, validationView);
    clearValidation.hidden = !d.validation;
  });

  // Layout and max_seq_len change what a row becomes: read the files again once they settle on a valid value.
  const settingsKey = (): string | null => {
    const hp = shared.form.value.hp;
    const tokenizer = tokenizerKey();
    return hp && tokenizer !== null ? `${hp.layout}|${hp.max_seq_len}|${tokenizer}` : null;
  };
  shared.form.watch(() => settings.formChanged(settingsKey()));
  // A model loaded with its own tokenizer (another vocabulary than the app's) counts the files' tokens anew, and so
  // does the app's tokenizer again after it.
  shared.model.watch(() => settings.formChanged(settingsKey()));

  shared.run.watch((run) => {
    const busy = runBusy(run.phase);
    trainInput.disabled = validationInput.disabled = sampleButton.disabled = clearValidation.disabled = busy;
    drop.classList.toggle('disabled', busy);
  });

  const element = h(
    'section',
    { class: 'panel half', id: 'panel-dataset' },
    h('h2', {}, 'Dataset'),
    drop,
    h('div', { class: 'actions' }, sampleButton),
    h('h3', {}, 'Training data'),
    trainView,
    h(
      'h3',
      {},
      'Validation data ',
      h('span', { class: 'hint' }, '(optional) '),
      // The hidden input inside its label-link: keyboard focus on it shows as the link's outline (label.link:focus-within).
      h('label', { for: 'validation-file', class: 'link' }, 'choose', validationInput),
      ' ',
      clearValidation,
    ),
    validationView,
    h('p', { class: 'hint', 'data-testid': 'validation-note' }, 'Without a validation file, the last num_validation_samples rows of the training data are held out for validation, as Replicate does.'),
  );
  /** Shows (and checks) these files: a resumed run's own data, whatever was picked before. */
  const showFiles = (train: File, validation: File | null): void => {
    void inspect('train', train);
    if (validation) void inspect('validation', validation);
    else {
      generation.validation++;
      shared.data.update({ validation: null });
    }
  };

  return { element, preselectSample, showFiles };
}
