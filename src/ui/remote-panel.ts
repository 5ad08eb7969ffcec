// "Train on Replicate": the job configured on this page (the same form values and dataset) sent to Replicate's A100
// trainer through the proxy on this page's origin (src/server/replicate-proxy.ts), followed live, and its adapter
// loaded into the worker so Try it and Export use it. The flow itself is src/remote (the same code as the CLI); this
// panel holds the token, the job list and the live view.
//
// The token lives in memory. It is written to localStorage only if the user ticks "remember", with a warning. The job
// list (ids, destinations, statuses — never the token) is kept in localStorage so a reload can reattach. Logs from
// Replicate are shown as text (textContent), never as HTML.

import { createRemoteClient, validateToken, type RemoteClient } from '../remote/client.ts';
import type { TrainingStatus } from '../remote/answers.ts';
import { PROXY_API_PATH, PROXY_HELLO, PROXY_HELLO_PATH } from '../remote/endpoints.ts';
import { FinetuneError } from '../core/errors.ts';
import { visibleText } from '../core/quote.ts';
import { estimateRemoteCost } from '../remote/estimate.ts';
import { remoteSplit, trainedTokens } from '../remote/split.ts';
import { remoteTrainingSummary } from '../remote/provenance.ts';
import {
  cancelTraining,
  checkUploadSize,
  downloadOutput,
  ensureDestination,
  followTraining,
  getTraining,
  isDone,
  parseDestination,
  startTraining,
  trainingInput,
  uploadFile,
  viewTraining,
  type TrainingView,
} from '../remote/flow.ts';
import { afterDeviceLoss, dataBeingRead, dataUsable, settledData, type Cell, type DataFile, type Shared } from './state.ts';
import type { ImportedState } from './adapter-import-panel.ts';
import { h, replaceChildren } from './dom.ts';
import { errorParts } from './format.ts';
import { watchProxyAnswers } from './proxy-answers.ts';
import { loadRemoteForm, saveRemoteForm } from './remote-prefs.ts';
import { estimateLine, logViewText, retryLine, sendBlockedReason, sendFailedLine } from './remote-text.ts';

const JOBS_KEY = 'finetune.remote.jobs';
const TOKEN_KEY = 'finetune.remote.token';
const PROXY_KEY = 'finetune.remote.proxy';

/** A job as remembered across reloads: no token, nothing secret. */
export interface RemoteJob {
  id: string;
  destination: string;
  createdAt: string;
  status: TrainingStatus;
  error: string | null;
  elapsedS: number;
  costUsd: number;
}

function loadJobs(): RemoteJob[] {
  try {
    const v = JSON.parse(localStorage.getItem(JOBS_KEY) ?? '[]') as unknown;
    return Array.isArray(v) ? (v.filter((j) => j && typeof j.id === 'string' && /^[A-Za-z0-9]{1,64}$/.test(j.id)) as RemoteJob[]) : [];
  } catch {
    return [];
  }
}

function saveJobs(jobs: RemoteJob[]): void {
  localStorage.setItem(JOBS_KEY, JSON.stringify(jobs.slice(0, 50)));
}

/**
 * The job as recorded once `v` comes in (`known`: as recorded so far), or null when `v` is stale and changes nothing.
 * Answers arrive from Follow's polls, Cancel's reply and Send in any order: a Cancel reply saying "processing" can land
 * after Follow has seen "canceled". An unfinished status never replaces a finished one, since Replicate never restarts a
 * training and following has stopped: nothing would put the row right before a reload.
 */
export function mergedJob(known: RemoteJob | undefined, v: TrainingView, dest: string | undefined, now: Date): RemoteJob | null {
  if (known && isDone(known.status) && !v.done) return null;
  return {
    id: v.id,
    destination: dest ?? known?.destination ?? '',
    createdAt: known?.createdAt ?? now.toISOString(),
    status: v.status,
    error: v.error,
    elapsedS: v.elapsedS,
    costUsd: v.costUsd,
  };
}

