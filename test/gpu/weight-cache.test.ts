// The weight cache: tiny-mistral served by a loopback Range server. The first load downloads, quantises and caches;
// the second downloads no weight bytes (only config, index and the shards' headers) and gives the same GPU weights,
// byte for byte; a corrupted entry is detected by its hashes, removed and rebuilt. A load with streamed layers (held in
// CPU memory) reads the same entry and writes it again byte for byte. A server without ETag or Last-Modified is not
// cached at all (a changed file could not be told apart).
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeWeightCache } from '../../src/cli/node-weight-cache.ts';
import { folderStoreFiles } from '../../src/cli/node-store.ts';
import { offlineCopyName, withOfflineCopy } from '../../src/model/offline-copy.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { downloadWeightParts } from '../../src/engine/mistral/weight-parts.ts';
import type { LoadProgress } from '../../src/engine/mistral/weights.ts';
import { parseSafetensorsHeaderBytes } from '../../src/model/safetensors.ts';
import { urlFileSet } from '../../src/model/source.ts';
import { FinetuneSession } from '../../src/run/session.ts';
import { cacheIdentity, cacheKey, writeCacheEntry, type WeightCacheStore } from '../../src/run/weight-cache.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { startRangeServer, type RangeServer } from '../helpers/range-server.ts';
import { gpuContext } from './context.ts';

const DIR = 'test/fixtures/tiny-mistral';
const SHARDS = readdirSync(DIR).filter((f) => f.endsWith('.safetensors'));

/** Where a shard's tensor data begins: after the 8-byte length and the JSON header. */
function headerBytes(file: string): number {
  return parseSafetensorsHeaderBytes(new Uint8Array(readFileSync(join(DIR, file)))).dataOffset;
}

