// The browser's RunStore: the origin-private file system (OPFS), so a run's data and checkpoints survive a reload.
import type { RunStore } from '../run/session.ts';

export async function opfsRunStore(folder = 'finetune-run'): Promise<RunStore | null> {
  const storage = (self.navigator as Navigator | undefined)?.storage;
  if (!storage?.getDirectory) return null;
  let dir: FileSystemDirectoryHandle;
  try {
    dir = await (await storage.getDirectory()).getDirectoryHandle(folder, { create: true });
  } catch {
    return null;
  }
  return {
    async save(name, bytes) {
      const handle = await dir.getFileHandle(name, { create: true });
      const w = await handle.createWritable();
      await w.write(new Uint8Array(bytes));
      await w.close();
    },
    async load(name) {
      try {
        const handle = await dir.getFileHandle(name);
        return new Uint8Array(await (await handle.getFile()).arrayBuffer());
      } catch {
        return null;
      }
    },
    async remove(name) {
      try {
        await dir.removeEntry(name);
      } catch {
        // Already gone.
      }
    },
  };
}
