// Remote training, step by step, the same for the CLI and the page: check the data here, upload it, make sure the
// destination model exists, start the training on the pinned base version, follow it (status, growing logs, elapsed
// time, cost) with polling that backs off, cancel, and bring the weights home. docs/remote.md describes the calls.

import type { FileObject, Training } from 'replicate';
import { readAtMost } from '../core/bytes.ts';
import { FinetuneError } from '../core/errors.ts';
import { holdsTokenLike } from '../core/secret-text.ts';
import { toReplicateInput, type ReplicateTrainingInput } from '../config/replicate.ts';
import type { Hyperparams } from '../config/hyperparams.ts';
import { answerOf, type RemoteClient } from './client.ts';
import { checkFileObject, checkTraining, checkTrainingPage, predictSeconds, TRAINING_ID, type TrainingStatus } from './answers.ts';
import { PROXY_DOWNLOAD_PATH, isDownloadAllowed } from './endpoints.ts';
import { abortableSleep } from './http.ts';
import { quote, visibleText } from '../core/quote.ts';
import { formatBytes } from '../core/units.ts';
import { networkWhy, OUTPUT_DOWNLOAD_CALL } from './errors.ts';

/** The trainer remote mode drives (docs/replicate-trainer.md): Mistral-7B-Instruct v0.2 on an A100 80 GB. */
export const BASE_MODEL = 'mistralai/mistral-7b-instruct-v0.2';
export const BASE_VERSION = '79052a3adbba8116ebc6697dcba67ad0d58feff23e7aeb2f103fc9aa545f9269';
/** Replicate's price for the A100 80 GB the trainer runs on, in US dollars per second. */
export const PRICE_PER_SECOND = 0.0014;
/** Replicate's files API takes files "less than 100MB"; refused here at 100 MB (10^8 bytes) and up. */
export const MAX_UPLOAD_BYTES = 100_000_000;

export type Visibility = 'public' | 'private';
export const DEFAULT_HARDWARE = 'gpu-a100-large';
const NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/i;

export interface Destination {
  owner: string;
  name: string;
}

/** "owner/name" → its parts, or a clear refusal. */
export function parseDestination(s: string): Destination {
  // Never echoed when it looks like a token (one pasted into the wrong field came back in the page's error line).
  if (holdsTokenLike(s)) throw new FinetuneError('bad-input', 'the destination looks like an API token, not owner/name: give the model to train into, e.g. alice/mistral-support-bot, and the token in its own field');
  const parts = s.split('/');
  if (parts.length !== 2 || !NAME.test(parts[0]) || !NAME.test(parts[1])) {
    throw new FinetuneError('bad-input', `destination ${quote(s)} must be owner/name (letters, digits, ".", "_" and "-"), e.g. alice/mistral-support-bot`);
  }
  return { owner: parts[0], name: parts[1] };
}

/** Refuses what Replicate's files API would refuse, before a byte is sent. */
export function checkUploadSize(bytes: number, what: string): void {
  if (bytes >= MAX_UPLOAD_BYTES) {
    // `what` is the file's name as picked or given, the message's subject: with visibleText's escapes, not quoted.
    throw new FinetuneError('bad-input', `${visibleText(what)} is ${(bytes / 1e6).toFixed(1)} MB; Replicate's files API takes files under 100 MB. Make it smaller (fewer or shorter rows), or train locally.`, { bytes });
  }
}

/** Uploads one file (POST /files) and returns the URL Replicate's trainer fetches it from (urls.get). */
export async function uploadFile(c: RemoteClient, bytes: Uint8Array, filename: string, signal?: AbortSignal): Promise<FileObject> {
  checkUploadSize(bytes.byteLength, filename);
  const blob = new File([bytes as Uint8Array<ArrayBuffer>], filename, { type: 'application/jsonl' });
  return checkFileObject(await c.replicate.files.create(blob, { purpose: 'finetune training data' }, { signal }), answerOf(c, 'POST', '/files'));
}

/**
 * Makes sure the destination model exists: GET it, and on 404 create it (private unless told otherwise). Returns
 * whether it was created.
 */
