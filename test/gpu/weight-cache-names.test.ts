// What the command line names a weight-cache entry by. Two folders that share a name (a/model and b/model) are two
// models: each has its entry, named by its absolute path, and neither is taken for an older version of the other
// (`cache prune` removed the older one, and every load of one said the other was superseded). An entry written under
// the folder's bare name (before entries were named by path) is moved to the path on the next load, not rebuilt.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelSpec, nodeDirectory } from '../../src/cli/node-source.ts';
import { nodeWeightCache } from '../../src/cli/node-weight-cache.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import type { ByteSource, FileSet } from '../../src/model/source.ts';
import { FinetuneSession } from '../../src/run/session.ts';
import { entriesToPrune, supersededNote } from '../../src/run/weight-cache-prune.ts';
import { gpuContext } from './context.ts';

const DIR = 'test/fixtures/tiny-mistral';

/** `files` with each file's version (and former version) as `versions` says for its name, as a Hub FileSet gives them. */
function versioned(files: FileSet, versions: (name: string) => Pick<ByteSource, 'version' | 'formerVersion'>): FileSet {
  return {
    name: files.name,
    open: async (name) => {
      const s = await files.open(name);
      return { name: s.name, size: s.size, read: (offset, length) => s.read(offset, length), ...versions(name) };
    },
  };
}

/** A copy of tiny-mistral at `parent`/model. */
function modelCopy(root: string, parent: string): string {
  const dir = join(root, parent, 'model');
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(DIR)) copyFileSync(join(DIR, f), join(dir, f));
  return dir;
}