/**
 * What Cancel says once its reply is taken: the status the row holds (`row`, after `mergedJob`), not the reply's.
 * A Cancel reply can be stale: sent while the training ran, it lands after Follow recorded "succeeded", and the row
 * keeps "succeeded". Quoting the reply ("is processing") would contradict the row beside it.
 */
export function cancelMessage(id: string, row: RemoteJob | undefined, reply: TrainingView): string {
  if (row && isDone(row.status) && row.status !== reply.status) return `Training ${id} had already ${row.status === 'aborted' ? 'been aborted' : row.status}: nothing to cancel.`;
  return `Training ${id} is ${visibleText(reply.status)}.`;
}

/**
 * How a followed training that did not succeed ended, in the status line. Its status and error are Replicate's words
 * (the trainer's exception): with visibleText's escapes, so that a line break or a bidirectional control in them
 * cannot make the line read as another.
 */
export function endedMessage(id: string, v: TrainingView): string {
  return `Training ${id} ${visibleText(v.status)}${v.error ? `: ${visibleText(v.error)}` : ''}`;
}

/** A job's row in the list, as text: its destination, status and error with visibleText's escapes (see endedMessage). */
export function jobRowTexts(j: RemoteJob): { dest: string; status: string; numbers: string; error: string } {
  return {
    dest: ` ${visibleText(j.destination)} · `,
    status: visibleText(j.status),
    numbers: ` · ${Math.round(j.elapsedS)} s · $${j.costUsd.toFixed(4)}`,
    error: j.error ? ` · ${visibleText(j.error)}` : '',
  };
}

/** Options for tests and automation: the browser tier shortens the polling. */
export interface RemotePanelOptions {
  pollMs?: number;
}

/**
 * The cost line while the training file's token counts are not there: it has errors, or is being read (again). The
 * file's name with visibleText's escapes: a bidirectional control in it would reorder the sentence.
 */
export function costPendingText(train: DataFile): string {
  const name = visibleText(train.file.name);
  return `Estimated cost: ${train.status === 'error' || train.report?.ok === false ? `${name} has errors (Dataset panel)` : `counting the tokens of ${name}…`}`;
}

