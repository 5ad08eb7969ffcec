// Byte sources: random access to a file's bytes wherever it lives — in memory, a browser Blob/File, or an HTTP server
// that honours Range requests (the Hugging Face Hub). A FileSet is a "directory" of such sources (a Hub repository,
// a folder the user picked, a Node directory — see src/cli/node-source.ts). Nothing here is Node- or DOM-only: fetch
// and Blob exist in browser workers and in Node ≥ 18.
//
// Secrets: an access token is only ever sent as an `Authorization: Bearer` header. It never goes into a URL, an error
// message or a log line; error messages are additionally scrubbed of it in case a server echoes it back.

import { relativePath } from '../core/file-names.ts';
import { FinetuneError, thrownMessage } from '../core/errors.ts';
import { isWrongAddress } from '../core/network-errors.ts';
import { isHuggingFaceUrl } from '../core/hub-reference.ts';
import { parseBoundedJson } from '../core/bounded-json.ts';
import { readAtMost } from '../core/bytes.ts';
import { retryAfterMs } from '../core/retry-after.ts';
import { formatWait } from '../core/units.ts';
import { hubManifest, type HubFileInfo } from './hub-manifest.ts';
import { eitherSignal } from '../core/signals.ts';
import { quote, visibleText } from '../core/quote.ts';

export interface ByteSource {
  /** What to call it in messages: a file name or a URL (never carrying a secret). */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /**
   * What identifies this version of the file, when the source knows it: an HTTP ETag or Last-Modified, a file's
   * size and modification time. The weight cache keys on it; never a secret.
   */
  readonly version?: string;
  /**
   * What earlier builds took for `version`, when it differs: the weight cache moves an entry written under it to
   * `version` rather than rebuild it (the Hub's files were versioned by their CDN's ETag before its X-Linked-Etag).
   */
  readonly formerVersion?: string;
  /** Exactly `length` bytes starting at `offset`; throws FinetuneError('bad-input') for a range outside [0, size). */
  read(offset: number, length: number): Promise<Uint8Array>;
}

/** A directory of files: a Hub repository at a revision, a folder on disk, files the user dropped on the page. */
export interface FileSet {
  /** What to call it in messages. */
  readonly name?: string;
  /** The file names (relative paths with '/'), when the set can list itself. */
  list?(): string[];
  /**
   * Opens one file; a missing file throws FinetuneError('bad-input') with details.reason 'not-found'. `options.signal`
   * (sets over the network heed it; local ones, whose reads are quick, may not) ends the opening and every later read
   * of the file when it aborts: a checkpoint stops its other shards' probes with it once one has failed.
   */
  open(name: string, options?: OpenOptions): Promise<ByteSource>;
  /**
   * A remote model's offline copy of its files' descriptions (src/model/offline-copy.ts), where the set keeps one: a
   * load that succeeded keeps what it read (`keep`), and says when files came from the copy (`notes`).
   */
  readonly offline?: { keep(): Promise<void>; notes(): string[] };
}

export interface OpenOptions {
  signal?: AbortSignal;
}

// A signal that aborts when either given one does (in core: the Hub API's requests join them too).
export { eitherSignal };

/** Reasons carried in `details.reason` of the errors raised here, so callers can react (e.g. fall back on 404). */
export type SourceErrorReason =
  | 'not-found'
  | 'repo-not-found'
  | 'revision-not-found'
  | 'unauthorized'
  | 'forbidden'
  | 'network'
  | 'no-range'
  | 'http'
  | 'out-of-range'
  | 'empty'
  | 'download-host-refused'
  | 'bad-name'
  | 'changed';

function sourceError(reason: SourceErrorReason, message: string, extra: Record<string, unknown> = {}): FinetuneError {
  // A broken or unreachable connection is not the user's input being wrong: it has its own kind, so the page can say
  // "try again" rather than "fix this". Every message here begins with a source's or a file set's name (a picked file or
  // folder, a path, a Hub repository's file, which an index may name) and may carry a server's words: the whole message
  // is written with visibleText's escapes, so that a bidirectional control in any of them cannot reorder it. Our own
  // words hold none, and what quote() already escaped is left as it is.
  return new FinetuneError(reason === 'network' ? 'network' : 'bad-input', visibleText(message), { reason, ...extra });
}

/** True when `err` says a file does not exist (a FileSet's missing file, an HTTP 404). */
export function isNotFound(err: unknown): boolean {
  return err instanceof FinetuneError && err.details?.reason === 'not-found';
}

/** Checks a read request against the source's size; shared by every implementation. */
export function checkRange(source: { name: string; size: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw sourceError('out-of-range', `${source.name}: invalid read of ${length} bytes at offset ${offset}`);
  }
  if (offset + length > source.size) {
    throw sourceError(
      'out-of-range',
      `${source.name}: read of ${length} bytes at offset ${offset} goes past the end of the file (${source.size} bytes)`,
    );
  }
}

/**
 * Refuses file names that could escape a directory or a repository: absolute paths, '..' segments, backslashes,
 * empty segments, control characters. Names come from files we parse (an index's weight_map), so they are untrusted.
 */
export function checkFileName(name: string, where = 'file set'): string {
  const bad =
    typeof name !== 'string' ||
    name.length === 0 ||
    name.length > 1024 ||
    name.startsWith('/') ||
    name.includes('\\') ||
    /[\u0000-\u001f\u007f]/.test(name) ||
    name.split('/').some((seg) => seg === '' || seg === '.' || seg === '..');
  if (bad) throw sourceError('bad-name', `${where}: refusing the file name ${quote(String(name))}`);
  return name;
}

/** Reads a whole source (for small files: configs, indexes, adapters). */
export async function readAll(source: ByteSource): Promise<Uint8Array> {
  return source.read(0, source.size);
}

/**
 * The largest JSON file read whole: config.json, model.safetensors.index.json, adapter_config.json. Real ones are a few
 * KiB (configs) to tens of KiB (Mistral-7B's index is 25 KiB; one of a 400B-parameter model a few hundred): 16 MiB
 * leaves a wide margin over any, and is what a server that ignores Range may send whole (DEFAULT_FULL_DOWNLOAD_LIMIT).
 * A hostile repository's 10 GB "config.json" was downloaded in full, and on Node one past ~512 MiB, which no string
 * can hold, was then called "not UTF-8 text".
 */
