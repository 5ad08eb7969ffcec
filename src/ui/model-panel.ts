// The model panel: where the weights come from (the demo model shipped with the app, a Hugging Face repository with a
// token, or files on this computer), the base quantization the run needs (from peft_method / quantization in the form),
// load progress (tensors and bytes), what was loaded (and whether it came from the weight cache), the GPU memory ledger,
// and the models cached in this browser (cache-panel.ts).

import { pickedFolderName, relativePath } from '../core/file-names.ts';
import { hubRepoFromInput, isHubRepoId, type HubReference } from '../core/hub-reference.ts';
import type { LedgerSnapshot, LoadProgress, MemoryPlan, ModelInfo, ModelSource, Quantization } from '../worker/api.ts';
import { isFinetuneError, thrownMessage } from '../core/errors.ts';
import { visibleText } from '../core/quote.ts';
import { formatBytes } from '../core/units.ts';
import { cachePanel } from './cache-panel.ts';
import { h, markSelectedTab, replaceChildren, tabKeys } from './dom.ts';
import { formatCount, formatParams, quantizationLabel } from './format.ts';
import { joinSentences } from './sentence.ts';
import { runLostDevice } from './run-state.ts';
import { formValuesForQuantization, runBusy, wantedQuantization, type Shared } from './state.ts';

type SourceKind = ModelSource['kind'];

const DEMO_HELP =
  'mistral-nano-demo: a small Mistral (4 layers, hidden 256, Mistral’s 32,000-token vocabulary) served with this page, ' +
  '40 MB. Same architecture and code path as Mistral-7B. The demo preset trains in seconds on a GPU; on a software adapter (no GPU) it takes 3–8 minutes, and the Training panel offers a quick preset that takes one to two minutes.';
const HUB_HELP =
  'Any Mistral-architecture repository with safetensors weights, read by HTTP range requests (Mistral-7B-Instruct-v0.3, ' +
  'whose vocabulary is not the app’s, with the tokenizer.model of its repository). Mistral-7B-Instruct-v0.2 is ' +
  'gated: paste a token from huggingface.co/settings/tokens. The token is only sent to huggingface.co, in the ' +
  'Authorization header, and never saved.';
const FILES_HELP =
  'Pick config.json and the *.safetensors files (with model.safetensors.index.json when the weights are sharded), or the folder holding them: a folder names the model (its exports and saved runs say so). ' +
  'A model whose vocabulary is not the app’s (Mistral-7B-Instruct-v0.3) needs its tokenizer.model too.';

/** The line under the load's bar: phase, tensors, bytes, rate, time left and the tensor; or what the load waits for. */
export function loadProgressText(p: LoadProgress, fromLocalFiles: boolean): string {
  // A request failed and is tried again: said, with how far the load had got (it sat at "Reading the header…").
  if (p.retry) return p.total > 0 ? `${p.retry} ${formatCount(p.done)} / ${formatCount(p.total)} tensors so far.` : p.retry;
  if (p.phase === 'waiting') {
    return 'Loaded; waiting for the work on the previous model to stop (a generation at its next token, a validation loss at its next pass, a time estimate at its end)…';
  }
  const rate = p.bytesPerSecond ? ` · ${(p.bytesPerSecond / 1e6).toFixed(1)} MB/s` : '';
  const eta = p.etaSeconds != null ? ` · ${Math.ceil(p.etaSeconds)} s left` : '';
  // Local files are read, not downloaded.
  const phase = p.phase === 'downloading' && fromLocalFiles ? 'reading' : p.phase;
  return `${phase ? `${phase} · ` : ''}${formatCount(p.done)} / ${formatCount(p.total)} tensors · ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}${rate}${eta} · ${p.tensor}`;
}

