// Making a folder and its missing parents, as `mkdir -p` does. Node's own `mkdir(…, { recursive: true })` never returns
// where the kernel answers ENOENT for a folder whose parent exists (any new name under /proc: libuv retries the
// parent, which exists, then the child, forever): `--cache-dir /proc/x` hung `finetune train` at 100 % of a core. Here
// each missing folder is made once, from the top down, and an ENOENT after its parent exists is said as what it is.

import { mkdirSync, statSync, type Stats } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { FinetuneError } from '../core/errors.ts';
import { quote } from '../core/quote.ts';

const code = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code;

/** The folders to make, the outermost first, and the nearest existing ancestor (which must be a folder). */
function missingFolders(path: string, statOf: (p: string) => Stats | null): string[] {
  const missing: string[] = [];
  for (let p = resolve(path); ; p = dirname(p)) {
    const s = statOf(p);
    if (s) {
      if (!s.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir ${quote(path)} (${quote(p)} is a file)`), { code: 'ENOTDIR', path: p });
      return missing.reverse();
    }
    missing.push(p);
    if (dirname(p) === p) return missing.reverse();
  }
}

function refused(path: string, folder: string): FinetuneError {
  return new FinetuneError('bad-input', `cannot make the folder ${quote(path)}: ${quote(dirname(folder))} takes no new folders (making one there says "no such file")`);
}

const statOrNull = (p: string): Stats | null => {
  try {
    return statSync(p);
  } catch (e) {
    if (code(e) === 'ENOENT' || code(e) === 'ENOTDIR') return null;
    throw e;
  }
};

/** `mkdir -p path`; Node's errors (EACCES, ENOTDIR, EROFS…) pass through, and a folder made meanwhile is no error. */
export function makeFolderSync(path: string): void {
  for (const folder of missingFolders(path, statOrNull)) {
    try {
      mkdirSync(folder);
    } catch (e) {
      if (code(e) === 'EEXIST' && statOrNull(folder)?.isDirectory()) continue;
      if (code(e) === 'ENOENT') throw refused(path, folder);
      throw e;
    }
  }
}

/** The same, without blocking the event loop on the folder's own creation. */
export async function makeFolder(path: string): Promise<void> {
  for (const folder of missingFolders(path, statOrNull)) {
    try {
      await mkdir(folder);
    } catch (e) {
      if (code(e) === 'EEXIST' && (await stat(folder).catch(() => null))?.isDirectory()) continue;
      if (code(e) === 'ENOENT') throw refused(path, folder);
      throw e;
    }
  }
}