export const MAX_JSON_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Refuses a JSON file by the size its source reports (a File's size, the server's Content-Range total, an entry's
 * size in a zip's directory), before a byte of it is read. Every ByteSource knows its size before a read, and a read
 * never returns more than asked for, so nothing past the limit is ever fetched.
 */
export function checkJsonFileSize(name: string, size: number, limit = MAX_JSON_FILE_BYTES): void {
  if (size <= limit) return;
  const mib = limit % (1024 * 1024) === 0 ? `${limit / (1024 * 1024)} MiB (${limit}-byte)` : `${limit}-byte`;
  throw new FinetuneError('bad-input', `${visibleText(name)} is ${size} bytes, more than the ${mib} limit for a JSON file; it is not a config or index this program reads`, { size, limit });
}

/** Reads and parses a JSON file, with a message naming the file when it is too large, not JSON, or nested absurdly deep. */
export async function readJson(source: ByteSource): Promise<unknown> {
  checkJsonFileSize(source.name, source.size);
  const bytes = await readAll(source);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FinetuneError('bad-input', `${visibleText(source.name)} is not UTF-8 text`);
  }
  return parseBoundedJson(text, source.name);
}

// ---------------------------------------------------------------------------------------------------------------
// In memory

export function bytesSource(bytes: Uint8Array, name = 'memory'): ByteSource {
  const src: ByteSource = {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      checkRange(src, offset, length);
      return bytes.slice(offset, offset + length);
    },
  };
  return src;
}

/** A FileSet over named byte arrays (tests, unzipped archives, files generated in the page). */
export function memoryFileSet(files: Record<string, Uint8Array | string>, name = 'memory'): FileSet {
  const enc = new TextEncoder();
  const map = new Map<string, Uint8Array>();
  for (const [k, v] of Object.entries(files)) map.set(k, typeof v === 'string' ? enc.encode(v) : v);
  return {
    name,
    list: () => [...map.keys()].sort(),
    async open(file) {
      checkFileName(file, name);
      const bytes = map.get(file);
      // The name asked for may be an index's (a shard's), from the file: quoted.
      if (!bytes) throw sourceError('not-found', `${name}: no file ${quote(file)}`, { file });
      return bytesSource(bytes, file);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Browser Blob / File

export function blobSource(blob: Blob, name?: string): ByteSource {
  const label = name ?? (blob as Partial<File>).name ?? 'blob';
  const lastModified = (blob as Partial<File>).lastModified;
  const src: ByteSource = {
    name: label,
    size: blob.size,
    ...(lastModified !== undefined ? { version: `file ${blob.size} ${lastModified}` } : {}),
    async read(offset, length) {
      checkRange(src, offset, length);
      const buf = await blob.slice(offset, offset + length).arrayBuffer();
      if (buf.byteLength !== length) {
        throw sourceError('out-of-range', `${label}: asked for ${length} bytes at ${offset}, got ${buf.byteLength}`);
      }
      return new Uint8Array(buf);
    },
  };
  return src;
}

/**
 * A FileSet over files the user picked (an <input type=file webkitdirectory> or a drop). A file in a picked folder is
 * keyed by its path below that folder (webkitRelativePath without its first segment), a file picked on its own by its
 * name: one name per file. (A nested file was once listed under its bare name as well, so a checkpoint's
 * adapter_config.json could pass for the top-level one, and two adapters side by side could be read as one.)
 */
export function blobFileSet(files: Iterable<File>, name = 'selected files'): FileSet {
  const map = new Map<string, File>();
  for (const f of files) {
    const parts = relativePath(f).split('/');
    const key = parts.length > 1 ? parts.slice(1).join('/') : f.name;
    if (!map.has(key)) map.set(key, f);
  }
  return {
    name,
    list: () => [...map.keys()].sort(),
    async open(file) {
      checkFileName(file, name);
      const f = map.get(file);
      if (!f) throw sourceError('not-found', `${name}: no file ${quote(file)}`, { file });
      return blobSource(f, file);
    },
  };
}

// The picked folder's name is the page's too (its Local files tab names a model by it): it lives with the names.
export { pickedFolderName } from '../core/file-names.ts';

// ---------------------------------------------------------------------------------------------------------------
// HTTP with Range requests (the Hub)

export interface HttpOptions {
  /** Hugging Face (or other) access token, sent only as `Authorization: Bearer <token>`. */
  token?: string;
  /** fetch implementation (default: globalThis.fetch). */
  fetch?: typeof fetch;
  /** Name for messages (default: the URL). */
  name?: string;
  /**
   * When a server ignores Range requests (answers 200 with the whole file), a file up to this many bytes is
   * downloaded once and served from memory; a bigger one is an error. Default 16 MiB.
   */
  fullDownloadLimit?: number;
  signal?: AbortSignal;
  /** Extra context for 401/403 messages, e.g. the model page URL. */
  accessHint?: string;
  /** Where the user gives a token, for messages that ask for one (the command line: 'HF_TOKEN'). */
  tokenSource?: string;
  /**
   * The Hub repository, revision (as asked) and file this URL reads: a 404 or a RepoNotFound then names the model
   * (`owner/name@revision`) and says in words what the Hub's X-Error-Code says. Set by hubSource / hubFileSet.
   */
  hub?: { repo: string; revision: string; file: string };
  /**
   * Attempts after a failed request or a dropped connection (default 5). A dropped body resumes with a Range request
   * from the last byte received; 5xx and 429 answers are retried; 401/403/404/416 are not (but a 401/403 from the host
   * a redirect led to, an expired signed link, is asked again once from the URL for a fresh one: see `get`).
   */
  retries?: number;
  /**
   * First backoff delay in ms, doubled per attempt (default 500). A 429 or 503 with Retry-After waits as long as it
   * asks instead, when that is longer (see MAX_RETRY_AFTER_MS).
   */
  retryDelayMs?: number;
  /** Waits between attempts (default: setTimeout); must reject when `signal` aborts. Tests move a fake clock with it. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /**
   * Told before each wait for another attempt: what failed and how long until it is tried again. A load shows it (the
   * retries of an unreachable server once took 15 s under "Reading the header…" without a word).
   */
  onRetry?: (r: RetryNote) => void;
  /**
   * The longest wait for an answer's headers or for the next bytes of its body (default 60 s). Past it the connection
   * is dropped and the read resumed, as after a cut: a server that stops sending without closing the connection
   * would otherwise be waited on for undici's 300 s, again and again.
   */
  idleTimeoutMs?: number;
  /**
   * Meaningful progress is a MiB: once this long (default 180 s) has been spent waiting on the server without one
   * arriving, the read in progress is dropped and resumed, as after a stall; after `retries` such windows in a row
   * the read fails, saying how long it waited and what arrived. The waits of every read of the file add up (a loader
   * reads a tensor at a time), not the time between reads: a connection that trickles a few bytes now and then is never
   * idle for idleTimeoutMs, and a window that started again at each read never closed on small ones.
   */
  slowWindowMs?: number;
  /**
   * Who follows redirects (the Hub answers a large file's resolve URL with a redirect to its CDN). 'fetch' (default):
   * fetch does, and only the last answer is seen, which is all a browser allows (a manual redirect is opaque there).
   * 'here' (Node): each hop is requested here, so that a redirect's X-Linked-Etag is read (LINKED_ETAG_HEADER) and the
   * Authorization header is sent only to the URL's own origin, never to a CDN another origin serves.
   */
  redirects?: 'fetch' | 'here';
  /** Called with every chunk of body bytes as it arrives (for progress: MB/s, ETA). */
  onBytes?: (bytes: number) => void;
  /**
   * Called with every answer that carries the file (200 or 206), before its body is read; throwing refuses it. The
   * Hub's FileSet checks there that each answer comes from the commit the load is pinned to: `repoCommit` is the
   * X-Repo-Commit of the first hop that has one (the Hub's own answer; its resolve cache or CDN, where it redirects, do
   * not repeat it), or the answer's own when fetch followed the redirects.
   */
  onResponse?: (res: Response, repoCommit: string | null) => void;
  /**
   * The file's version and size as the Hub API lists them (src/model/hub-manifest.ts), for a URL at an immutable
   * commit: the version is that content id instead of an answer's ETag, and since the content cannot change under that
   * URL, answers whose ETags differ (a CDN's nodes) are not a changed file; a size other than the listed one is.
   */
  known?: HubFileInfo;
}

const DEFAULT_FULL_DOWNLOAD_LIMIT = 16 * 1024 * 1024;
const DEFAULT_RETRIES = 5;
const DEFAULT_RETRY_DELAY_MS = 500;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/**
 * The longest Retry-After waited for, one answer's, and all of one read's together: past either the read fails, saying
 * what the server asked. The Hub counts its rate limits over 5-minute windows, and a 429 asks at most for what is
 * left of one; the fixed backoff alone (15 s in all) once failed an hour-long load on a limit that lasted a minute.
 */
const MAX_RETRY_AFTER_MS = 5 * 60_000;
const MAX_RETRY_AFTER_TOTAL_MS = 10 * 60_000;
/** Redirects followed at most per request (followed here: `redirects: 'here'`); fetch's own limit is 20. */
const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/**
 * What an attempt must deliver to count as progress, so that the attempt count starts again. A server that sends a few
 * bytes and then stalls or drops, every time, once kept a read going for ever (each attempt delivered something).
 */
const PROGRESS_BYTES = 1024 * 1024;

/** Seconds for a message: two significant digits (0.05 s, 16 s, 60 s). */
function secondsText(ms: number): string {
  return `${Number((ms / 1000).toPrecision(2))} s`;
}

/** A wait for a message: seconds up to two minutes, then minutes, hours, and "more than a day" (formatWait). */
function durationText(ms: number): string {
  return ms < 120_000 ? secondsText(ms) : formatWait(ms / 1000);
}

/** A body that brought less than PROGRESS_BYTES within the slow window (slowWindowMs). */
class TooSlow extends Error {
  constructor(readonly ms: number) {
    super(`less than 1 MiB in ${secondsText(ms)}`);
  }
}

const DEFAULT_SLOW_WINDOW_MS = 180_000;

/** A body or an answer that sent nothing for the idle timeout. */
class Stalled extends Error {
  constructor(readonly ms: number) {
    super(`no data for ${secondsText(ms)}`);
  }
}

/**
 * The answer with a body that fails with Stalled when a read waits longer than `ms` for bytes (`onStall` then drops
 * the connection). Only a read that is waited on is timed: the stream pulls on demand.
 */
function withIdleTimeout(res: Response, ms: number, onStall: () => void): Response {
  const inner = res.body?.getReader();
  if (!inner) return res;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Stalled(ms)), ms);
        });
        try {
          const { done, value } = await Promise.race([inner.read(), stalled]);
          if (done) c.close();
          else c.enqueue(value);
        } catch (e) {
          if (e instanceof Stalled) {
            onStall();
            inner.cancel(e).catch(() => undefined);
          }
          c.error(e);
        } finally {
          clearTimeout(timer);
        }
      },
      cancel: (reason) => inner.cancel(reason),
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