/** The loaded model's facts as the panel lists them, in words (the quantisation too: "NF4, double-quantised", not "nf4-double"). */
export function modelFacts(i: ModelInfo): [string, string][] {
  return [
    ['parameters', formatParams(i.params)],
    ['layers', String(i.layers)],
    ['hidden size', String(i.hidden)],
    ['vocabulary', formatCount(i.vocab)],
    // A model of another vocabulary than the app's reads with its own tokenizer.model (Mistral-7B-Instruct-v0.3).
    ...(i.tokenizer?.own ? ([['tokenizer', `the model's own tokenizer.model (${formatCount(i.tokenizer.vocab)} tokens)`]] as [string, string][]) : []),
    ['quantization', quantizationLabel(i.quantization)],
    ['weights on the GPU', `${formatBytes(i.gpuBytes)}${i.streamedLayers ? ' (layers streamed from CPU memory)' : ''}`],
  ];
}

/** The QLoRA alternative of a plan whose unquantised base does not simply fit, in a sentence (MemoryPlan.qlora). */
export function qloraOfferText(q: NonNullable<MemoryPlan['qlora']>): string {
  const how = { fits: 'it fits', tight: 'it fits, tightly', 'fits-with-streaming': 'it fits with layer streaming', 'does-not-fit': 'it does not fit' }[q.verdict];
  return `With QLoRA (peft_method qlora: the base in 4-bit NF4, as Replicate's QLoRA stores it) ${how}: ${q.reason}.`;
}

/**
 * What the panel says of a model that went with a lost GPU device. "Get the GPU back and resume" is named only where
 * the training panel offers it (the run failed with the device): a device lost under Try it, an estimate or an export
 * fails no run, and the page pointed to a button that was not there.
 */
export function modelLostText(label: string | null, message: string, recoverOffered: boolean): string {
  const again = recoverOffered ? 'Load it again, or use "Get the GPU back and resume" in the Training panel.' : 'Load it again in this panel.';
  return `${label === null ? 'The model' : visibleText(label)} is no longer loaded: the GPU device it was on was lost (${message}). ${again}`;
}

// A model's name (a picked folder's, a Hub repository's, the files'), written into the panel's sentences with
// visibleText's escapes: the page shows text as text, but a bidirectional control in a name (a folder named with a
// U+202E) would reorder the words after it. A plain name reads as it is.

/** The status line while a model loads. */
export function modelLoadingText(label: string | null, quantization: ModelInfo['quantization'] | null): string {
  return `Loading ${label === null ? 'the model' : visibleText(label)}${quantization ? ` (${quantizationLabel(quantization)})` : ''}…`;
}

/** The status line of a loaded model. */
export function modelLoadedText(i: Pick<ModelInfo, 'source' | 'quantization' | 'seconds' | 'fromCache'>): string {
  return `Loaded ${visibleText(i.source)} (${quantizationLabel(i.quantization)}) in ${i.seconds.toFixed(1)} s${i.fromCache ? ', from the weight cache in this browser: nothing downloaded' : ''}`;
}

/** The line under a loaded model when the load of another one failed. */
export function modelFailureText(failure: { label: string; message: string }, loaded: string): string {
  // joinSentences: the message may end with its own full stop ("…check the connection and the URL.").
  return joinSentences(`Could not load ${visibleText(failure.label)}: ${failure.message}`, `${visibleText(loaded)} is still loaded and ready`);
}

/**
 * What the Local files tab has picked: the files, and the folder's name when a folder was picked (the model is named
 * after it, as `finetune train --model DIR` names it after DIR), or why it cannot be loaded as it stands.
 */
export function localPick(list: readonly File[]): { label: string; folder: string | null } | string {
  if (list.length === 0) return 'Pick the model’s files first: config.json and the *.safetensors weights.';
  const folder = pickedFolderName(list);
  // The top level of the pick: a folder's own files (not its subfolders'), or the files picked.
  const names = list.map((f) => (folder ? relativePath(f).slice(folder.length + 1) : f.name));
  const where = folder ? `The folder ${visibleText(folder)}` : 'The picked files';
  if (!names.includes('config.json')) return `${where} ${folder ? 'holds' : 'include'} no config.json: ${folder ? 'pick the folder that holds it' : 'pick it with the weights'}.`;
  if (!names.some((n) => !n.includes('/') && n.endsWith('.safetensors'))) return `${where} ${folder ? 'holds' : 'include'} no *.safetensors weights: ${folder ? 'pick the folder that holds them' : 'pick them with config.json'} (PyTorch .bin weights are not read).`;
  return { label: folder ?? list.map((f) => f.name).join(', '), folder };
}

