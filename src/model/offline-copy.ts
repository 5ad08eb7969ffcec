// An offline copy of a remote model's description: for a Hub repository (or a URL) whose weights the weight cache
// holds, what a load reads before the weights — config.json, the shard index, each shard's safetensors header, a
// tokenizer.model — with every file's size and version. When the server cannot be reached, a load of the same model
// reads those from the copy instead: the cache key (computed from the versions) finds the quantised weights, and the
// model loads without the network. Without the copy, a cached 4 GB Mistral-7B could not be loaded offline at all: the
// load asks the server for config.json and for a 1-byte probe of each file before it looks in the cache.
//
// What is kept: the reads of a safetensors file's header (its first 8 bytes say where its weights begin, and nothing
// past that is kept: the weight cache holds the weights), and of any other file's first MiB (config.json, an index, a
// tokenizer.model), grouped by file with its size and version; and the files the server said were not there. A copy
// is updated after each successful load (`keep`): files read online replace what was kept of an older version, and
// what this load did not read stays. A load that fell back on the copy says so in its notes, with the copy's date: the
// server may hold newer files.

import { sha256Hex } from '../core/bytes.ts';
import { FinetuneError, isFinetuneError, thrownMessage } from '../core/errors.ts';
import { checkFileName, isNotFound, type ByteSource, type FileSet, type OpenOptions } from './source.ts';

/** Where copies live (StoreFiles of src/run/run-store.ts fits: the weight cache's folder). */
export interface OfflineCopyStore {
  read(name: string): Promise<Uint8Array | null>;
  /** Replaces the file all-or-nothing. */
  write(name: string, bytes: Uint8Array): Promise<void>;
}

/** Reads that end inside a file's first MiB are kept (a safetensors file's: inside its header as well). */
export const OFFLINE_COPY_PREFIX_BYTES = 1024 * 1024;
/** A copy larger than this is not written (a few small files and headers take well under a MiB for Mistral-7B). */
const MAX_COPY_BYTES = 16 * 1024 * 1024;
const FORMAT = 'finetune-offline-copy';

interface KeptFile {
  /** The name the source gives it in messages (a Hub repository's `owner/name/file`). */
  label: string;
  size: number;
  version?: string;
  formerVersion?: string;
  /** [offset, bytes as base64], no two the same range. */
  ranges: [number, string][];
  /**
   * The file was not there (the server's not-found, in its words): a load asks for files that may be absent (a
   * sharded index before a single file), and offline it must hear "not found" again, not "no network".
   */
  missing?: string;
}

interface Copy {
  format: typeof FORMAT;
  source: string;
  /** When the copy was last updated (ms since 1970). */
  savedAt: number;
  files: Record<string, KeptFile>;
  /** SHA-256 of JSON.stringify([source, savedAt, files]): a damaged copy is not used. */
  sha256: string;
}

/** What a file set that keeps an offline copy adds to FileSet (its `offline`). */
export interface OfflineCopy {
  /** Writes what this load read into the copy (after a successful load); a failure is the caller's note, not an error. */
  keep(): Promise<void>;
  /** What the user should hear: that files came from the copy, of when, and why. Empty when none did. */
  notes(): string[];
}

/**
 * After a successful load from `files`: its offline copy updated, and the notes to show with the load (files read
 * from the copy; a copy that could not be written). None for a set without a copy.
 */
export async function keepOfflineCopy(files: FileSet): Promise<string[]> {
  if (!files.offline) return [];
  const notes = files.offline.notes();
  try {
    await files.offline.keep();
  } catch (e) {
    notes.push(`the description of the model's files was not kept for a load without the network (${thrownMessage(e)}); the weights are cached all the same`);
  }
  return notes;
}

