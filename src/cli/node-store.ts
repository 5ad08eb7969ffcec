// The Node RunStore: a folder on disk holding a run's data, checkpoint and run.json (so `finetune train --resume`
// continues where a stopped run left off). Every file is written crash-safe: to a temporary file in the same folder,
// fsynced, renamed over the target, and the folder fsynced so the rename itself survives a power cut. The commit
// protocol on top (new files under new names, then the pointer) is run-store.ts's.
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { makeFolder } from './make-folder.ts';
import { basename, dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { pointerRunStore, type RunStore, type StoreFiles } from '../run/run-store.ts';
import { quote } from '../core/quote.ts';
import { nodeErrorMessage } from './node-error.ts';

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

/**
 * Writes a whole file crash-safe: to `.<name>.<random>.tmp` beside it, fsynced, renamed over `path`, and the folder
 * fsynced. A write that fails (a full disk, a kill, a lost mount) leaves the file that was there as it was, and the
 * temporary file is removed (a kill leaves it, a dot name no reader takes for the file). The error names the path, says
 * what was kept, and keeps Node's `code` (ENOSPC…). `probe` is called before each step (tests fail or kill there).
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array, probe?: WriteProbe): Promise<void> {
  await writeFilesAtomic(dirname(path), { [basename(path)]: bytes }, probe);
}

/**
 * Writes a set of files into `dir` as one (a PEFT adapter's config beside its weights): every file to its temporary
 * file and fsynced first, then all renamed over their targets, then the folder fsynced. A write that fails before the
 * renames (a full disk, a kill while the weights are written: seconds for a large adapter) leaves every file that was
 * there as it was. `key` names the file whose presence tells a reader the set is there (PEFT reads a folder as an
 * adapter only through adapter_config.json): the old one is removed before the first rename and the new one renamed
 * last, so a kill between two renames (microseconds) leaves a folder without it, which every reader refuses by name,
 * never the config of one set beside the weights of another. Errors as writeFileAtomic's, naming the file whose write
 * failed, and what a failure during the renames left.
 */
export async function writeFilesAtomic(dir: string, files: Record<string, Uint8Array>, probe?: WriteProbe, key?: string): Promise<void> {
  if (key !== undefined && !(key in files)) throw new Error(`writeFilesAtomic: the key file ${key} is not in the set`);
  await makeFolder(dir);
  const staged: { name: string; tmp: string }[] = [];
  let touched = false;
  let current = '';
  try {
    for (const [name, bytes] of Object.entries(files)) {
      current = name;
      const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
      staged.push({ name, tmp });
      await probe?.(`write ${name}`);
      const handle = await open(tmp, 'w');
      try {
        await handle.writeFile(bytes);
        await probe?.(`fsync ${name}`);
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    if (key !== undefined) {
      current = key;
      await probe?.(`remove ${key}`);
      await rm(join(dir, key), { force: true });
      touched = true;
    }
    // The key last: until it is in place the folder is no reader's set.
    const order = [...staged.filter((f) => f.name !== key), ...staged.filter((f) => f.name === key)];
    for (const { name, tmp } of order) {
      current = name;
      await probe?.(`rename ${name}`);
      touched = true;
      await rename(tmp, join(dir, name));
    }
    await probe?.(`fsync folder for ${current}`);
    await syncFolder(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Once the set's files are being swapped it is too late to take the old set back: said as it is.
    if (touched && (key === undefined || existsSync(join(dir, key)))) throw e;
    await Promise.all(staged.map(({ tmp }) => rm(tmp, { force: true }).catch(() => undefined)));
    if (touched) {
      throw Object.assign(new Error(`could not write ${quote(join(dir, current))}: ${nodeErrorMessage(e)}; ${quote(dir)} now holds part of the new set without ${key}, so no reader takes it for one: write it again`), { code, path: join(dir, current) });
    }
    if (code === undefined) throw e;
    const path = join(dir, current);
    const others = staged.length > 1 || Object.keys(files).length > 1 ? ` (nor any of ${Object.keys(files).join(', ')}: they are written as one set)` : '';
    const kept = existsSync(path) ? `the file that was there is kept as it was${others}` : `nothing was written there${others}`;
    // Node's message names the temporary file as it is: written with its paths quoted.
    throw Object.assign(new Error(`could not write ${quote(path)}: ${nodeErrorMessage(e)}; ${kept}`), { code, path });
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
      // A dot name: never mistaken for a store file, and removed by the next commit if this write is cut short.
      await writeFileAtomic(join(dir, name), bytes, probe);
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
