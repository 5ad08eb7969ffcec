// The Node RunStore: a folder on disk holding a run's data, checkpoint and run.json (so `finetune train --resume`
// continues where a stopped run left off). Every file is written crash-safe: to a temporary file in the same folder,
// fsynced, renamed over the target, and the folder fsynced so the rename itself survives a power cut. The commit
// protocol on top (new files under new names, then the pointer) is run-store.ts's.
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { makeFolder } from './make-folder.ts';
import { basename, dirname, join } from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { pointerRunStore, type RunStore, type StoreFiles } from '../run/run-store.ts';
import { quote } from '../core/quote.ts';
import { nodeErrorMessage, nodeErrorReason } from './node-error.ts';

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

/** The longest file name the usual file systems take, in bytes of UTF-8 (ext4, XFS, Btrfs, APFS; NTFS: 255 UTF-16 units). */
const MAX_NAME_BYTES = 255;

/**
 * `.<name>.<12 random hex>.tmp`: the temporary file written beside `name` before it is renamed over it. Its name part
 * is cut (at a character's end) so that the whole fits in MAX_NAME_BYTES: whole, it made the temporary name 18 bytes
 * longer than the name, so a name of over 237 bytes could never be written (ENAMETOOLONG on the temporary file),
 * though the name itself was a good one. The random part keeps it unique; the dot, the name's start and `.tmp` keep it
 * recognisable (and no reader's).
 */
function temporaryName(name: string): string {
  const suffix = `.${randomBytes(6).toString('hex')}.tmp`;
  return `.${utf8Prefix(name, MAX_NAME_BYTES - 1 - suffix.length)}${suffix}`;
}

/**
 * Removes what writes of `names` into `dir` that were killed left there: their temporary files (temporaryName's
 * `.<name>.<12 hex>.tmp`). A kill during train's adapter write left tens of MB of them in OUT/adapter for good. Only
 * where no other writer can be at work on the same names (train's OUT, under its lock): another's temporary file is
 * removed too.
 */
export async function removeLeftTemporaries(dir: string, names: readonly string[]): Promise<string[]> {
  const ours = names.map((n) => `.${utf8Prefix(n, MAX_NAME_BYTES - 1 - 18)}.`);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return [];
  }
  const left = entries.filter((e) => /\.[0-9a-f]{12}\.tmp$/.test(e) && ours.some((o) => e.startsWith(o) && e.length === o.length + 16));
  await Promise.all(left.map((e) => rm(join(dir, e), { force: true }).catch(() => undefined)));
  return left;
}

/** The longest start of `text` of at most `bytes` bytes in UTF-8, whole characters only. */
function utf8Prefix(text: string, bytes: number): string {
  let used = 0;
  let end = 0;
  for (const ch of text) {
    used += Buffer.byteLength(ch);
    if (used > bytes) break;
    end += ch.length;
  }
  return text.slice(0, end);
}

/**
 * Writes a whole file crash-safe: to `.<name>.<random>.tmp` beside it (temporaryName: the name part cut to fit), fsynced, renamed over `path`, and the folder
 * fsynced. A write that fails (a full disk, a kill, a lost mount) leaves the file that was there as it was, and the
 * temporary file is removed (a kill leaves it, a dot name no reader takes for the file). The error names the path, says
 * what was kept, and keeps Node's `code` (ENOSPC…). `probe` is called before each step (tests fail or kill there).
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array, probe?: WriteProbe): Promise<void> {
  await writeFilesAtomic(dirname(path), { [basename(path)]: bytes }, probe);
}

/** How far a writeFilesAtomic got: making its folder, writing the temporary files, renaming them, or done. */
type WriteStage = 'folder' | 'write' | 'swap' | 'done';

