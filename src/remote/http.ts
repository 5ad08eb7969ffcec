// The fetch the `replicate` client is given. The client's own retry loop retries 429s (and 5xx on GET) at once, without
// waiting for Retry-After, and turns failures into messages holding the whole URL and body. So this fetch does the
// waiting itself — honouring Retry-After on 429, backing off on server errors and lost connections of GETs (never
// re-sending a POST that may have been acted on) — and throws our FinetuneError for the final answer. The client swallows
// errors from its fetch and calls again with the same `init` object; a failure is therefore remembered per `init` and
// thrown again at once, so its retries cost nothing and our error is the one that comes out. API calls have a deadline
// (timeoutMs, 30 s) and a GET past it is retried like a lost connection; output downloads are judged by idleness
// (idleTimeoutMs, 120 s between bytes). An upload's progress cannot be watched through fetch, so it has a deadline sized
// by its body: the idle wait plus its bytes at the slowest rate waited for (uploadBytesPerSecond, 32 KiB/s).

import { isWrongAddress } from '../core/network-errors.ts';
import { FinetuneError } from '../core/errors.ts';
import { httpError, networkError, networkWhy, describeCall, OUTPUT_DOWNLOAD_CALL } from './errors.ts';
import { visibleText } from '../core/quote.ts';
import { answerName, describeBody, notJsonError } from './answers.ts';
import { allowedRoute } from './endpoints.ts';
import { formatBytes } from '../core/units.ts';
import { retryAfterMs } from '../core/retry-after.ts';

