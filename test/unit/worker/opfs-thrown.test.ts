// What the browser's storage throws is not always an Error: an object with no prototype has no message and no
// toString, so the store's fallback, String(e), threw a TypeError of its own ("Cannot convert object to primitive
// value") in place of the message that names the file. Whatever is thrown, a failed write or removal says which file
// and where; and a refused OPFS is still a reason, not a throw.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { opfsFolderFiles, opfsStoreFiles, type OpfsDirectory } from '../../../src/worker/opfs-store.ts';
import { browserWeightCache, opfsWeightCache } from '../../../src/worker/opfs-weight-cache.ts';
import { FakeOpfs } from '../../helpers/fake-opfs.ts';

/** A thrown value with no prototype: no message, and String() throws for it. */
const bare = (): object => Object.assign(Object.create(null) as object, { code: 7 });
/** A thrown value every read of which throws (a foreign error's getters, at worst). */
const hostile = (): object =>
  new Proxy(
    {},
    {
      get() {
        throw new Error('not to be read');
      },
      getPrototypeOf() {
        throw new Error('not to be read');
      },
    },
  );

const NO_TEXT = 'a thrown value that has no text';

/** `run`'s rejection (it must reject). */
async function rejection(run: () => Promise<unknown>): Promise<Error> {
  const e: unknown = await run().then(
    () => null,
    (x: unknown) => x,
  );
  if (!(e instanceof Error)) throw new Error(`expected an Error, got ${e === null ? 'success' : typeof e}`);
  return e;
}

/** The fake folder with one of its operations throwing `thrown`. */
function failing(where: 'getFileHandle' | 'write' | 'close' | 'removeEntry', thrown: () => object): { dir: OpfsDirectory; aborted: () => boolean } {
  const base = new FakeOpfs().dir();
  let aborted = false;
  const dir: OpfsDirectory = {
    ...base,
    async getFileHandle(name, options) {
      if (where === 'getFileHandle') throw thrown();
      const h = await base.getFileHandle(name, options);
      return {
        getFile: () => h.getFile(),
        async createWritable() {
          const w = await h.createWritable();
          return {
            write: async (data: Uint8Array) => (where === 'write' ? Promise.reject(thrown()) : w.write(data)),
            close: async () => (where === 'close' ? Promise.reject(thrown()) : w.close()),
            abort: async () => {
              aborted = true;
              await w.abort();
            },
          };
        },
      };
    },
    async removeEntry(name) {
      if (where === 'removeEntry') throw thrown();
      await base.removeEntry(name);
    },
  };
  return { dir, aborted: () => aborted };
}

describe('OPFS run store: a failure that is not an Error still names the file', () => {
  for (const [what, thrown] of [
    ['an object with no prototype', bare],
    ['a value every read of which throws', hostile],
  ] as const) {
    for (const where of ['getFileHandle', 'write', 'close'] as const) {
      it(`write, ${what} thrown by ${where}`, async () => {
        const f = failing(where, thrown);
        const e = await rejection(() => opfsStoreFiles(f.dir).write('000002-run.json', new Uint8Array([1, 2])));
        expect(e.message).toBe(`could not write 000002-run.json to this browser's storage: ${NO_TEXT}`);
        expect(e.name).toBe('Error');
        expect(e.cause).toBeDefined();
        // A failed write drops the swap file, as for an Error.
        expect(f.aborted()).toBe(where === 'write');
      });
    }

    it(`remove, ${what} thrown`, async () => {
      const e = await rejection(() => opfsStoreFiles(failing('removeEntry', thrown).dir).remove('000001-state.safetensors'));
      expect(e.message).toBe(`could not remove 000001-state.safetensors from this browser's storage: ${NO_TEXT}`);
      expect(e.name).toBe('Error');
    });
  }

  it("keeps an Error's message and name, and a plain object's message and name", async () => {
    const quota = Object.assign(new Error('the quota is full'), { name: 'QuotaExceededError' });
    const e = await rejection(() => opfsStoreFiles(failing('write', () => quota).dir).write('a.json', new Uint8Array([1])));
    expect([e.name, e.message, e.cause]).toEqual(['QuotaExceededError', "could not write a.json to this browser's storage: the quota is full", quota]);
    const plain = { name: 'NoModificationAllowedError', message: 'the file is open elsewhere' };
    const r = await rejection(() => opfsStoreFiles(failing('removeEntry', () => plain).dir).remove('b.json'));
    expect([r.name, r.message]).toEqual(['NoModificationAllowedError', "could not remove b.json from this browser's storage: the file is open elsewhere"]);
  });
});