const errorCode = (e: unknown): string | undefined => {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

/**
 * Why the folder could not be made: the file in its way (makeFolder's ENOTDIR names it as `path`), else Node's words,
 * which name the folder (quoted by nodeErrorMessage), never a temporary file.
 */
function folderReason(e: unknown): string {
  const path = (e as NodeJS.ErrnoException).path;
  return errorCode(e) === 'ENOTDIR' && typeof path === 'string' ? `${quote(path)} is a file, not a folder` : nodeErrorMessage(e);
}

/** What a failure left at `path`: the file (or folder) that was there, or nothing. */
function keptAt(path: string): string {
  let isFolder: boolean | null;
  try {
    isFolder = statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? null;
  } catch {
    isFolder = null; // as existsSync answers for a path it cannot look at
  }
  if (isFolder === null) return 'nothing was written there';
  return isFolder ? 'the folder there is kept as it was' : 'the file that was there is kept as it was';
}

/**
 * Writes a set of files into `dir` as one (a PEFT adapter's config beside its weights): every file to its temporary
 * file and fsynced first, then all renamed over their targets, then the folder fsynced. A write that fails before the
 * renames (a full disk, a kill while the weights are written: seconds for a large adapter) leaves every file that was
 * there as it was. `key` names the file whose presence tells a reader the set is there (PEFT reads a folder as an
 * adapter only through adapter_config.json): the old one is removed before the first rename and the new one renamed
 * last, so a kill between two renames (microseconds) leaves a folder without it, which every reader refuses by name,
 * never the config of one set beside the weights of another. Errors as writeFileAtomic's, naming the file whose write
 * failed (never the temporary file Node's own message names), and what a failure during the renames left; no
 * temporary file is left behind.
 */
export async function writeFilesAtomic(dir: string, files: Record<string, Uint8Array>, probe?: WriteProbe, key?: string): Promise<void> {
  if (key !== undefined && !(key in files)) throw new Error(`writeFilesAtomic: the key file ${key} is not in the set`);
  const staged: { name: string; tmp: string }[] = [];
  let stage: WriteStage = 'folder';
  let renamed = 0;
  // The file a failure names: the first of the set until one is being written.
  let current = Object.keys(files)[0] ?? '';
  try {
    await makeFolder(dir);
    stage = 'write';
    for (const [name, bytes] of Object.entries(files)) {
      current = name;
      const tmp = join(dir, temporaryName(name));
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
      stage = 'swap';
    }
    // The key last: until it is in place the folder is no reader's set.
    const order = [...staged.filter((f) => f.name !== key), ...staged.filter((f) => f.name === key)];
    for (const { name, tmp } of order) {
      current = name;
      await probe?.(`rename ${name}`);
      stage = 'swap';
      await rename(tmp, join(dir, name));
      renamed++;
    }
    stage = 'done';
    await probe?.(`fsync folder for ${current}`);
    await syncFolder(dir);
  } catch (e) {
    // The temporary files not renamed: no reader takes them, and nothing completes them (a renamed one is gone).
    await Promise.all(staged.map(({ tmp }) => rm(tmp, { force: true }).catch(() => undefined)));
    throw writeFailure(e, { dir, files, current, stage, renamed, key });
  }
}

/**
 * writeFilesAtomic's failure as the user reads it: the file asked for, quoted, why (Node's words without its copy of the
 * path, which is the temporary file's), and what is left. Node's `code` is kept, and `path`: the file asked for, or,
 * where its folder could not be made, what stood in the way (kernel-tuning.ts tells the two apart by them). An error
 * that is not Node's (ours, a test's probe) is passed on as it is, but where the set's files were being swapped.
 */
function writeFailure(e: unknown, w: { dir: string; files: Record<string, Uint8Array>; current: string; stage: WriteStage; renamed: number; key?: string }): unknown {
  const code = errorCode(e);
  const path = join(w.dir, w.current);
  const named = (message: string, at: string = path): Error => Object.assign(new Error(`could not write ${quote(path)}: ${message}`), { code, path: at });
  // Once the set's files are being swapped it is too late to take the old set back: said as it is.
  if (w.stage === 'swap' && w.key !== undefined && !existsSync(join(w.dir, w.key))) {
    return named(`${nodeErrorReason(e)}; ${quote(w.dir)} now holds part of the new set without ${w.key}, so no reader takes it for one: write it again`);
  }
  if (code === undefined || w.stage === 'done') return e;
  if (w.stage === 'swap' && w.renamed > 0) return named(`${nodeErrorReason(e)}; ${quote(w.dir)} now holds part of the new set: write it again`);
  const names = Object.keys(w.files);
  const others = names.length > 1 ? ` (nor any of ${names.join(', ')}: they are written as one set)` : '';
  if (w.stage === 'folder') {
    const at = (e as NodeJS.ErrnoException).path;
    return named(`${folderReason(e)}; nothing was written there${others}`, typeof at === 'string' ? at : path);
  }
  return named(`${nodeErrorReason(e)}; ${keptAt(path)}${others}`);
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
