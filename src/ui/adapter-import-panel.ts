// "Load an adapter": a PEFT zip or folder (adapter_model.safetensors or .bin) or Replicate's training_output.zip becomes
// the current adapter in the worker (checked against the loaded model), so Try it and Export use it, it can be
// scored on the validation set, and the next run starts from it. The panel owns `imported`, which the export panel
// reads to know there is an adapter to export.

import * as Comlink from 'comlink';
import { visibleText } from '../core/quote.ts';
import type { EvaluationProgress, ImportedAdapterInfo } from '../worker/api.ts';
import { h, replaceChildren } from './dom.ts';
import { errorParts, formatCounted, formatDuration } from './format.ts';
import { afterDeviceLoss, Cell, runBusy, type Shared } from './state.ts';

/** The imported adapter, and whether it is still the worker's current adapter (a run replaces it with its own). */
export interface ImportedState {
  info: ImportedAdapterInfo;
  current: boolean;
}

export function adapterImportPanel(shared: Shared): { element: HTMLElement; imported: Cell<ImportedState | null> } {
  const engine = shared.engine;
  const imported = new Cell<ImportedState | null>(null);
  // The visible buttons below open these pickers, so the hidden inputs are no tab stops of their own (1 px, their focus
  // showed nowhere). They are named all the same, for the assistive technology that lists them: a file input is
  // otherwise called after its own button, "Choose File", which says nothing of an adapter.
  const hiddenPicker = { class: 'visually-hidden', tabindex: -1 };
  const zipInput = h('input', { type: 'file', id: 'lora-import-zip', accept: '.zip,application/zip', 'data-testid': 'lora-import-zip', ...hiddenPicker, 'aria-label': 'Load an adapter from a zip' });
  const folderInput = h('input', { type: 'file', id: 'lora-import-folder', multiple: true, 'data-testid': 'lora-import-folder', ...hiddenPicker, 'aria-label': 'Load an adapter from a folder' });
  folderInput.setAttribute('webkitdirectory', '');
  const zipButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'lora-import-zip-button' }, 'Choose a zip…');
  const folderButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'lora-import-folder-button' }, 'Choose a folder…');
  const evalButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'lora-import-evaluate', disabled: true }, 'Validation loss');
  // A validation set of Mistral-7B takes minutes of forward passes: stopped between two of them.
  const evalStopButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'lora-import-evaluate-stop', disabled: true }, 'Stop');
  const forgetButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'lora-import-forget', disabled: true }, 'Start new runs fresh');
  const status = h('p', { class: 'hint', 'data-testid': 'lora-import-status' }, 'No adapter loaded.');
  const evalOut = h('p', { class: 'hint num', 'data-testid': 'lora-import-eval' });
  let busy = false;
  let evaluating = false;
  let evalStopAsked = false;

  const say = (cls: string, ...text: (string | HTMLElement)[]): void => {
    status.className = cls;
    replaceChildren(status, ...text);
  };

  const load = async (source: Parameters<typeof engine.importAdapter>[0]): Promise<void> => {
    if (shared.model.value.status !== 'ready') return say('bad', 'Load a model first: the adapter is checked against it.');
    busy = true;
    render();
    say('hint', 'Reading the adapter…');
    evalOut.textContent = '';
    try {
      const info = await engine.importAdapter(source);
      imported.set({ info, current: true });
      // base_model_name_or_path is whatever the file says, of any length: one line, cut with an ellipsis, the whole of
      // it in the tooltip (a 3,000-character one once ran the panel, and the page, thousands of pixels wide).
      // The names (the file or folder picked, where in it the adapter was, the base the file names) with visibleText's
      // escapes: a bidirectional control in one would reorder the sentence around it. Plain names read as they are.
      const base = info.baseModel === null ? null : visibleText(info.baseModel);
      const baseModel = base ? h('span', { class: 'clip', title: base, 'data-testid': 'lora-import-base' }, base) : null;
      say(
        'hint ok',
        `Loaded ${visibleText(info.name)} (${visibleText(info.readFrom)}): r ${info.r}, lora_alpha ${info.loraAlpha}${info.useRslora ? ', rsLoRA' : ''}, ${info.targetModules.join(', ')}, ${info.layers} layers`,
        ...(baseModel ? [', trained on ', baseModel] : []),
        '. Try it and Export use it; a new run starts from it.',
        // Trained on another model than the one loaded: said (the shapes fit, so it loads), not refused.
        ...(info.note ? [h('span', { 'data-testid': 'lora-import-base-note' }, ` Note: ${info.note}.`)] : []),
      );
      shared.refreshMemory();
    } catch (e) {
      say('bad', `Could not load the adapter: ${errorParts(e).message}`);
      // Uploading it met a lost device: the worker dropped it, the model and the adapter it held with it.
      afterDeviceLoss(shared, e);
    } finally {
      busy = false;
      render();
    }
  };

  zipButton.addEventListener('click', () => zipInput.click());
  folderButton.addEventListener('click', () => folderInput.click());
  zipInput.addEventListener('change', () => {
    const f = zipInput.files?.[0];
    zipInput.value = '';
    if (f) void load({ kind: 'zip', name: f.name, bytes: f });
  });
  folderInput.addEventListener('change', () => {
    const files = [...(folderInput.files ?? [])];
    folderInput.value = '';
    if (files.length) void load({ kind: 'files', files });
  });

  evalButton.addEventListener('click', async () => {
    const hp = shared.form.value.hp;
    const d = shared.data.value;
    if (!hp || !d.train) return void (evalOut.textContent = 'Choose a training file (its last rows, or the validation file, are the validation set) and fix the form first.');
    busy = evaluating = true;
    evalStopAsked = false;
    render();
    evalOut.className = 'hint num';
    evalOut.textContent = 'Evaluating…';
    // Pass by pass, with the time left at the rate so far (the validation rows of Mistral-7B take several forward passes).
    let last: EvaluationProgress | null = null;
    const onProgress = Comlink.proxy((p: EvaluationProgress) => {
      last = p;
      if (!busy || evalStopAsked || p.done === 0 || p.done >= p.passes || !(p.fraction > 0)) return;
      evalOut.textContent = `Evaluating… ${p.done} / ${formatCounted(p.passes, 'pass', 'passes')}, ${formatDuration(p.seconds / p.fraction - p.seconds)} left`;
    });
    try {
      const r = await engine.evaluateAdapter({ ...hp }, { train: d.train.file, trainName: d.train.file.name, validation: d.validation?.file ?? null, validationName: d.validation?.file.name ?? null }, onProgress);
      if (r.stopped) {
        const p = last as EvaluationProgress | null;
        const where = p ? `after ${p.done} of ${formatCounted(p.passes, 'pass', 'passes')}` : 'before its first pass';
        // Not asked here: a model load or a new run freed what it read, rather than wait for a number about it.
        evalOut.textContent = `Validation loss stopped ${where}${evalStopAsked ? '' : ': a model load or a new run replaced what it scored'}.`;
      } else {
        evalOut.textContent = `Validation loss ${r.loss.toFixed(4)} over ${r.tokens} tokens, with ${imported.value?.current ? 'the imported adapter' : 'the current adapter'}.`;
      }
    } catch (e) {
      evalOut.className = 'bad';
      evalOut.textContent = `Evaluation failed: ${errorParts(e).message}`;
      afterDeviceLoss(shared, e);
    } finally {
      busy = evaluating = false;
      render();
    }
  });

  evalStopButton.addEventListener('click', () => {
    evalStopAsked = true;
    evalStopButton.disabled = true;
    evalOut.textContent = 'Stopping after the pass in progress…';
    void engine.stopEvaluation();
  });

  forgetButton.addEventListener('click', async () => {
    await engine.forgetImportedAdapter();
    const cur = imported.value;
    imported.set(null);
    say('hint', cur?.current ? `New runs start fresh; ${visibleText(cur.info.name)} stays the current adapter until one starts.` : 'New runs start fresh.');
  });

  const render = (): void => {
    const ready = shared.model.value.status === 'ready';
    const quiet = !runBusy(shared.run.value.phase);
    zipButton.disabled = folderButton.disabled = busy || !ready || !quiet;
    evalButton.disabled = busy || !ready || !quiet || imported.value === null;
    evalStopButton.disabled = !evaluating || evalStopAsked;
    forgetButton.disabled = busy || imported.value === null;
  };

  // A new model drops the adapter in the worker; a run makes its own adapter current (started from the imported one).
  let modelSource = shared.model.value.info?.source ?? null;
  shared.model.watch((m) => {
    const source = m.info?.source ?? null;
    if (m.status === 'loading' || source !== modelSource) {
      // A lost device takes the model and the adapter, and the same model loaded again holds no adapter either.
      if (imported.value) say('hint', m.error?.lostWithDevice === true ? 'The GPU device was lost, and the adapter with it: load the model, then the adapter, again.' : 'The model changed: load the adapter again for this model.');
      imported.set(null);
    }
    if (m.status !== 'loading') modelSource = source;
    render();
  });
  shared.run.watch((r) => {
    const cur = imported.value;
    if (cur?.current && r.phase === 'starting') imported.set({ ...cur, current: false });
    render();
  });

  const element = h(
    'section',
    { class: 'panel half', id: 'panel-adapter-import' },
    h('h2', {}, 'Load an adapter'),
    h('p', { class: 'hint' }, "A PEFT adapter (adapter_config.json with adapter_model.safetensors or adapter_model.bin, as a folder or a zip) or Replicate's training_output.zip, for the loaded model. A .bin is read without running any code from it."),
    h('div', { class: 'actions' }, zipButton, folderButton, zipInput, folderInput),
    status,
    h('div', { class: 'actions' }, evalButton, evalStopButton, forgetButton),
    evalOut,
  );
  return { element, imported };
}
