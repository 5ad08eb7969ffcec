// The export panel: the trained adapter as a PEFT zip (adapter_config.json + adapter_model.safetensors), named after
// the model and the step, and the Try-it section (try-panel.ts): streamed generation with the adapter, the base beside it.

import { visibleText } from '../core/quote.ts';
import { formatBytes } from '../core/units.ts';
import { h } from './dom.ts';
import { errorParts } from './format.ts';
import { adapterZipName, baseModelNameProblem, isLocalFilesModel, type AdapterOrigin } from '../core/file-names.ts';
import { endSentence } from './sentence.ts';
import { afterDeviceLoss, runComputing, type Cell, type Shared } from './state.ts';
import type { ImportedState } from './adapter-import-panel.ts';
import { trySection } from './try-panel.ts';

function download(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/zip' }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function exportPanel(shared: Shared, imported?: Cell<ImportedState | null>): HTMLElement {
  const engine = shared.engine;
  /** An adapter loaded from outside is the worker's current one until a run starts (adapter-import-panel.ts). */
  const importedNow = (): boolean => imported?.value?.current === true;
  const button = h('button', { type: 'button', 'data-testid': 'export-download', disabled: true }, 'Download adapter (.zip)');
  const fullButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'export-full', disabled: true }, 'With GGUF and README (.zip)');
  const name = h('p', { class: 'num file-name', 'data-testid': 'export-name' });
  // base_model_name_or_path: what the adapter's config and README name as its base. Local files name no model, so
  // the user can say which one it is (its Hub id, for PEFT's AutoPeftModelForCausalLM); empty keeps the model's own.
  const baseModel = h('input', { type: 'text', id: 'export-base-model', 'data-testid': 'export-base-model', autocomplete: 'off', spellcheck: 'false' });
  const baseModelHint = h('p', { class: 'hint', 'data-testid': 'export-base-model-hint' });
  /** The name asked for, or undefined for the model's own; a problem with it is shown and blocks the export. */
  const askedBase = (): { name?: string; problem: string | null } => {
    const v = baseModel.value.trim();
    return v === '' ? { problem: null } : { name: v, problem: baseModelNameProblem(v) };
  };
  baseModel.addEventListener('input', () => {
    downloaded = null;
    render();
  });
  const status = h('p', { class: 'hint', 'data-testid': 'export-status' }, 'Train (or restore a saved run) to get an adapter.');

  let exporting = false;
  /**
   * The file last downloaded for the adapter shown, which export-name shows: after "With GGUF and README" it is that zip,
   * not the PEFT pair's name. Forgotten when the adapter changes (a step, a run, an import), as the "Saved …" line is.
   */
  let downloaded: string | null = null;

  // An imported adapter is named as such, not after the step of whatever run the page last made.
  const origin = (): AdapterOrigin => (importedNow() ? 'imported' : shared.run.value.step);
  const currentName = (): string => adapterZipName(askedBase().name ?? shared.model.value.info?.source ?? 'model', origin(), false);

  /** Runs one export: progress text, the download, then what was saved, or the error with its kind. */
  const runExport = async (working: string, produce: () => Promise<{ bytes: Uint8Array; fileName: string; contents: string }>): Promise<void> => {
    button.disabled = fullButton.disabled = true;
    exporting = true;
    status.className = 'hint';
    status.textContent = working;
    try {
      const { bytes, fileName, contents } = await produce();
      download(bytes, fileName);
      downloaded = fileName;
      status.className = 'hint ok';
      status.textContent = `Saved ${fileName} (${formatBytes(bytes.length)}): ${contents}`;
    } catch (e) {
      status.className = 'bad';
      status.textContent = `Export failed: ${errorParts(e).message}`;
      // Reading the adapter from a lost device: the worker dropped it, with the model and the adapter.
      afterDeviceLoss(shared, e);
    } finally {
      exporting = false;
      render();
    }
  };

  // Both zips are made by the worker (src/export/bundle.ts): deterministic bytes, named after the model and step.
  button.addEventListener('click', () =>
    runExport('Reading the adapter from the GPU…', async () => ({
      ...(await engine.exportAdapterZip({ full: false, step: origin(), baseModel: askedBase().name })),
      contents: 'adapter_config.json + adapter_model.safetensors, a PEFT LoRA adapter (PeftModel.from_pretrained, vLLM --lora-modules, Ollama ADAPTER).',
    })),
  );

  fullButton.addEventListener('click', () =>
    runExport('Reading the adapter and writing the GGUF file…', async () => ({
      ...(await engine.exportAdapterZip({ full: true, step: origin(), baseModel: askedBase().name })),
      contents: 'the PEFT files, adapter.gguf and a README.',
    })),
  );

  // The imported adapter's name (the file or folder picked) with visibleText's escapes: a bidirectional control in it
  // would reorder the sentence around it.
  const importedName = (): string => visibleText(imported?.value?.info.name ?? '');
  // Try it (try-panel.ts) runs the worker's current adapter: the imported one, or the run's.
  const tryIt = trySection(shared, () =>
    importedNow() ? `the imported adapter (${importedName()})` : shared.run.value.hasAdapter ? `the adapter at step ${shared.run.value.step}` : null,
  );

  const render = (): void => {
    const run = shared.run.value;
    const model = shared.model.value;
    // Export and generation read the GPU between steps: fine while paused, not while a step is running.
    const quiet = !runComputing(run.phase);
    const has = run.hasAdapter || importedNow();
    const asked = askedBase();
    button.disabled = fullButton.disabled = exporting || asked.problem !== null || !(has && quiet && model.status === 'ready');
    name.textContent = has ? (downloaded ?? currentName()) : '';
    const source = model.info?.source ?? null;
    baseModel.placeholder = source && !isLocalFilesModel(source) ? source : 'e.g. mistralai/Mistral-7B-Instruct-v0.2';
    baseModelHint.className = asked.problem ? 'bad' : 'hint';
    baseModelHint.textContent = asked.problem
      ? endSentence(`Not this name: ${asked.problem}`)
      : source && isLocalFilesModel(source) && !asked.name
      ? 'The model came from local files, which do not say which model they are: write its Hugging Face id here, so that the adapter names it as its base (PEFT’s AutoPeftModelForCausalLM loads the base from that name).'
      : 'Written as base_model_name_or_path in adapter_config.json and named in the README; empty: the base the adapter records (the model its run loaded, or an imported file’s own).';
    if (!exporting && !status.classList.contains('ok') && !status.classList.contains('bad')) {
      status.textContent = importedNow()
        ? `The imported adapter (${importedName()}), ready to download.`
        : run.hasAdapter
        ? run.phase === 'pausing'
          ? 'Pausing: the adapter can be exported once the step under way ends.'
          : runComputing(run.phase)
          ? 'Pause or stop the run to export the adapter so far.'
          : `The adapter at step ${run.step}, ready to download.`
        : 'Train (or restore a saved run) to get an adapter.';
    }
    tryIt.render();
  };
  let lastKey = '';
  shared.run.watch((run) => {
    const key = `${run.hasAdapter}|${run.step}|${run.phase}`;
    if (key !== lastKey && !exporting) {
      status.className = 'hint';
      downloaded = null;
    }
    lastKey = key;
    render();
  });
  shared.model.watch(render);
  imported?.watch(() => {
    status.className = 'hint';
    downloaded = null;
    render();
  });

  return h(
    'section',
    { class: 'panel half', id: 'panel-export' },
    h('h2', {}, 'Export'),
    h('p', { class: 'hint' }, 'The LoRA adapter in PEFT format: load it on the base model with PEFT, serve it with vLLM, or convert it for llama.cpp / Ollama.'),
    h('label', { for: 'export-base-model', class: 'inline' }, 'Base model name ', baseModel),
    baseModelHint,
    h('div', { class: 'actions' }, button, fullButton),
    name,
    status,
    tryIt.element,
  );
}
