// The weight cache's Node store: one file per entry in a folder (default ~/.cache/finetune, or --cache-dir). An entry is
// written to a temporary file in the same folder, flushed, and renamed into place, so a crash or a full disk never
// leaves a half-written entry under its real name (and src/run/weight-cache.ts checks every part's hash anyway).

import { isFinetuneError } from '../core/errors.ts';
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import { makeFolder } from './make-folder.ts';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { checkCacheKey, readCacheEntryInfo, type WeightCacheEntryInfo, type WeightCacheStore } from '../run/weight-cache.ts';
import { nodeFileSource } from './node-source.ts';
import { processAlive } from './process-alive.ts';

export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'finetune');
}

const entryFile = (key: string): string => `weights-${checkCacheKey(key)}.bin`;

/** This host in a temporary file's name, so that a cache folder shared between machines is cleaned by its writer's. */
const HOST_TAG = hostname().replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40) || 'host';
/** A temporary file of an entry being written: weights-<key>.bin.<pid>.<ms>[.<host>].partial (older ones: no host). */
const PARTIAL = /^weights-[0-9a-f]{40}\.bin\.(\d+)\.(\d+)(?:\.([A-Za-z0-9-]+))?\.partial$/;
/** A partial this old is left over whatever its writer (a write of Mistral-7B's 4 GB takes minutes, not days). */
const STALE_PARTIAL_MS = 7 * 24 * 3600 * 1000;

/**
 * Removes what killed writers left: a partial of this host whose process no longer runs, or any partial a week old. A
 * `kill -9` during a write once left its partial (up to ≈ 4 GB for Mistral-7B) in the folder for good. Best effort:
 * a file that cannot be removed stays, and nothing fails for it.
 */
export async function removeLeftoverPartials(dir: string, now = Date.now(), alive: (pid: number) => boolean = processAlive): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = PARTIAL.exec(n);
    if (!m) continue;
    const [pid, started, host] = [Number(m[1]), Number(m[2]), m[3] ?? HOST_TAG];
    const leftOver = (host === HOST_TAG && pid !== process.pid && !alive(pid)) || now - started > STALE_PARTIAL_MS;
    if (!leftOver) continue;
    try {
      await rm(join(dir, n), { force: true });
      removed.push(n);
    } catch {
      // Not ours to insist on.
    }
  }
  return removed;
}

export function nodeWeightCache(dir: string = defaultCacheDir()): WeightCacheStore {
  return {
    async open(key) {
      await removeLeftoverPartials(dir);
      const path = join(dir, entryFile(key));
      try {
        if (!(await stat(path)).isFile()) return null;
      } catch {
        return null;
      }
      return nodeFileSource(path);
    },
    async write(key, chunks) {
      await makeFolder(dir);
      await removeLeftoverPartials(dir);
      const final = join(dir, entryFile(key));
      const temp = `${final}.${process.pid}.${Date.now()}.${HOST_TAG}.partial`;
      const fh = await open(temp, 'w');
      try {
        for await (const c of chunks) {
          let done = 0;
          while (done < c.byteLength) done += (await fh.write(c, done, c.byteLength - done)).bytesWritten;
        }
        await fh.sync();
        await fh.close();
        await rename(temp, final);
      } catch (e) {
        await fh.close().catch(() => undefined);
        await rm(temp, { force: true });
        throw e;
      }
    },
    async remove(key) {
      await rm(join(dir, entryFile(key)), { force: true });
    },
    async list() {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        return [];
      }
      const out: WeightCacheEntryInfo[] = [];
      for (const n of names) {
        const m = /^weights-([0-9a-f]{40})\.bin$/.exec(n);
        if (!m) continue;
        const path = join(dir, n);
        let s;
        try {
          s = await stat(path);
        } catch {
          continue; // removed meanwhile
        }
        // An unreadable footer is still listed (without a source), so that it can be removed; a load rebuilds it. An
        // entry that cannot be opened at all (another process removed it since the stat above) is left out: it threw
        // here, and a load lists the cache once it has finished (train, generate), so the finished load failed.
        let info: Awaited<ReturnType<typeof readCacheEntryInfo>>;
        try {
          info = await readCacheEntryInfo(await nodeFileSource(path));
        } catch (e) {
          if (isFinetuneError(e) && e.details?.reason === 'not-found') continue;
          info = null;
        }
        out.push({ key: m[1], bytes: s.size, ...(info ?? {}), writtenAt: s.mtimeMs });
      }
      return out.sort((a, b) => (b.writtenAt ?? 0) - (a.writtenAt ?? 0));
    },
  };
}
