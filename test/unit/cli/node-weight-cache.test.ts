// The weight cache's Node store writes atomically: an entry appears under its name only once complete; a write that
// fails halfway (a full disk, a crash in the producer) leaves neither the entry nor a temporary file.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeWeightCache } from '../../../src/cli/node-weight-cache.ts';

const dir = mkdtempSync(join(tmpdir(), 'finetune-wcache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const KEY = 'a'.repeat(40);

describe('node weight-cache store', () => {
  it('writes, lists, reads back and removes an entry', async () => {
    const store = nodeWeightCache(dir);
    async function* chunks() {
      yield new Uint8Array([1, 2, 3]);
      yield new Uint8Array([4, 5]);
    }
    await store.write(KEY, chunks());
    // Five bytes hold no footer: listed without a source (so that it can be removed), with the file's date.
    expect(await store.list()).toEqual([{ key: KEY, bytes: 5, writtenAt: expect.any(Number) }]);
    const src = await store.open(KEY);
    expect(Array.from(await src!.read(0, 5))).toEqual([1, 2, 3, 4, 5]);
    expect(src!.version).toMatch(/^file 5 /);
    await store.remove(KEY);
    expect(await store.open(KEY)).toBeNull();
  });

  it('lists the entries it can, past one that cannot be opened (one removed by another process after it was seen)', async () => {
    // A name that stat() sees but open() refuses: what an entry removed between the two looks like, made here by a
    // folder under an entry's name. A load lists the cache after it has finished: this failed the finished load.
    const own = mkdtempSync(join(tmpdir(), 'finetune-wcache-list-'));
    try {
      const store = nodeWeightCache(own);
      await store.write(KEY, (async function* () {
        yield new Uint8Array([1, 2, 3]);
      })());
      mkdirSync(join(own, `weights-${'b'.repeat(40)}.bin`));
      const listed = await store.list();
      expect(listed.map((e) => e.key)).toContain(KEY);
      expect(listed.find((e) => e.key === KEY)).toMatchObject({ bytes: 3 });
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  it('a write that fails halfway leaves nothing behind, and the previous entry stays', async () => {
    const store = nodeWeightCache(dir);
    await store.write(KEY, (async function* () {
      yield new Uint8Array([9, 9]);
    })());
    const failing = (async function* () {
      yield new Uint8Array(1000);
      throw new Error('disk full');
    })();
    await expect(store.write(KEY, failing)).rejects.toThrow(/disk full/);
    expect(readdirSync(dir)).toEqual([`weights-${KEY}.bin`]);
    expect(Array.from(await (await store.open(KEY))!.read(0, 2))).toEqual([9, 9]);
  });

  it("removes what a killed writer left (its process gone, or a week old), and no one else's partial", async () => {
    const cache = mkdtempSync(join(tmpdir(), 'finetune-wcache-left-'));
    const host = hostname().replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40) || 'host';
    // A process that has ended, and one that runs: the real process table decides.
    const ended = spawnSync(process.execPath, ['-e', '']).pid as number;
    const running = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const now = Date.now();
    const names = {
      killed: `weights-${KEY}.bin.${ended}.${now}.${host}.partial`,
      killedOldFormat: `weights-${KEY}.bin.${ended}.${now}.partial`,
      writing: `weights-${KEY}.bin.${running.pid}.${now}.${host}.partial`,
      otherHost: `weights-${KEY}.bin.${ended}.${now}.elsewhere.partial`,
      weekOld: `weights-${KEY}.bin.${running.pid}.${now - 8 * 24 * 3600 * 1000}.elsewhere.partial`,
      entry: `weights-${KEY}.bin`,
    };
    try {
      for (const n of Object.values(names)) writeFileSync(join(cache, n), 'x');
      // A load asks the store for its entry: the leftovers go then.
      expect(await nodeWeightCache(cache).open(KEY)).not.toBeNull();
      expect(readdirSync(cache).sort()).toEqual([names.entry, names.otherHost, names.writing].sort());
    } finally {
      running.kill('SIGKILL');
    }
  });

  it('refuses a key that is not 40 hex digits (it names a file)', async () => {
    await expect(nodeWeightCache(dir).open('../../etc/passwd')).rejects.toThrow(/not a weight-cache key/);
  });
});
