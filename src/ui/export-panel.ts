// The export panel: the trained adapter as a PEFT zip (adapter_config.json + adapter_model.safetensors), named after
// the model and the step, and a prompt box to try the adapter (greedy generation in the worker).

import { formatBytes } from '../core/units.ts';
import { strToU8, zipSync } from 'fflate';
import { h, replaceChildren } from './dom.ts';
import { errorParts, slug } from './format.ts';
import { runBusy, type Shared } from './state.ts';

export function adapterFileName(modelName: string, step: number): string {
  return `adapter-${slug(modelName)}-step${step}.zip`;
}

function download(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/zip' }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function exportPanel(shared: Shared): HTMLElement {
  const engine = shared.engine;
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

  const currentName = (): string => adapterFileName(shared.model.value.info?.source ?? 'model', shared.run.value.step);

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
      status.textContent = `Export failed (${kind}): ${message}`;
    } finally {
      exporting = false;
      render();
    }
  };

  button.addEventListener('click', () =>
    runExport('Reading the adapter from the GPU…', async () => {
      const files = await engine.exportPeft();
      const bytes = zipSync(
        {
          'adapter_config.json': strToU8(files['adapter_config.json']),
          'adapter_model.safetensors': files['adapter_model.safetensors'],
        },
        { level: 6, mtime: new Date('2024-01-01T00:00:00Z') },
      );
      return {
        bytes,
        fileName: currentName(),
        contents: 'adapter_config.json + adapter_model.safetensors, a PEFT LoRA adapter (PeftModel.from_pretrained, vLLM --lora-modules, Ollama ADAPTER).',
      };
    }),
  );

  // The worker's own zip: the PEFT files, adapter.gguf for llama.cpp / Ollama and a README saying how to load each.
  fullButton.addEventListener('click', () =>
    runExport('Reading the adapter and writing the GGUF file…', async () => {
      const { bytes } = await engine.exportAdapterZip();
      return { bytes, fileName: currentName().replace(/\.zip$/, '-gguf.zip'), contents: 'the PEFT files, adapter.gguf and a README.' };
    }),
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
        h('p', { class: 'hint' }, `${((performance.now() - t0) / 1000).toFixed(1)} s · greedy · ${shared.run.value.hasAdapter ? `with the adapter at step ${shared.run.value.step}` : 'base model only'}`),
      );
    } catch (e) {
      const { kind, message } = errorParts(e);
      replaceChildren(output, h('p', { class: 'bad' }, `Generation failed (${kind}): ${message}`));
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
    button.disabled = fullButton.disabled = exporting || !(run.hasAdapter && quiet && model.status === 'ready');
    name.textContent = run.hasAdapter ? currentName() : '';
    if (!exporting && !status.classList.contains('ok') && !status.classList.contains('bad')) {
      status.textContent = run.hasAdapter
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
