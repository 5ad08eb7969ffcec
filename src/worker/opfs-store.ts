// The browser's RunStore: the origin-private file system (OPFS), so a run's data and checkpoints survive a reload.
// The state and the run record change together through run-store.ts's pointer switch; each single file is written
// through a writable stream, whose changes the browser applies all-or-nothing on close (a swap file until then), so a
// tab closed mid-write leaves the previous contents.
import { thrownMessage, thrownName } from '../core/errors.ts';
import { pointerRunStore, type RunStore, type StoreFiles } from '../run/run-store.ts';

/** The part of the OPFS API the store uses (FileSystemDirectoryHandle fits; tests pass an in-memory fake). */
export interface OpfsDirectory {
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

export interface OpfsFileHandle {
  getFile(): Promise<Blob>;
  createWritable(): Promise<OpfsWritable>;
}

export interface OpfsWritable {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

const isNotFound = (e: unknown): boolean => thrownName(e) === 'NotFoundError';

/**
 * A failed write or removal as an Error that names the file and where, with the browser's words and error name
 * (QuotaExceededError, NoModificationAllowedError) for whoever tells them apart. Whatever was thrown: its message and
 * name are read by functions that never throw, so an object with no prototype cannot replace this message with a
 * TypeError of its own.
 */
export function storageFailure(what: string, e: unknown): Error {
  return Object.assign(new Error(`${what} this browser's storage: ${thrownMessage(e)}`), { name: thrownName(e) ?? 'Error', cause: e });
}

export function opfsStoreFiles(dir: OpfsDirectory): StoreFiles {
  return {
    async read(name) {
      let handle: OpfsFileHandle;
      try {
        handle = await dir.getFileHandle(name);
      } catch (e) {
        if (isNotFound(e)) return null;
        throw e;
      }
      return new Uint8Array(await (await handle.getFile()).arrayBuffer());
    },
    async write(name, bytes) {
      // A failure names the file and where (a full quota said only "… exceed its storage quota"), keeping the
      // browser's error name (QuotaExceededError) for whoever tells them apart.
      const failed = (e: unknown): Error => storageFailure(`could not write ${name} to`, e);
      let w: OpfsWritable;
      try {
        w = await (await dir.getFileHandle(name, { create: true })).createWritable();
      } catch (e) {
        throw failed(e);
      }
      try {
        await w.write(new Uint8Array(bytes));
      } catch (e) {
        await w.abort().catch(() => undefined);
        throw failed(e);
      }
      try {
        await w.close();
      } catch (e) {
        throw failed(e);
      }
    },
    async remove(name) {
      try {
        await dir.removeEntry(name);
      } catch (e) {
        if (isNotFound(e)) return;
        // Named as a write's failure is (a file open for writing in another tab is NoModificationAllowedError, which
        // says neither which file nor where), keeping the browser's error name.
        throw storageFailure(`could not remove ${name} from`, e);
      }
    },
    async list() {
      const names: string[] = [];
      for await (const n of dir.keys()) names.push(n);
      return names;
    },
  };
}

/** A folder of this origin's private file system as StoreFiles, or null where OPFS is missing or refused. */
export async function opfsFolderFiles(folder: string): Promise<StoreFiles | null> {
  let dir: FileSystemDirectoryHandle;
  try {
    // Inside the try: where storage is denied (a sandboxed frame's worker) the read itself can throw; that is no
    // private file system, not a failure of every call that reads the saved run.
    const storage = (self.navigator as Navigator | undefined)?.storage;
    if (!storage?.getDirectory) return null;
    dir = await (await storage.getDirectory()).getDirectoryHandle(folder, { create: true });
  } catch {
    return null;
  }
  // The DOM typings this project compiles against lack the async-iterable half of FileSystemDirectoryHandle (keys()).
  return opfsStoreFiles(dir as unknown as OpfsDirectory);
}

export async function opfsRunStore(folder = 'finetune-run'): Promise<RunStore | null> {
  const files = await opfsFolderFiles(folder);
  return files ? pointerRunStore(files) : null;
}