const toBase64 = (bytes: Uint8Array): string => {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
const fromBase64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** The name of every copy's file (offlineCopyName). */
export const OFFLINE_COPY_FILE = /^offline-copy-[0-9a-f]{40}\.json$/;

/** The copy's file name in its store: the source's hash (a source is a path, a URL or a Hub id; none is a file name). */
export async function offlineCopyName(source: string): Promise<string> {
  return `offline-copy-${(await sha256Hex(new TextEncoder().encode(source))).slice(0, 40)}.json`;
}

/**
 * Removes the copies in `folder` of every source but `sourcesLeft` (the sources of the weight-cache entries that are
 * left: a copy serves only a load whose weights are cached). Returns how many went.
 */
export async function removeOrphanCopies(folder: { list(): Promise<string[]>; remove(name: string): Promise<void> }, sourcesLeft: Iterable<string>): Promise<number> {
  const wanted = new Set(await Promise.all([...sourcesLeft].map(offlineCopyName)));
  let removed = 0;
  for (const name of await folder.list()) {
    if (!OFFLINE_COPY_FILE.test(name) || wanted.has(name)) continue;
    await folder.remove(name);
    removed++;
  }
  return removed;
}

const copyHash = (c: Pick<Copy, 'source' | 'savedAt' | 'files'>): Promise<string> => sha256Hex(new TextEncoder().encode(JSON.stringify([c.source, c.savedAt, c.files])));

/** Whether two descriptions of a file are of the same contents: its size and version (never its formerVersion). */
const sameContents = (a: Pick<KeptFile, 'size' | 'version'>, b: { size: number; version?: string }): boolean => a.size === b.size && a.version === b.version;

/** Adds a kept range unless the same one (offset and bytes) is there: a header read twice is kept once. */
const addRange = (ranges: [number, string][], r: [number, string]): void => {
  if (!ranges.some(([at, b]) => at === r[0] && b === r[1])) ranges.push(r);
};

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The copy in `bytes` when it is whole and of `source`, else null (a damaged or foreign copy is not used). */
async function parseCopy(bytes: Uint8Array, source: string): Promise<Copy | null> {
  let c: unknown;
  try {
    c = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return null;
  }
  if (typeof c !== 'object' || c === null) return null;
  const copy = c as Partial<Copy>;
  if (copy.format !== FORMAT || copy.source !== source || !isCount(copy.savedAt) || typeof copy.files !== 'object' || copy.files === null) return null;
  for (const [name, f] of Object.entries(copy.files)) {
    try {
      checkFileName(name);
    } catch {
      return null;
    }
    if (typeof f !== 'object' || f === null || typeof f.label !== 'string' || !isCount(f.size) || !Array.isArray(f.ranges)) return null;
    if ((f.version !== undefined && typeof f.version !== 'string') || (f.formerVersion !== undefined && typeof f.formerVersion !== 'string')) return null;
    if (f.missing !== undefined && typeof f.missing !== 'string') return null;
    for (const r of f.ranges) {
      if (!Array.isArray(r) || r.length !== 2 || !isCount(r[0]) || typeof r[1] !== 'string') return null;
    }
  }
  if (copy.sha256 !== (await copyHash(copy as Copy))) return null;
  return copy as Copy;
}

/** A file served from the copy: its recorded size and version, and reads inside its kept ranges. */
function keptSource(f: KeptFile, why: string, date: string): ByteSource {
  const ranges = f.ranges.map(([offset, b64]) => ({ offset, bytes: fromBase64(b64) }));
  return {
    name: f.label,
    size: f.size,
    ...(f.version !== undefined ? { version: f.version } : {}),
    ...(f.formerVersion !== undefined ? { formerVersion: f.formerVersion } : {}),
    async read(offset: number, length: number): Promise<Uint8Array> {
      const r = ranges.find((x) => offset >= x.offset && offset + length <= x.offset + x.bytes.length);
      if (r) return r.bytes.slice(offset - r.offset, offset - r.offset + length);
      throw new FinetuneError(
        'network',
        `${f.label}: ${why}, and the offline copy of ${date} holds only its descriptions, not bytes ${offset}–${offset + length - 1}: the weights of these files are not in the weight cache (or not at these settings); connect to load them`,
        { reason: 'network', offline: true },
      );
    },
  };
}

/**
 * `inner` (a Hub repository, a URL) keeping an offline copy in `store` under `source` (the weight cache's name for the
 * model). Online, every file opens through `inner` and the reads worth keeping are noted; once an open fails for want of
 * the network (a FinetuneError of kind 'network': no answer, or the server failing after its retries), that file and
 * every later one the copy holds are served from it, without asking the server again (each try would wait through
 * its retries). A file the copy does not hold fails as `inner` fails.
 */
export function withOfflineCopy(
  inner: FileSet,
  store: OfflineCopyStore,
  source: string,
  o: {
    now?: () => number;
    /**
     * True when the machine knows it has no network (a browser's `navigator.onLine` false): the copy is read at once,
     * not after the first open has waited through its retries (about 15 s). A wrong true costs nothing the copy lacks:
     * a file it does not hold is still asked of the server.
     */
    knownOffline?: () => boolean;
  } = {},
): FileSet & { offline: OfflineCopy } {
  const now = o.now ?? Date.now;
  /** This load's files read online, and what of them was read. */
  const seen = new Map<string, KeptFile>();
  let stored: Promise<Copy | null> | null = null;
  const storedCopy = (): Promise<Copy | null> => {
    stored ??= (async () => {
      try {
        const bytes = await store.read(await offlineCopyName(source));
        return bytes ? await parseCopy(bytes, source) : null;
      } catch {
        return null; // An unreadable store is no copy: the load fails as it would have without one.
      }
    })();
    return stored;
  };
  /** Why the server was not asked (the first failure), once it failed; and the files served from the copy. */
  let offlineWhy: string | null = null;
  const served: string[] = [];
  let servedDate = '';

  const noting = (name: string, s: ByteSource): ByteSource => {
    // A file opened again (the cache identity's probe after the checkpoint's read) adds to what was read of it. The
    // same contents are the same size and version; formerVersion (a CDN's ETag on the page) may change from answer to
    // answer, and the last one is kept.
    const before = seen.get(name);
    const kept: KeptFile = before && before.missing === undefined && sameContents(before, s) ? before : { label: s.name, size: s.size, ...(s.version !== undefined ? { version: s.version } : {}), ranges: [] };
    if (s.formerVersion !== undefined) kept.formerVersion = s.formerVersion;
    else delete kept.formerVersion;
    seen.set(name, kept);
    const safetensors = name.endsWith('.safetensors');
    // Until its first 8 bytes are read, a safetensors file's first 8 bytes are all that is known to be its header.
    let headerEnd = safetensors ? 8 : Infinity;
    return {
      name: s.name,
      size: s.size,
      ...(s.version !== undefined ? { version: s.version } : {}),
      ...(s.formerVersion !== undefined ? { formerVersion: s.formerVersion } : {}),
      async read(offset, length) {
        const bytes = await s.read(offset, length);
        // A safetensors file's header length is its first 8 bytes: past the header are weights, which the cache holds.
        if (safetensors && offset === 0 && length >= 8) headerEnd = 8 + Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
        if (offset + length <= Math.min(headerEnd, OFFLINE_COPY_PREFIX_BYTES)) addRange(kept.ranges, [offset, toBase64(bytes)]);
        return bytes;
      },
    };
  };

  const fromCopy = async (name: string): Promise<ByteSource | null> => {
    const copy = await storedCopy();
    const f = copy?.files[name];
    if (!copy || !f || offlineWhy === null) return null;
    servedDate = new Date(copy.savedAt).toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
    if (f.missing !== undefined) throw new FinetuneError('bad-input', f.missing, { reason: 'not-found', offline: true });
    if (!served.includes(name)) served.push(name);
    return keptSource(f, offlineWhy, servedDate);
  };

  return {
    ...(inner.name !== undefined ? { name: inner.name } : {}),
    ...(inner.list ? { list: () => inner.list!() } : {}),
    async open(name: string, options?: OpenOptions): Promise<ByteSource> {
      if (offlineWhy === null && o.knownOffline?.()) offlineWhy = 'this machine is offline';
      if (offlineWhy !== null) {
        const kept = await fromCopy(name);
        if (kept) return kept;
      }
      try {
        return noting(name, await inner.open(name, options));
      } catch (e) {
        if (isNotFound(e)) seen.set(name, { label: name, size: 0, ranges: [], missing: thrownMessage(e) });
        if (!isFinetuneError(e, 'network') || options?.signal?.aborted) throw e;
        offlineWhy ??= `the server could not be reached (${thrownMessage(e).replace(/\.$/, '')})`;
        const kept = await fromCopy(name);
        if (kept) return kept;
        throw e;
      }
    },
    offline: {
      notes(): string[] {
        if (served.length === 0) return [];
        return [`offline: ${offlineWhy}; ${served.join(', ')} read from the offline copy of ${servedDate} (kept at an earlier load): the server may hold newer files`];
      },
      async keep(): Promise<void> {
        if (seen.size === 0) return;
        const before = await storedCopy();
        const files: Record<string, KeptFile> = { ...(before?.files ?? {}) };
        for (const [name, f] of seen) {
          const old = files[name];
          const ranges = old && f.missing === undefined && old.missing === undefined && sameContents(old, f) ? [...old.ranges] : [];
          for (const r of f.ranges) addRange(ranges, r);
          files[name] = { ...f, ranges };
        }
        const savedAt = now();
        const copy: Copy = { format: FORMAT, source, savedAt, files, sha256: await copyHash({ source, savedAt, files }) };
        const bytes = new TextEncoder().encode(JSON.stringify(copy));
        if (bytes.length > MAX_COPY_BYTES) throw new FinetuneError('bad-input', `the offline copy of ${source} would take ${bytes.length} bytes, more than the ${MAX_COPY_BYTES} kept`);
        await store.write(await offlineCopyName(source), bytes);
        stored = Promise.resolve(copy);
      },
    },
  };
}