export async function ensureDestination(c: RemoteClient, dest: Destination, opts: { visibility?: Visibility; hardware?: string; create?: boolean } = {}): Promise<{ created: boolean }> {
  try {
    await c.replicate.models.get(dest.owner, dest.name);
    return { created: false };
  } catch (e) {
    if (!(e instanceof FinetuneError) || e.details?.status !== 404) throw e;
  }
  if (opts.create === false) throw new FinetuneError('bad-input', `the destination model ${dest.owner}/${dest.name} does not exist on Replicate`);
  await c.replicate.models.create(dest.owner, dest.name, {
    visibility: opts.visibility ?? 'private',
    hardware: opts.hardware ?? DEFAULT_HARDWARE,
    description: 'LoRA adapter fine-tuned from mistral-7b-instruct-v0.2',
  });
  return { created: true };
}

export interface StartOptions {
  destination: Destination;
  hp: Hyperparams;
  /** URLs of the uploaded data. */
  files: { train_data: string; validation_data?: string };
  /** owner/name:version of the base; default the pinned mistral-7b-instruct-v0.2 version. */
  base?: { model: string; version: string };
  signal?: AbortSignal;
  /**
   * Where a person checks whether a send whose answer was lost started a training: default the command line's list and
   * Replicate's page of trainings; the page, whose user may have no command line, gives the web page alone.
   */
  checkWhere?: string;
}

const CHECK_WHERE = 'finetune remote list, or https://replicate.com/trainings';

/** The training `input` for these hyperparameters (extras stripped or refused with toReplicateInput's reasons). */
export function trainingInput(hp: Hyperparams, files: StartOptions['files']): { input: ReplicateTrainingInput; notes: string[] } {
  return toReplicateInput(hp, files);
}

/**
 * POST /models/{base}/versions/{version}/trainings. A failure that leaves unclear whether Replicate acted on it (the
 * connection lost before the answer, a 5xx) is never reported as "not sent": Replicate may have created — and will bill —
 * the training. The recent trainings (GET /trainings, newest first) are then looked through for this one (same base
 * version, same uploaded train_data URL, which no other send uses, created since this send began): found, it is
 * returned with `adopted: true`; not found, or the list unreadable, the error says the training may have started and how
 * to check, instead of "try again" (a second send starts a second billed training).
 */
export async function startTraining(c: RemoteClient, o: StartOptions): Promise<{ training: Training; notes: string[]; adopted?: boolean }> {
  const { input, notes } = trainingInput(o.hp, o.files);
  const [owner, name] = (o.base?.model ?? BASE_MODEL).split('/');
  const version = o.base?.version ?? BASE_VERSION;
  const destination = `${o.destination.owner}/${o.destination.name}` as const;
  const since = Date.now();
  let created: Training;
  try {
    created = await c.replicate.trainings.create(owner, name, version, { destination, input, signal: o.signal });
  } catch (e) {
    if (!isUnclearFailure(e) || o.signal?.aborted) throw e;
    let found: Training | null = null;
    let listed = true;
    try {
      found = await findStartedTraining(c, { version, trainData: input.train_data, destination, since, signal: o.signal });
    } catch {
      listed = false;
    }
    if (found) return { training: found, notes, adopted: true };
    throw maybeStartedError(e as FinetuneError, destination, listed, o.checkWhere ?? CHECK_WHERE);
  }
  return { training: checkTraining(created, answerOf(c, 'POST', `/models/${owner}/${name}/versions/${version}/trainings`)), notes };
}

/** A failure after which the request may still have been acted on: no answer at all, or a server error. */
function isUnclearFailure(e: unknown): e is FinetuneError {
  if (!(e instanceof FinetuneError)) return false;
  if (e.kind === 'network') return true;
  const status = e.details?.status;
  return typeof status === 'number' && status >= 500;
}

/** How far Replicate's clock may be behind ours and a training still count as created by this send. */
const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * The training a send created, from the first page of GET /trainings (newest first; 100 of them): the same base version,
 * the same train_data URL (an upload of this send: no other training uses it), the destination when the answer names one,
 * and created since `since` (less a clock skew allowance). Null when there is none; an answer that is not a list of
 * trainings throws (checkTrainingPage), so that the caller says the list could not be read rather than "not found".
 */
