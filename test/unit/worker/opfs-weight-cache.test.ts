// The weight cache's browser store over an in-memory OPFS folder that behaves as Chromium's (test/helpers/fake-opfs.ts):
// entries written whole or not at all, an entry that would not fit the site's quota refused before a byte is written
// (and one that runs out of quota mid-write aborted), and a list that names each entry's source from its footer.
import { describe, expect, it } from 'vitest';
import { readCacheEntryInfo } from '../../../src/run/weight-cache.ts';
import { cacheEntryOf, cacheIdentityOf } from '../../helpers/cache-entries.ts';
import { opfsWeightCache } from '../../../src/worker/opfs-weight-cache.ts';
import { FakeOpfs } from '../../helpers/fake-opfs.ts';

const identity = cacheIdentityOf;
const entryOf = cacheEntryOf;

async function* failingAfter(n: number): AsyncGenerator<Uint8Array> {
  yield new Uint8Array(n);
  throw new Error('the GPU read-back failed');
}

describe('OPFS weight-cache store', () => {
  it('writes an entry of exactly the announced size, reads it back and lists it with its source, quantization and date', async () => {
    const opfs = new FakeOpfs();
    const store = opfsWeightCache(opfs.dir(), { estimate: () => opfs.estimate() });
    const a = await entryOf(identity('mistralai/Mistral-7B-Instruct-v0.2', 'nf4-double'));
    await store.write(a.key, a.chunks, a.bytes);
    const b = await entryOf(identity('mistral-nano-demo'));
    await store.write(b.key, b.chunks, b.bytes);
    expect([...opfs.files.keys()].sort()).toEqual([`weights-${a.key}.bin`, `weights-${b.key}.bin`].sort());

    const src = await store.open(a.key);
    expect(src?.size).toBe(a.bytes);
    expect(Array.from(await src!.read(0, 3))).toEqual([7, 7, 7]);
    expect(await readCacheEntryInfo(src!)).toEqual({ source: 'mistralai/Mistral-7B-Instruct-v0.2', quantization: 'nf4-double' });

    // Newest first, each with what its footer says.
    const list = await store.list();
    expect(list).toEqual([
      { key: b.key, bytes: b.bytes, source: 'mistral-nano-demo', quantization: 'nf4', writtenAt: opfs.files.get(`weights-${b.key}.bin`)!.lastModified },
      { key: a.key, bytes: a.bytes, source: 'mistralai/Mistral-7B-Instruct-v0.2', quantization: 'nf4-double', writtenAt: opfs.files.get(`weights-${a.key}.bin`)!.lastModified },
    ]);
    expect(list[0].writtenAt).toBeGreaterThan(list[1].writtenAt!);

    await store.remove(a.key);
    await store.remove(a.key); // already gone: not an error
    expect(await store.open(a.key)).toBeNull();
    expect((await store.list()).map((e) => e.key)).toEqual([b.key]);
  });

  it('a write that fails halfway leaves nothing under the entry name (no empty file, no swap file), and open says none', async () => {
    const opfs = new FakeOpfs();
    const store = opfsWeightCache(opfs.dir());
    const key = 'c'.repeat(40);
    await expect(store.write(key, failingAfter(500), 2000)).rejects.toThrow(/read-back failed/);
    expect([...opfs.files.keys()]).toEqual([]);
    expect(await store.open(key)).toBeNull();
    expect(await store.list()).toEqual([]);
  });

  it("a tab whose write fails keeps the entry another tab wrote meanwhile under that name", async () => {
    const opfs = new FakeOpfs();
    const tabA = opfsWeightCache(opfs.dir());
    const tabB = opfsWeightCache(opfs.dir());
    const e = await entryOf(identity('mistral-nano-demo'));
    const name = `weights-${e.key}.bin`;
    // Tab A starts the entry (its empty file made, its first bytes written), tab B writes it whole, then A fails.
    let bWrote: Promise<void> | null = null;
    async function* aChunks(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(100);
      bWrote = tabB.write(e.key, e.chunks, e.bytes);
      await bWrote;
      throw new Error('the GPU read-back failed');
    }
    await expect(tabA.write(e.key, aChunks(), e.bytes)).rejects.toThrow(/read-back failed/);
    await bWrote;
    expect(opfs.files.get(name)?.bytes.byteLength).toBe(e.bytes);
    const src = await tabA.open(e.key);
    expect(src?.size).toBe(e.bytes);
    expect(await readCacheEntryInfo(src!)).toEqual({ source: 'mistral-nano-demo', quantization: 'nf4' });
    expect((await tabB.list()).map((x) => x.key)).toEqual([e.key]);
  });

  it('while an entry is being written, neither open nor list sees it (only an empty file and a swap file exist)', async () => {
    const opfs = new FakeOpfs();
    const store = opfsWeightCache(opfs.dir());
    const e = await entryOf(identity('mistral-nano-demo'));
    let seen: { open: unknown; list: unknown; names: string[] } | null = null;
    async function* watched(): AsyncGenerator<Uint8Array> {
      let first = true;
      for await (const c of e.chunks) {
        yield c;
        if (first) {
          first = false;
          seen = { open: await store.open(e.key), list: await store.list(), names: [...opfs.files.keys()].sort() };
        }
      }
    }
    await store.write(e.key, watched(), e.bytes);
    expect(seen).toEqual({ open: null, list: [], names: [`weights-${e.key}.bin`, `weights-${e.key}.bin.crswap`] });
    expect((await store.list()).map((x) => x.key)).toEqual([e.key]);
  });

  it('refuses an entry larger than the free quota before writing a byte, and says how much is needed and free', async () => {
    const opfs = new FakeOpfs();
    opfs.quota = 3 * 1024 ** 3;
    opfs.files.set('other', { bytes: new Uint8Array(1024), lastModified: 0 });
    const store = opfsWeightCache(opfs.dir(), { estimate: async () => ({ usage: 2.5 * 1024 ** 3, quota: opfs.quota }) });
    let pulled = false;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      pulled = true;
      yield new Uint8Array(1);
    }
    const err = await store.write('d'.repeat(40), chunks(), 4.13 * 1024 ** 3).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect(err?.message).toBe(
      "they need 4.1 GiB, and only 512.0 MiB of this browser's storage quota for this site is free. Delete cached models (Model panel, Cached models) to make room",
    );
    expect(pulled).toBe(false);
    expect([...opfs.files.keys()]).toEqual(['other']);
  });

  it('a quota that runs out during the write aborts it: nothing half-written is kept, and the message says why', async () => {
    const opfs = new FakeOpfs();
    const e = await entryOf(identity('mistral-nano-demo'));
    opfs.quota = e.bytes - 100; // the estimate said it fit (it is told nothing here), the writes say otherwise
    const store = opfsWeightCache(opfs.dir());
    const err = await store.write(e.key, e.chunks, e.bytes).catch((x: unknown) => x as Error);
    expect(err?.message).toMatch(/^they need 1\.\d KiB, and this browser's storage quota for this site is full \(the quota ran out while writing; nothing was kept\)\. Delete cached models/);
    expect([...opfs.files.keys()]).toEqual([]);
    expect(opfs.usage()).toBe(0);
  });

  it('lists an entry with a damaged footer without a source (so it can be deleted); ignores empty and foreign files', async () => {
    const opfs = new FakeOpfs();
    const store = opfsWeightCache(opfs.dir());
    const e = await entryOf(identity('mistral-nano-demo'));
    await store.write(e.key, e.chunks, e.bytes);
    const file = opfs.files.get(`weights-${e.key}.bin`)!;
    file.bytes = file.bytes.slice(0, file.bytes.byteLength - 3); // truncated: the footer length is gone
    opfs.files.set(`weights-${'e'.repeat(40)}.bin`, { bytes: new Uint8Array(0), lastModified: 0 }); // a crashed write's empty file
    opfs.files.set('notes.txt', { bytes: new Uint8Array(50), lastModified: 0 });
    expect(await store.list()).toEqual([{ key: e.key, bytes: e.bytes - 3, writtenAt: file.lastModified }]);
    expect(await store.open('e'.repeat(40))).toBeNull();
  });

  it('refuses a key that is not 40 hex digits (it names a file)', async () => {
    const store = opfsWeightCache(new FakeOpfs().dir());
    await expect(store.open('../finetune-run/current.json')).rejects.toThrow(/not a weight-cache key/);
    await expect(store.remove('x')).rejects.toThrow(/not a weight-cache key/);
  });
});
