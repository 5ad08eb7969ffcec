// `finetune cache list | rm | prune`: the CLI's weight cache (a folder of entries, ~4 GB each for Mistral-7B) is seen
// and emptied from the command line; prune keeps the newest entry of each model and quantisation.
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { formatBytes } from '../../../src/core/units.ts';
import { nodeWeightCache } from '../../../src/cli/node-weight-cache.ts';
import { supersededNote } from '../../../src/run/weight-cache-prune.ts';
import { offlineCopyName } from '../../../src/model/offline-copy.ts';
import { cacheEntryOf, cacheIdentityOf } from '../../helpers/cache-entries.ts';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'finetune-cache-cmd-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Writes an entry for `source` made from a file of `version`, dated `secondsAgo` before now. */
async function put(source: string, version: string, secondsAgo: number, quantization: 'nf4' | 'nf4-double' = 'nf4'): Promise<{ key: string; bytes: number }> {
  const e = await cacheEntryOf(cacheIdentityOf(source, quantization, version));
  await nodeWeightCache(dir).write(e.key, e.chunks, e.bytes);
  const t = Date.now() / 1000 - secondsAgo;
  utimesSync(join(dir, `weights-${e.key}.bin`), t, t);
  return { key: e.key, bytes: e.bytes };
}

describe('finetune cache', () => {
  it('lists each entry with its source, quantisation, size and date, newest first, and the total', async () => {
    const old = await put('mistralai/Mistral-7B-Instruct-v0.2', 'v1', 3600, 'nf4-double');
    const demo = await put('mistral-nano-demo', 'v1', 60);
    const c = capture();
    expect(await main(['cache', 'list', '--cache-dir', dir], c.io)).toBe(0);
    const lines = c.out.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.type, l.key, l.source, l.quantization, l.bytes])).toEqual([
      ['cache-entry', demo.key, 'mistral-nano-demo', 'nf4', demo.bytes],
      ['cache-entry', old.key, 'mistralai/Mistral-7B-Instruct-v0.2', 'nf4-double', old.bytes],
    ]);
    expect(typeof lines[0].writtenAt).toBe('string');
    expect(c.err).toEqual([`2 entries, ${formatBytes(demo.bytes + old.bytes)}, in "${dir}"`]);
  });

  it('prune removes the older entries of a model and quantisation and the unreadable ones, and keeps the rest', async () => {
    const a1 = await put('/models/my-model', 'v1', 300);
    const a2 = await put('/models/my-model', 'v2', 200);
    const a3 = await put('/models/my-model', 'v3', 100);
    const other = await put('/models/my-model', 'v1', 250, 'nf4-double');
    const demo = await put('https://example.com/mistral-nano-demo/', 'v1', 400);
    const junk = 'f'.repeat(40);
    writeFileSync(join(dir, `weights-${junk}.bin`), new Uint8Array(64)); // no footer: damaged, or another format
    const dry = capture();
    expect(await main(['cache', 'prune', '--dry-run', '--cache-dir', dir], dry.io)).toBe(0);
    expect(readdirSync(dir)).toHaveLength(6);
    const c = capture();
    expect(await main(['cache', 'prune', '--cache-dir', dir], c.io)).toBe(0);
    const removed = c.out.map((l) => JSON.parse(l) as { key: string; why: string });
    expect(removed.map((r) => r.key).sort()).toEqual([a1.key, a2.key, junk].sort());
    expect(dry.out.map((l) => (JSON.parse(l) as { key: string }).key).sort()).toEqual(removed.map((r) => r.key).sort());
    expect(removed.find((r) => r.key === a1.key)?.why).toBe('an older entry of /models/my-model (nf4): the newest is kept');
    expect(removed.find((r) => r.key === junk)?.why).toBe('unreadable (damaged, or from another version of finetune)');
    expect(readdirSync(dir).sort()).toEqual([a3.key, other.key, demo.key].map((k) => `weights-${k}.bin`).sort());
    expect(c.err.at(-1)).toMatch(/^removed 3 entries, freeing [\d.]+ KiB; 3 kept$/);
  });

  it('prune keeps the entries named by a bare folder name (written before entries were named by path): they may be two folders\' of that name', async () => {
    // Two folders called `model`, each loaded before 2026-12-03: two entries under the one name "model". Neither is
    // older than the other in any sense prune can tell: each is moved to its folder's path at that folder's next load.
    const first = await put('model', 'v1', 300);
    const second = await put('model', 'v2', 100);
    const hubOld = await put('mistralai/Mistral-7B-v0.1@main', 'v1', 200);
    const hubNew = await put('mistralai/Mistral-7B-v0.1@main', 'v2', 50);
    const c = capture();
    expect(await main(['cache', 'prune', '--cache-dir', dir], c.io)).toBe(0);
    expect(c.out.map((l) => (JSON.parse(l) as { key: string }).key)).toEqual([hubOld.key]);
    expect(readdirSync(dir).sort()).toEqual([first.key, second.key, hubNew.key].map((k) => `weights-${k}.bin`).sort());
    expect(c.err).toContain(
      `kept 2 entries named only by a folder's name (model), ${formatBytes(first.bytes + second.bytes)}: written before entries were named by the folder's path, they cannot be told apart from another folder's of that name; each moves to its folder's path at that folder's next load (finetune cache rm KEY removes one)`,
    );
    const dry = capture();
    expect(await main(['cache', 'prune', '--dry-run', '--cache-dir', dir], dry.io)).toBe(0);
    expect(dry.out).toEqual([]);
    // A load's note about older entries does not count them either.
    expect(supersededNote(await nodeWeightCache(dir).list(), 'model', 'nf4', 'finetune cache prune')).toBeNull();
  });

  it('rm removes the entries named (by a unique prefix of 8 or more), refuses unknown or ambiguous ones before removing any, and --all empties it', async () => {
    const a = await put('a', 'v1', 10);
    const b = await put('b', 'v1', 20);
    const unknown = capture();
    expect(await main(['cache', 'rm', a.key.slice(0, 8), '0123456789abcdef', '--cache-dir', dir], unknown.io)).toBe(2);
    expect(unknown.err.join('\n')).toMatch(/no entry 0123456789abcdef in /);
    expect(readdirSync(dir)).toHaveLength(2);
    const short = capture();
    expect(await main(['cache', 'rm', 'abc', '--cache-dir', dir], short.io)).toBe(2);
    expect(short.err.join('\n')).toMatch(/at least 8 hex digits/);
    const c = capture();
    expect(await main(['cache', 'rm', a.key.slice(0, 8), '--cache-dir', dir], c.io)).toBe(0);
    expect(readdirSync(dir)).toEqual([`weights-${b.key}.bin`]);
    const all = capture();
    expect(await main(['cache', 'rm', '--all', '--cache-dir', dir], all.io)).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
    expect(all.err.at(-1)).toMatch(/^removed 1 entry, freeing /);
  });

  it("rm and prune remove a model's offline copy once no entry of that model is left, and keep the others'", async () => {
    const hubOld = await put('someone/model@main', 'v1', 300);
    const hubNew = await put('someone/model@main', 'v2', 100);
    const url = await put('https://example.com/m/', 'v1', 50);
    const copy = async (source: string): Promise<string> => {
      const name = await offlineCopyName(source);
      writeFileSync(join(dir, name), '{}');
      return name;
    };
    const hubCopy = await copy('someone/model@main');
    const urlCopy = await copy('https://example.com/m/');
    const orphan = await copy('gone/model@main');
    // prune removes the older Hub entry: the newer keeps the Hub copy; the copy of a model with no entry goes.
    const pruned = capture();
    expect(await main(['cache', 'prune', '--cache-dir', dir], pruned.io)).toBe(0);
    expect(readdirSync(dir).sort()).toEqual([`weights-${hubNew.key}.bin`, `weights-${url.key}.bin`, hubCopy, urlCopy].sort());
    expect(readdirSync(dir)).not.toContain(orphan);
    expect(readdirSync(dir)).not.toContain(`weights-${hubOld.key}.bin`);
    expect(pruned.err.at(-1)).toMatch(/^removed 1 entry, freeing .* \(and the offline copy of a model's file descriptions no entry is left for\); 2 kept$/);
    // rm of the Hub entry takes its copy; --all the rest.
    const one = capture();
    expect(await main(['cache', 'rm', hubNew.key, '--cache-dir', dir], one.io)).toBe(0);
    expect(readdirSync(dir).sort()).toEqual([`weights-${url.key}.bin`, urlCopy].sort());
    const all = capture();
    expect(await main(['cache', 'rm', '--all', '--cache-dir', dir], all.io)).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('after a load, says when older entries of that model are in the cache, and how to remove them', async () => {
    const a1 = await put('/models/my-model', 'v1', 300);
    await put('/models/my-model', 'v2', 100);
    await put('/models/other', 'v1', 400);
    await put('/models/other', 'v2', 50);
    const entries = await nodeWeightCache(dir).list();
    expect(supersededNote(entries, '/models/my-model', 'nf4', 'finetune cache prune')).toBe(
      `the weight cache also holds an older entry of /models/my-model (nf4), ${formatBytes(a1.bytes)}, made from earlier versions of its files, which no load can use again: finetune cache prune removes it`,
    );
    expect(supersededNote(entries, '/models/my-model', 'nf4-double', 'finetune cache prune')).toBeNull();
  });

  it('an empty or missing cache folder lists nothing and says so', async () => {
    const c = capture();
    expect(await main(['cache', 'list', '--cache-dir', join(dir, 'none')], c.io)).toBe(0);
    expect(c.out).toEqual([]);
    expect(c.err).toEqual([`no cached weights in "${join(dir, 'none')}"`]);
  });

  it('a --cache-dir that is a file is refused as not a folder, for list, rm and prune (list said the cache was empty)', async () => {
    const file = join(dir, 'weights.txt');
    writeFileSync(file, 'not a folder');
    for (const argv of [['list'], ['rm', '--all'], ['prune', '--dry-run']]) {
      const c = capture();
      expect(await main(['cache', ...argv, '--cache-dir', file], c.io)).toBe(2);
      expect(c.out).toEqual([]);
      expect(c.err).toEqual([`finetune cache: bad-input: --cache-dir: "${file}" is a file, not a folder: give the cache's folder`]);
    }
    const under = join(file, 'cache');
    const c = capture();
    expect(await main(['cache', 'list', '--cache-dir', under], c.io)).toBe(2);
    expect(c.err).toEqual([`finetune cache: bad-input: --cache-dir: "${under}" cannot be a folder: part of its path is a file: give the cache's folder`]);
  });
});