/**
 * A category's figure beside its bar: what it holds now, and its peak when that was well above (the faint bar behind
 * the bright one): the readback buffers of a load or an export hold megabytes for a moment and bytes after, and a
 * long faint bar beside "452 B" read as a fault.
 */
export function memoryFigure(c: { currentBytes: number; peakBytes: number }): string {
  return c.peakBytes > c.currentBytes * 1.05 ? `${formatBytes(c.currentBytes)} (peak ${formatBytes(c.peakBytes)})` : formatBytes(c.currentBytes);
}

/**
 * The GPU memory by category, from the worker's ledger. Null is a worker that holds no GPU device: none made yet, or
 * one lost and dropped (worker.ts dropGpu), so the words say only that ("… yet" read wrong after a loss).
 */
export function memoryView(m: LedgerSnapshot | null): HTMLElement {
  if (!m) return h('p', { class: 'hint' }, 'No GPU memory in use: no GPU device is open.');
  const cats = Object.entries(m.byCategory).filter(([, c]) => c.peakBytes > 0);
  const max = Math.max(1, ...cats.map(([, c]) => c.peakBytes));
  return h(
    'div',
    { class: 'memory' },
    h('p', { class: 'num' }, `now ${formatBytes(m.currentBytes)} · peak ${formatBytes(m.peakBytes)}`),
    h(
      'table',
      { class: 'bars' },
      ...cats.map(([name, c]) =>
        h(
          'tr',
          {},
          h('th', {}, name),
          h(
            'td',
            { class: 'bar', title: `now ${formatBytes(c.currentBytes)}, peak ${formatBytes(c.peakBytes)} (the faint bar)` },
            h('span', { class: 'fill peak', style: `width:${(100 * c.peakBytes) / max}%` }),
            h('span', { class: 'fill', style: `width:${(100 * c.currentBytes) / max}%` }),
          ),
          h('td', { class: 'num' }, memoryFigure(c)),
        ),
      ),
    ),
  );
}

/** What the panel asks of the page beyond the shared state. */
export interface ModelPanelHooks {
  /**
   * Sets the form's peft_method and quantization to ask for `q` (formValuesForQuantization): QLoRA's nf4-double where
   * the plan offers it, a cached model's own where it is loaded as cached.
   */
  useQuantization(q: Quantization): void;
}

