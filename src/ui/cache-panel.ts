// The model panel's "Cached models" section: the quantised weights this browser keeps (the worker's weight cache in
// the origin-private file system), each with its source, quantisation, size and date and a Delete button; the total;
// the site's usage against the browser's quota; and persistent storage, which only the page can ask for
// (navigator.storage.persist() exists on a window, not in the worker). Without it the browser may evict the cache
// under storage pressure: the models are then downloaded again. A model from the Hub has a Load button: its
// repository and revision go into the Hugging Face tab and it loads as it was cached (the model panel's loadCached).

import type { CachedModel, Quantization, StorageInfo } from '../worker/api.ts';
import { parseHubReference, type HubReference } from '../core/hub-reference.ts';
import { visibleText } from '../core/quote.ts';
import { formatBytes } from '../core/units.ts';
import { h, replaceChildren } from './dom.ts';
import { errorParts, formatDateTime, quantizationLabel } from './format.ts';
import { formValuesForQuantization, runBusy, wantedQuantization, type Shared } from './state.ts';

const INTRO =
  'The weights of each model you load, as loaded (NF4-quantised or not), are kept in this browser, so loading the same model again neither downloads nor quantises anything. Load loads a Hugging Face model again as it was cached (with the token typed in its tab).';
const NOT_PERSISTENT = 'Storage is not persistent: when the disk runs low, the browser may delete the cached models without asking (their next load then reads the files again).';
const PERSISTENT = 'Storage is persistent: the browser will not delete the cached models to free space; only you can, here or in its site settings.';
const DECLINED =
  'The browser declined. Browsers grant it to sites you use often, bookmark or install, or (Firefox) when you allow it; until then the cached models may be deleted under storage pressure.';

/**
 * A cached model in words, for its Delete button and the questions about it. Its name (a folder's, a Hub repository's)
 * with visibleText's escapes: a bidirectional control in it would reorder the sentence around it.
 */
export function cachedModelText(e: Pick<CachedModel, 'source' | 'quantization'>): string {
  return `${e.source === undefined ? 'an unreadable entry' : visibleText(e.source)}${e.quantization ? ` (${quantizationLabel(e.quantization)})` : ''}`;
}

/** The name a cached model's row shows: as cachedModelText, or what to do with an entry that cannot be read. */
export function cachedModelName(e: Pick<CachedModel, 'source'>): string {
  return e.source === undefined ? 'an unreadable entry (damaged, or from an older version of this app): delete it' : visibleText(e.source);
}

/**
 * The Hub repository (and revision) a cached model can be loaded from again, or null: entries of picked files (their
 * names are a folder's, or "local files (…)", never owner/name) and of the demo are loaded from their own tabs.
 */
export function cachedHubModel(e: Pick<CachedModel, 'source' | 'quantization'>): (HubReference & { quantization: Quantization }) | null {
  const ref = e.source === undefined ? null : parseHubReference(e.source);
  return ref && e.quantization ? { ...ref, quantization: e.quantization } : null;
}

/**
 * What Load asks first when the cached weights are not the quantization the form asks for: loading them sets the
 * form to theirs (else the cache would be missed and the files read again).
 */
export function cachedLoadQuestion(cached: Quantization, wanted: Quantization | null): string {
  const v = formValuesForQuantization(cached);
  const sets = `peft_method ${v.peft_method}${v.quantization ? ` and quantization ${v.quantization}` : ''}`;
  const asked = wanted === null ? 'the hyperparameters have errors' : `the hyperparameters ask for ${quantizationLabel(wanted)}`;
  return `These weights are cached ${quantizationLabel(cached)}; ${asked}. Loading them sets ${sets} in the form.`;
}

export interface CachePanelHooks {
  /** Loads a cached Hub model as it was cached: its repository and revision, its quantization (the form set to it). */
  loadCached(model: HubReference & { quantization: Quantization }): void;
}

