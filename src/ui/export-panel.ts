// The export panel: the trained adapter as a PEFT zip (adapter_config.json + adapter_model.safetensors), named after
// the model and the step, and a prompt box to try the adapter (greedy generation in the worker).

import { formatBytes } from '../core/units.ts';
import { h, replaceChildren } from './dom.ts';
import { errorParts } from './format.ts';
import { adapterZipName } from '../core/file-names.ts';
import { runBusy, type Cell, type Shared } from './state.ts';
import type { ImportedState } from './adapter-import-panel.ts';

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
  const status = h('p', { class: 'hint', 'data-testid': 'export-status' }, 'Train (or restore a saved run) to get an adapter.');

  const prompt = h('textarea', { id: 'generate-prompt', rows: 3, 'data-testid': 'generate-prompt', placeholder: '# Return the largest of two numbers.' });
  const maxTokens = h('input', { type: 'text', id: 'generate-max', value: '16', inputmode: 'numeric', class: 'short', 'data-testid': 'generate-max' });
  const generateButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'generate-run', disabled: true }, 'Generate');
  const output = h('div', { class: 'generation', 'data-testid': 'generate-output' });
  let generating = false;
  let exporting = false;

  const currentName = (): string => adapterZipName(shared.model.value.info?.source ?? 'model', shared.run.value.step, false);

  /** Runs one export: progress text, the download, then what was saved, or the error with its kind. */
  const runExport = async (working: string, produce: () => Promise<{ bytes: Uint8Array; fileName: string; contents: string }>): Promise<void> => {
    button.disabled = fullButton.disabled = true;
    exporting = true;
    status.className = 'hint';
    status.textContent = working;
    try {
      const { bytes, fileName, contents } = await produce();
      download(bytes, fileName);
      status.className = 'hint ok';
      status.textContent = `Saved ${fileName} (${formatBytes(bytes.length)}): ${contents}`;
    } catch (e) {
      const { kind, message } = errorParts(e);
      status.className = 'bad';
      status.textContent = `Export failed: ${message}`;
    } finally {
      exporting = false;
      render();
    }
  };

  // Both zips are made by the worker (src/export/bundle.ts): deterministic bytes, named after the model and step.
  button.addEventListener('click', () =>
    runExport('Reading the adapter from the GPU…', async () => ({
      ...(await engine.exportAdapterZip({ full: false, step: shared.run.value.step })),
      contents: 'adapter_config.json + adapter_model.safetensors, a PEFT LoRA adapter (PeftModel.from_pretrained, vLLM --lora-modules, Ollama ADAPTER).',
    })),
  );

  fullButton.addEventListener('click', () =>
    runExport('Reading the adapter and writing the GGUF file…', async () => ({
      ...(await engine.exportAdapterZip({ full: true, step: shared.run.value.step })),
      contents: 'the PEFT files, adapter.gguf and a README.',
    })),
  );

  generateButton.addEventListener('click', async () => {
    const text = prompt.value;
    const n = Number(maxTokens.value);
    if (!Number.isInteger(n) || n < 1 || n > 512) {
      replaceChildren(output, h('p', { class: 'bad' }, 'New tokens must be an integer from 1 to 512.'));
      return;
    }
    if (text.trim() === '') {
      replaceChildren(output, h('p', { class: 'bad' }, 'Write a prompt first.'));
      return;
    }
    generating = true;
    render();
    const t0 = performance.now();
    replaceChildren(output, h('p', { class: 'hint' }, `Generating ${n} tokens…`));
    try {
      const completion = await engine.generate(text, n);
      replaceChildren(
        output,
        h('pre', { class: 'completion' }, h('span', { class: 'prompt' }, text), completion),
        h('p', { class: 'hint' }, `${((performance.now() - t0) / 1000).toFixed(1)} s · greedy · ${importedNow() ? 'with the imported adapter' : shared.run.value.hasAdapter ? `with the adapter at step ${shared.run.value.step}` : 'base model only'}`),
      );
    } catch (e) {
      const { kind, message } = errorParts(e);
      replaceChildren(output, h('p', { class: 'bad' }, `Generation failed: ${message}`));
    } finally {
      generating = false;
      render();
    }
  });

  const render = (): void => {
    const run = shared.run.value;
    const model = shared.model.value;
    // Export and generation read the GPU between steps: fine while paused, not while a step is running.
    const quiet = !runBusy(run.phase) || run.phase === 'paused';
    const has = run.hasAdapter || importedNow();
    button.disabled = fullButton.disabled = exporting || !(has && quiet && model.status === 'ready');
    name.textContent = has ? currentName() : '';
    if (!exporting && !status.classList.contains('ok') && !status.classList.contains('bad')) {
      status.textContent = importedNow()
        ? `The imported adapter (${imported?.value?.info.name}), ready to download.`
        : run.hasAdapter
        ? runBusy(run.phase) && run.phase !== 'paused'
          ? 'Pause or stop the run to export the adapter so far.'
          : `The adapter at step ${run.step}, ready to download.`
        : 'Train (or restore a saved run) to get an adapter.';
    }
    generateButton.disabled = generating || !quiet || model.status !== 'ready';
  };
  let lastKey = '';
  shared.run.watch((run) => {
    const key = `${run.hasAdapter}|${run.step}|${run.phase}`;
    if (key !== lastKey && !exporting) status.className = 'hint';
    lastKey = key;
    render();
  });
  shared.model.watch(render);
  imported?.watch(() => {
    status.className = 'hint';
    render();
  });

  return h(
    'section',
    { class: 'panel half', id: 'panel-export' },
    h('h2', {}, 'Export'),
    h('p', { class: 'hint' }, 'The LoRA adapter in PEFT format: load it on the base model with PEFT, serve it with vLLM, or convert it for llama.cpp / Ollama.'),
    h('div', { class: 'actions' }, button, fullButton),
    name,
    status,
    h('h3', {}, 'Try it'),
    h('label', { for: 'generate-prompt', class: 'hint' }, 'Prompt (greedy completion with the current adapter; the layout is up to you)'),
    prompt,
    h('div', { class: 'actions' }, h('label', { for: 'generate-max', class: 'hint' }, 'new tokens '), maxTokens, generateButton),
    output,
  );
}