describe('OPFS weight cache: a refused file system is a reason, whatever was thrown', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('an object with no prototype', async () => {
    vi.stubGlobal('self', { navigator: { storage: { getDirectory: () => Promise.reject(bare()), estimate: async () => ({}) } } });
    expect(await browserWeightCache()).toEqual({ store: null, reason: `the browser refused its origin-private file system (${NO_TEXT}), as private windows may` });
  });

  // The storage object was read outside the try: a getter that throws (a sandboxed or opaque-origin worker) failed the
  // model's load instead of loading it uncached with the reason said.
  it('a navigator whose storage getter throws', async () => {
    const navigator = Object.defineProperty({}, 'storage', {
      get() {
        throw new DOMException('Access to storage is denied from this context.', 'SecurityError');
      },
    });
    vi.stubGlobal('self', { navigator });
    expect(await browserWeightCache()).toEqual({
      store: null,
      reason: 'the browser refused its origin-private file system (Access to storage is denied from this context.), as private windows may',
    });
  });
});

// The run store and the kernel-tuning cache open their folders the same way: a storage getter that throws is no
// private file system (null: runs are not saved, kernels not remembered), not a rejection of every call that reads the
// saved run.
describe('OPFS folders: a storage that cannot be read is none', () => {
  afterEach(() => vi.unstubAllGlobals());

  it('a navigator whose storage getter throws', async () => {
    const navigator = Object.defineProperty({}, 'storage', {
      get() {
        throw new DOMException('Access to storage is denied from this context.', 'SecurityError');
      },
    });
    vi.stubGlobal('self', { navigator });
    expect(await opfsFolderFiles('finetune-run')).toBeNull();
  });

  it('a getDirectory that rejects', async () => {
    vi.stubGlobal('self', { navigator: { storage: { getDirectory: () => Promise.reject(bare()) } } });
    expect(await opfsFolderFiles('finetune-run')).toBeNull();
  });
});

// The weight cache's write re-threw the browser's value as it was: loadWeightsCached's note could then only say "a
// thrown value that has no text", not which file failed where (and before thrownMessage, the note itself threw).
describe('OPFS weight cache: a failed write names the entry, whatever was thrown', () => {
  const key = 'a'.repeat(40);
  async function* oneChunk(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(16);
  }

  for (const [what, thrown] of [
    ['an object with no prototype', bare],
    ['a value every read of which throws', hostile],
  ] as const) {
    for (const where of ['getFileHandle', 'write', 'close'] as const) {
      it(`${what} thrown by ${where}`, async () => {
        const f = failing(where, thrown);
        const e = await rejection(() => opfsWeightCache(f.dir).write(key, oneChunk(), 16));
        expect(e.message).toBe(`could not write weights-${key}.bin to this browser's storage: ${NO_TEXT}`);
        expect(e.name).toBe('Error');
        expect(f.aborted()).toBe(where !== 'getFileHandle');
      });
    }
  }

  it("keeps the browser's message and error name; a failure of the weights' own bytes passes unchanged", async () => {
    const denied = Object.assign(new Error('the file is open elsewhere'), { name: 'NoModificationAllowedError' });
    const e = await rejection(() => opfsWeightCache(failing('close', () => denied).dir).write(key, oneChunk(), 16));
    expect([e.name, e.message, e.cause]).toEqual(['NoModificationAllowedError', `could not write weights-${key}.bin to this browser's storage: the file is open elsewhere`, denied]);
    const ours = new Error('read-back failed');
    async function* failingChunks(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(4);
      throw ours;
    }
    expect(await rejection(() => opfsWeightCache(new FakeOpfs().dir()).write(key, failingChunks(), 16))).toBe(ours);
  });
});