export function remotePanel(shared: Shared, imported: Cell<ImportedState | null>, opts: RemotePanelOptions = {}): HTMLElement {
  // ?remote-poll-ms=N shortens the first polling interval (the browser tests use it); kept within 20 ms … 60 s.
  const asked = Number(opts.pollMs ?? new URLSearchParams(location.search).get('remote-poll-ms') ?? 2000);
  const pollMs = Number.isFinite(asked) ? Math.min(60_000, Math.max(20, asked)) : 2000;
  let token = localStorage.getItem(TOKEN_KEY) ?? '';
  let proxyOrigin = localStorage.getItem(PROXY_KEY) ?? location.origin;
  let proxyOk = false;
  let account: string | null = null;
  let jobs = loadJobs();
  let selected: string | null = jobs[0]?.id ?? null;
  const following = new Map<string, AbortController>();
  const logs = new Map<string, string>();
  let busy = false;

  // ---- elements ---------------------------------------------------------------------------------------------------
  const proxyStatus = h('p', { class: 'hint', 'data-testid': 'remote-proxy-status' }, 'Looking for the Replicate proxy…');
  const proxyInput = h('input', { type: 'url', placeholder: 'http://127.0.0.1:4173', 'data-testid': 'remote-proxy-base', 'aria-label': 'Proxy base URL' });
  const proxyUse = h('button', { type: 'button', class: 'secondary', 'data-testid': 'remote-proxy-use' }, 'Use this proxy');
  const proxyRow = h('div', { class: 'actions', hidden: true }, proxyInput, proxyUse);
  const tokenInput = h('input', { type: 'password', autocomplete: 'off', placeholder: 'r8_…', 'data-testid': 'remote-token', 'aria-label': 'Replicate API token' });
  tokenInput.value = token;
  const remember = h('input', { type: 'checkbox', 'data-testid': 'remote-remember', id: 'remote-remember' });
  remember.checked = localStorage.getItem(TOKEN_KEY) !== null;
  const rememberWarning = h('p', { class: 'hint warn', hidden: !remember.checked }, 'The token is stored unencrypted in this browser: any script on this origin and anyone using this browser profile can read it. Untick to forget it.');
  const checkToken = h('button', { type: 'button', class: 'secondary', 'data-testid': 'remote-check-token' }, 'Check token');
  // Live: the token check's outcome is said here only (the status line is cleared when the check ends).
  const accountOut = h('span', { class: 'hint', 'data-testid': 'remote-account', 'aria-live': 'polite' });
  const destination = h('input', { type: 'text', placeholder: 'owner/model-name', 'data-testid': 'remote-destination', 'aria-label': 'Destination model (owner/name)' });
  const visibility = h('select', { 'data-testid': 'remote-visibility', 'aria-label': 'Visibility of a new destination model' }, h('option', { value: 'private' }, 'private'), h('option', { value: 'public' }, 'public'));
  const savedForm = loadRemoteForm(localStorage);
  destination.value = savedForm.destination;
  visibility.value = savedForm.visibility;
  const estimate = h('p', { class: 'hint num', 'data-testid': 'remote-estimate' });
  const refusals = h('ul', { class: 'bad', 'data-testid': 'remote-refusals' });
  const splitWarning = h('p', { class: 'hint warn', 'data-testid': 'remote-split-warning', hidden: true });
  const send = h('button', { type: 'button', 'data-testid': 'remote-send' }, 'Train on Replicate');
  const status = h('p', { class: 'hint', 'data-testid': 'remote-status', role: 'status' });
  const sendReason = h('p', { class: 'hint', 'data-testid': 'remote-send-reason', hidden: true });
  const jobList = h('ul', { class: 'remote-jobs', 'data-testid': 'remote-jobs' });
  const noJobs = h('p', { class: 'hint', 'data-testid': 'remote-no-jobs' }, 'No jobs sent from this browser yet.');
  const logView = h('pre', { class: 'remote-logs', 'data-testid': 'remote-logs', 'aria-label': 'Training logs' });

  const say = (cls: string, text: string): void => {
    status.className = cls;
    status.textContent = text;
  };

  /** A client for one action; its fetch tells the proxy's own answers from Replicate's, for the retry line. */
  const client = (): RemoteClient => {
    const watched = watchProxyAnswers();
    return createRemoteClient({ token, apiBase: `${proxyOrigin}${PROXY_API_PATH}`, proxied: true, fetch: watched.fetch, onRetry: (r) => say('hint', retryLine(r, watched.last(), token)) });
  };

  // ---- the proxy ----------------------------------------------------------------------------------------------------
  /** Our proxy answers GET /replicate/hello itself (nothing reaches Replicate); anything else there is not our proxy. */
  const detectProxy = async (): Promise<void> => {
    proxyOk = false;
    try {
      const res = await fetch(`${proxyOrigin}${PROXY_HELLO_PATH}`, { cache: 'no-store' });
      const body = (await res.json().catch(() => null)) as { proxy?: string } | null;
      proxyOk = res.ok && body?.proxy === PROXY_HELLO.proxy;
    } catch {
      proxyOk = false;
    }
    const here = proxyOrigin === location.origin;
    if (proxyOk) {
      proxyStatus.className = 'hint ok';
      proxyStatus.textContent = here ? 'Replicate is reached through this server\'s proxy.' : `Replicate is reached through the proxy at ${proxyOrigin}.`;
    } else {
      proxyStatus.className = 'bad';
      proxyStatus.textContent = here
        ? 'This page is served without the Replicate proxy (static hosting), and Replicate\'s API cannot be called from a page directly. Run `npm run serve -- --allow-origin ' +
          location.origin +
          '` from a clone and give its address below.'
        : `No Replicate proxy answered at ${proxyOrigin} (or it does not allow pages from ${location.origin}: start it with --allow-origin ${location.origin}).`;
    }
    proxyRow.hidden = proxyOk && here;
    render();
  };
  proxyUse.addEventListener('click', () => {
    let u: URL;
    try {
      u = new URL(proxyInput.value.trim());
    } catch {
      proxyStatus.className = 'bad';
      proxyStatus.textContent = 'That is not a URL: give the proxy\'s address, e.g. http://127.0.0.1:4173';
      return;
    }
    proxyOrigin = u.origin;
    if (proxyOrigin === location.origin) localStorage.removeItem(PROXY_KEY);
    else localStorage.setItem(PROXY_KEY, proxyOrigin);
    void detectProxy();
  });

  // ---- the destination (kept across reloads like the other form values) -------------------------------------------
  const storeForm = (): void => saveRemoteForm(localStorage, { destination: destination.value.trim(), visibility: visibility.value === 'public' ? 'public' : 'private' }, token);
  destination.addEventListener('input', storeForm);
  visibility.addEventListener('change', storeForm);

  // ---- the token ----------------------------------------------------------------------------------------------------
  const storeToken = (): void => {
    if (remember.checked && token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  };
  tokenInput.addEventListener('input', () => {
    token = tokenInput.value.trim();
    account = null;
    accountOut.textContent = '';
    storeToken();
    storeForm(); // a token pasted into the destination field first is dropped from storage once the token is known
    render();
  });
  remember.addEventListener('change', () => {
    rememberWarning.hidden = !remember.checked;
    storeToken();
  });
  const ensureAccount = async (): Promise<string> => {
    if (account) return account;
    const a = await validateToken(client());
    account = a.username;
    accountOut.className = 'hint ok';
    accountOut.textContent = `Token works: ${a.username}`;
    if (!destination.value) {
      destination.value = `${a.username}/mistral-finetune`;
      storeForm();
    }
    return account;
  };
  // The check's outcome goes beside the button; the status line, which showed the check's progress and retries, is
  // cleared either way so that it never says "retrying" after the check has given up.
  checkToken.addEventListener('click', async () => {
    busy = true;
    render();
    say('hint', 'Checking the token…');
    try {
      await ensureAccount();
    } catch (e) {
      accountOut.className = 'bad';
      accountOut.textContent = errorParts(e).message;
    } finally {
      say('hint', '');
      busy = false;
      render();
    }
  });

  // ---- the estimate and what Replicate's trainer cannot do -------------------------------------------------------------
  const refreshEstimate = (): void => {
    const hp = shared.form.value.hp;
    const train = shared.data.value.train;
    replaceChildren(refusals);
    splitWarning.hidden = true;
    if (!hp) return void (estimate.textContent = 'Fix the hyperparameters first.');
    try {
      const placeholder = 'https://example.invalid/data.jsonl';
      trainingInput(hp, { train_data: placeholder, ...(shared.data.value.validation ? { validation_data: placeholder } : {}) });
    } catch (e) {
      const list = (e as { details?: { refusals?: unknown } }).details?.refusals;
      for (const r of Array.isArray(list) ? list : [errorParts(e).message]) refusals.append(h('li', {}, String(r)));
    }
    const lengths = train?.report?.rowLengths;
    if (!train) return void (estimate.textContent = 'Choose a training file to see the estimated cost.');
    if (lengths === undefined || lengths === null) {
      // A file being read again (the layout or max_seq_len changed) is not a missing file.
      return void (estimate.textContent = costPendingText(train));
    }
    // Replicate's validation split, said as the CLI says it: a job that would train on nothing is one more refusal
    // (Send stays disabled, sendBlockedReason points at the list), fewer rows trained than validated is a warning.
    const rows = train.report?.summary.rows ?? 0;
    const split = remoteSplit(rows, hp, !!shared.data.value.validation);
    if (split.refusal) refusals.append(h('li', {}, split.refusal));
    splitWarning.textContent = split.warning ?? '';
    splitWarning.hidden = split.warning === null;
    // The tokens of the rows Replicate's trainer keeps, each cut where it cuts (not the file's total scaled by the share
    // of rows kept, which said 2,831 of the sample's where the Training panel counted 2,881 for the same rows).
    const trained = trainedTokens(lengths, split);
    const est = estimateRemoteCost({ tokens: trained, epochs: hp.num_train_epochs, peftMethod: hp.peft_method });
    estimate.textContent = estimateLine(est, trained, hp.num_train_epochs);
    estimate.title = est.basis;
  };

  // ---- jobs ---------------------------------------------------------------------------------------------------------
  /** Takes `v` into the list; returns the row as it now stands (unchanged when `v` was stale). */
  const upsertJob = (v: TrainingView, dest?: string): RemoteJob | undefined => {
    const i = jobs.findIndex((j) => j.id === v.id);
    const job = mergedJob(jobs[i], v, dest, new Date());
    if (!job) return jobs[i]; // stale: its logs are older too
    if (i >= 0) jobs[i] = job;
    else jobs.unshift(job);
    saveJobs(jobs);
    logs.set(v.id, v.logs);
    renderJobs();
    return job;
  };

  const importResult = async (id: string): Promise<void> => {
    if (shared.model.value.status !== 'ready') return say('bad', 'Load a model first: the adapter is checked against it.');
    busy = true;
    render();
    try {
      say('hint', `Downloading the adapter of ${id}…`);
      const c = client();
      // Checked as every other answer is: an answer that is not a training says so, naming the call.
      const training = await getTraining(c, id);
      const v = viewTraining(training);
      if (!v.weights) throw new Error(`training ${id} has no output weights (${visibleText(v.status)})`);
      const zip = await downloadOutput(c, v.weights, { proxyOrigin });
      say('hint', 'Reading the adapter…');
      // The training's inputs go with it, for the README of an export of it.
      const info = await shared.engine.importAdapter({ kind: 'zip', name: `${id}-training_output.zip`, bytes: zip, trainedOn: remoteTrainingSummary(training) });
      imported.set({ info, current: true });
      say('hint ok', `Loaded the adapter of ${id} (r ${info.r}, ${info.targetModules.join(', ')}): Try it and Export use it.`);
      shared.refreshMemory();
    } catch (e) {
      say('bad', `Could not load the adapter of ${id}: ${errorParts(e).message}`);
      // Uploading it met a lost device: the worker dropped it, the model and the adapter it held with it.
      afterDeviceLoss(shared, e);
    } finally {
      busy = false;
      render();
    }
  };

  const follow = async (id: string, autoImport: boolean): Promise<void> => {
    if (following.has(id)) return;
    const ac = new AbortController();
    following.set(id, ac);
    renderJobs();
    try {
      const end = await followTraining(client(), id, {
        signal: ac.signal,
        minDelayMs: pollMs,
        maxDelayMs: Math.max(pollMs, 30_000),
        resumeHint: 'Follow picks it up again',
        onTrouble: ({ waitMs }) => say('hint', `No answer about ${id} for now; still following, next try in ${Math.round(waitMs / 1000)} s (the training goes on either way).`),
        onUpdate: (v) => upsertJob(v),
      });
      const v = viewTraining(end);
      if (v.status === 'succeeded') {
        // Only a job sent from this page, followed since, is loaded by itself: one followed again (Follow, a reload) may
        // be of another model, or come while this page has moved on, and loading it would replace the current adapter.
        say('hint ok', `Training ${id} succeeded (${Math.round(v.elapsedS)} s, $${v.costUsd.toFixed(2)}).${autoImport ? '' : ' Press “Load into this page” on its row to use its adapter here.'}`);
        if (autoImport) await importResult(id);
      } else say('bad', endedMessage(id, v));
    } catch (e) {
      if (!ac.signal.aborted) {
        const m = errorParts(e).message;
        say('bad', `Lost track of ${id}: ${m}${m.includes('Follow picks it up again') ? '' : ' (Follow picks it up again).'}`);
      }
    } finally {
      following.delete(id);
      renderJobs();
    }
  };

  const cancel = async (id: string): Promise<void> => {
    try {
      const v = viewTraining(await cancelTraining(client(), id));
      say('hint', cancelMessage(id, upsertJob(v), v));
    } catch (e) {
      say('bad', errorParts(e).message);
    }
  };

  send.addEventListener('click', async () => {
    // Busy from the click on, so that a second click while the dataset is read again sends no second job.
    if (busy) return;
    busy = true;
    render();
    try {
      if (dataBeingRead(shared.data.value)) say('hint', 'Waiting for the dataset, which is being read again for the changed settings…');
      const d = await settledData(shared.data);
      const hp = shared.form.value.hp;
      const report = d.train?.report;
      if (!hp || !d.train || !report || !dataUsable(d)) {
        say('bad', 'Fix the hyperparameters and the dataset first: the same checks as for local training apply.');
        return;
      }
      const dest = parseDestination(destination.value.trim());
      checkUploadSize(d.train.file.size, d.train.file.name);
      if (d.validation) checkUploadSize(d.validation.file.size, d.validation.file.name);
      const placeholder = 'https://example.invalid/data.jsonl';
      trainingInput(hp, { train_data: placeholder, ...(d.validation ? { validation_data: placeholder } : {}) });
      const split = remoteSplit(report.summary.rows, hp, !!d.validation);
      if (split.refusal) throw new FinetuneError('bad-input', split.refusal);
      say('hint', 'Checking the token…');
      await ensureAccount();
      const c = client();
      say('hint', `Checking the destination ${dest.owner}/${dest.name}…`);
      const { created } = await ensureDestination(c, dest, { visibility: visibility.value === 'public' ? 'public' : 'private' });
      say('hint', 'Uploading the training data…');
      const train = await uploadFile(c, new Uint8Array(await d.train.file.arrayBuffer()), d.train.file.name);
      const validation = d.validation ? await uploadFile(c, new Uint8Array(await d.validation.file.arrayBuffer()), d.validation.file.name) : null;
      // An answer lost after Replicate started the training comes back adopted (found in its list): shown and saved
      // as this send's job like any other, so a second send does not start a second billed training.
      const { training, adopted } = await startTraining(c, {
        destination: dest,
        hp,
        files: { train_data: train.urls.get, ...(validation ? { validation_data: validation.urls.get } : {}) },
        checkWhere: 'https://replicate.com/trainings',
      });
      selected = training.id;
      upsertJob(viewTraining(training), `${dest.owner}/${dest.name}`);
      say('hint', `Started ${training.id}${created ? ` (created the ${visibility.value} model ${dest.owner}/${dest.name})` : ''}${adopted ? ' (Replicate’s answer was lost; found it among your recent trainings)' : ''}.`);
      void follow(training.id, true);
    } catch (e) {
      say('bad', sendFailedLine(e));
    } finally {
      busy = false;
      render();
    }
  });

  // ---- rendering ----------------------------------------------------------------------------------------------------
  // Rows are made once per job and updated in place: polling re-renders every few milliseconds in tests, and a row
  // rebuilt each time would never hold still long enough to be clicked.
  interface Row {
    li: HTMLLIElement;
    dest: HTMLSpanElement;
    status: HTMLElement;
    numbers: HTMLSpanElement;
    error: HTMLSpanElement;
    follow: HTMLButtonElement;
    cancel: HTMLButtonElement;
    load: HTMLButtonElement;
  }
  const rows = new Map<string, Row>();
  const makeRow = (id: string): Row => {
    const pick = h('button', { type: 'button', class: 'link', 'data-testid': 'remote-job-select' }, id);
    pick.addEventListener('click', () => {
      selected = id;
      renderJobs();
    });
    const r: Row = {
      li: h('li', { 'data-testid': 'remote-job', 'data-id': id }),
      dest: h('span', {}),
      status: h('strong', { 'data-testid': 'remote-job-status' }),
      numbers: h('span', { class: 'num' }),
      error: h('span', { class: 'bad' }),
      follow: h('button', { type: 'button', class: 'secondary', 'data-testid': 'remote-job-follow' }, 'Follow'),
      cancel: h('button', { type: 'button', class: 'secondary', 'data-testid': 'remote-job-cancel' }, 'Cancel'),
      load: h('button', { type: 'button', class: 'secondary', 'data-testid': 'remote-job-import' }, 'Load into this page'),
    };
    r.follow.addEventListener('click', () => {
      selected = id;
      void follow(id, false);
    });
    r.cancel.addEventListener('click', () => void cancel(id));
    r.load.addEventListener('click', () => void importResult(id));
    r.li.append(pick, r.dest, r.status, r.numbers, r.error, h('span', { class: 'actions' }, r.follow, r.cancel, r.load));
    return r;
  };

  const renderJobs = (): void => {
    const usable = Boolean(token) && proxyOk;
    noJobs.hidden = jobs.length > 0;
    jobs.forEach((j, i) => {
      let r = rows.get(j.id);
      if (!r) rows.set(j.id, (r = makeRow(j.id)));
      const live = following.has(j.id);
      const done = isDone(j.status);
      r.li.dataset.status = j.status;
      r.li.className = j.id === selected ? 'selected' : '';
      const texts = jobRowTexts(j);
      r.dest.textContent = texts.dest;
      r.status.textContent = texts.status;
      r.numbers.textContent = texts.numbers;
      r.error.textContent = texts.error;
      r.follow.textContent = live ? 'Following…' : 'Follow';
      r.follow.disabled = live || done || !usable;
      r.cancel.disabled = done || !usable;
      r.load.disabled = j.status !== 'succeeded' || busy || !usable;
      if (jobList.children[i] !== r.li) jobList.insertBefore(r.li, jobList.children[i] ?? null);
    });
    for (const [id, r] of rows) {
      if (!jobs.some((j) => j.id === id)) {
        r.li.remove();
        rows.delete(id);
      }
    }
    const held = selected ? logs.get(selected) : undefined;
    const text = selected ? (held !== undefined ? logViewText(held) : (jobs.some((j) => j.id === selected) ? '(press Follow to see the logs)' : '')) : '';
    if (logView.textContent !== text) {
      logView.textContent = text;
      logView.scrollTop = logView.scrollHeight;
    }
  };

  const render = (): void => {
    checkToken.disabled = busy || !token || !proxyOk;
    const why = sendBlockedReason({ busy, proxyOk, token: !!token, hyperparams: !!shared.form.value.hp, dataOk: dataUsable(shared.data.value), refused: refusals.childElementCount > 0 });
    send.disabled = busy || why !== null;
    sendReason.textContent = why ?? '';
    sendReason.hidden = why === null;
    renderJobs();
  };

  shared.form.watch(() => (refreshEstimate(), render()));
  shared.data.watch(() => (refreshEstimate(), render()));

  const element = h(
    'section',
    { class: 'panel', id: 'panel-remote' },
    h('h2', {}, 'Train on Replicate'),
    h('p', { class: 'hint' }, "The same job — this form's hyperparameters and this dataset — on Replicate's trainer for mistral-7b-instruct-v0.2 (an A100 80 GB at $0.0014/s). The adapter comes back into this page."),
    proxyStatus,
    proxyRow,
    h('div', { class: 'field' }, h('label', {}, 'API token ', tokenInput), checkToken, accountOut),
    h('div', { class: 'field' }, h('label', { for: 'remote-remember' }, remember, ' Remember the token in this browser')),
    rememberWarning,
    h('div', { class: 'field' }, h('label', {}, 'Destination model ', destination), h('label', {}, ' new model: ', visibility)),
    estimate,
    splitWarning,
    refusals,
    h('div', { class: 'actions' }, send),
    sendReason,
    status,
    h('h3', {}, 'Jobs'),
    noJobs,
    jobList,
    logView,
  );

  // Reattach: with a remembered token, unfinished jobs are followed again at once.
  void detectProxy().then(() => {
    if (!proxyOk || !token) return;
    // Unfinished: starting, processing, or a status this version does not know (taken as not finished).
    for (const j of jobs) if (!isDone(j.status)) void follow(j.id, false);
  });
  refreshEstimate();
  render();
  return element;
}
