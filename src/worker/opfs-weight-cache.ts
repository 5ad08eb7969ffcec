// The weight cache's browser store: one file per entry in the origin-private file system (OPFS), folder
// `finetune-weights`, which the page and its worker share. An entry is written through a writable stream: the browser
// keeps the bytes in a swap file (`NAME.crswap`, listed beside it) and swaps them in only on close, so a write that
// fails or a tab closed mid-write never shows a partial entry under the real name. What it can leave is the empty file
// that getFileHandle({create}) made: an aborted write removes it (unless another tab's write has since put an entry
// there, which stays), and `open` and `list` ignore anything too short to be an entry. (Every part's hash is checked on load anyway, src/run/weight-cache.ts.)
//
// The quota: a browser gives each site a share of the disk. The store asks `navigator.storage.estimate()` before it
// writes and refuses an entry that does not fit, so nothing is half-written; a QuotaExceededError during the write
// (other tabs, an estimate that was off) aborts it with the same message.

import { FinetuneError, thrownMessage, thrownName } from '../core/errors.ts';
import { formatBytes } from '../core/units.ts';
import { blobSource } from '../model/source.ts';
import { checkCacheKey, readCacheEntryInfo, type WeightCacheEntryInfo, type WeightCacheStore } from '../run/weight-cache.ts';
import { storageFailure, type OpfsDirectory, type OpfsFileHandle } from './opfs-store.ts';

export const WEIGHT_CACHE_FOLDER = 'finetune-weights';

const ENTRY_NAME = /^weights-([0-9a-f]{40})\.bin$/;
const entryName = (key: string): string => `weights-${checkCacheKey(key)}.bin`;
/** The smallest entry: a footer's length (8 bytes) and one byte of footer. Shorter: being written, or left by a crash. */
const MIN_ENTRY_BYTES = 9;

/** What `navigator.storage.estimate()` answers (either figure may be missing). */
export interface StorageEstimate {
  usage?: number;
  quota?: number;
}

export interface OpfsWeightCacheOptions {
  /** The site's usage and quota (navigator.storage.estimate); without it, writes are not checked beforehand. */
  estimate?: () => Promise<StorageEstimate>;
}

// Read by a function that never throws: what OPFS throws may be an object whose reads throw.
const isNotFound = (e: unknown): boolean => thrownName(e) === 'NotFoundError';

/** The note a user reads when an entry does not fit: how much, how much is free, and how to make room. */
function quotaError(bytes: number | undefined, free: number | null, during: boolean): FinetuneError {
  const need = bytes !== undefined ? `they need ${formatBytes(bytes)}` : 'they do not fit';
  const left = free === null ? "this browser's storage quota for this site is full" : `only ${formatBytes(Math.max(0, free))} of this browser's storage quota for this site ${during ? 'was' : 'is'} free`;
  return new FinetuneError('out-of-memory', `${need}, and ${left}${during ? ' (the quota ran out while writing; nothing was kept)' : ''}. Delete cached models (Model panel, Cached models) to make room`, {
    reason: 'storage-quota',
    bytes,
    free,
  });
}