export async function findStartedTraining(c: RemoteClient, o: { version: string; trainData: string; destination: string; since: number; signal?: AbortSignal }): Promise<Training | null> {
  const results = checkTrainingPage(await c.replicate.trainings.list({ signal: o.signal }), answerOf(c, 'GET', '/trainings'));
  for (const raw of results) {
    const t = raw as Training & { destination?: unknown };
    if (typeof t?.id !== 'string' || t.version !== o.version) continue;
    if ((t.input as { train_data?: unknown } | undefined)?.train_data !== o.trainData) continue;
    if (typeof t.destination === 'string' && t.destination !== o.destination) continue;
    const at = Date.parse(t.created_at);
    if (Number.isNaN(at) || at < o.since - CLOCK_SKEW_MS) continue;
    return checkTraining(t, answerOf(c, 'GET', '/trainings'));
  }
  return null;
}

function maybeStartedError(e: FinetuneError, destination: string, listed: boolean, checkWhere: string): FinetuneError {
  const d = e.details ?? {};
  // The detail is Replicate's words and the reason a fetch's, kept in details as said: in the message with
  // visibleText's escapes, as httpError writes them, so that a line break or a terminal escape in them stays in its line.
  const what =
    typeof d.status === 'number'
      ? `Replicate answered ${d.status}${typeof d.detail === 'string' && d.detail ? ` (${visibleText(d.detail)})` : ''}`
      : `no answer came back${typeof d.reason === 'string' ? ` (${visibleText(d.reason)})` : ''}`;
  const looked = listed ? `no training of ${destination} from this send is among your recent trainings yet` : 'the list of your recent trainings could not be read either';
  return new FinetuneError(
    e.kind,
    `The training of ${destination} may have started: ${what} while starting it, and ${looked}. Before sending it again, check whether it runs: ${checkWhere}.`,
    { ...d, maybeStarted: true, destination },
  );
}

/** The recent trainings (GET /trainings: the first page, newest first). */
export async function listTrainings(c: RemoteClient, signal?: AbortSignal): Promise<Training[]> {
  const results = checkTrainingPage(await c.replicate.trainings.list({ signal }), answerOf(c, 'GET', '/trainings'));
  return results.map((t) => checkTraining(t, answerOf(c, 'GET', '/trainings')));
}

/** Whether a training has ended. A status this version does not know is taken as not finished (see TrainingStatus). */
export function isDone(status: TrainingStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'canceled' || status === 'aborted';
}

export interface TrainingView {
  id: string;
  /** May be a status this version does not know (not done then): print it quoted where it is not checked. */
  status: TrainingStatus;
  /** Whole log so far. */
  logs: string;
  /** Seconds the trainer has run: metrics.predict_time when done (and a duration), else since started_at. */
  elapsedS: number;
  /** elapsedS × PRICE_PER_SECOND. */
  costUsd: number;
  error: string | null;
  /** output.weights on success. */
  weights: string | null;
  /** output.version on success (owner/name:id). */
  version: string | null;
  done: boolean;
}

