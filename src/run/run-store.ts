// Where a run's files live between page loads and processes, written so that a crash at any moment (a killed process,
// a closed tab, a lost GPU, a second Ctrl-C) leaves the last complete set of files readable.
//
// A store holds a small set of named files (run.json, state.safetensors, train.jsonl, …). Changes are committed as one
// unit: every new file is written under a fresh physical name (`000007-state.safetensors`), and only then is a small
// pointer file (`current.json`) switched to the new set. Until the switch, readers see the previous set; after it,
// the new one. Files no longer named by the pointer are removed afterwards, as far as they can be (the commit stands
// either way). The pointer switch itself relies on the backend replacing one small file all-or-nothing (Node: temporary
// file + fsync + rename; OPFS: a writable stream's swap file, applied on close).

import { FinetuneError } from '../core/errors.ts';
import { quote } from '../core/quote.ts';

/** A run's files as the session sees them: read one, or replace several at once. */
export interface RunStore {
  /** The named file of the last committed set, or null when it has none. */
  load(name: string): Promise<Uint8Array | null>;
  /**
   * Replaces the named files (null removes one) as one unit: after a crash at any point, `load` sees either every
   * change or none. Files not named keep their contents.
   */
  commit(changes: Readonly<Record<string, Uint8Array | null>>): Promise<void>;
}

/** The raw folder a store keeps its files in (a directory on disk, OPFS, memory). */
export interface StoreFiles {
  read(name: string): Promise<Uint8Array | null>;
  /** Writes a whole file; it replaces an existing one all-or-nothing and is durable when the promise resolves. */
  write(name: string, bytes: Uint8Array): Promise<void>;
  /** Removes a file; a missing one is not an error. */
  remove(name: string): Promise<void>;
  list(): Promise<string[]>;
}

export const POINTER_FILE = 'current.json';
const POINTER_FORMAT = 'finetune-run-store';

/** Logical names are ours (run.json, state.safetensors, …): no folders, no leading digit (physical names have one). */
const LOGICAL_NAME = /^[A-Za-z][A-Za-z0-9_.-]*$/;
/** A file of a committed set: `<generation>-<logical name>`, or the bare logical name in a folder from before the pointer. */
const PHYSICAL_NAME = /^(\d{6,}-)?[A-Za-z][A-Za-z0-9_.-]*$/;

interface Pointer {
  format: typeof POINTER_FORMAT;
  generation: number;
  /** Logical name → physical file. */
  files: Record<string, string>;
  /** Read from a folder written before the pointer existed (never written: only current() sets it). */
  legacy?: true;
}

function checkName(name: string): void {
  if (!LOGICAL_NAME.test(name) || name === POINTER_FILE) throw new FinetuneError('internal', `not a run store file name: ${quote(name)}`);
}

function parsePointer(bytes: Uint8Array): Pointer {
  let p: unknown;
  try {
    p = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    p = null;
  }
  const ok =
    typeof p === 'object' &&
    p !== null &&
    (p as Pointer).format === POINTER_FORMAT &&
    Number.isSafeInteger((p as Pointer).generation) &&
    typeof (p as Pointer).files === 'object' &&
    (p as Pointer).files !== null &&
    Object.entries((p as Pointer).files).every(([k, v]) => LOGICAL_NAME.test(k) && typeof v === 'string' && PHYSICAL_NAME.test(v));
  // The pointer is only ever replaced whole, so a malformed one was written by someone else: refuse rather than guess.
  if (!ok) throw damagedStore(`the run store's ${POINTER_FILE} is damaged or not one this app wrote`);
  return p as Pointer;
}

/**
 * A store whose committed set cannot be told (a pointer it did not write, numbered files without one): a damaged run,
 * never "no run", since a new run there would replace it at its first commit without a word.
 */
function damagedStore(message: string, details: Record<string, unknown> = {}): FinetuneError {
  return new FinetuneError('bad-input', message, { damagedRun: true, ...details });
}

/** A numbered (committed or half-committed) file's generation. */
const NUMBERED = /^(\d{6,})-/;

