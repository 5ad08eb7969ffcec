// What the weight cache keys on: every file's version. A source whose files all have one (a server's ETag or
// Last-Modified, a file's modification time) is cached; one with a file without (a server that sends no validator) is
// not, since a changed file of the same size would get the old key and its stale weights.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import { openBaseCheckpoint } from '../../../src/model/checkpoint.ts';
import { blobFileSet, urlFileSet } from '../../../src/model/source.ts';
import { cacheIdentity, cacheKey, uncachedReason } from '../../../src/run/weight-cache.ts';
import { TINY_MISTRAL } from '../model/helpers.ts';

/** A fetch serving tiny-mistral with Range, with the validators asked for (none: neither ETag nor Last-Modified). */
function fakeFetch(validators: Record<string, string>): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const name = decodeURIComponent(new URL(String(input)).pathname.split('/').pop() ?? '');
    const body = new Uint8Array(readFileSync(join(TINY_MISTRAL, name)));
    const [, a, b] = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get('range') ?? '') ?? [];
    const end = Math.min(Number(b), body.byteLength - 1);
    return new Response(body.slice(Number(a), end + 1), { status: 206, headers: { 'content-range': `bytes ${a}-${end}/${body.byteLength}`, ...validators } });
  }) as typeof fetch;
}

describe('weight cache identity', () => {
  it('a server without ETag or Last-Modified: no versions, and a reason not to cache that names the file', async () => {
    const files = urlFileSet('http://models.invalid/tiny/', { fetch: fakeFetch({}) });
    const identity = await cacheIdentity(files, await openBaseCheckpoint(files), 'tiny', 'nf4');
    expect(identity.files.every((f) => f.version === null)).toBe(true);
    expect(uncachedReason(identity)).toBe(
      "the weights are not cached: config.json comes without a version (an ETag or Last-Modified from its server, a file's modification time), so a changed file could not be told apart from the cached one; each load reads the model's files again",
    );
  });

  it('with an ETag, or a Last-Modified alone, every file has a version and is cached', async () => {
    const cases: Record<string, string>[] = [{ etag: '"v1"' }, { 'last-modified': 'Tue, 01 Dec 2026 10:00:00 GMT' }];
    for (const validators of cases) {
      const files = urlFileSet('http://models.invalid/tiny/', { fetch: fakeFetch(validators) });
      const identity = await cacheIdentity(files, await openBaseCheckpoint(files), 'tiny', 'nf4');
      expect(identity.files.map((f) => f.version)).toEqual(identity.files.map(() => `http ${Object.values(validators)[0]}`));
      expect(uncachedReason(identity)).toBeNull();
    }
  });

  it("local files have versions: a Node directory's size and mtime, a picked File's size and lastModified", async () => {
    const dir = nodeDirectory(TINY_MISTRAL);
    const fromDisk = await cacheIdentity(dir, await openBaseCheckpoint(dir), 'tiny', 'nf4');
    expect(fromDisk.files.every((f) => /^file \d+ \d+(\.\d+)? sampled-sha256:[0-9a-f]{64}$/.test(f.version ?? ''))).toBe(true);
    expect(uncachedReason(fromDisk)).toBeNull();
    const picked = blobFileSet(
      dir.list!().map((n) => new File([readFileSync(join(TINY_MISTRAL, n))], n, { lastModified: 1_700_000_000_000 })),
    );
    const fromPage = await cacheIdentity(picked, await openBaseCheckpoint(picked), 'tiny', 'nf4');
    expect(fromPage.files.every((f) => f.version?.startsWith(`file ${f.size} 1700000000000 sampled-sha256:`))).toBe(true);
    expect(uncachedReason(fromPage)).toBeNull();
  });

  // cp -p, rsync -t, tar and unzip keep a file's modification time: a shard rewritten so had the old key, and the old
  // file's quantised weights were loaded for it (fromCache true, other text than a load without the cache).
  it('a local file changed with its size and modification time kept has another key', async () => {
    const dir = nodeDirectory(TINY_MISTRAL);
    const names = dir.list!();
    const pick = (flip: boolean) =>
      blobFileSet(
        names.map((n) => {
          const bytes = new Uint8Array(readFileSync(join(TINY_MISTRAL, n)));
          if (flip && n.endsWith('.safetensors')) bytes[bytes.length - 10] ^= 0xff; // a weight's byte, in the last block
          return new File([bytes], n, { lastModified: 1_700_000_000_000 });
        }),
      );
    const before = await cacheIdentity(pick(false), await openBaseCheckpoint(pick(false)), 'tiny', 'nf4');
    const after = await cacheIdentity(pick(true), await openBaseCheckpoint(pick(true)), 'tiny', 'nf4');
    expect(after.files.map((f) => f.size)).toEqual(before.files.map((f) => f.size));
    expect(await cacheKey(after)).not.toBe(await cacheKey(before));
    expect(await cacheKey(await cacheIdentity(pick(false), await openBaseCheckpoint(pick(false)), 'tiny', 'nf4'))).toBe(await cacheKey(before));
  });
});