/** `v` if it is text (not empty), else null. */
function textOrNull(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

/** What a person follows, from a training object. */
export function viewTraining(t: Training, now = Date.now()): TrainingView {
  const started = t.started_at ? Date.parse(t.started_at) : NaN;
  const ended = t.completed_at ? Date.parse(t.completed_at) : now;
  const elapsedS = predictSeconds(t) ?? (Number.isNaN(started) ? 0 : Math.max(0, (ended - started) / 1000));
  return {
    id: t.id,
    status: t.status,
    logs: t.logs ?? '',
    elapsedS,
    costUsd: elapsedS * PRICE_PER_SECOND,
    error: t.error === null || t.error === undefined ? null : typeof t.error === 'string' ? t.error : JSON.stringify(t.error),
    // Text or nothing: an answer of another shape (weights as a list, an object) must not pass for an output's URL.
    weights: textOrNull(t.output?.weights),
    version: textOrNull(t.output?.version),
    done: isDone(t.status),
  };
}

export interface FollowOptions {
  onUpdate: (view: TrainingView, newLogs: string) => void;
  signal?: AbortSignal;
  /** First wait between polls; doubles (×1.6) while nothing changes, back to this when something does. */
  minDelayMs?: number;
  maxDelayMs?: number;
  sleep?: (ms: number, signal?: AbortSignal | null) => Promise<void>;
  /**
   * Told each time a poll failed in a way that passes (no answer, a 5xx, a 429), before waiting `waitMs` and polling
   * again; `failures` counts the failed polls in a row.
   */
  onTrouble?: (info: { error: FinetuneError; waitMs: number; failures: number }) => void;
  /** Following stops after this long without one good answer (default 30 min); the training goes on regardless. */
  maxOutageMs?: number;
  /** How to pick the training up again, said when following stops (default `finetune remote status ID --follow`). */
  resumeHint?: string;
}

/** Longest wait between two polls after failures (a 429's own Retry-After is waited as asked, up to maxOutageMs). */
const MAX_TROUBLE_DELAY_MS = 60_000;

/** A failed poll that is worth polling again after: nothing came back, a server error, or rate limiting. */
function isPassingFailure(e: unknown): e is FinetuneError {
  if (!(e instanceof FinetuneError) || e.details?.notJson === true) return false;
  if (e.kind === 'network') return true;
  const status = e.details?.status;
  return typeof status === 'number' && (status === 429 || status >= 500);
}

/**
 * Polls GET /trainings/{id} until the training ends and returns its last state. The polling interval backs off while
 * nothing changes. A poll that fails for a reason that passes (network loss, 5xx, 429: after the client's own retries)
 * does not end the following: it is told to onTrouble and polled again after a bounded back-off (a 429's Retry-After as
 * asked), until maxOutageMs pass without a good answer. When following must stop, the error says that the training goes
 * on and how to pick it up again.
 */
export async function followTraining(c: RemoteClient, id: string, o: FollowOptions): Promise<Training> {
  const minDelay = o.minDelayMs ?? 2000;
  const maxDelay = o.maxDelayMs ?? 30_000;
  const maxOutage = o.maxOutageMs ?? 30 * 60_000;
  const sleep = o.sleep ?? abortableSleep;
  const resume = o.resumeHint ?? `finetune remote status ${id} --follow`;
  let delay = minDelay;
  let seenLogs = '';
  let seenStatus = '';
  let failures = 0;
  let troubleSince = 0;
  for (;;) {
    let t: Training;
    try {
      t = checkTraining(await c.replicate.trainings.get(id, { signal: o.signal }), answerOf(c, 'GET', `/trainings/${id}`), id);
    } catch (e) {
      if (o.signal?.aborted) throw e;
      const now = Date.now();
      if (failures === 0) troubleSince = now;
      // A training refused before it was ever read (a 404: no such id; a 401: a wrong token) is not one that "goes on":
      // said as it is. (One read, or an answer that came but could not be taken, is a training that exists.)
      const refusedUnseen = seenStatus === '' && e instanceof FinetuneError && typeof e.details?.status === 'number';
      if (!isPassingFailure(e)) throw refusedUnseen ? e : stoppedFollowing(e, id, resume, null);
      failures++;
      const retryAfterS = e.details?.retryAfterS;
      const backoff = Math.min(Math.max(maxDelay, minDelay), MAX_TROUBLE_DELAY_MS, minDelay * 2 ** (failures - 1));
      const waitMs = typeof retryAfterS === 'number' && retryAfterS > 0 ? retryAfterS * 1000 : backoff;
      if (now - troubleSince + waitMs > maxOutage) throw stoppedFollowing(e, id, resume, now - troubleSince);
      o.onTrouble?.({ error: e, waitMs, failures });
      await sleep(waitMs, o.signal);
      continue;
    }
    failures = 0;
    const view = viewTraining(t);
    const changed = view.status !== seenStatus || view.logs.length !== seenLogs.length;
    // Logs only grow; if they were rewritten (shorter, or a different start) everything is new.
    const newLogs = view.logs.startsWith(seenLogs) ? view.logs.slice(seenLogs.length) : view.logs;
    seenLogs = view.logs;
    seenStatus = view.status;
    o.onUpdate(view, newLogs);
    if (view.done) return t;
    delay = changed ? minDelay : Math.min(maxDelay, Math.round(delay * 1.6));
    await sleep(delay, o.signal);
  }
}

/** Why following stopped, without "try again": the training itself goes on, and this says how to follow it again. */
function stoppedFollowing(e: unknown, id: string, resume: string, outageMs: number | null): unknown {
  if (!(e instanceof FinetuneError)) return e;
  const d = e.details ?? {};
  if (outageMs !== null) {
    const last = typeof d.status === 'number' ? `answer ${d.status}` : `no answer${typeof d.reason === 'string' ? ` (${visibleText(d.reason)})` : ''}`;
    return new FinetuneError(e.kind, `Stopped following training ${id}: no good answer for ${Math.round(outageMs / 1000)} s (last: ${last}); the training goes on: ${resume}.`, { ...d, id, stoppedFollowing: true });
  }
  return new FinetuneError(e.kind, `${e.message.replace(/\s+$/, '')} Stopped following; the training goes on: ${resume}.`, { ...d, id, stoppedFollowing: true });
}

export async function getTraining(c: RemoteClient, id: string, signal?: AbortSignal): Promise<Training> {
  return checkTraining(await c.replicate.trainings.get(checkTrainingId(id), { signal }), answerOf(c, 'GET', `/trainings/${id}`), id);
}

export async function cancelTraining(c: RemoteClient, id: string, signal?: AbortSignal): Promise<Training> {
  return checkTraining(await c.replicate.trainings.cancel(checkTrainingId(id), { signal }), answerOf(c, 'POST', `/trainings/${id}/cancel`), id);
}

/** Training ids are short lowercase base32-ish strings; anything else would be a path trick. */
export function checkTrainingId(id: string): string {
  if (!TRAINING_ID.test(id)) throw new FinetuneError('bad-input', `${quote(id)} is not a Replicate training id (letters and digits, e.g. zz4ibbonubfz7carwiefibzgga)`);
  return id;
}

export interface DownloadOptions {
  /** The page: download through its proxy (base of /replicate/download). */
  proxyOrigin?: string;
  signal?: AbortSignal;
  /** Refused past this many bytes (default 2 GiB). */
  maxBytes?: number;
}

const MAX_REDIRECTS = 3;

/**
 * The bytes of an output file (output.weights). It goes with the token, so only to Replicate's delivery hosts (or the
 * configured API base's own origin); redirects are followed only to the same kind of host. Through the page's proxy,
 * the proxy applies the same rule.
 */
export async function downloadOutput(c: RemoteClient, url: string, o: DownloadOptions = {}): Promise<Uint8Array> {
  const maxBytes = o.maxBytes ?? 2 ** 31 - 1;
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new FinetuneError('remote', `the training's output is not a URL (${quote(url.slice(0, 200))})`);
  }
  let res: Response;
  if (o.proxyOrigin !== undefined) {
    const via = `${o.proxyOrigin.replace(/\/+$/, '')}${PROXY_DOWNLOAD_PATH}?url=${encodeURIComponent(target.href)}`;
    res = await c.fetch(via, { headers: { authorization: `Bearer ${c.token}` }, signal: o.signal });
  } else {
    for (let hop = 0; ; hop++) {
      if (!isDownloadAllowed(target, c.apiBase)) {
        throw new FinetuneError('remote', `refusing to download the output from ${target.protocol}//${target.host}: output files come from Replicate's delivery hosts (replicate.delivery)`);
      }
      res = await c.fetch(target.href, { headers: { authorization: `Bearer ${c.token}` }, redirect: 'manual', signal: o.signal });
      if (res.status < 300 || res.status >= 400) break;
      const location = res.headers.get('location');
      if (!location || hop >= MAX_REDIRECTS) throw new FinetuneError('remote', `the output download redirected ${location ? 'too many times' : 'without a Location'}`);
      target = new URL(location, target);
    }
  }
  // No header is no size (Number(null) is 0, which would say "cut off after … of 0 B").
  const length = res.headers.get('content-length');
  const declared = length === null ? NaN : Number(length);
  if (Number.isFinite(declared) && declared > maxBytes) throw new FinetuneError('remote', `the output is ${declared} bytes, more than the ${maxBytes}-byte limit`);
  // The bytes counted as they come: a connection cut halfway is said with how far it got (it came out of fetch as a bare
  // "TypeError: terminated", an internal error with a stack trace on the command line).
  let got = 0;
  const counted = res.body?.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ transform: (chunk, ctl) => { got += chunk.byteLength; ctl.enqueue(chunk); } })) ?? null;
  let bytes: Uint8Array | null;
  try {
    bytes = await readAtMost(counted, maxBytes);
  } catch (e) {
    if (o.signal?.aborted || e instanceof FinetuneError) throw e;
    const of = Number.isFinite(declared) ? ` of ${formatBytes(declared)}` : '';
    throw new FinetuneError('network', `The download of the training's output was cut off after ${formatBytes(got)}${of} (${visibleText(networkWhy(e, c.token))}): nothing of it was kept; try again.`, { call: OUTPUT_DOWNLOAD_CALL, received: got });
  }
  if (!bytes) throw new FinetuneError('remote', `the output is more than the ${maxBytes}-byte limit`);
  return bytes;
}