/** A RunStore over a raw folder, committing through the pointer file. */
export function pointerRunStore(files: StoreFiles): RunStore {
  /** The committed set. A folder written before the pointer existed (one file per name) reads as it is. */
  async function current(): Promise<Pointer> {
    const bytes = await files.read(POINTER_FILE);
    if (bytes) return parsePointer(bytes);
    const names = await files.list();
    const numbered = names.filter((n) => NUMBERED.test(n)).sort();
    if (numbered.length) {
      // Names from the folder, checked only for their numbered start: quoted, so that no line break or bidi control in
      // one goes into the message as it is.
      const list = `${numbered.slice(0, 5).map(quote).join(', ')}${numbered.length > 5 ? ', …' : ''}`;
      // Files of generation 1 alone: a run's first commit, cut short before its pointer was written (a folder from before
      // the pointer gets its pointer before any numbered file). No run was saved: a new run may replace them.
      if (numbered.every((n) => Number(NUMBERED.exec(n)?.[1]) === 1)) {
        throw damagedStore(`the run store holds the files of a first checkpoint (${list}) but no ${POINTER_FILE}: that checkpoint was cut short before it was committed, so no run was saved there`, { firstCommitCutShort: true });
      }
      throw damagedStore(`the run store has numbered files (${list}) but no ${POINTER_FILE} saying which of them are the run's: its pointer was lost`);
    }
    const legacy = names.filter((n) => LOGICAL_NAME.test(n) && n !== POINTER_FILE);
    return { format: POINTER_FORMAT, generation: 0, files: Object.fromEntries(legacy.map((n) => [n, n])), legacy: true };
  }

  /**
   * What a commit builds on: the committed set, or for a damaged store (which only a new run asked to replace it, or a
   * forget, commits to) an empty set after every generation found, so that its files are cleared by the commit.
   */
  async function base(): Promise<Pointer> {
    try {
      return await current();
    } catch (e) {
      if (!(e instanceof FinetuneError && e.details?.damagedRun)) throw e;
      const generations = (await files.list()).map((n) => Number(NUMBERED.exec(n)?.[1] ?? 0));
      return { format: POINTER_FORMAT, generation: Math.max(0, ...generations), files: {} };
    }
  }

  async function writePointer(p: Pointer): Promise<void> {
    const { format, generation, files: named } = p;
    await files.write(POINTER_FILE, new TextEncoder().encode(JSON.stringify({ format, generation, files: named })));
  }

  return {
    async load(name) {
      checkName(name);
      const physical = (await current()).files[name];
      if (physical === undefined) return null;
      const bytes = await files.read(physical);
      // The pointer names only files a commit wrote before it: one missing was removed from outside (by hand, a copy of
      // part of the folder). That is damage, never "no such file" (a reader would take the run for none).
      if (bytes === null) throw damagedStore(`the run store's ${POINTER_FILE} names ${physical} for its ${name}, and that file is missing`);
      return bytes;
    },

    async commit(changes) {
      for (const name of Object.keys(changes)) checkName(name);
      const before = await base();
      // A folder from before the pointer gets one naming its files as they are, before any numbered file is written:
      // numbered files without a pointer read as a damaged run, so a kill (or a full disk) after the first of them
      // once turned the old run's good checkpoint into one that --resume refused and only --overwrite got past.
      if (before.legacy && Object.keys(before.files).length > 0) await writePointer(before);
      const generation = before.generation + 1;
      const next: Pointer = { format: POINTER_FORMAT, generation, files: { ...before.files } };
      // New contents under fresh names first: until the pointer moves, nothing a reader can see has changed.
      const written: string[] = [];
      try {
        for (const [name, bytes] of Object.entries(changes)) {
          if (bytes === null) {
            delete next.files[name];
            continue;
          }
          const physical = `${String(generation).padStart(6, '0')}-${name}`;
          written.push(physical); // before the write: a failed one can leave an empty file (OPFS creates it first)
          await files.write(physical, bytes);
          next.files[name] = physical;
        }
      } catch (e) {
        // A full disk or quota: the files written so far are no set's, and they held the space (a whole state) that
        // the session's "free some space, then resume" needs, until some later commit succeeded. Given back now; a
        // kill leaves them to the next commit's clean-up. (Not after the pointer's write: it may have been replaced.)
        for (const f of written) await files.remove(f).catch(() => undefined);
        throw e;
      }
      await writePointer(next);
      // The switch is durable: what the old set held (and leftovers of interrupted commits) can go. The commit has
      // succeeded by now, so a clean-up that fails (a file another tab holds open in OPFS, a permission error) must not
      // fail it: the session would say the checkpoint was not saved and an older one kept, and the CLI would end the
      // run. Each file is tried on its own; what stays is no set's, and the next commit's clean-up (this one, over
      // every file not named) removes it. The store has no channel for a note, and the only cost is space until then.
      const keep = new Set([POINTER_FILE, ...Object.values(next.files)]);
      const stale = await files.list().then((names) => names.filter((f) => !keep.has(f)), () => []);
      for (const f of stale) await files.remove(f).catch(() => undefined);
    },
  };
}

/** A raw folder in memory (tests, and sessions without persistence). */
export function memoryStoreFiles(): StoreFiles {
  const m = new Map<string, Uint8Array>();
  return {
    read: async (n) => m.get(n)?.slice() ?? null,
    write: async (n, b) => void m.set(n, b.slice()),
    remove: async (n) => void m.delete(n),
    list: async () => [...m.keys()],
  };
}

export function memoryRunStore(): RunStore {
  return pointerRunStore(memoryStoreFiles());
}