/** A WeightCacheStore over an OPFS folder (FileSystemDirectoryHandle fits; tests pass an in-memory fake). */
export function opfsWeightCache(dir: OpfsDirectory, o: OpfsWeightCacheOptions = {}): WeightCacheStore {
  const handle = async (name: string): Promise<OpfsFileHandle | null> => {
    try {
      return await dir.getFileHandle(name);
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  };
  const removeQuietly = async (name: string): Promise<void> => {
    try {
      await dir.removeEntry(name);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  };
  /**
   * Removes the empty file this write's getFileHandle({create}) made, unless another tab has since swapped an entry in
   * under that name (its write closed while this one ran): that entry is good and stays. OPFS has no remove-if-
   * unchanged, so a close landing between the look and the removal (milliseconds) is not covered.
   */
  const removeOwnEmptyFile = async (name: string): Promise<void> => {
    const h = await handle(name);
    if (!h || (await h.getFile()).size >= MIN_ENTRY_BYTES) return;
    await removeQuietly(name);
  };
  /** Free bytes of the site's quota, or null when the browser does not say. */
  const freeBytes = async (): Promise<number | null> => {
    const est = await o.estimate?.().catch(() => null);
    return typeof est?.quota === 'number' && typeof est.usage === 'number' ? est.quota - est.usage : null;
  };

  return {
    async open(key) {
      const name = entryName(key);
      const h = await handle(name);
      if (!h) return null;
      const file = await h.getFile();
      if (file.size < MIN_ENTRY_BYTES) return null;
      return blobSource(file, `the cached weights ${name}`);
    },

    async write(key, chunks, bytes) {
      const name = entryName(key);
      const free = await freeBytes();
      if (bytes !== undefined && free !== null && bytes > free) throw quotaError(bytes, free, false);
      // The browser's failures become an Error that names the entry, read by functions that never throw: re-thrown as
      // they were, an object with no prototype left loadWeightsCached's "not cached" note nothing to say but that. A
      // failure of `chunks` (the weights read back from the GPU) is ours, and passes as it is.
      const browser = <T>(step: () => Promise<T>): Promise<T> =>
        step().catch((e: unknown) => {
          throw storageFailure(`could not write ${name} to`, e);
        });
      const existed = (await browser(() => handle(name))) !== null;
      const w = await browser(async () => (await dir.getFileHandle(name, { create: true })).createWritable());
      try {
        for await (const c of chunks) await browser(() => w.write(c));
        await browser(() => w.close());
      } catch (e) {
        // Drops the swap file; the real name keeps what it had (nothing, for a new entry: remove the empty file).
        await w.abort().catch(() => undefined);
        if (!existed) await removeOwnEmptyFile(name).catch(() => undefined);
        // storageFailure keeps the browser's error name, so a full quota is still told from other failures here.
        throw thrownName(e) === 'QuotaExceededError' ? quotaError(bytes, free, true) : e;
      }
    },

    async remove(key) {
      await removeQuietly(entryName(key));
    },

    async list() {
      const out: WeightCacheEntryInfo[] = [];
      for await (const name of dir.keys()) {
        const key = ENTRY_NAME.exec(name)?.[1];
        if (!key) continue; // swap files (NAME.crswap) and anything else
        let file: Blob;
        try {
          const h = await handle(name);
          if (!h) continue; // removed meanwhile
          file = await h.getFile();
        } catch (e) {
          if (isNotFound(e)) continue;
          throw e;
        }
        if (file.size < MIN_ENTRY_BYTES) continue;
        // An unreadable footer is still listed (without a source), so that it can be deleted; a load rebuilds it.
        const info = await readCacheEntryInfo(blobSource(file, name)).catch(() => null);
        const writtenAt = (file as Partial<File>).lastModified;
        out.push({ key, bytes: file.size, ...(info ?? {}), ...(typeof writtenAt === 'number' ? { writtenAt } : {}) });
      }
      return out.sort((a, b) => (b.writtenAt ?? 0) - (a.writtenAt ?? 0));
    },
  };
}

/** The browser's store, or why there is none (no OPFS in this worker: each load then downloads again). */
export async function browserWeightCache(): Promise<{ store: WeightCacheStore } | { store: null; reason: string }> {
  try {
    // Inside the try: a worker where storage is denied (a sandboxed frame's) can throw on the read itself, and that is
    // a reason to load uncached, not a failed load.
    const storage = (self.navigator as Navigator | undefined)?.storage;
    if (!storage?.getDirectory) return { store: null, reason: 'this browser offers no origin-private file system (OPFS) to the worker' };
    const dir = await (await storage.getDirectory()).getDirectoryHandle(WEIGHT_CACHE_FOLDER, { create: true });
    // The DOM typings this project compiles against lack the async-iterable half of FileSystemDirectoryHandle (keys()).
    return { store: opfsWeightCache(dir as unknown as OpfsDirectory, { estimate: () => storage.estimate() }) };
  } catch (e) {
    // thrownMessage never throws: String() of an object with no prototype did, and the reason became a failed load.
    return { store: null, reason: `the browser refused its origin-private file system (${thrownMessage(e)}), as private windows may` };
  }
}