/** Statuses worth asking again: the server or a proxy is busy or failed, not the request. */
function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** A failed attempt about to be made again (HttpOptions.onRetry): the error's words are scrubbed of the token. */
export interface RetryNote {
  /** The attempt that failed (1-based); `retries` more are made at most. */
  attempt: number;
  retries: number;
  waitMs: number;
  reason: string;
}

/** "…: network failure (Failed to fetch): check the connection and the URL. Trying again in 2 s (retry 2 of 5)." */
export function retryNoteText(r: RetryNote): string {
  const s = Math.max(1, Math.round(r.waitMs / 1000));
  return `${r.reason.replace(/\.?$/, '.')} Trying again in ${s} s (retry ${r.attempt} of ${r.retries}).`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}

export function hubFileUrl(repo: string, file: string, revision = 'main'): string {
  checkRepoId(repo);
  checkFileName(file, repo);
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `https://huggingface.co/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

function checkRepoId(repo: string): void {
  if (!/^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/.test(repo) || repo.includes('..')) {
    throw sourceError('bad-name', `not a Hugging Face repository id: ${quote(repo)} (expected owner/name)`);
  }
}

function scrub(text: string, token: string | undefined): string {
  if (!token) return text;
  return text.split(token).join('***');
}

/** Strips credentials and query strings that might carry secrets from a URL before it appears in a message. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    // Not parseable: cut what could be userinfo (before an @) and everything from ? or #, by hand.
    return url.replace(/^([^/?#]*:\/\/)[^/?#]*@/, '$1').replace(/[?#].*$/s, '');
  }
}

/**
 * A message from below us (fetch, the network stack) with every URL in it shown as displayUrl shows it, and the
 * request's own credentials and query string removed wherever they appear: undici, for one, quotes the whole URL.
 */
export function redactUrls(text: string, url?: string): string {
  let out = text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s'"<>`]+/gi, (m) => displayUrl(m));
  if (url) {
    try {
      const u = new URL(url);
      const secrets = [u.password, decodeURIComponent(u.password), u.search, u.search.slice(1)].filter((x) => x.length > 1);
      for (const secret of secrets) out = out.split(secret).join('***');
      if (u.username) out = out.split(`${u.username}@`).join('').split(`${decodeURIComponent(u.username)}@`).join('');
    } catch {
      // an unparseable URL was already cut down by displayUrl above
    }
  }
  return out;
}

