// A checkpoint that does not fit in the browser's storage quota: the error names the file being written and where, and
// keeps the browser's error name (QuotaExceededError). It said only the browser's words ("… exceed its storage quota"),
// which the session then quoted as the reason a checkpoint could not be saved.
import { describe, expect, it } from 'vitest';
import { pointerRunStore } from '../../../src/run/run-store.ts';
import { opfsStoreFiles, type OpfsDirectory } from '../../../src/worker/opfs-store.ts';
import { commitFakeCheckpoint, readConsistentStep } from '../../helpers/fake-checkpoint.ts';

const QUOTA = 'The operation failed because it would cause the application to exceed its storage quota.';

/** An OPFS folder whose writes fail once more than `room` bytes would be held. */
function fullFolder(room: number): { dir: OpfsDirectory; files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  const used = (): number => [...files.values()].reduce((n, b) => n + b.length, 0);
  const dir: OpfsDirectory = {
    async getFileHandle(name, options) {
      if (!files.has(name)) {
        if (!options?.create) throw Object.assign(new Error('not found'), { name: 'NotFoundError' });
        files.set(name, new Uint8Array(0));
      }
      return {
        async getFile() {
          return new Blob([files.get(name)!.slice()]);
        },
        async createWritable() {
          let swap = new Uint8Array(0);
          return {
            async write(data: Uint8Array) {
              if (used() + swap.length + data.length > room) throw Object.assign(new Error(QUOTA), { name: 'QuotaExceededError' });
              const next = new Uint8Array(swap.length + data.length);
              next.set(swap);
              next.set(data, swap.length);
              swap = next;
            },
            async close() {
              files.set(name, swap);
            },
            async abort() {
              swap = new Uint8Array(0);
            },
          };
        },
      };
    },
    async removeEntry(name) {
      files.delete(name);
    },
    async *keys() {
      yield* [...files.keys()];
    },
  };
  return { dir, files };
}

describe('OPFS run store, storage quota full', () => {
  it('names the file that did not fit and keeps the error name; the last checkpoint stays readable', async () => {
    const { dir, files } = fullFolder(Infinity);
    const store = pointerRunStore(opfsStoreFiles(dir));
    await commitFakeCheckpoint(store, 1, 4, { train: new TextEncoder().encode('rows'), validation: null });
    // The same folder, now full: the next checkpoint's first file does not fit.
    const room = [...files.values()].reduce((n, b) => n + b.length, 0);
    const again = fullFolder(room);
    for (const [k, v] of files) again.files.set(k, v);
    const e = await commitFakeCheckpoint(pointerRunStore(opfsStoreFiles(again.dir)), 2, 4).then(() => null, (x: unknown) => x as Error);
    expect(e?.name).toBe('QuotaExceededError');
    expect(e?.message).toMatch(new RegExp(`^could not write 000002-(state\\.safetensors|run\\.json) to this browser's storage: ${QUOTA.replace(/\./g, '\\.')}$`));
    expect(await readConsistentStep(pointerRunStore(opfsStoreFiles(again.dir)))).toMatchObject({ step: 1, train: 'rows' });
  });

  it("gives back the space of a checkpoint that did not fit: the files its commit wrote before the failure are removed", async () => {
    const { dir, files } = fullFolder(Infinity);
    const store = pointerRunStore(opfsStoreFiles(dir));
    await commitFakeCheckpoint(store, 1, 256, { train: new TextEncoder().encode('rows'), validation: null });
    const before = [...files.keys()].sort();
    const used = [...files.values()].reduce((n, b) => n + b.length, 0);
    // Room for the next state (written first) but not for its record: the commit fails at run.json.
    const stateBytes = files.get(before.find((n) => n.endsWith('state.safetensors'))!)!.length;
    const again = fullFolder(used + stateBytes + 10);
    for (const [k, v] of files) again.files.set(k, v);
    const e = await commitFakeCheckpoint(pointerRunStore(opfsStoreFiles(again.dir)), 2, 256).then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toMatch(/^could not write 000002-run\.json /);
    // The state of step 2 held the quota until some later commit succeeded (and a browser's empty run.json besides).
    expect([...again.files.keys()].sort()).toEqual(before);
    expect(await readConsistentStep(pointerRunStore(opfsStoreFiles(again.dir)))).toMatchObject({ step: 1, train: 'rows' });
  });
});