describe('weight cache', () => {
  let ctx: GpuContext;
  let server: RangeServer;
  let session: FinetuneSession;
  const cacheDir = mkdtempSync(join(tmpdir(), 'finetune-cache-'));
  beforeAll(async () => {
    ctx = await gpuContext();
    server = await startRangeServer(DIR);
    session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    session.weightCache = nodeWeightCache(cacheDir);
  });
  afterAll(async () => {
    session.unloadModel();
    await server.close();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  /** The parts of the resident load of the first test, to compare the streamed loads with. */
  let resident: Buffer[] | null = null;
  const gpuBytes = async (): Promise<Buffer[]> => {
    const out: Buffer[] = [];
    for await (const { bytes } of downloadWeightParts(ctx, session.model!)) out.push(Buffer.from(bytes));
    return out;
  };
  /** Byte-for-byte equality (Buffer.equals: toEqual walks typed arrays element by element, minutes for these MB). */
  const sameBytes = (a: Buffer[], b: Buffer[]): boolean => a.length === b.length && a.every((x, i) => x.equals(b[i]));
  const load = async (streamLayers = false) => {
    server.requests.length = 0;
    const phases = new Set<string | undefined>();
    const info = await session.loadModel(urlFileSet(server.base, { retryDelayMs: 5 }), 'tiny', 'nf4-double', (p: LoadProgress) => phases.add(p.phase), { streamLayers });
    // Bytes asked for at or after a shard's data section: tensor bytes (probes and header reads come before it).
    let weightBytesSent = 0;
    for (const r of server.requests) {
      const [file, range] = r.split(' ');
      const m = /bytes=(\d+)-(\d+)/.exec(range ?? '');
      if (!SHARDS.includes(file) || !m) continue;
      weightBytesSent += Math.max(0, Number(m[2]) - Math.max(Number(m[1]), headerBytes(file)) + 1);
    }
    return { info, phases, weightBytesSent };
  };

  it('the second load downloads no weight bytes and gives identical GPU weights; a corrupt entry is rebuilt', async () => {
    const first = await load();
    expect(first.info.fromCache).toBe(false);
    expect(first.weightBytesSent).toBeGreaterThan(16_000_000);
    expect(first.phases).toContain('caching');
    const entries = readdirSync(cacheDir);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatch(/^weights-[0-9a-f]{40}\.bin$/);
    const want = await gpuBytes();

    const second = await load();
    expect(second.info.fromCache).toBe(true);
    expect(second.weightBytesSent).toBe(0);
    expect([...second.phases]).toEqual(['loading from cache']);
    expect(sameBytes(await gpuBytes(), want)).toBe(true);

    // One flipped byte in the middle of the entry: its part's hash no longer matches.
    const path = join(cacheDir, entries[0]);
    const bytes = readFileSync(path);
    bytes[Math.floor(bytes.length / 3)] ^= 0x40;
    writeFileSync(path, bytes);
    const third = await load();
    expect(third.info.fromCache).toBe(false);
    expect(third.info.warnings.join(' ')).toMatch(/cached weights were unusable \(part .* does not match its hash\)/);
    expect(third.weightBytesSent).toBeGreaterThan(16_000_000);
    expect(sameBytes(await gpuBytes(), want)).toBe(true);
    expect(readFileSync(path).equals(bytes)).toBe(false); // rewritten
    resident = want;
  });

  it('streamed layers: a streamed load from the cache holds the same bytes, and writes the same entry', async () => {
    expect(resident).not.toBeNull();
    const fromCache = await load(true);
    expect(fromCache.info).toMatchObject({ fromCache: true, streamedLayers: true });
    expect(fromCache.weightBytesSent).toBe(0);
    expect(session.model?.layers).toEqual([]);
    // The layers' parts come from CPU memory, the rest from the GPU: all of them as the resident load had them.
    expect(sameBytes(await gpuBytes(), resident!)).toBe(true);
    // Written from the streamed weights, the entry is the resident load's entry, byte for byte.
    const [entry] = readdirSync(cacheDir);
    const files = urlFileSet(server.base, { retryDelayMs: 5 });
    const identity = await cacheIdentity(files, await openBaseCheckpoint(files), 'tiny', 'nf4-double');
    const key = await cacheKey(identity);
    expect(entry).toBe(`weights-${key}.bin`);
    const otherDir = mkdtempSync(join(tmpdir(), 'finetune-cache-'));
    try {
      await writeCacheEntry(ctx, nodeWeightCache(otherDir), key, session.model!, identity);
      expect(readFileSync(join(otherDir, entry)).equals(readFileSync(join(cacheDir, entry)))).toBe(true);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('a server that sends no ETag or Last-Modified: the cache is neither read nor written, and the load says why', async () => {
    // Without a validator a changed shard of the same size would have the same identity, and the cached (stale) weights
    // would be served for it: such a source is not cached at all.
    const bare = await startRangeServer(DIR, '/model/', { validators: false });
    const store = nodeWeightCache(cacheDir);
    const used: string[] = [];
    const counting: WeightCacheStore = {
      open: (key) => (used.push(`open ${key}`), store.open(key)),
      write: (key, chunks, bytes) => (used.push(`write ${key}`), store.write(key, chunks, bytes)),
      remove: (key) => (used.push(`remove ${key}`), store.remove(key)),
      list: () => store.list(),
    };
    const entriesBefore = readdirSync(cacheDir);
    session.weightCache = counting;
    try {
      const phases = new Set<string | undefined>();
      const info = await session.loadModel(urlFileSet(bare.base, { retryDelayMs: 5 }), 'tiny', 'nf4-double', (p: LoadProgress) => phases.add(p.phase));
      expect(info.fromCache).toBe(false);
      expect(used).toEqual([]);
      expect(phases).not.toContain('caching');
      expect(readdirSync(cacheDir)).toEqual(entriesBefore);
      expect(info.warnings.join(' ')).toMatch(/the weights are not cached: config\.json comes without a version \(an ETag or Last-Modified from its server, a file's modification time\), so a changed file could not be told apart from the cached one/);
    } finally {
      session.weightCache = store;
      await bare.close();
    }
  });

  it('without the network: a model loaded before loads from its offline copy and the cache, the same bytes, and says so', async () => {
    const remote = await startRangeServer(DIR);
    const copies = folderStoreFiles(cacheDir);
    const source = 'tiny, remote';
    try {
      const online = await session.loadModel(withOfflineCopy(urlFileSet(remote.base, { retryDelayMs: 5 }), copies, source), source, 'nf4-double');
      expect(online.fromCache).toBe(false);
      expect(online.warnings.join(' ')).not.toMatch(/offline/);
      // The copy beside the entries: the files' descriptions (a few KB), not their weights.
      const copy = readdirSync(cacheDir).find((n) => n.startsWith('offline-copy-'));
      expect(copy).toBe(await offlineCopyName(source));
      expect(readFileSync(join(cacheDir, copy!)).length).toBeLessThan(100_000);
      const want = await gpuBytes();
      await remote.close();
      const offline = await session.loadModel(withOfflineCopy(urlFileSet(remote.base, { retryDelayMs: 5, retries: 1 }), copies, source), source, 'nf4-double');
      expect(offline.fromCache).toBe(true);
      expect(offline.warnings[0]).toMatch(/^offline: the server could not be reached \(config\.json: network failure \(connect ECONNREFUSED [^)]*\)[^)]*\); config\.json, model\.safetensors\.index\.json, .* read from the offline copy of \d{4}-\d\d-\d\d \d\d:\d\d UTC \(kept at an earlier load\): the server may hold newer files$/);
      expect(sameBytes(await gpuBytes(), want)).toBe(true);
      // At settings whose weights are not cached, the offline load needs the weights' bytes: it fails saying so, and
      // the model loaded before stays.
      const e = await session.loadModel(withOfflineCopy(urlFileSet(remote.base, { retryDelayMs: 5, retries: 1 }), copies, source), source, 'nf4').then(() => null, (x: unknown) => x as Error);
      expect(e?.message).toMatch(/the offline copy of .* holds only its descriptions, not bytes .*: the weights of these files are not in the weight cache \(or not at these settings\); connect to load them/);
      expect(sameBytes(await gpuBytes(), want)).toBe(true);
    } finally {
      await remote.close().catch(() => undefined);
    }
  });
});
