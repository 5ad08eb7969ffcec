// The browser's run store over an in-memory fake of the OPFS directory API: a writable stream's changes reach the
// file only on close (the browser's swap file), and a tab closed at any operation loses only what was not closed.
// Whatever the moment, the store afterwards holds a (record, state) pair that belongs together.
import { describe, expect, it } from 'vitest';
import { pointerRunStore } from '../../../src/run/run-store.ts';
import { opfsStoreFiles, type OpfsDirectory, type OpfsFileHandle } from '../../../src/worker/opfs-store.ts';
import { commitFakeCheckpoint, readConsistentStep } from '../../helpers/fake-checkpoint.ts';

const notFound = (): Error => Object.assign(new Error('A requested file or directory could not be found'), { name: 'NotFoundError' });

/** One OPFS folder's files, and a view of it that stops working for good at its n-th operation. */
class FakeOpfs {
  readonly files = new Map<string, Uint8Array>();

  view(dieAt = Infinity): { dir: OpfsDirectory; died: () => boolean } {
    let ops = 0;
    const tick = (): void => {
      if (++ops >= dieAt) throw new Error('tab closed');
    };
    const files = this.files;
    const handle = (name: string): OpfsFileHandle => ({
      async getFile() {
        tick();
        const b = files.get(name);
        if (!b) throw notFound();
        return new Blob([b.slice()]);
      },
      async createWritable() {
        tick();
        let swap = new Uint8Array(0); // the browser's swap file: invisible until close
        return {
          async write(data: Uint8Array) {
            tick();
            const next = new Uint8Array(swap.length + data.length);
            next.set(swap);
            next.set(data, swap.length);
            swap = next;
          },
          async close() {
            tick();
            files.set(name, swap);
          },
          async abort() {
            swap = new Uint8Array(0);
          },
        };
      },
    });
    const dir: OpfsDirectory = {
      async getFileHandle(name, options) {
        tick();
        if (!files.has(name)) {
          if (!options?.create) throw notFound();
          files.set(name, new Uint8Array(0));
        }
        return handle(name);
      },
      async removeEntry(name) {
        tick();
        if (!files.delete(name)) throw notFound();
      },
      async *keys() {
        tick();
        yield* [...files.keys()];
      },
    };
    return { dir, died: () => ops >= dieAt };
  }
}

describe('OPFS run store', () => {
  it('reads what it wrote, returns null for a missing file and removes stale files', async () => {
    const opfs = new FakeOpfs();
    const store = pointerRunStore(opfsStoreFiles(opfs.view().dir));
    expect(await store.load('run.json')).toBeNull();
    await commitFakeCheckpoint(store, 1, 16, { train: new TextEncoder().encode('rows'), validation: null });
    await commitFakeCheckpoint(store, 2, 16);
    expect(await readConsistentStep(store)).toMatchObject({ step: 2, train: 'rows' });
    expect([...opfs.files.keys()].sort()).toEqual(['000001-train.jsonl', '000002-run.json', '000002-state.safetensors', 'current.json']);
  });

  it('a tab closed at any operation of a checkpoint leaves the old pair or the new one', async () => {
    const opfs = new FakeOpfs();
    await commitFakeCheckpoint(pointerRunStore(opfsStoreFiles(opfs.view().dir)), 1, 4096, { train: new TextEncoder().encode('rows'), validation: null });
    let step = 1;
    let closes = 0;
    for (let dieAt = 1; ; dieAt++) {
      const tab = opfs.view(dieAt);
      await commitFakeCheckpoint(pointerRunStore(opfsStoreFiles(tab.dir)), step + 1, 4096).catch(() => undefined);
      // A reload: a fresh store over what the folder holds now.
      const after = await readConsistentStep(pointerRunStore(opfsStoreFiles(opfs.view().dir)));
      expect([step, step + 1]).toContain(after.step);
      expect(after.train).toBe('rows');
      if (!tab.died()) break;
      closes++;
      step = after.step;
    }
    expect(closes).toBeGreaterThan(10);
  });
});
