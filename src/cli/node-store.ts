// The Node RunStore: a folder on disk holding a run's data, checkpoint and run.json (so `finetune train --resume`
// continues where a stopped run left off).
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunStore } from '../run/session.ts';

export function folderRunStore(dir: string): RunStore {
  return {
    async save(name, bytes) {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, name), bytes);
    },
    async load(name) {
      try {
        return new Uint8Array(await readFile(join(dir, name)));
      } catch {
        return null;
      }
    },
    async remove(name) {
      await rm(join(dir, name), { force: true });
    },
  };
}