/** An answer that carries the file (200 or 206), with what identifies the file's version in it. */
interface Answer {
  res: Response;
  validator: string | null;
}

/**
 * What identifies the file's version in an answer (Answer.validator): the Hub's X-Linked-Etag (its LFS file's SHA-256,
 * on the resolve URL's redirect, seen when redirects are followed here), else the ETag, else Last-Modified of the
 * answer that carries the file. The Hub's CDN gives the same file other ETags from other nodes: keyed on them, the
 * weight cache missed, and a resumed read was refused as "changed", for a file that had not changed.
 */
const LINKED_ETAG_HEADER = 'x-linked-etag';
/** The Hub names each answer's commit in this header (on the resolve answer itself; a CDN it redirects to does not). */
const REPO_COMMIT_HEADER = 'x-repo-commit';

/** An answer's own identity for the file it carries: its ETag, else its Last-Modified (null: neither). */
function answerValidator(res: Response): string | null {
  return res.headers.get('etag') ?? res.headers.get('last-modified');
}

/** The request an error answer came to: the Range asked for, and the URL that answered (after redirects, if known). */
interface Asked {
  range: string;
  answeredBy: string;
}

/** The host of `url`, or null when it is not a URL (a Response built without one has url ''). */
function hostOf(url: string): { origin: string; host: string } | null {
  try {
    const u = new URL(url);
    return { origin: u.origin, host: u.host };
  } catch {
    return null;
  }
}

function statusError(status: number, name: string, url: string, opts: HttpOptions, headers?: Headers, asked?: Asked): FinetuneError {
  const hint = opts.accessHint ? ` ${opts.accessHint}` : '';
  // Licences, gated repositories and tokens are the Hub's; another server that wants credentials gets none from us.
  const otherServer = !opts.token && !opts.accessHint && !isHuggingFaceUrl(url);
  let reason: SourceErrorReason;
  let message: string;
  // The Hub answers 401 for a repository that does not exist (or is private and the request has no token that reaches
  // it), and says which in X-Error-Code: "gated, accept the licence" would send the user after a licence that is not there.
  const code = headers?.get('x-error-code') ?? null;
  const hub = opts.hub;
  // A Hub answer is about the model (owner/name@revision) more than the file: it is named so.
  const model = hub ? `${hub.repo}@${hub.revision}` : name;
  const said = code ? `HTTP ${status}, ${code}` : `HTTP ${status}`;
  const repoNotFound = (status === 401 || status === 404) && code === 'RepoNotFound';
  // Where a redirect took the request to another origin (the Hub sends a large file's download to its CDN with a
  // signed link), a 401 / 403 is that host's: it never saw the token (which goes to the URL's origin only), so the
  // token, the licence and the repository are not what it refused. Only its host is named: the link's query is signed.
  const answered = asked ? hostOf(asked.answeredBy) : null;
  const elsewhere = answered !== null && answered.origin !== hostOf(url)?.origin;
  // The size probe asks for the first byte (bytes=0-0): only a file of 0 bytes has none to give. A Content-Range that
  // names another size is a server's own trouble, said as before.
  const probeTotal = status === 416 && asked?.range === 'bytes=0-0' ? (/^bytes\s+\*\/(\d+)$/i.exec(headers?.get('content-range')?.trim() ?? '')?.[1] ?? '0') : null;
  if ((status === 401 || status === 403) && elsewhere) {
    reason = 'download-host-refused';
    message = `${name}: the download host ${answered.host}, where ${hub ? 'the Hub' : 'the server'} redirected the download, refused the file (HTTP ${status}): the download link may have expired; load it again.`;
  } else if (probeTotal === '0') {
    reason = 'empty';
    message = `${name}: the file is empty (0 bytes): the server refused a read of its first byte (HTTP 416).`;
  } else if (repoNotFound) {
    reason = 'repo-not-found';
    const repo = hub ? ` ${hub.repo}` : '';
    const token = opts.token
      ? `the token given${opts.tokenSource ? ` (${opts.tokenSource})` : ''} has no access to it`
      : opts.tokenSource
        ? `set ${opts.tokenSource} to a token that has access to it`
        : 'give an access token that has access to it';
    message = `${model}: the Hub has no repository${repo} that this request can see (${said}): check the id; if it is private or gated, ${token}.${hint}`;
  } else if (otherServer && status === 401) {
    reason = 'unauthorized';
    message = `${name}: the server asks for credentials (HTTP 401); a Hugging Face token is sent only to huggingface.co over https, so use a URL that needs none, or download the files and load them from disk.`;
  } else if (otherServer && status === 403) {
    reason = 'forbidden';
    message = `${name}: the server denied access (HTTP 403).`;
  } else if (status === 401) {
    reason = 'unauthorized';
    message = opts.token
      ? `${name}: the server refused the access token (HTTP 401): check that the token is valid and unexpired; for a gated repository, accept the licence on the model page.${hint}`
      : `${name}: authentication required (HTTP 401): the repository is gated or private; accept the licence on the model page and provide an access token.${hint}`;
  } else if (status === 403) {
    reason = 'forbidden';
    message = `${name}: access denied (HTTP 403): accept the licence on the model page, or the token lacks access to this repository (a fine-grained token needs read access to gated repositories).${hint}`;
  } else if (status === 404 && code === 'RevisionNotFound') {
    // Not the file missing (which a checkpoint reads as "no config.json"): the branch, tag or commit asked for is not
    // the repository's. The revision is the one in the URL (a load pinned to a commit asks for that commit).
    const asked = /\/resolve\/([^/]+)\//.exec(new URL(url).pathname)?.[1];
    const revision = asked === undefined ? 'asked for' : decodeURIComponent(asked);
    reason = 'revision-not-found';
    message = `${model}: the repository${hub ? ` ${hub.repo}` : ''} has no revision ${revision} (${said}): check the branch, tag or commit id.`;
  } else if (status === 404 && hub) {
    // EntryNotFound, or a 404 without a code: the file is not in the repository at that revision.
    reason = 'not-found';
    message = `${model}: the repository has no file ${hub.file} at revision ${hub.revision} (${said}).`;
  } else if (status === 404) {
    reason = 'not-found';
    message = `${name}: not found (HTTP 404): check the repository, revision and file name.`;
  } else if (status === 416) {
    reason = 'out-of-range';
    message = `${name}: the server refused the byte range (HTTP 416): the file is shorter than expected.`;
  } else {
    reason = 'http';
    message = `${name}: HTTP ${status} from the server.`;
  }
  // What Retry-After asks of a 429 or a 503 (RFC 9110 gives it meaning on those), for the retry loop to honour.
  const after = (status === 429 || status === 503) && headers ? retryAfterMs(headers.get('retry-after')) : null;
  return sourceError(reason, scrub(message, opts.token), after === null ? { status } : { status, retryAfterMs: after });
}

