// One `finetune train` at a time per --out folder. Two processes on one folder would each delete the other's newer
// checkpoint files and commit their own record over the other's (the run store's commit protocol is all-or-nothing
// for one writer, not a referee between two), and the last to finish would write its adapter over the other's: a run
// lost without a word. So train takes a lock file in OUT for as long as it runs.
//
// Written by hand rather than with a lock library: the refusal has to say which process holds the folder (its pid,
// host and start), and a lock left by a killed process (kill -9, a power cut) has to be recognised as such on this
// host at once, not after a staleness timeout, because a user retries right after.
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, readFileSync, renameSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FinetuneError } from '../core/errors.ts';
import { processAlive } from './process-alive.ts';
import { makeFolderSync } from './make-folder.ts';
import { quote, visibleText } from '../core/quote.ts';
import { nodeErrorReason } from './node-error.ts';

/** The lock's file name in OUT: a dot name, so that a listing of the folder does not show it. */
export const OUT_LOCK_NAME = '.finetune-train.lock';

/** Who holds an --out folder. */
export interface OutLockHolder {
  pid: number;
  host: string;
  /** When it took the lock (ISO 8601). */
  started: string;
}

export interface OutLock {
  /** Removes the lock file if it is still this process's; safe to call more than once, and from an exit handler. */
  release(): void;
  /** Set when the lock replaced one left by a process that no longer runs. */
  note?: string;
}

/** Whether a process runs on this host; a test hands in its own. */
export type IsAlive = (pid: number) => boolean;

function readHolder(path: string): OutLockHolder | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const o = JSON.parse(text) as Partial<OutLockHolder>;
    if (Number.isSafeInteger(o.pid) && typeof o.host === 'string' && typeof o.started === 'string') return o as OutLockHolder;
  } catch {
    // Not JSON: not written by train (the file is linked into place whole, never written in place).
  }
  throw new FinetuneError('bad-input', `${quote(path)} is not a lock file train wrote; if no finetune train is writing to this folder, delete it`);
}

function sameHolder(a: OutLockHolder, b: OutLockHolder): boolean {
  return a.pid === b.pid && a.host === b.host && a.started === b.started;
}

/** Places the holder's file at `path` whole, or returns false when a file is there already. */
function linkInto(path: string, holder: OutLockHolder): boolean {
  // Written beside it, then hard-linked into place: the link is atomic and fails when the name exists, so a reader
  // never sees a half-written lock and two takers cannot both succeed.
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(holder));
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    // A full disk or a read-only folder: the lock file named (a bare "ENOSPC: no space left on device, write" said
    // neither what nor where), the temporary file gone.
    throw new FinetuneError('bad-input', `could not write the lock file ${quote(path)}: ${nodeErrorReason(e)}`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/**
 * Takes OUT's lock for this process, or refuses with who holds it. A lock whose process no longer runs on this host
 * is taken over (with a note); one held on another host (a shared file system) is refused, since its process cannot be
 * asked about.
 */
export function lockOutFolder(out: string, options: { pid?: number; host?: string; now?: Date; isAlive?: IsAlive } = {}): OutLock {
  const me: OutLockHolder = { pid: options.pid ?? process.pid, host: options.host ?? hostname(), started: (options.now ?? new Date()).toISOString() };
  const isAlive = options.isAlive ?? processAlive;
  const path = join(out, OUT_LOCK_NAME);
  // Made here when missing, and removed again at release if still empty: a refused `--resume --out typo` once left an
  // empty folder behind.
  const made = !existsSync(out);
  makeFolderSync(out);
  let note: string | undefined;
  for (let attempt = 0; ; attempt++) {
    if (linkInto(path, me)) break;
    const held = readHolder(path);
    if (!held) continue; // released between the link and the read: try again
    // The host and the start time come from the lock file: shown with their control characters escaped.
    const who = `finetune train (pid ${held.pid} on ${visibleText(held.host)}, started ${visibleText(held.started)})`;
    if (held.host !== me.host) {
      throw new FinetuneError('bad-input', `${quote(out)} is being written by ${who}: give --out another folder, or wait for it to end. If that process is gone, delete ${quote(path)}`);
    }
    // A holder with this process's own pid is an earlier process that had it (a container's restart, where a process
    // gets the same small pid each time), since one train takes the lock once.
    if (held.pid !== me.pid && isAlive(held.pid)) {
      throw new FinetuneError('bad-input', `${quote(out)} is being written by ${who}: give --out another folder, or wait for it to end (or stop it: kill ${held.pid}, and --resume here). If pid ${held.pid} is not finetune train, delete ${quote(path)}`);
    }
    if (attempt > 2) throw new FinetuneError('bad-input', `could not take the lock ${quote(path)}: other processes keep changing it`);
    // Left by a process that no longer runs. Moved aside under a name of its own, so that of two processes taking
    // over at once only one moves it; if what was moved is not the stale lock read above, it goes back.
    const aside = `${path}.stale-${randomBytes(6).toString('hex')}`;
    try {
      renameSync(path, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    const moved = readHolder(aside);
    if (moved && !sameHolder(moved, held)) {
      try {
        linkSync(aside, path);
      } catch {
        // Someone took it meanwhile; theirs stands.
      }
      unlinkSync(aside);
      continue;
    }
    unlinkSync(aside);
    note = `${quote(out)} was locked by ${who}, which no longer runs; its lock is replaced`;
  }
  let released = false;
  return {
    note,
    release() {
      if (released) return;
      released = true;
      try {
        const held = readHolder(path);
        if (held && sameHolder(held, me)) unlinkSync(path);
      } catch {
        // A lock file someone replaced or garbled: not ours to remove.
      }
      if (made) {
        try {
          rmdirSync(out); // only when empty: fails (and is left) otherwise
        } catch {
          // It holds the run now.
        }
      }
    },
  };
}