export interface RetryPolicy {
  /** Retries after 429 (any method: a 429 was not acted on) and after 5xx / lost connections (GET only). */
  maxRetries: number;
  /** First back-off for 5xx and lost connections; doubled each time. */
  baseDelayMs: number;
  /** A Retry-After longer than this is not waited for: the 429 is reported with it. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 4, baseDelayMs: 1000, maxRetryAfterMs: 60_000 };

/** Time one API call (not an upload) may take, request to last byte of the answer. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Uploads and output downloads: longest wait for the answer's headers (downloads) or for its next bytes. */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000;
/** The slowest upload waited for: a 100 MB file (the files API's limit) gets 53 minutes. */
export const DEFAULT_UPLOAD_BYTES_PER_SECOND = 32 * 1024;

export interface RemoteFetchOptions {
  token?: string;
  /** The API base, to name calls by their path after it. */
  apiBase: string;
  /** Whether apiBase is the page's proxy (changes who a 502/504 blames). */
  proxied?: boolean;
  retry?: Partial<RetryPolicy>;
  fetch?: typeof fetch;
  /** Tests shorten waits through this. */
  sleep?: (ms: number, signal?: AbortSignal | null) => Promise<void>;
  /** Told about each wait (status line in the CLI and the page). */
  /** `detail`: for a network failure, its reason in a few words ("read ECONNRESET"). */
  onRetry?: (info: { status: number | 'network'; waitMs: number; attempt: number; call: string; detail?: string }) => void;
  /** An API call (not an upload) that has not answered in full after this long is dropped: retried as a lost connection if a GET. */
  timeoutMs?: number;
  /** Uploads and output downloads: dropped when no bytes of the answer come for this long (downloads: headers too). */
  idleTimeoutMs?: number;
  /** Uploads: the deadline is idleTimeoutMs plus the body's size at this rate (bytes per second). */
  uploadBytesPerSecond?: number;
}

const seconds = (ms: number): string => String(Math.round(ms) / 1000);

export function abortableSleep(ms: number, signal?: AbortSignal | null): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The bytes a request body sends (FormData: its parts' contents), 0 where it cannot be told. */
function bodyBytes(body: RequestInit['body']): number {
  if (body == null) return 0;
  if (typeof body === 'string') return new TextEncoder().encode(body).byteLength;
  if (body instanceof Blob) return body.size;
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return body.byteLength;
  if (typeof FormData !== 'undefined' && body instanceof FormData) {
    let n = 0;
    for (const [, v] of body) n += typeof v === 'string' ? new TextEncoder().encode(v).byteLength : v.size;
    return n;
  }
  return 0;
}

function callOf(url: string, apiBase: string, method: string): string {
  // Outside the API's routes this client fetches one thing: a training's output (from Replicate's delivery host, or the
  // page's proxy's /replicate/download), named as such (a 404 there was blamed on the owner/name or the training id).
  if (!url.startsWith(`${apiBase.replace(/\/+$/, '')}/`)) return OUTPUT_DOWNLOAD_CALL;
  return describeCall(method, url.slice(apiBase.replace(/\/+$/, '').length));
}

/**
 * The answer with its body watched: each chunk re-arms the idle timer (already running since the request went out); when
 * no bytes come for idleMs the request is aborted and reading the body fails with a network error that says so.
 */
function guardIdle(res: Response, ac: AbortController, idleMs: number, call: string, host: string, timer: ReturnType<typeof setTimeout> | undefined): Response {
  if (!res.body) {
    clearTimeout(timer);
    return res;
  }
  let t = timer;
  let ctl: TransformStreamDefaultController<Uint8Array> | undefined;
  const arm = (): void => {
    clearTimeout(t);
    t = setTimeout(() => {
      const e = networkError(new Error(`no data for ${seconds(idleMs)} s`), call, host);
      ctl?.error(e);
      ac.abort(e);
    }, idleMs);
  };
  arm();
  // `cancel` is the Streams standard's (Node 20, current browsers) but not yet in TypeScript's lib, hence the type.
  const watcher: Transformer<Uint8Array, Uint8Array> & { cancel?: (reason: unknown) => void } = {
    start(c) {
      ctl = c;
    },
    transform(chunk, c) {
      arm();
      c.enqueue(chunk);
    },
    flush() {
      clearTimeout(t);
    },
    // A body given up on (an output past its size limit) is not read to its end: its idle timer goes with it.
    cancel() {
      clearTimeout(t);
    },
  };
  const body = res.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>(watcher));
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

export function remoteFetch(options: RemoteFetchOptions): typeof fetch {
  const policy = { ...DEFAULT_RETRY, ...options.retry };
  const doFetch = options.fetch ?? ((...a: Parameters<typeof fetch>) => globalThis.fetch(...a));
  const sleep = options.sleep ?? abortableSleep;
  const failed = new WeakMap<object, unknown>();
  // The host a failed request went to: an output download goes to replicate.delivery, not to the API base, and a
  // message naming the API host then sent people checking the wrong server.
  const hostOf = (url: string): string => {
    try {
      return new URL(url).host;
    } catch {
      return url;
    }
  };

  const base = options.apiBase.replace(/\/+$/, '');
  /** Hosts that have answered this client: after that, an unknown host or a refused connection is the network's fault. */
  const answered = new Set<string>();
  /**
   * An API call's answer must be JSON (the client calls response.json() on it); anything else (a captive portal's HTML
   * page, a 204 with no body: every allowlisted route answers JSON) is said here with the call's name, instead of a
   * SyntaxError. Output downloads (not API routes) pass as they are.
   */
  const ensureJson = async (res: Response, url: string, method: string): Promise<Response> => {
    if (!url.startsWith(`${base}/`)) return res;
    const path = url.slice(base.length).split('?')[0];
    if (!allowedRoute(method, path)) return res;
    const text = await res.text();
    try {
      JSON.parse(text);
    } catch {
      throw notJsonError(answerName(options.apiBase, method, path), describeBody(text, res.headers.get('content-type'), options.token), options.proxied);
    }
    return new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers });
  };

  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const uploadRate = options.uploadBytesPerSecond ?? DEFAULT_UPLOAD_BYTES_PER_SECOND;