/** The error for a 5xx / 429 / 408 that every retry got too. */
function serverFailing(name: string, status: number, attempts: number, ms: number, token: string | undefined): FinetuneError {
  const seconds = ms < 10_000 ? Math.round(ms / 100) / 10 : Math.round(ms / 1000);
  const what = status === 429 ? 'the server is limiting requests' : status === 408 ? 'the server timed out' : 'the server is failing';
  const message = `${name}: the server answered HTTP ${status} to ${attempts} attempt${attempts === 1 ? '' : 's'} over ${seconds} s; ${what}, try again later.`;
  return sourceError('network', scrub(message, token), { status, attempts });
}

/** The error for a Retry-After past what is waited for (MAX_RETRY_AFTER_MS, MAX_RETRY_AFTER_TOTAL_MS). */
function waitRefused(name: string, status: number, askedMs: number, waitedMs: number, token: string | undefined): FinetuneError {
  const what = status === 429 ? 'the server is limiting requests' : 'the server is unavailable';
  const message =
    askedMs > MAX_RETRY_AFTER_MS
      ? `${name}: ${what} (HTTP ${status}) and asked to wait ${durationText(askedMs)} before trying again, more than the ${durationText(MAX_RETRY_AFTER_MS)} waited for one answer; try again later.`
      : `${name}: ${what} (HTTP ${status}) and asked to wait ${durationText(askedMs)} more, after ${durationText(waitedMs)} of waiting as it asked, more than the ${durationText(MAX_RETRY_AFTER_TOTAL_MS)} waited in all for one read; try again later.`;
  return sourceError('network', scrub(message, token), { status, retryAfterMs: askedMs });
}

interface ContentRange {
  start: number;
  end: number; // inclusive
  total: number | null;
}

function parseContentRange(v: string | null): ContentRange | null {
  if (!v) return null;
  const m = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(v.trim());
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

async function drain(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // ignore: we only want the connection back
  }
}

/**
 * Opens a file over HTTP. The size comes from a `Range: bytes=0-0` probe (its Content-Range total); each read is one
 * Range request. A server that ignores Range is tolerated for small files (see `fullDownloadLimit`).
 */
