// The Node RunStore: a folder on disk holding a run's data, checkpoint and run.json (so `finetune train --resume`
// continues where a stopped run left off). Every file is written crash-safe: to a temporary file in the same folder,
// fsynced, renamed over the target, and the folder fsynced so the rename itself survives a power cut. The commit
// protocol on top (new files under new names, then the pointer) is run-store.ts's.
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { makeFolder } from './make-folder.ts';
import { join } from 'node:path';
import { pointerRunStore, type RunStore, type StoreFiles } from '../run/run-store.ts';

/** Called before each step of a write; a test uses it to kill the process at a known point. */
export type WriteProbe = (point: string) => void | Promise<void>;

async function syncFolder(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
  } catch {
    return; // Some platforms (Windows) cannot open a folder; there the rename is as durable as it gets.
  }
  try {
    await handle.sync();
  } catch {
    // Likewise: fsync on a folder handle is not supported everywhere.
  } finally {
    await handle.close();
  }
}

export function folderStoreFiles(dir: string, probe?: WriteProbe): StoreFiles {
  return {
    async read(name) {
      try {
        return new Uint8Array(await readFile(join(dir, name)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
    async write(name, bytes) {
      await makeFolder(dir);
      // A dot name: never mistaken for a store file, and removed by the next commit if this write is cut short.
      const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
      await probe?.(`write ${name}`);
      const handle = await open(tmp, 'w');
      try {
        await handle.writeFile(bytes);
        await probe?.(`fsync ${name}`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await probe?.(`rename ${name}`);
      await rename(tmp, join(dir, name));
      await probe?.(`fsync folder for ${name}`);
      await syncFolder(dir);
    },
    async remove(name) {
      await probe?.(`remove ${name}`);
      await rm(join(dir, name), { force: true });
    },
    async list() {
      try {
        return await readdir(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw e;
      }
    },
  };
}

export function folderRunStore(dir: string, probe?: WriteProbe): RunStore {
  return pointerRunStore(folderStoreFiles(dir, probe));
}