  const wrapped = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    if (init && failed.has(init)) throw failed.get(init);
    const url = input instanceof Request ? input.url : String(input);
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const call = callOf(url, options.apiBase, method);
    const idempotent = method === 'GET' || method === 'HEAD';
    // An API call has a deadline for the whole answer; an upload (its body may take minutes to send) and an output
    // download (any size) are judged by idleness instead: the download's headers, then each next bytes of an answer.
    const isUpload = method === 'POST' && url.slice(base.length).split('?')[0] === '/files';
    const isApiCall = url.startsWith(`${base}/`) && !isUpload;
    let attempt = 0;
    try {
      for (;;) {
        const ac = new AbortController();
        // The caller's signal (Ctrl-C, the page's Stop) and the timeout's, as one; forwarded by hand where
        // AbortSignal.any is missing (older browsers).
        let signal: AbortSignal = ac.signal;
        const outer = init?.signal;
        if (outer) {
          if (typeof AbortSignal.any === 'function') signal = AbortSignal.any([outer, ac.signal]);
          else if (outer.aborted) ac.abort(outer.reason);
          else outer.addEventListener('abort', () => ac.abort(outer.reason), { once: true });
        }
        let timedOut: Error | null = null;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const arm = (ms: number, what: string): void => {
          clearTimeout(timer);
          timer = setTimeout(() => {
            timedOut = new Error(what);
            ac.abort(timedOut);
          }, ms);
        };
        if (isApiCall) arm(timeoutMs, `no answer within ${seconds(timeoutMs)} s`);
        else if (isUpload) {
          // Sending the body and the answer together: a connection that stalls while sending hangs fetch as surely as
          // a server that never answers.
          const bytes = bodyBytes(init?.body);
          const ms = idleMs + Math.ceil((bytes / uploadRate) * 1000);
          arm(ms, `no answer to the upload of ${formatBytes(bytes)} within ${seconds(ms)} s`);
        } else arm(idleMs, `no answer within ${seconds(idleMs)} s`);
        let res: Response;
        // Whether the timer was handed to the answer's body (guardIdle): every other way out of a try clears it, so a
        // finished call leaves nothing that aborts it later or keeps a finished command's process waiting.
        let handedOver = false;
        let failedText = '';
        try {
          try {
            res = await doFetch(input, { ...init, signal });
            answered.add(hostOf(url));
            // A redirect the caller asked to see (redirect: 'manual': downloadOutput judges each hop's host before
            // following it) is its answer, not a failure: turned into "answered 302", no redirect was ever followed.
            if (init?.redirect === 'manual' && res.status >= 300 && res.status < 400) return res;
            if (res.ok) {
              if (isApiCall || isUpload) return await ensureJson(res, url, method);
              handedOver = true;
              return guardIdle(res, ac, idleMs, call, hostOf(url), timer);
            }
            failedText = await res.text().catch(() => '');
          } catch (e) {
            if (init?.signal?.aborted) throw e;
            if (e instanceof FinetuneError && timedOut === null) throw e; // ensureJson's "not JSON"
            const cause = timedOut ?? e;
            // A host that has never answered and is unknown or refuses connections is a wrong address (a typo in
            // --api-base, a proxy not started): said at once, not after half a minute of retries.
            const wrongAddress = isWrongAddress(cause) && !answered.has(hostOf(url));
            if (!idempotent || wrongAddress || attempt >= policy.maxRetries) throw networkError(cause, call, hostOf(url), options.token);
            const waitMs = policy.baseDelayMs * 2 ** attempt;
            attempt++; // not inside onRetry's arguments: `?.` would skip the increment when there is no onRetry
            // Shown as it is on the status line: scrubbed and escaped here.
            options.onRetry?.({ status: 'network', waitMs, attempt, call, detail: visibleText(networkWhy(cause, options.token)) });
            await sleep(waitMs, init?.signal);
            continue;
          }
        } finally {
          if (!handedOver) clearTimeout(timer);
        }
        const after = retryAfterMs(res.headers.get('retry-after'));
        const retriable = res.status === 429 || (idempotent && res.status >= 500);
        const waitMs = res.status === 429 ? (after ?? policy.baseDelayMs * 2 ** attempt) : policy.baseDelayMs * 2 ** attempt;
        if (!retriable || attempt >= policy.maxRetries || waitMs > policy.maxRetryAfterMs) {
          throw httpError(res.status, failedText, call, {
            token: options.token,
            retries: attempt,
            retryAfterS: after === null ? undefined : Math.ceil(after / 1000),
            proxied: options.proxied,
          });
        }
        attempt++;
        options.onRetry?.({ status: res.status, waitMs, attempt, call });
        await sleep(waitMs, init?.signal);
      }
    } catch (e) {
      if (init) failed.set(init, e);
      throw e;
    }
  };
  return wrapped as typeof fetch;
}