export async function httpSource(url: string, opts: HttpOptions = {}): Promise<ByteSource> {
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const name = redactUrls(opts.name ?? displayUrl(url), url);
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*@/i.test(url)) {
    // fetch refuses such URLs anyway, quoting them whole; say why without repeating the secret.
    throw sourceError('bad-name', `${name}: a URL with a user name or password in it is not accepted; give an access token instead`);
  }
  const headers = (range: string): Record<string, string> => {
    const h: Record<string, string> = { Range: range };
    if (opts.token) h.Authorization = `Bearer ${opts.token}`;
    return h;
  };
  const retries = Math.max(0, opts.retries ?? DEFAULT_RETRIES);
  const delay = opts.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
  const wait = opts.sleep ?? sleep;
  /**
   * Backs off before attempt `attempt` (1-based), or rethrows `err` when the attempts are spent; returns the ms waited.
   * `askedMs`: what the server's Retry-After asked, waited when longer than the backoff.
   */
  const backoff = async (attempt: number, err: unknown, askedMs = 0): Promise<number> => {
    if (attempt > retries || opts.signal?.aborted) throw err;
    const ms = Math.max(delay * 2 ** (attempt - 1), askedMs);
    opts.onRetry?.({ attempt, retries, waitMs: ms, reason: thrownMessage(err) });
    await wait(ms, opts.signal);
    return ms;
  };
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  /**
   * One request, its redirects followed here (`redirects: 'here'`) or by fetch. The Authorization header goes to the
   * URL's own origin only: once a redirect leaves it (the Hub's CDN), the token is no longer sent, even if a later hop
   * comes back. Returns the last answer and the first X-Linked-Etag of its hops (the Hub's is on its redirect).
   */
  const fetchFollowing = async (range: string, signal: AbortSignal, fresh: boolean): Promise<{ res: Response; linked: string | null; repoCommit: string | null; answeredBy: string }> => {
    // A fresh ask (after a refused link) is answered by the server, not by a cache's copy of the redirect.
    const cache: { cache?: RequestCache } = fresh ? { cache: 'no-store' } : {};
    if (opts.redirects !== 'here') {
      const res = await doFetch(url, { headers: headers(range), signal, redirect: 'follow', ...cache });
      // Where fetch followed redirects, the answer's url is the last hop's (a Response made without one says '').
      return { res, linked: res.headers.get(LINKED_ETAG_HEADER), repoCommit: res.headers.get(REPO_COMMIT_HEADER), answeredBy: res.redirected && res.url ? res.url : url };
    }
    const origin = new URL(url).origin;
    let at = url;
    let h = headers(range);
    let linked: string | null = null;
    let repoCommit: string | null = null;
    for (let hop = 0; ; hop++) {
      const res = await doFetch(at, { headers: h, signal, redirect: 'manual', ...cache });
      linked ??= res.headers.get(LINKED_ETAG_HEADER);
      repoCommit ??= res.headers.get(REPO_COMMIT_HEADER);
      const location = REDIRECT_STATUSES.has(res.status) ? res.headers.get('location') : null;
      if (location === null) return { res, linked, repoCommit, answeredBy: at };
      await drain(res);
      if (hop >= MAX_REDIRECTS) throw sourceError('http', scrub(`${name}: more than ${MAX_REDIRECTS} redirects; check the URL.`, opts.token), { status: res.status });
      at = new URL(location, at).toString();
      if (new URL(at).origin !== origin) h = { Range: range };
    }
  };
  const fetchOnce = async (range: string, fresh: boolean): Promise<Answer> => {
    let res: Response;
    let linked: string | null;
    let repoCommit: string | null;
    let answeredBy: string;
    // Each attempt can be dropped on its own (a stall), besides by the caller's signal.
    const attempt = new AbortController();
    const signal = opts.signal ? (typeof AbortSignal.any === 'function' ? AbortSignal.any([opts.signal, attempt.signal]) : opts.signal) : attempt.signal;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const noAnswer = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Stalled(idleMs)), idleMs);
      });
      ({ res, linked, repoCommit, answeredBy } = await Promise.race([fetchFollowing(range, signal, fresh), noAnswer]));
    } catch (e) {
      if (opts.signal?.aborted || e instanceof FinetuneError) throw e;
      if (e instanceof Stalled) {
        attempt.abort(e);
        throw sourceError('network', scrub(`${name}: no answer for ${secondsText(idleMs)}: check the connection and the URL.`, opts.token), { stalled: true });
      }
      // fetch's rejection, or its cause where that is an Error (undici's "connect ECONNREFUSED"): outside code's value,
      // read by thrownMessage, which never throws (String() of an object with no prototype did, in place of this error).
      const why = redactUrls(thrownMessage(e instanceof Error && e.cause instanceof Error ? e.cause : e), url);
      throw sourceError('network', scrub(`${name}: network failure (${why}): check the connection and the URL.`, opts.token), { wrongAddress: isWrongAddress(e) });
    } finally {
      clearTimeout(timer);
    }
    if (res.status !== 200 && res.status !== 206) {
      await drain(res);
      throw statusError(res.status, name, url, opts, res.headers, { range, answeredBy });
    }
    res = withIdleTimeout(res, idleMs, () => attempt.abort(new Stalled(idleMs)));
    try {
      opts.onResponse?.(res, repoCommit);
    } catch (e) {
      await drain(res);
      throw e;
    }
    return { res, validator: linked ?? answerValidator(res) };
  };
  /**
   * One request, retried with backoff on 5xx / 429 / 408 and — once the file has answered (`opened`) — on network
   * failures. A first connection that fails is reported at once: a wrong host or port should not take half a minute.
   * A 429 / 503's Retry-After is waited for, up to MAX_RETRY_AFTER_MS; `asked.ms` adds up those waits over a read's
   * requests (at most MAX_RETRY_AFTER_TOTAL_MS), and tells the read how long it was kept waiting on purpose.
   *
   * A refusal by the host a redirect led to (download-host-refused: the Hub's CDN, whose signed links expire, and a
   * 7B load reads for an hour and more) is asked again once, at once, from the URL itself: its redirect is a fresh link.
   * The answer it brings is checked as any other (onResponse, and the caller's size and ETag checks); a read goes on
   * from the byte it had reached. A fresh link refused too fails with the refusal.
   */
  let opened = false;
  const get = async (range: string, asked: { ms: number } = { ms: 0 }): Promise<Answer> => {
    const t0 = Date.now();
    let fresh = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetchOnce(range, fresh);
        opened = true;
        return res;
      } catch (e) {
        if (!fresh && e instanceof FinetuneError && e.details?.reason === 'download-host-refused' && !opts.signal?.aborted) {
          fresh = true;
          attempt--; // not a failed attempt: the link had expired
          continue;
        }
        // Before the file has answered, a refused connection or an unknown host is the URL's fault: no retry. A reset
        // (a keep-alive socket the server had closed) or a timeout is worth another try either way.
        const network = e instanceof FinetuneError && e.details?.reason === 'network';
        const wrongAddress = network && e.details?.wrongAddress === true;
        const status = e instanceof FinetuneError && typeof e.details?.status === 'number' ? e.details.status : null;
        const retryable = e instanceof FinetuneError && ((network && (opened || !wrongAddress)) || (status !== null && retryableStatus(status)));
        if (!retryable) throw e;
        // A busy or failing server that is still failing after every retry is the network's kind of trouble, not the
        // user's input: say so, and that it was tried again (the retries took seconds without a word).
        const spent = status !== null ? serverFailing(name, status, attempt, Date.now() - t0, opts.token) : e;
        const after = typeof e.details?.retryAfterMs === 'number' ? e.details.retryAfterMs : null;
        if (status === null || after === null) {
          await backoff(attempt, spent);
          continue;
        }
        // Said at once, not after waiting part of it: a wait that cannot end in time only holds the load up.
        if (after > MAX_RETRY_AFTER_MS || asked.ms + after > MAX_RETRY_AFTER_TOTAL_MS) throw waitRefused(name, status, after, asked.ms, opts.token);
        asked.ms += await backoff(attempt, spent, after);
      }
    }
  };
  /** The whole body, or null once it passes `limit` bytes (the rest is not downloaded). */
  const body = async (res: Response, limit: number): Promise<Uint8Array | null> => {
    try {
      return await readAtMost(res.body, limit);
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      // The body's stream failed with whatever the fetch implementation threw: `(e as Error).message` was undefined for
      // a value that is not an Error, and redactUrls then threw in place of this error.
      const why = e instanceof Stalled ? `the server stopped sending: ${e.message}` : redactUrls(thrownMessage(e), url);
      throw sourceError('network', scrub(`${name}: connection lost while downloading (${why}).`, opts.token));
    }
  };
  /**
   * Streams a 206 body into out[at…]; returns how many bytes arrived before the body ended or the connection broke
   * (never throws for a broken connection: the caller resumes from there).
   */
  const slowMs = opts.slowWindowMs ?? DEFAULT_SLOW_WINDOW_MS;
  /**
   * The wait since the last meaningful progress (PROGRESS_BYTES), over every read of this file (see slowWindowMs):
   * `ms`/`bytes` of the current window, `strikes` windows spent in a row, `totalMs`/`totalBytes` since the last
   * progress (for the message). Concurrent reads each add their own wait.
   */
  const slow = { ms: 0, bytes: 0, strikes: 0, totalMs: 0, totalBytes: 0 };
  /** Adds the wait since `clock.mark` and `bytes` to `slow`; true when the window is spent without progress. */
  const tick = (clock: { mark: number }, bytes: number): boolean => {
    const now = Date.now();
    slow.ms += now - clock.mark;
    slow.totalMs += now - clock.mark;
    clock.mark = now;
    slow.bytes += bytes;
    slow.totalBytes += bytes;
    if (slow.bytes >= PROGRESS_BYTES) {
      Object.assign(slow, { ms: 0, bytes: 0, strikes: 0, totalMs: 0, totalBytes: 0 });
      return false;
    }
    return slow.ms >= slowMs;
  };
  const streamInto = async (res: Response, out: Uint8Array, at: number, clock: { mark: number }): Promise<{ got: number; error: unknown }> => {
    let got = 0;
    const reader = res.body?.getReader();
    if (!reader) return { got: 0, error: null };
    // The slow window is checked as each chunk comes (a body that sends none is the idle timer's).
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return { got, error: null };
        const room = out.byteLength - at - got;
        if (value.byteLength > room) {
          await reader.cancel().catch(() => undefined);
          throw sourceError('no-range', `${name}: the server sent more bytes than the range asked for.`);
        }
        out.set(value, at + got);
        got += value.byteLength;
        opts.onBytes?.(value.byteLength);
        // A chunk that completes the range ends the read either way (the next read's first chunk closes the window).
        if (tick(clock, value.byteLength) && at + got < out.byteLength) {
          await reader.cancel().catch(() => undefined);
          // A new window for the next connection, which often gets the rate back.
          [slow.ms, slow.bytes] = [0, 0];
          slow.strikes++;
          return { got, error: new TooSlow(slowMs) };
        }
      }
    } catch (e) {
      if (opts.signal?.aborted || (e instanceof FinetuneError && e.details?.reason === 'no-range')) throw e;
      return { got, error: e };
    }
  };
  let validator: string | null = null;
  /** The server's identity for the file (see LINKED_ETAG_HEADER): a resumed read must come from the same file. */
  const checkSameFile = (v: string | null): void => {
    // At a commit the API listed it at, the URL's content cannot change: other ETags are other CDN nodes.
    if (opts.known) return;
    if (validator !== null && v !== null && v !== validator) {
      throw sourceError('changed', `${name}: the file changed on the server while it was being read (ETag / Last-Modified differ); load it again.`);
    }
  };

  const answer = await get('bytes=0-0');
  const probe = answer.res;
  let size: number;
  let whole: Uint8Array | null = null;
  validator = answer.validator;
  // What builds before X-Linked-Etag was read called the file's version: the last answer's ETag or Last-Modified.
  const former = answerValidator(probe);
  if (probe.status === 206) {
    const cr = parseContentRange(probe.headers.get('content-range'));
    await drain(probe);
    if (!cr || cr.total === null) {
      throw sourceError('no-range', `${name}: the server answered a Range request without a usable Content-Range header; cannot tell the file size.`);
    }
    size = cr.total;
  } else {
    // 200: the server ignored Range and is sending the whole file.
    const limit = opts.fullDownloadLimit ?? DEFAULT_FULL_DOWNLOAD_LIMIT;
    const tooBig = (what: string): FinetuneError =>
      sourceError('no-range', `${name}: the server ignores HTTP Range requests (answered 200 instead of 206), and the file ${what} too big to download whole; serve it from a server that supports Range.`);
    const len = Number(probe.headers.get('content-length') ?? NaN);
    if (len > limit) {
      await drain(probe);
      throw tooBig(`(${len} bytes) is`);
    }
    // Read up to the limit whatever the answer declared: a chunked one declares nothing (a small config.json was
    // refused as "unknown size"), and a compressed one declares its compressed size, which fetch inflates past it (the
    // whole inflated body was buffered before it was measured).
    const got = await body(probe, limit);
    if (got === null) throw tooBig(`is bigger than ${limit} bytes,`);
    whole = got;
    size = whole.byteLength;
  }

  if (opts.known && opts.known.size !== size) {
    throw sourceError('changed', `${name}: the Hub lists it as ${opts.known.size} bytes, and its download has ${size}: load it again`);
  }
  // The version: the content id the Hub API lists, else the answer's (X-Linked-Etag, ETag, Last-Modified); the
  // former one, what earlier builds keyed the file by (the last answer's ETag), where that differs.
  const version = opts.known?.version ?? (validator ? `http ${validator}` : null);
  const formerVersion = former ? `http ${former}` : null;
  const src: ByteSource = {
    name,
    size,
    ...(version ? { version } : {}),
    ...(version && formerVersion && formerVersion !== version ? { formerVersion } : {}),
    async read(offset, length) {
      checkRange(src, offset, length);
      if (whole) return whole.slice(offset, offset + length);
      if (length === 0) return new Uint8Array(0);
      const out = new Uint8Array(length);
      let got = 0;
      // The waits the server asked for (Retry-After) over this read's requests: bounded, and not slow time.
      const asked = { ms: 0 };
      // Each pass asks for what is still missing; a connection that drops or stalls mid-body resumes from the last byte
      // received. `stalls`: how many of the attempts since the last progress stalled.
      for (let attempt = 1, stalls = 0; got < length; ) {
        const from = offset + got;
        // The wait for the answer counts as slow time too (its body's chunks add it up: see tick).
        const clock = { mark: Date.now() };
        const askedBefore = asked.ms;
        const { res, validator: v } = await get(`bytes=${from}-${offset + length - 1}`, asked);
        // Except a wait the server asked for: a minute of Retry-After closed the slow window on the answer's first chunk.
        clock.mark += asked.ms - askedBefore;
        if (res.status !== 206) {
          await drain(res);
          throw sourceError('no-range', `${name}: the server stopped honouring Range requests (answered ${res.status} instead of 206).`);
        }
        checkSameFile(v);
        const cr = parseContentRange(res.headers.get('content-range'));
        if (cr && cr.start !== from) {
          await drain(res);
          throw sourceError('no-range', `${name}: asked for bytes from ${from}, the server sent them from ${cr.start}.`);
        }
        // Another total is another file: the offsets read from its old header would take another file's bytes for
        // the tensor's. A server without ETag or Last-Modified (and a Hub file at a commit, whose ETags are not
        // compared) says so only here.
        if (cr && cr.total !== null && cr.total !== size) {
          await drain(res);
          throw sourceError('changed', `${name}: the server now gives the file as ${cr.total} bytes, and gave it as ${size} when it was opened: the file changed on the server while it was being read; load it again.`);
        }
        const r = await streamInto(res, out, got, clock);
        got += r.got;
        // The wait after the last chunk (a body that ended, or broke); a window it spends closes on the next chunk.
        if (!(r.error instanceof TooSlow)) tick(clock, 0);
        if (got >= length) break;
        // Progress (a MiB or more) resets the attempt count: a connection that keeps failing with next to nothing
        // delivered gives up.
        if (r.got >= PROGRESS_BYTES) [attempt, stalls] = [1, 0];
        let message: string;
        if (r.error instanceof TooSlow) {
          stalls++;
          // Counted over the file's reads (`slow`): how often, how long it waited, and what came meanwhile.
          const times = slow.strikes === 1 ? 'once' : `${slow.strikes} times in a row`;
          message = `${name}: the download is too slow (${r.error.message}, ${times}: ${slow.totalBytes} bytes in ${durationText(slow.totalMs)} of waiting); ${got} of ${length} bytes at offset ${offset} arrived: check the connection, then load the model again.`;
          if (slow.strikes > retries) throw sourceError('network', scrub(message, opts.token));
        } else if (r.error instanceof Stalled) {
          stalls++;
          const times = stalls === attempt ? `${attempt === 1 ? 'once' : `${attempt} times in a row`}` : `(${stalls} of ${attempt} attempts in a row without progress)`;
          message = `${name}: the download stalled (no data for ${secondsText(r.error.ms)}) ${times}; ${got} of ${length} bytes at offset ${offset} arrived: check the connection, then load the model again.`;
        } else {
          const why = r.error instanceof Error ? redactUrls(r.error.message, url) : 'the body ended early';
          message = `${name}: connection lost while downloading (${why}); ${got} of ${length} bytes at ${offset} arrived.`;
        }
        await backoff(attempt++, sourceError('network', scrub(message, opts.token)));
      }
      return out;
    },
  };
  return src;
}

