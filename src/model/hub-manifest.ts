// What the Hub's API says of a repository at a revision: the commit the revision is, and per file its content id (an
// LFS file's SHA-256, else its git blob id) and size. A browser needs it: fetch follows the resolve URL's redirect to the
// CDN out of sight, so the X-Repo-Commit and X-Linked-Etag headers the command line reads on that redirect are never
// seen there (docs/models.md). Without them the page could neither pin a load to one commit nor version a shard by its
// content: it versioned shards by the CDN's ETag, which nothing promises to keep for a file.
//
// The API: GET /api/models/{repo}/revision/{revision} answers the model's info with `sha`, the commit; POST
// /api/models/{repo}/paths-info/{commit} with {"paths": [...]} answers [{type, path, size, oid, lfs?: {oid, size}}].
// Either failing (no network, CORS, a proxy, another shape) is no error here: the caller reads the files as before.

import { parseBoundedJson } from '../core/bounded-json.ts';
import { readAtMost } from '../core/bytes.ts';
import { eitherSignal, untilAborted } from '../core/signals.ts';

/** The file as the API lists it at the pinned commit. */
export interface HubFileInfo {
  /** "http \"<sha256>\"" for an LFS file (the form the command line's X-Linked-Etag gives), else "http \"<blob id>\"". */
  version: string;
  size: number;
}

export interface HubManifestOptions {
  token?: string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

/** The most of an API answer read: a model's info lists its files, which stays far below this for any model. */
const MAX_API_BYTES = 8 * 1024 * 1024;

const COMMIT = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** The answer's JSON, or null for anything but a 200 with a bounded, parsable body. */
async function apiJson(res: Response): Promise<unknown> {
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    return null;
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > MAX_API_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    return null;
  }
  // Read up to the bound, whatever the answer declared (or did not).
  if (!res.body) return null;
  const body = await readAtMost(res.body, MAX_API_BYTES);
  if (!body) return null;
  try {
    return parseBoundedJson(new TextDecoder().decode(body), 'the Hub API answer');
  } catch {
    return null;
  }
}

/** What hubManifest gives; each call's `signal` ends that call's wait, and the requests it started (see sharedAnswer). */
export interface HubManifest {
  /** The revision's commit; null when the API does not answer. */
  commit(signal?: AbortSignal): Promise<string | null>;
  /** The file at that commit; null when it is not listed or the API does not answer. */
  file(path: string, signal?: AbortSignal): Promise<HubFileInfo | null>;
}

/**
 * One answer asked for once and shared by its callers, each waiting under its own signal. A caller whose signal aborts
 * stops waiting at once, and the request it started ends with it (a request is made under its first caller's signal):
 * a caller still waiting on that one then asks again under its own, as does any later caller. A load's open that is
 * stopped (a checkpoint whose other shard failed) once left the API's requests running to their end.
 */
function sharedAnswer<T>(start: (signal: AbortSignal | undefined) => Promise<T>): (signal?: AbortSignal) => Promise<T> {
  let current: { answer: Promise<T>; signal: AbortSignal | undefined } | null = null;
  return async (signal) => {
    for (;;) {
      signal?.throwIfAborted();
      let asked = current;
      if (asked === null) {
        const entry = { answer: start(signal), signal };
        // Ended by its starter's signal, it is nobody's answer (and no rejection is left unhandled).
        entry.answer.catch(() => {
          if (current === entry) current = null;
        });
        current = asked = entry;
      }
      try {
        return await untilAborted(asked.answer, signal);
      } catch (e) {
        if (signal?.aborted || !asked.signal?.aborted) throw e;
        if (current === asked) current = null;
      }
    }
  };
}

/**
 * The Hub API for one repository at one revision, asked lazily and once per file: `commit()` the revision's commit
 * (null when the API does not answer), `file(path)` that file at the commit (null when it is not listed or the API
 * does not answer). The token goes in the Authorization header to huggingface.co only, as for the files. Requests heed
 * `o.signal` (the whole set's) and the signal of the call that made them.
 */
export function hubManifest(repo: string, revision: string, o: HubManifestOptions = {}): HubManifest {
  const doFetch = o.fetch ?? globalThis.fetch.bind(globalThis);
  const api = `https://huggingface.co/api/models/${repo}`;
  const auth: Record<string, string> = o.token ? { Authorization: `Bearer ${o.token}` } : {};
  const ask = async (url: string, init: RequestInit, callSignal: AbortSignal | undefined): Promise<unknown> => {
    const signal = eitherSignal(o.signal, callSignal);
    try {
      return await apiJson(await doFetch(url, { ...init, signal }));
    } catch (e) {
      // A stop asked by the user is the user's; every other failure leaves the load to read the files as before.
      if (signal?.aborted) throw e;
      return null;
    }
  };
  const getCommit = sharedAnswer((signal) =>
    ask(`${api}/revision/${encodeURIComponent(revision)}`, { headers: auth }, signal).then((info) => {
      const sha = (info as { sha?: unknown } | null)?.sha;
      return typeof sha === 'string' && COMMIT.test(sha) ? sha : null;
    }),
  );
  const getFile = async (path: string, signal: AbortSignal | undefined): Promise<HubFileInfo | null> => {
    const at = await getCommit(signal);
    if (at === null) return null;
    const answer = await ask(
      `${api}/paths-info/${at}`,
      {
        method: 'POST',
        headers: { ...auth, 'Content-Type': 'application/json' },
        body: JSON.stringify({ paths: [path], expand: false }),
      },
      signal,
    );
    if (!Array.isArray(answer)) return null;
    const entry = answer.find((e: unknown) => (e as { path?: unknown } | null)?.path === path) as
      | { type?: unknown; size?: unknown; oid?: unknown; lfs?: { oid?: unknown; size?: unknown } | null }
      | undefined;
    if (!entry || entry.type !== 'file' || typeof entry.size !== 'number' || !Number.isSafeInteger(entry.size) || entry.size < 0) return null;
    const lfs = entry.lfs && typeof entry.lfs.oid === 'string' ? entry.lfs.oid.replace(/^sha256:/, '') : null;
    if (lfs !== null) return SHA256.test(lfs) ? { version: `http "${lfs}"`, size: entry.size } : null;
    return typeof entry.oid === 'string' && COMMIT.test(entry.oid) ? { version: `http "${entry.oid}"`, size: entry.size } : null;
  };
  // A load opens a file more than once (its identity for the cache, then its weights): asked once each.
  const listed = new Map<string, (signal?: AbortSignal) => Promise<HubFileInfo | null>>();
  return {
    commit: (signal) => getCommit(signal),
    file(path, signal) {
      let get = listed.get(path);
      if (!get) listed.set(path, (get = sharedAnswer((s) => getFile(path, s))));
      return get(signal);
    },
  };
}