describe('weight-cache entry names', () => {
  let ctx: GpuContext;
  let session: FinetuneSession;
  // Its real path: where the system's temp folder is itself a link (macOS), folders are named by the resolved one.
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'finetune-cache-names-')));
  const cacheDir = join(root, 'cache');
  const cache = nodeWeightCache(cacheDir);
  beforeAll(async () => {
    ctx = await gpuContext();
    session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    session.weightCache = cache;
  });
  afterAll(() => {
    session.unloadModel();
    rmSync(root, { recursive: true, force: true });
  });

  const load = (dir: string, cacheSource?: string) => {
    const spec = modelSpec(dir);
    return session.loadModel(spec.files, spec.label, 'nf4-double', undefined, cacheSource === undefined ? {} : { cacheSource });
  };

  it('two folders named model are two entries, named by their paths; neither is pruned as the older of the other', async () => {
    const a = modelCopy(root, 'a');
    const b = modelCopy(root, 'b');
    const specA = modelSpec(a);
    const specB = modelSpec(b);
    expect(specA.label).toBe('model');
    expect(specB.label).toBe('model');
    expect(specA.cacheSource).toBe(a);
    expect(specB.cacheSource).toBe(b);
    expect((await load(a, specA.cacheSource)).fromCache).toBe(false);
    expect((await load(b, specB.cacheSource)).fromCache).toBe(false);
    const entries = await cache.list();
    expect(entries.map((e) => e.source).sort()).toEqual([a, b].sort());
    expect(entriesToPrune(entries)).toEqual([]);
    expect(supersededNote(entries, specA.cacheSource, 'nf4-double', 'finetune cache prune')).toBeNull();
    expect((await load(a, specA.cacheSource)).fromCache).toBe(true);
    for (const e of entries) await cache.remove(e.key);
  });

  it("an entry under the folder's bare name is loaded, moved to the path's name and removed, not rebuilt", async () => {
    const c = modelCopy(root, 'c');
    // As loads wrote it before: named by the label.
    expect((await load(c)).fromCache).toBe(false);
    expect((await cache.list()).map((e) => e.source)).toEqual(['model']);
    const moved = await load(c, c);
    expect(moved.fromCache).toBe(true);
    expect(moved.warnings.join(' ')).toContain(`the cached weights of these files, kept under the name model, are now kept under ${c}`);
    expect((await cache.list()).map((e) => e.source)).toEqual([c]);
    const again = await load(c, c);
    expect(again.fromCache).toBe(true);
    expect(again.warnings.join(' ')).not.toContain('kept under');
  });

  it("an entry of Hub files versioned by their CDN's ETags (and named without the revision) is moved to their X-Linked-Etags, not rebuilt", async () => {
    for (const e of await cache.list()) await cache.remove(e.key);
    const files = nodeDirectory(DIR);
    // As a load before X-Linked-Etag was read wrote it: the CDN's ETag the version, owner/name the name.
    const before = versioned(files, (n) => ({ version: `http "cdn-${n}"` }));
    expect((await session.loadModel(before, 'someone/model', 'nf4-double')).fromCache).toBe(false);
    // Now: the content hash is the version, and the source still says what the CDN's ETag is.
    const now = versioned(files, (n) => ({ version: `http "sha-${n}"`, formerVersion: `http "cdn-${n}"` }));
    const moved = await session.loadModel(now, 'someone/model', 'nf4-double', undefined, { cacheSource: 'someone/model@main' });
    expect(moved.fromCache).toBe(true);
    expect(moved.warnings.join(' ')).toContain(
      "the cached weights of these files, kept under the name someone/model with the files' former versions (their server's ETags), are now kept under someone/model@main with the versions their server names for their contents (the Hub's X-Linked-Etag)",
    );
    const entries = await cache.list();
    expect(entries.map((e) => e.source)).toEqual(['someone/model@main']);
    // Under the new versions from now on, whatever ETag the CDN gives next.
    const elsewhere = versioned(files, (n) => ({ version: `http "sha-${n}"`, formerVersion: `http "cdn-other-node-${n}"` }));
    const again = await session.loadModel(elsewhere, 'someone/model', 'nf4-double', undefined, { cacheSource: 'someone/model@main' });
    expect(again.fromCache).toBe(true);
    expect(again.warnings.join(' ')).not.toContain('kept under');
    // A file whose former version is not the entry's (another file of that size) does not take it.
    for (const e of await cache.list()) await cache.remove(e.key);
    expect((await session.loadModel(before, 'someone/model', 'nf4-double')).fromCache).toBe(false);
    const changed = versioned(files, (n) => ({ version: `http "sha-${n}"`, formerVersion: `http "cdn-${n}${n === 'config.json' ? '' : '-v2'}"` }));
    expect((await session.loadModel(changed, 'someone/model', 'nf4-double', undefined, { cacheSource: 'someone/model@main' })).fromCache).toBe(false);
  });

  it('a folder reached through a symbolic link is one model with the folder itself, named by its real path; an entry under the link is moved, not rebuilt', async () => {
    for (const e of await cache.list()) await cache.remove(e.key);
    const real = realpathSync(modelCopy(root, 'd'));
    const link = join(root, 'linked-model');
    symlinkSync(real, link, 'dir');
    const viaLink = modelSpec(link);
    expect(viaLink.label).toBe('linked-model'); // named as given
    expect(viaLink.cacheSource).toBe(real);
    expect(viaLink.formerCacheSources).toEqual([link]);
    expect(modelSpec(real).formerCacheSources).toEqual([]);
    const loadSpec = (spec: ReturnType<typeof modelSpec>) => session.loadModel(spec.files, spec.label, 'nf4-double', undefined, { cacheSource: spec.cacheSource, formerCacheSources: spec.formerCacheSources });
    expect((await loadSpec(modelSpec(real))).fromCache).toBe(false);
    expect((await loadSpec(viaLink)).fromCache).toBe(true);
    expect((await cache.list()).map((e) => e.source)).toEqual([real]);
    // As a load through the link wrote it before: named by the link's path.
    for (const e of await cache.list()) await cache.remove(e.key);
    expect((await session.loadModel(viaLink.files, viaLink.label, 'nf4-double', undefined, { cacheSource: link })).fromCache).toBe(false);
    const moved = await loadSpec(viaLink);
    expect(moved.fromCache).toBe(true);
    expect(moved.warnings.join(' ')).toContain(`the cached weights of these files, kept under the name ${link}, are now kept under ${real}`);
    expect((await cache.list()).map((e) => e.source)).toEqual([real]);
  });
});
