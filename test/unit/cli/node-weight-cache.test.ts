// The weight cache's Node store writes atomically: an entry appears under its name only once complete; a write that
// fails halfway (a full disk, a crash in the producer) leaves neither the entry nor a temporary file.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
    expect(await store.list()).toEqual([{ key: KEY, bytes: 5 }]);
    const src = await store.open(KEY);
    expect(Array.from(await src!.read(0, 5))).toEqual([1, 2, 3, 4, 5]);
    expect(src!.version).toMatch(/^file 5 /);
    await store.remove(KEY);
    expect(await store.open(KEY)).toBeNull();
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

  it('refuses a key that is not 40 hex digits (it names a file)', async () => {
    await expect(nodeWeightCache(dir).open('../../etc/passwd')).rejects.toThrow(/not a weight-cache key/);
  });
});