export function modelPanel(shared: Shared, hooks: ModelPanelHooks): HTMLElement {
  let kind: SourceKind = 'demo';
  const tabs = (['demo', 'hub', 'files'] as const).map((k) =>
    // Each tab controls the one panel below (its content swaps), which is named by the selected tab.
    h('button', { type: 'button', role: 'tab', class: 'tab', id: `model-source-tab-${k}`, 'aria-controls': 'model-source-panel', 'data-kind': k, 'data-testid': `model-source-${k}` }, k === 'demo' ? 'Demo model' : k === 'hub' ? 'Hugging Face' : 'Local files'),
  );
  // role="tab" promises the tabs pattern: the arrows, Home and End move between the tabs (and select, as a click does),
  // and the row is one Tab stop, the selected tab (markSelectedTab in select).
  tabKeys(tabs);
  const repo = h('input', { type: 'text', id: 'hub-repo', value: 'mistralai/Mistral-7B-Instruct-v0.2', autocomplete: 'off', spellcheck: 'false' });
  const revision = h('input', { type: 'text', id: 'hub-revision', placeholder: 'main', autocomplete: 'off', spellcheck: 'false' });
  const token = h('input', { type: 'password', id: 'hub-token', placeholder: 'hf_…', autocomplete: 'off' });
  // tokenizer.model too: a model of another vocabulary than the app's (Mistral-7B-Instruct-v0.3) reads with its own.
  const files = h('input', { type: 'file', id: 'model-files', multiple: true, accept: '.json,.safetensors,.model' });
  const folderInput = h('input', { type: 'file', id: 'model-folder', multiple: true, 'data-testid': 'model-folder' });
  folderInput.setAttribute('webkitdirectory', '');
  // The last pick, from either input (picking in one clears the other, so that what is shown is what loads).
  let picked: File[] = [];
  const onPick = (from: HTMLInputElement, other: HTMLInputElement): void => {
    picked = [...(from.files ?? [])];
    other.value = '';
  };
  files.addEventListener('change', () => onPick(files, folderInput));
  folderInput.addEventListener('change', () => onPick(folderInput, files));
  const bodies: Record<SourceKind, HTMLElement> = {
    demo: h('div', { class: 'source' }, h('p', { class: 'hint' }, DEMO_HELP)),
    hub: h(
      'div',
      { class: 'source' },
      h('div', { class: 'inline-fields hub-fields' }, h('label', { for: 'hub-repo' }, 'Repository', repo), h('label', { for: 'hub-revision' }, 'Revision', revision), h('label', { for: 'hub-token' }, 'Token', token)),
      h('p', { class: 'hint' }, HUB_HELP),
    ),
    files: h(
      'div',
      { class: 'source' },
      h('div', { class: 'inline-fields' }, h('label', { for: 'model-files' }, 'Model files ', files), h('label', { for: 'model-folder' }, 'or its folder ', folderInput)),
      h('p', { class: 'hint' }, FILES_HELP),
    ),
  };
  const body = h('div', { class: 'source-body', role: 'tabpanel', id: 'model-source-panel' });
  const select = (k: SourceKind): void => {
    kind = k;
    const tab = tabs.find((t) => t.dataset.kind === k) ?? tabs[0];
    markSelectedTab(tabs, tab);
    body.setAttribute('aria-labelledby', tab.id);
    replaceChildren(body, bodies[k]);
    // A panel with no control of its own (the demo's: a paragraph) is a Tab stop itself, as the tabs pattern has it, so
    // that Tab from the tabs reaches its text; one with inputs is entered at its first input.
    if (bodies[k].querySelector('input, select, textarea, button')) body.removeAttribute('tabindex');
    else body.tabIndex = 0;
  };
  for (const t of tabs) t.addEventListener('click', () => select(t.dataset.kind as SourceKind));
  select('demo');

  const quantLine = h('p', { class: 'quant', 'data-testid': 'model-quantization' });
  const gpuMemory = h('input', { type: 'number', id: 'gpu-memory-gib', min: '1', step: '1', placeholder: 'unknown', 'data-testid': 'gpu-memory-gib' });
  const fit = h('div', { class: 'fit', 'data-testid': 'model-plan' });
  const loadButton = h('button', { type: 'button', 'data-testid': 'model-load' }, 'Load model');
  // Why Load is disabled (nothing picked, a repository not written as owner/name), beside the button.
  const loadReason = h('p', { class: 'hint', 'data-testid': 'model-load-reason', hidden: true });
  const status = h('p', { class: 'status', 'data-testid': 'model-status' }, 'No model loaded.');
  const failureLine = h('p', { class: 'bad', 'data-testid': 'model-load-failure', role: 'alert', hidden: true });
  // Named as the status beneath it says it ("Loading mistral-nano-demo…"): a bare progress bar is read out as a
  // percentage of nothing.
  const bar = h('progress', { max: 1, value: 0, hidden: true, 'data-testid': 'model-progress', 'aria-label': 'Loading the model' });
  const progressText = h('p', { class: 'progress-text num', 'data-testid': 'model-progress-text' });
  const mismatch = h('div', { class: 'notice warn', hidden: true, 'data-testid': 'model-mismatch' });
  const info = h('div', { 'data-testid': 'model-info' });
  const memory = h('div', { 'data-testid': 'gpu-memory' });
  const warnings = h('ul', { class: 'warnings', 'data-testid': 'model-warnings' });

  const sourceOf = (): { source: ModelSource; label: string } | string => {
    switch (kind) {
      case 'demo':
        return { source: { kind: 'demo' }, label: 'mistral-nano-demo' };
      case 'hub': {
        const r = repo.value.trim();
        if (!isHubRepoId(r)) return 'Write the repository as owner/name (or paste its huggingface.co address), e.g. mistralai/Mistral-7B-Instruct-v0.2.';
        const rev = revision.value.trim();
        const tok = token.value.trim();
        return { source: { kind: 'hub', repo: r, ...(rev ? { revision: rev } : {}), ...(tok ? { token: tok } : {}) }, label: rev ? `${r}@${rev}` : r };
      }
      case 'files': {
        const pick = localPick(picked);
        if (typeof pick === 'string') return pick;
        return { source: { kind: 'files', files: picked }, label: pick.label };
      }
    }
  };

  // Will it fit? Asked of the worker from config.json (and local files' safetensors headers) whenever the source, the
  // form or the memory size changes (debounced: a Hub repository typed letter by letter is one request); an answer to
  // an older question is dropped.
  let planAsked = 0;
  let planTimer: ReturnType<typeof setTimeout> | undefined;
  // The last plan's verdict: 'fits-with-streaming' loads the model with its layers streamed from CPU memory.
  let lastVerdict: MemoryPlan['verdict'] | null = null;
  // The plan for the inputs on show failed (a Load then goes straight to the load, which says why: asking the plan
  // again first doubled the wait, half a minute of retries where the Hub cannot be reached).
  let planFailed = false;
  // Why picked files cannot load, as the plan found (their config.json or weights unreadable): Load is disabled with
  // it, where it once stood enabled under a green "Fits" and failed on the click.
  let planBlock: string | null = null;
  /** What the plan's box says now: a plan, or why there is none; no longer dimmed as a plan of other inputs. */
  const showFit = (...children: (Node | string | null)[]): void => {
    replaceChildren(fit, ...children);
    fit.classList.remove('stale');
    fit.removeAttribute('aria-busy');
  };
  const showPlan = (p: MemoryPlan): void => {
    lastVerdict = p.verdict;
    const unreadable = p.model.weightsUnreadable;
    planBlock = unreadable === undefined ? null : `The picked weights cannot be read (${unreadable}): pick the model's files again.`;
    const word = { fits: 'Fits', tight: 'Tight', 'fits-with-streaming': 'Fits with layer streaming', 'does-not-fit': 'Does not fit' }[p.verdict];
    fit.dataset.verdict = p.verdict;
    showFit(
      unreadable !== undefined
        ? h('p', { class: 'status bad' }, 'Cannot be loaded: the weights cannot be read. Planned from config.json alone: ', `${word.toLowerCase()}, ${p.reasons[0] ?? ''}`)
        : h('p', { class: `status ${p.verdict === 'fits' ? 'ok' : p.verdict === 'tight' || p.verdict === 'fits-with-streaming' ? 'warn' : 'bad'}` }, `${word}: ${p.reasons[0] ?? ''}`),
      ...p.reasons.slice(1).map((r) => h('p', { class: 'hint' }, r)),
      // Replicate's default is lora, so Mistral-7B picked as it comes plans a bf16 base: say what QLoRA would need.
      p.qlora ? qloraOffer(p.qlora) : null,
      h(
        'p',
        { class: 'hint num' },
        `base weights ${formatBytes(p.bytes.weights)} · LoRA ${formatBytes(p.bytes.lora)} · AdamW ${formatBytes(p.bytes.optimizer)} · activations ${formatBytes(p.bytes.activations)}${p.run.sample ? ` · sample KV cache ${formatBytes(p.bytes.kvCache)} (${p.run.sample.positions} positions)` : ''} · scratch ${formatBytes(p.bytes.scratch + p.bytes.io + p.bytes.context)} · ${p.run.rows} × ${p.run.seqLen} tokens`,
      ),
      h('p', { class: 'hint', 'data-testid': 'model-plan-recomputation' }, `Recomputation: ${p.run.recomputation}.`),
      // Where the weights' size comes from: a float32 checkpoint under a bfloat16 config is twice the size config.json
      // suggests, and the warning says so (text from config.json is only ever text here).
      h('p', { class: 'hint', 'data-testid': 'model-plan-dtype' }, `Weights planned as ${p.model.dtype}, from ${p.model.dtypeFrom}.`),
      ...p.warnings.map((w) => h('p', { class: 'hint warn', 'data-testid': 'model-plan-warning' }, w)),
      // What does not fit here can still be trained: the same job on Replicate's A100 (80 GB).
      p.verdict === 'does-not-fit'
        ? h('p', { class: 'hint', 'data-testid': 'model-plan-remote' }, 'Too big for this GPU? ', h('a', { href: '#panel-remote', class: 'link' }, 'Train the same job on Replicate'), ' (an A100 with 80 GB).')
        : null,
    );
  };
  const qloraOffer = (q: NonNullable<MemoryPlan['qlora']>): HTMLElement => {
    const use = h('button', { type: 'button', class: 'secondary', 'data-testid': 'model-plan-use-qlora' }, 'Use peft_method qlora');
    use.addEventListener('click', () => hooks.useQuantization('nf4-double'));
    return h('div', { 'data-testid': 'model-plan-qlora', 'data-verdict': q.verdict }, h('p', { class: 'hint' }, qloraOfferText(q)), h('div', { class: 'actions' }, use));
  };
  /** The GPU memory typed into the panel in GiB, or null when the field is empty or not a positive number. */
  const givenMemoryGiB = (): number | null => {
    const gib = Number(gpuMemory.value);
    return gpuMemory.value && gib > 0 ? gib : null;
  };
  const askPlan = (): void => {
    clearTimeout(planTimer);
    // Forgotten at once, not when the new plan is asked: a Load in between must not take the last inputs' verdict,
    // nor the answer to a plan asked for them that comes after this.
    lastVerdict = null;
    planFailed = false;
    planBlock = null;
    planAsked++;
    // The plan on show is of the inputs before the change: dimmed until the new one comes (the Local files tab
    // opened on nothing picked showed the demo's "Fits" for the 400 ms the new plan waits for more keystrokes).
    if (typeof sourceOf() === 'string') showFit();
    else {
      fit.classList.add('stale');
      fit.setAttribute('aria-busy', 'true');
    }
    planTimer = setTimeout(() => {
      const asked = planAsked;
      const s = sourceOf();
      const hp = shared.form.value.hp;
      delete fit.dataset.verdict;
      if (typeof s === 'string' || !hp) {
        showFit(h('p', { class: 'hint' }, typeof s === 'string' ? '' : 'Fix the hyperparameters to see whether the run fits.'));
        return;
      }
      showFit(h('p', { class: 'hint' }, 'Checking whether it fits (config.json; no weights are read)…'));
      shared.engine.planModelMemory(s.source, { ...hp }, givenMemoryGiB() ?? undefined).then(
        (p) => {
          if (asked !== planAsked) return;
          showPlan(p);
          render();
        },
        (e: unknown) => {
          if (asked !== planAsked) return;
          // The worker's rejection through comlink may be any value: thrownMessage never throws (String() did for an
          // object with no prototype, and the panel stayed at "Checking…" with an unhandled rejection).
          showFit(h('p', { class: 'status bad' }, `Cannot tell whether it fits: ${thrownMessage(e)}`));
          planFailed = true;
          // Picked files read the same at the load: a config.json that cannot be read blocks it. (A Hub answer may be
          // different on the next ask: a gated repository's token typed, the network back.)
          if (s.source.kind === 'files' && isFinetuneError(e) && e.details?.modelUnloadable === true) planBlock = `${thrownMessage(e)}: pick the model's files again.`;
          render();
        },
      );
    }, 400);
  };
  // A model page's address pasted (what the address bar gives) becomes owner/name, and the revision it names goes
  // into its field: the tab refused it, though the name was right there.
  repo.addEventListener('input', () => {
    const given = repo.value.trim();
    const read = isHubRepoId(given) ? null : hubRepoFromInput(given);
    if (!read) return;
    repo.value = read.repo;
    if (read.revision && !revision.value.trim()) revision.value = read.revision;
  });
  for (const el of [repo, revision, token, gpuMemory]) el.addEventListener('input', askPlan);
  // The worker remembers the size: a run keeps layers' intermediates (no recomputation) as far as it allows.
  gpuMemory.addEventListener('input', () => {
    void shared.engine.setGpuMemory(givenMemoryGiB());
  });
  files.addEventListener('change', askPlan);
  folderInput.addEventListener('change', askPlan);
  for (const t of tabs) t.addEventListener('click', askPlan);
  shared.form.watch(askPlan);

  /**
   * Whether the plan says the layers must stream from CPU memory: the plan on show, or one asked now when Load comes
   * before it (a model that only fits streamed was loaded whole, and ran out of memory). `hp` is what the run will have.
   */
  const streamingNeeded = async (source: ModelSource, hp: Record<string, unknown> | null): Promise<boolean> => {
    if (lastVerdict !== null) return lastVerdict === 'fits-with-streaming';
    if (!hp || planFailed) return false;
    // Usually a moment (config.json); longer where the server must be waited for. Said, so the click shows at once.
    status.className = 'status';
    status.textContent = 'Checking whether it fits before loading…';
    const verdict = await shared.engine.planModelMemory(source, hp, givenMemoryGiB() ?? undefined).then(
      (p) => p.verdict,
      () => null, // the load says what is wrong (the same config.json is read first)
    );
    return verdict === 'fits-with-streaming';
  };

  /** A load being started (its plan asked): a second click meanwhile starts nothing. */
  let startingLoad = false;
  const starting = async (start: () => Promise<void>): Promise<void> => {
    if (startingLoad) return;
    startingLoad = true;
    try {
      await start();
    } finally {
      startingLoad = false;
      render(); // the status line back from "Checking…" (a load that started says so itself)
    }
  };

  loadButton.addEventListener('click', async () => {
    const q = wantedQuantization(shared.form.value);
    if (!q) {
      status.className = 'status bad';
      status.textContent = 'Fix the hyperparameters first: the quantization follows peft_method and quantization.';
      return;
    }
    const s = sourceOf();
    if (typeof s === 'string') {
      status.className = 'status bad';
      status.textContent = s;
      return;
    }
    const hp = shared.form.value.hp;
    await starting(async () => {
      const streamLayers = await streamingNeeded(s.source, hp ? { ...hp } : null);
      void shared.loadModel(s.source, s.label, q, { streamLayers });
    });
  });

  /**
   * A model of the cache list, loaded as it was cached: its repository and revision in the Hugging Face tab (with the
   * token typed there, a gated repository's), and its quantization, which the form is set to (after the plan, so that
   * the demo, when loaded, does not follow the form into a reload of its own first).
   */
  const loadCached = async (m: HubReference & { quantization: Quantization }): Promise<void> => {
    select('hub');
    repo.value = m.repo;
    revision.value = m.revision ?? '';
    render();
    askPlan();
    const s = sourceOf();
    if (typeof s === 'string') return; // not reached: a cached Hub name is owner/name
    const v = formValuesForQuantization(m.quantization);
    const hp = shared.form.value.hp;
    await starting(async () => {
      const streamLayers = await streamingNeeded(s.source, hp ? { ...hp, peft_method: v.peft_method, quantization: m.quantization } : null);
      if (wantedQuantization(shared.form.value) !== m.quantization) hooks.useQuantization(m.quantization);
      void shared.loadModel(s.source, s.label, m.quantization, { streamLayers });
    });
  };

  const render = (): void => {
    const m = shared.model.value;
    const form = shared.form.value;
    const run = shared.run.value;
    const q = wantedQuantization(form);
    const busy = runBusy(run.phase) || m.status === 'loading';
    // A source that cannot be loaded as it stands (no files picked) disables Load and says why, instead of a button that
    // only answers after a click.
    const s = sourceOf();
    const why = busy ? null : typeof s === 'string' ? s : planBlock;
    loadButton.disabled = busy || why !== null;
    loadReason.textContent = why ?? '';
    loadReason.hidden = why === null;
    for (const t of tabs) t.disabled = busy;
    quantLine.replaceChildren(
      h('span', { class: 'hint' }, 'Base quantization for this run: '),
      h('span', { class: 'num' }, q ?? '—'),
      h('span', { class: 'hint' }, q && form.hp ? (form.raw.quantization === '' ? ` (peft_method ${form.hp.peft_method})` : ' (set in the form)') : ' (the form has errors)'),
    );

    bar.hidden = m.status !== 'loading';
    if (m.status === 'loading') {
      const p = m.progress;
      status.className = 'status';
      status.textContent = modelLoadingText(m.choice?.label ?? null, m.quantization);
      if (p) {
        bar.max = Math.max(1, p.bytesTotal);
        bar.value = p.bytesDone;
        progressText.textContent = loadProgressText(p, m.choice?.kind === 'files');
      } else progressText.textContent = 'Reading the header…';
    } else {
      progressText.textContent = '';
    }
    if (m.status === 'ready' && m.info) {
      const i = m.info;
      status.className = 'status ok';
      status.dataset.state = 'ready';
      status.dataset.fromCache = String(i.fromCache === true);
      status.textContent = modelLoadedText(i);
      failureLine.hidden = m.failure === null;
      failureLine.textContent = m.failure ? modelFailureText(m.failure, i.source) : '';
      replaceChildren(
        info,
        h(
          'dl',
          { class: 'facts' },
          ...modelFacts(i).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
        ),
      );
      replaceChildren(warnings, ...i.warnings.map((w) => h('li', { class: 'warn' }, w)));
    } else if (m.status === 'error' && m.error) {
      failureLine.hidden = true;
      status.className = 'status bad';
      delete status.dataset.state;
      // A model that was loaded and went with a lost GPU device is not a load that failed.
      status.textContent =
        m.error.lostWithDevice === true
          ? modelLostText(m.choice?.label ?? null, m.error.message, runLostDevice(shared.run.value))
          : `Could not load the model: ${m.error.message}`;
    } else if (m.status === 'none') {
      status.className = 'status';
      status.textContent = 'No model loaded.';
    }
    if (m.status !== 'ready') {
      delete status.dataset.state;
      delete status.dataset.fromCache;
      if (m.status !== 'error') replaceChildren(info);
    }

    const loadedQ = m.status === 'ready' ? m.info?.quantization : null;
    if (loadedQ && q && loadedQ !== q) {
      mismatch.hidden = false;
      replaceChildren(
        mismatch,
        `The model is loaded as ${loadedQ}, but this run needs ${q} (peft_method ${form.hp?.peft_method}). `,
        m.choice?.kind === 'demo' ? 'Reloading the demo model…' : 'Load the model again to train.',
      );
    } else mismatch.hidden = true;
  };

  shared.model.watch(render);
  shared.form.watch(render);
  shared.run.watch(render);
  // What Load would load changes with the tab, the picked files and the repository typed.
  for (const t of tabs) t.addEventListener('click', render);
  files.addEventListener('change', render);
  folderInput.addEventListener('change', render);
  repo.addEventListener('input', render);
  shared.memory.watch((m) => replaceChildren(memory, memoryView(m)));

  return h(
    'section',
    { class: 'panel half', id: 'panel-model' },
    h('h2', {}, 'Model'),
    h('div', { class: 'tabs', role: 'tablist' }, ...tabs),
    body,
    quantLine,
    h('label', { for: 'gpu-memory-gib', class: 'inline' }, 'GPU memory (GiB) ', gpuMemory),
    fit,
    h('div', { class: 'actions' }, loadButton),
    loadReason,
    bar,
    progressText,
    status,
    failureLine,
    mismatch,
    info,
    warnings,
    h('h3', {}, 'GPU memory'),
    memory,
    cachePanel(shared, { loadCached: (m) => void loadCached(m) }),
  );
}
