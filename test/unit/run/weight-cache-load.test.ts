// loadWeightsCached end to end without a GPU: tiny-mistral unquantised ('none' only uploads, reads back and frees
// buffers), on a fake GPU context that keeps each buffer's bytes in memory, with an in-memory store. What a damaged
// entry does to the next load: it must be detected, removed and rebuilt, never loaded as if it were the model.
import { describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import type { GpuContext } from '../../../src/engine/gpu.ts';
import { openBaseCheckpoint } from '../../../src/model/checkpoint.ts';
import { loadWeightsCached, memoryWeightCache, readCacheEntryInfo, type WeightCacheStore } from '../../../src/run/weight-cache.ts';
import { TINY_MISTRAL } from '../model/helpers.ts';
import { byteArrayGpu } from '../../helpers/fake-gpu.ts';
import { FakeOpfs } from '../../helpers/fake-opfs.ts';
import { opfsWeightCache } from '../../../src/worker/opfs-weight-cache.ts';

const fakeGpu = (): GpuContext => byteArrayGpu().ctx;


async function load(store: WeightCacheStore, source = '/models/tiny-mistral', legacySources: readonly string[] = []) {
  const files = nodeDirectory(TINY_MISTRAL);
  return loadWeightsCached(fakeGpu(), files, await openBaseCheckpoint(files), { quantization: 'none', source, legacySources, cache: store });
}

/** Replaces the first `from` in the entry's bytes by `to` (same length), as a flipped byte on disk would. */
function damage(entry: Uint8Array, from: string, to: string): void {
  const text = new TextDecoder('latin1').decode(entry);
  const at = text.indexOf(from);
  expect(at).toBeGreaterThan(0);
  entry.set(new TextEncoder().encode(to), at);
}

/** The entry with its footer replaced by `edit` of it (as JSON), the parts kept. */
function withFooter(entry: Uint8Array, edit: (footer: Record<string, unknown>) => void): Uint8Array {
  const len = Number(new DataView(entry.buffer, entry.byteOffset).getBigUint64(entry.byteLength - 8, true));
  const partsEnd = entry.byteLength - 8 - len;
  const footer = JSON.parse(new TextDecoder().decode(entry.subarray(partsEnd, entry.byteLength - 8))) as Record<string, unknown>;
  edit(footer);
  const text = new TextEncoder().encode(JSON.stringify(footer));
  const out = new Uint8Array(partsEnd + text.byteLength + 8);
  out.set(entry.subarray(0, partsEnd));
  out.set(text, partsEnd);
  new DataView(out.buffer).setBigUint64(partsEnd + text.byteLength, BigInt(text.byteLength), true);
  return out;
}

describe('loadWeightsCached', () => {
  it('a second load comes from the cache with the same dims', async () => {
    const store = memoryWeightCache();
    const first = await load(store);
    expect(first.fromCache).toBe(false);
    expect(store.entries.size).toBe(1);
    const second = await load(store);
    expect(second.fromCache).toBe(true);
    expect(second.weights.dims).toEqual(first.weights.dims);
    expect(second.notes).toEqual([]);
  });

  it("a flipped digit in the footer's manifest (RoPE theta) is detected: the entry is rebuilt, not loaded with theta 9000000", async () => {
    const store = memoryWeightCache();
    const first = await load(store);
    expect(first.weights.dims.theta).toBe(1_000_000);
    const [key, entry] = [...store.entries][0];
    damage(entry, '"theta":1000000', '"theta":9000000');
    const second = await load(store);
    expect(second.weights.dims.theta).toBe(1_000_000);
    expect(second.fromCache).toBe(false);
    expect(second.notes.join(' ')).toMatch(/^the cached weights were unusable \(.*manifest.*\): removed, loading from the source again$/);
    // Rebuilt under the same key, good again.
    expect(store.entries.size).toBe(1);
    expect((await load(store)).fromCache).toBe(true);
    expect(store.entries.has(key)).toBe(true);
  });

  it('a damaged field name in the footer (manifestSha256 → manifestSha257) makes the entry unusable, not unchecked', async () => {
    const store = memoryWeightCache();
    await load(store);
    damage([...store.entries.values()][0], '"manifestSha256"', '"manifestSha257"');
    const second = await load(store);
    expect(second.fromCache).toBe(false);
    expect(second.notes.join(' ')).toMatch(/its footer has a field "manifestSha257"/);
  });

  it('an entry written before manifests were hashed (no manifestSha256) still loads from the cache', async () => {
    const store = memoryWeightCache();
    const first = await load(store);
    const [key, entry] = [...store.entries][0];
    store.entries.set(
      key,
      withFooter(entry, (f) => {
        expect(typeof f.manifestSha256).toBe('string');
        delete f.manifestSha256;
      }),
    );
    const second = await load(store);
    expect(second.fromCache).toBe(true);
    expect(second.notes).toEqual([]);
    expect(second.weights.dims).toEqual(first.weights.dims);
  });

  it("an older entry (no manifest hash) whose manifest no longer describes its parts is rebuilt, not an error on every load", async () => {
    const store = memoryWeightCache();
    await load(store);
    const [key, entry] = [...store.entries][0];
    // A damaged layer number in a part's description: nothing hashes an older entry's manifest.
    store.entries.set(
      key,
      withFooter(entry, (f) => {
        delete f.manifestSha256;
        const parts = (f.manifest as { parts: { info: { layer?: number } }[] }).parts;
        const layered = parts.find((p) => p.info.layer === 0)!;
        layered.info.layer = 90;
      }),
    );
    const second = await load(store);
    expect(second.fromCache).toBe(false);
    expect(second.notes.join(' ')).toMatch(/^the cached weights were unusable \(its manifest does not describe its parts: .*no layer 90\): removed, loading from the source again$/);
    expect((await load(store)).fromCache).toBe(true);
  });

  it('an unusable entry that cannot be removed (a read-only cache folder) does not fail the load: the weights come from the files', async () => {
    const store = memoryWeightCache();
    await load(store);
    const entry = [...store.entries.values()][0];
    entry[0] ^= 1; // a flipped bit in the first part (the embeddings)
    const readOnly: WeightCacheStore = {
      ...store,
      async remove() {
        throw new Error("EACCES: permission denied, unlink 'weights.bin'");
      },
    };
    const second = await load(readOnly);
    expect(second.fromCache).toBe(false);
    expect(second.notes[0]).toBe(
      "the cached weights were unusable (part embed does not match its hash) and could not be removed (EACCES: permission denied, unlink 'weights.bin'): loading from the source again",
    );
  });

  it('an entry moved from an earlier name whose old copy cannot be removed is moved, and the note says the removal failed, not the write', async () => {
    const store = memoryWeightCache();
    // As a load before entries were named by the folder's path wrote it: under the bare name.
    expect((await load(store, 'tiny-mistral')).fromCache).toBe(false);
    const [oldKey] = [...store.entries.keys()];
    const readOnly: WeightCacheStore = {
      ...store,
      async remove() {
        throw new Error("EACCES: permission denied, unlink 'old.bin'");
      },
    };
    const moved = await load(readOnly, '/models/tiny-mistral', ['tiny-mistral']);
    expect(moved.fromCache).toBe(true);
    // Written under the new name: two entries, the old one still there.
    expect(store.entries.size).toBe(2);
    expect(store.entries.has(oldKey)).toBe(true);
    expect(moved.notes).toEqual([
      'the cached weights of these files, kept under the name tiny-mistral, are now kept under /models/tiny-mistral',
      `the earlier copy (entry ${oldKey}) could not be removed (EACCES: permission denied, unlink 'old.bin'): it stays in the cache, unused, until it is removed`,
    ]);
    // The next load reads the new entry, with nothing to move.
    const again = await load(store, '/models/tiny-mistral', ['tiny-mistral']);
    expect(again.fromCache).toBe(true);
    expect(again.notes).toEqual([]);
  });

  it.each([
    ['null', null],
    ['a number', 7],
    ['one without its hash', { name: 'embed', offset: 0, bytes: 1 }],
    ['one whose name is not text', { name: 3, offset: 0, bytes: 1, sha256: '0'.repeat(64) }],
  ])('a part record that is %s makes the entry unusable (rebuilt, unlisted), not a TypeError', async (_what, record) => {
    const store = memoryWeightCache();
    await load(store);
    const [key, entry] = [...store.entries][0];
    const damaged = withFooter(entry, (f) => {
      (f.parts as unknown[])[0] = record;
    });
    store.entries.set(key, damaged);
    expect(await readCacheEntryInfo({ name: key, size: damaged.byteLength, read: async (o, n) => damaged.subarray(o, o + n) })).toBeNull();
    const second = await load(store);
    expect(second.fromCache).toBe(false);
    expect(second.notes).toEqual(['the cached weights were unusable (its footer\'s part 1 is not a part record): removed, loading from the source again']);
    expect((await load(store)).fromCache).toBe(true);
  });

  it("an older entry (no manifest hash) whose manifest's part is null is rebuilt, not a TypeError", async () => {
    const store = memoryWeightCache();
    await load(store);
    const [key, entry] = [...store.entries][0];
    store.entries.set(
      key,
      withFooter(entry, (f) => {
        delete f.manifestSha256;
        (f.manifest as { parts: unknown[] }).parts[0] = null;
      }),
    );
    const second = await load(store);
    expect(second.fromCache).toBe(false);
    expect(second.notes).toEqual(["the cached weights were unusable (its manifest's part 1 is not a part description): removed, loading from the source again"]);
    expect((await load(store)).fromCache).toBe(true);
  });
});

describe("an older entry (no manifest hash) whose manifest's fields are damaged", () => {
  type Manifest = { dims: Record<string, unknown> | null; quantization: unknown; tied: unknown; parts: { info: Record<string, unknown> }[] };
  it.each<[string, (m: Manifest) => void, string]>([
    ['dims null', (m) => void (m.dims = null), "its manifest's dims are not a model's sizes"],
    ['dims without theta', (m) => void delete m.dims!.theta, "its manifest's dims.theta is not a positive number"],
    ['dims.L a string', (m) => void (m.dims!.L = '2'), "its manifest's dims.L is not a positive whole number"],
    ['dims.hd 0', (m) => void (m.dims!.hd = 0), "its manifest's dims.hd is not a positive whole number"],
    ['quantization unknown', (m) => void (m.quantization = 'nf5'), "its manifest's quantization \"nf5\" is not one this build knows"],
    ['tied not a boolean', (m) => void (m.tied = 'yes'), "its manifest's tied is not true or false"],
    ['quantization not the identity\'s', (m) => void (m.quantization = 'nf4'), "its manifest's quantization \"nf4\" is not its identity's \"none\""],
    ['a part whose storage is unknown', (m) => void (m.parts[0].info.storage = 'f8'), "its manifest's part 1 (\"embed\") is not a part description"],
    ['a dense part whose width is text', (m) => void (m.parts.find((p) => p.info.role === 'dense')!.info.out = '64'), "its manifest's part 4 (\"0.q_proj\") is not a part description"],
    ['a part whose role is unknown', (m) => void (m.parts[0].info.role = 'bias'), "its manifest's part 1 (\"embed\") is not a part description"],
  ])('%s: the entry is rebuilt with a note, not a TypeError or a model loaded from it', async (_what, edit, why) => {
    const store = memoryWeightCache();
    const first = await load(store);
    const [key, entry] = [...store.entries][0];
    store.entries.set(
      key,
      withFooter(entry, (f) => {
        delete f.manifestSha256;
        edit(f.manifest as Manifest);
      }),
    );
    const second = await load(store);
    expect(second.fromCache).toBe(false);
    expect(second.notes).toEqual([`the cached weights were unusable (${why}): removed, loading from the source again`]);
    expect(second.weights.dims).toEqual(first.weights.dims);
    expect((await load(store)).fromCache).toBe(true);
  });
});

// What a store throws is not always an Error: OPFS and other outside code may throw an object with no prototype (no
// message, and String() throws for it) or one whose toString throws. `e instanceof Error ? e.message : String(e)` then
// threw a TypeError of its own, and a failed cache write or read, which is a note, became a failed load.
describe('a store that throws a value that is not an Error: still a note, and the model is loaded', () => {
  const NO_TEXT = 'a thrown value that has no text';
  const thrownValues: [string, () => unknown][] = [
    ['an object with no prototype', () => Object.create(null) as object],
    ['an object whose toString throws', () => ({ toString: () => { throw new Error('no text here'); } })],
  ];

  it.each(thrownValues)('a write that throws %s: "not cached", loaded from the files', async (_what, thrown) => {
    const failing: WeightCacheStore = {
      ...memoryWeightCache(),
      async write() {
        throw thrown();
      },
    };
    const loaded = await load(failing);
    expect(loaded.fromCache).toBe(false);
    expect(loaded.weights.dims.theta).toBe(1_000_000);
    expect(loaded.notes).toEqual([`the weights were not cached: ${NO_TEXT}. They are loaded; the next load reads them from the model's files again`]);
  });

  it('the browser store, whose writable throws an object with no prototype: the note names the entry, the model is loaded', async () => {
    const base = new FakeOpfs().dir();
    const store = opfsWeightCache({
      ...base,
      async getFileHandle(name, options) {
        const h = await base.getFileHandle(name, options);
        return { getFile: () => h.getFile(), createWritable: async () => ({ ...(await h.createWritable()), write: () => Promise.reject(Object.create(null)) }) };
      },
    });
    const loaded = await load(store);
    expect(loaded.fromCache).toBe(false);
    expect(loaded.notes).toHaveLength(1);
    expect(loaded.notes[0]).toMatch(
      new RegExp(`^the weights were not cached: could not write weights-[0-9a-f]{40}\\.bin to this browser's storage: ${NO_TEXT}\\. They are loaded; the next load reads them from the model's files again$`),
    );
  });

  // A store whose open throws (a cache folder that cannot be listed, a browser storage that refuses): every other
  // failure of the cache was a note and the model still loaded from its files, but this one failed the whole load.
  const openThrows: [string, () => unknown, string][] = [
    ['an Error', () => new Error('EACCES: permission denied, scandir'), 'EACCES: permission denied, scandir'],
    ...thrownValues.map(([what, thrown]): [string, () => unknown, string] => [what, thrown, NO_TEXT]),
  ];

  it.each(openThrows)('a store whose open throws %s: said, loaded from the files, nothing written', async (_what, thrown, words) => {
    const store = memoryWeightCache();
    const loaded = await load({
      ...store,
      async open() {
        throw thrown();
      },
    });
    expect(loaded.fromCache).toBe(false);
    expect(loaded.weights.dims.theta).toBe(1_000_000);
    expect(loaded.notes).toEqual([`the weight cache could not be looked into (${words}): the weights are loaded from the model's files, and not cached`]);
    expect(store.entries.size).toBe(0);
  });

  it.each(openThrows)('an entry under an earlier name whose open throws %s: said, loaded from the files and cached under the new name', async (_what, thrown, words) => {
    const store = memoryWeightCache();
    await load(store, 'tiny-mistral');
    const [oldKey] = [...store.entries.keys()];
    const moved = await load(
      {
        ...store,
        async open(key) {
          if (key === oldKey) throw thrown();
          return store.open(key);
        },
      },
      '/models/tiny-mistral',
      ['tiny-mistral'],
    );
    expect(moved.fromCache).toBe(false);
    expect(moved.notes).toEqual([`the earlier copy of these weights (entry ${oldKey}) could not be looked into (${words}): the weights are loaded from the model's files`]);
    expect(store.entries.size).toBe(2);
    expect((await load(store)).fromCache).toBe(true);
  });

  it.each(thrownValues)('an entry whose read throws %s is unusable: removed and rebuilt', async (_what, thrown) => {
    const store = memoryWeightCache();
    await load(store);
    const unreadable: WeightCacheStore = {
      ...store,
      async open(key) {
        const entry = await store.open(key);
        return entry && { ...entry, read: () => Promise.reject(thrown()) };
      },
    };
    const second = await load(unreadable);
    expect(second.fromCache).toBe(false);
    expect(second.notes).toEqual([`the cached weights were unusable (its footer could not be read (${NO_TEXT})): removed, loading from the source again`]);
    expect((await load(store)).fromCache).toBe(true);
  });

  it.each(thrownValues)('an unusable entry whose removal throws %s: said, loaded from the files', async (_what, thrown) => {
    const store = memoryWeightCache();
    await load(store);
    [...store.entries.values()][0][0] ^= 1;
    const second = await load({
      ...store,
      async remove() {
        throw thrown();
      },
    });
    expect(second.fromCache).toBe(false);
    expect(second.notes).toEqual([`the cached weights were unusable (part embed does not match its hash) and could not be removed (${NO_TEXT}): loading from the source again`]);
  });

  it.each(thrownValues)('an entry moved from an earlier name, whose write throws %s: kept where it was, loaded', async (_what, thrown) => {
    const store = memoryWeightCache();
    await load(store, 'tiny-mistral');
    const moved = await load({ ...store, write: () => Promise.reject(thrown()) }, '/models/tiny-mistral', ['tiny-mistral']);
    expect(moved.fromCache).toBe(true);
    expect(moved.notes).toEqual([`the cached weights of these files stay kept under the name tiny-mistral: writing them under /models/tiny-mistral failed (${NO_TEXT})`]);
  });

  it.each(thrownValues)("an entry moved from an earlier name, whose old copy's removal throws %s: moved, and said", async (_what, thrown) => {
    const store = memoryWeightCache();
    await load(store, 'tiny-mistral');
    const [oldKey] = [...store.entries.keys()];
    const moved = await load({ ...store, remove: () => Promise.reject(thrown()) }, '/models/tiny-mistral', ['tiny-mistral']);
    expect(moved.fromCache).toBe(true);
    expect(moved.notes[1]).toBe(`the earlier copy (entry ${oldKey}) could not be removed (${NO_TEXT}): it stays in the cache, unused, until it is removed`);
  });
});
