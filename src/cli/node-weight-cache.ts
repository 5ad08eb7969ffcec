// The weight cache's Node store: one file per entry in a folder (default ~/.cache/finetune, or --cache-dir). An entry is
// written to a temporary file in the same folder, flushed, and renamed into place, so a crash or a full disk never
// leaves a half-written entry under its real name (and src/run/weight-cache.ts checks every part's hash anyway).

import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { checkCacheKey, type WeightCacheStore } from '../run/weight-cache.ts';
import { nodeFileSource } from './node-source.ts';

export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'finetune');
}

const entryFile = (key: string): string => `weights-${checkCacheKey(key)}.bin`;

export function nodeWeightCache(dir: string = defaultCacheDir()): WeightCacheStore {
  return {
    async open(key) {
      const path = join(dir, entryFile(key));
      try {
        if (!(await stat(path)).isFile()) return null;
      } catch {
        return null;
      }
      return nodeFileSource(path);
    },
    async write(key, chunks) {
      await mkdir(dir, { recursive: true });
      const final = join(dir, entryFile(key));
      const temp = `${final}.${process.pid}.${Date.now()}.partial`;
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
      const out = [];
      for (const n of names) {
        const m = /^weights-([0-9a-f]{40})\.bin$/.exec(n);
        if (m) out.push({ key: m[1], bytes: (await stat(join(dir, n))).size });
      }
      return out;
    },
  };
}