export function cachePanel(shared: Shared, hooks: CachePanelHooks): HTMLElement {
  const list = h('ul', { class: 'cache-list', 'data-testid': 'cache-list' });
  const total = h('p', { class: 'hint num', 'data-testid': 'cache-total' });
  const usage = h('p', { class: 'hint num', 'data-testid': 'storage-usage' });
  // The same as a bar: how full this site's share of the disk is, at a glance.
  const usageBar = h('meter', { class: 'storage-meter', min: 0, 'data-testid': 'storage-meter', 'aria-label': "This site's storage used, of its quota", hidden: true });
  const persistState = h('p', { class: 'hint', 'data-testid': 'storage-persist-state' });
  const persistButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'storage-persist', hidden: true }, 'Keep cached models (persistent storage)');
  const unavailable = h('p', { class: 'warn', 'data-testid': 'cache-unavailable', hidden: true });
  const problem = h('p', { class: 'bad', role: 'alert', 'data-testid': 'cache-problem', hidden: true });
  let entries: CachedModel[] = [];
  /** The entry whose Delete (or Load, with another quantization than the form's) asks to be confirmed, by key. */
  let confirming: { key: string; action: 'delete' | 'load' } | null = null;
  let deleting = false;
  /** The browser said no to persist() on this page: keep saying so (and why it matters) after each refresh. */
  let declined = false;

  const say = (text: string | null): void => {
    problem.hidden = text === null;
    problem.textContent = text ?? '';
  };
  /** A load may be reading or writing an entry: deleting waits until it is done. */
  const locked = (): boolean => deleting || shared.model.value.status === 'loading';
  /** A run holds the model: nothing else loads until it ends. */
  const loadLocked = (): boolean => locked() || runBusy(shared.run.value.phase);
  /** The entry is the model on the GPU now (same name, same quantization). */
  const isLoaded = (e: CachedModel): boolean => {
    const m = shared.model.value;
    return m.status === 'ready' && m.info !== null && m.info.source === e.source && m.info.quantization === e.quantization;
  };

  const describe = cachedModelText;
  /**
   * Focuses a button of an entry's row after it was drawn again: a question's safe answer when it is asked, the button
   * that asked it when it is answered no.
   */
  const focusInRow = (key: string, testid: string): void => {
    list.querySelector<HTMLButtonElement>(`li[data-key="${key}"] [data-testid="${testid}"]`)?.focus();
  };

  const renderList = (): void => {
    const rows = entries.map((e) => {
      const del = h('button', { type: 'button', class: 'secondary danger', 'data-testid': 'cache-delete', 'aria-label': `Delete the cached ${describe(e)}`, disabled: locked() }, 'Delete');
      del.addEventListener('click', () => {
        confirming = { key: e.key, action: 'delete' };
        renderList();
        // The safe answer has the focus: an Enter pressed on deletes nothing.
        focusInRow(e.key, 'cache-keep');
      });
      const hub = cachedHubModel(e);
      const loaded = isLoaded(e);
      const load = hub && !loaded ? h('button', { type: 'button', class: 'secondary', 'data-testid': 'cache-load', 'aria-label': `Load ${describe(e)} from the cache`, disabled: loadLocked() }, 'Load') : null;
      load?.addEventListener('click', () => {
        if (!hub || loadLocked()) return;
        if (wantedQuantization(shared.form.value) === hub.quantization) {
          confirming = null;
          hooks.loadCached(hub);
          return;
        }
        confirming = { key: e.key, action: 'load' };
        renderList();
        focusInRow(e.key, 'cache-confirm-load');
      });
      const asking = confirming?.key === e.key ? confirming.action : null;
      const row = h(
        'li',
        { 'data-key': e.key },
        h('span', { class: 'cache-name' }, cachedModelName(e)),
        h('span', { class: 'hint num' }, [e.quantization ? quantizationLabel(e.quantization) : null, formatBytes(e.bytes), e.writtenAt !== undefined ? formatDateTime(e.writtenAt) : null, loaded ? 'loaded now' : null].filter(Boolean).join(' · ')),
        // Load and Delete kept together at the row's end (apart, a wrapped row put Delete under the name).
        asking === null ? h('span', { class: 'cache-actions' }, load, del) : null,
      );
      if (asking === 'load' && hub) {
        const yes = h('button', { type: 'button', 'data-testid': 'cache-confirm-load', disabled: loadLocked() }, 'Set and load');
        const no = h('button', { type: 'button', class: 'secondary', 'data-testid': 'cache-cancel-load', 'data-escape': true }, 'Cancel');
        yes.addEventListener('click', () => {
          if (loadLocked()) return;
          confirming = null;
          renderList();
          hooks.loadCached(hub);
        });
        no.addEventListener('click', () => {
          confirming = null;
          renderList();
          focusInRow(e.key, 'cache-load');
        });
        row.append(h('div', { class: 'confirm', role: 'alertdialog' }, h('p', {}, cachedLoadQuestion(hub.quantization, wantedQuantization(shared.form.value))), h('div', { class: 'actions' }, yes, no)));
      }
      if (asking === 'delete') {
        const yes = h('button', { type: 'button', class: 'danger', 'data-testid': 'cache-confirm-delete', disabled: locked() }, 'Delete');
        const no = h('button', { type: 'button', class: 'secondary', 'data-testid': 'cache-keep', 'data-escape': true }, 'Keep');
        yes.addEventListener('click', () => void remove(e));
        no.addEventListener('click', () => {
          confirming = null;
          renderList();
          focusInRow(e.key, 'cache-delete');
        });
        row.append(
          h('div', { class: 'confirm', role: 'alertdialog' }, h('p', {}, `Delete the cached weights of ${describe(e)}, ${formatBytes(e.bytes)}? The next load of this model reads its files again (a download, for a model from the Hub).`), h('div', { class: 'actions' }, yes, no)),
        );
      }
      return row;
    });
    replaceChildren(list, ...rows);
    const sum = entries.reduce((a, e) => a + e.bytes, 0);
    total.textContent = entries.length === 0 ? 'Nothing cached yet.' : `${entries.length} cached ${entries.length === 1 ? 'model' : 'models'} · ${formatBytes(sum)} in all`;
  };

  const renderStorage = (s: StorageInfo): void => {
    usage.textContent =
      s.usage !== null && s.quota !== null ? `${formatBytes(s.usage)} of ${formatBytes(s.quota)} used by this site (the browser's quota for it).` : 'This browser does not say how much storage this site may use.';
    const shown = s.usage !== null && s.quota !== null && s.quota > 0 ? { usage: s.usage, quota: s.quota } : null;
    usageBar.hidden = shown === null;
    // Past 80 % the browser may soon refuse a model's entry (the load says so): the bar turns to the warning colour.
    if (shown) Object.assign(usageBar, { max: shown.quota, value: Math.min(shown.usage, shown.quota), high: 0.8 * shown.quota, optimum: 0 });
    unavailable.hidden = s.cacheUnavailable === null;
    unavailable.textContent = s.cacheUnavailable ? `Models are not cached: ${s.cacheUnavailable}. Each load downloads the weights again.` : '';
    persistState.textContent = s.persisted === null ? 'This browser does not say whether storage is persistent.' : s.persisted ? PERSISTENT : declined ? DECLINED : NOT_PERSISTENT;
    persistButton.hidden = s.persisted !== false || typeof navigator.storage?.persist !== 'function';
  };

  let refreshing = 0;
  const refresh = async (): Promise<void> => {
    const asked = ++refreshing;
    try {
      const [got, storage] = await Promise.all([shared.engine.listCachedModels(), shared.engine.storageInfo()]);
      if (asked !== refreshing) return;
      entries = got;
      if (confirming && !entries.some((e) => e.key === confirming?.key)) confirming = null;
      say(null);
      renderList();
      renderStorage(storage);
    } catch (e) {
      if (asked === refreshing) say(`Could not read the cached models: ${errorParts(e).message}`);
    }
  };

  const remove = async (e: CachedModel): Promise<void> => {
    if (locked()) return;
    deleting = true;
    renderList();
    let failure: string | null = null;
    try {
      await shared.engine.deleteCachedModel(e.key);
      confirming = null;
    } catch (err) {
      failure = `Could not delete ${describe(e)}: ${errorParts(err).message}`;
    }
    deleting = false;
    await refresh();
    if (failure) say(failure);
  };

  persistButton.addEventListener('click', async () => {
    persistButton.disabled = true;
    try {
      const granted = await navigator.storage.persist();
      declined = !granted;
      persistState.textContent = granted ? PERSISTENT : DECLINED;
      persistButton.hidden = granted;
    } catch (e) {
      persistState.textContent = `The browser could not be asked: ${errorParts(e).message}`;
    } finally {
      persistButton.disabled = false;
    }
  });

  // After a load (it may have written, rebuilt or dropped an entry) and while one runs (Delete waits for it).
  // Any other change of the model (a lost device, a failed load) moves the "loaded now" mark; a run going or ending
  // disables or enables Load.
  let lastStatus = shared.model.value.status;
  let lastInfo = shared.model.value.info;
  shared.model.watch((m) => {
    if (m.status !== lastStatus || m.info !== lastInfo) {
      if (lastStatus === 'loading' && m.status !== 'loading') void refresh();
      else renderList();
    }
    lastStatus = m.status;
    lastInfo = m.info;
  });
  let lastBusy = runBusy(shared.run.value.phase);
  shared.run.watch((r) => {
    if (runBusy(r.phase) === lastBusy) return;
    lastBusy = !lastBusy;
    renderList();
  });
  void refresh();
  // Another tab of this page shares the cache: what it loaded or deleted shows here when this tab is looked at again
  // (the list once kept an entry another tab had deleted).
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible' && shared.model.value.status !== 'loading') void refresh();
  });
  window.addEventListener('focus', () => {
    if (shared.model.value.status !== 'loading') void refresh();
  });

  return h(
    'div',
    { class: 'cache', 'data-testid': 'cache-panel' },
    h('h3', {}, 'Cached models'),
    h('p', { class: 'hint' }, INTRO),
    list,
    total,
    usageBar,
    usage,
    persistState,
    h('div', { class: 'actions' }, persistButton),
    unavailable,
    problem,
  );
}