export interface HubOptions extends Omit<HttpOptions, 'name' | 'accessHint' | 'hub'> {
  revision?: string;
}

/** One file of a Hub repository. */
export function hubSource(repo: string, file: string, opts: HubOptions = {}): Promise<ByteSource> {
  const revision = opts.revision ?? 'main';
  return hubSourceAt(repo, file, revision, revision, opts);
}

/** One file read at `at` (a commit, once a load is pinned), named in messages by the revision the user asked for. */
function hubSourceAt(repo: string, file: string, at: string, asked: string, opts: HttpOptions): Promise<ByteSource> {
  return httpSource(hubFileUrl(repo, file, at), {
    ...opts,
    name: `${repo}/${file}${asked === 'main' ? '' : `@${asked}`}`,
    accessHint: `Model page: https://huggingface.co/${repo}`,
    hub: { repo, revision: asked, file },
  });
}


/**
 * A Hub repository at a revision as a FileSet (it cannot list itself without the Hub API). A branch such as `main` can
 * move while a model loads (minutes for Mistral-7B), and each file resolved on its own could then come from another
 * commit: the first answer's X-Repo-Commit pins the set, every later file is read at that commit, and an answer from
 * another commit (the pinned file itself, read again after the branch moved) is refused.
 */
export function hubFileSet(repo: string, opts: HubOptions = {}): FileSet {
  checkRepoId(repo);
  const asked = opts.revision ?? 'main';
  let commit: string | null = null;
  // Where fetch follows the redirects (a browser), the Hub API names the commit and each file's content id, which the
  // redirect's headers would have (hub-manifest.ts). Unanswered, the files are read as before.
  const manifest = opts.redirects === 'here' ? null : hubManifest(repo, asked, { token: opts.token, fetch: opts.fetch, signal: opts.signal });
  return {
    // With its revision, main too: "someone/model@v1.0: no config.json" says which one lacks it.
    name: `${repo}@${asked}`,
    open: async (file, options) => {
      const signal = eitherSignal(opts.signal, options?.signal);
      // The API's requests heed this open's signal too: a checkpoint that stops its other shards stops them there.
      const pinned = manifest ? await manifest.commit(signal) : null;
      if (pinned !== null) commit ??= pinned;
      // Listed by the API only at the commit it named (not when an answer's X-Repo-Commit pinned another first).
      const known = manifest && pinned !== null && commit === pinned ? await manifest.file(file, signal) : null;
      const name = `${repo}/${file}${asked === 'main' ? '' : `@${asked}`}`;
      const onResponse = (res: Response, repoCommit: string | null): void => {
        opts.onResponse?.(res, repoCommit);
        const answered = repoCommit;
        if (answered === null || !/^[0-9a-f]{40}$/i.test(answered)) return;
        if (commit === null) commit = answered;
        else if (answered !== commit) {
          throw sourceError(
            'changed',
            `${name}: the Hub answered commit ${answered} for this file, and ${commit} for the files before it: the repository changed while the model was loading; load it again, or give the revision as a commit id`,
            { commit: answered, pinned: commit },
          );
        }
      };
      signal?.throwIfAborted();
      return hubSourceAt(repo, file, commit ?? asked, asked, { ...opts, signal, onResponse, ...(known ? { known } : {}) });
    },
  };
}

/** A FileSet of files under a base URL (e.g. the demo model served by the page's own origin). */
export function urlFileSet(baseUrl: string, opts: Omit<HttpOptions, 'name'> = {}): FileSet {
  const here = (globalThis as { location?: { href: string } }).location?.href;
  // The folder's path ends in a slash, so that files resolve inside it; a query on the folder's URL (?download=true,
  // a token some servers take) goes on every file's URL. (`…/repo?x=1` once resolved config.json to /config.json.)
  const u = new URL(baseUrl, here);
  const search = u.search;
  u.search = '';
  u.hash = '';
  if (!u.pathname.endsWith('/')) u.pathname = `${u.pathname}/`;
  const base = u.toString();
  return {
    name: displayUrl(base),
    open: (file, options) => {
      checkFileName(file, base);
      const path = file.split('/').map(encodeURIComponent).join('/');
      return httpSource(`${new URL(path, base).toString()}${search}`, { ...opts, name: file, signal: eitherSignal(opts.signal, options?.signal) });
    },
  };
}
