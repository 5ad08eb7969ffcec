// The offline copy of a remote model's description (src/model/offline-copy.ts): kept after an online load, read when the
// server cannot be reached, so that a model whose weights the cache holds loads without the network.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelSpec } from '../../../src/cli/node-source.ts';
import { describe, expect, it } from 'vitest';
import { FinetuneError, isFinetuneError } from '../../../src/core/errors.ts';
import { openBaseCheckpoint } from '../../../src/model/checkpoint.ts';
import { keepOfflineCopy, offlineCopyName, withOfflineCopy, OFFLINE_COPY_PREFIX_BYTES } from '../../../src/model/offline-copy.ts';
import { urlFileSet, type ByteSource, type FileSet } from '../../../src/model/source.ts';
import { memoryStoreFiles } from '../../../src/run/run-store.ts';
import { cacheIdentity } from '../../../src/run/weight-cache.ts';
import { startRangeServer } from '../../helpers/range-server.ts';

/** A remote file set that can lose its network: then every open fails as httpSource fails without an answer. */
function remote(files: Record<string, Uint8Array>, versions: Record<string, string> = {}, o: { cdnEtags?: boolean } = {}): FileSet & { down: boolean; opened: string[] } {
  const set = {
    down: false,
    opened: [] as string[],
    async open(name: string): Promise<ByteSource> {
      set.opened.push(name);
      if (set.down) throw new FinetuneError('network', `someone/model/${name}: could not connect (ECONNREFUSED) after 6 attempts`, { reason: 'network' });
      const bytes = files[name];
      if (!bytes) throw new FinetuneError('bad-input', `someone/model/${name}: not found (404)`, { reason: 'not-found' });
      // The page's Hub files: versioned by the API's content id, their formerVersion the ETag of whichever CDN node answered.
      const former = o.cdnEtags ? { formerVersion: `"cdn-node-${set.opened.length}"` } : {};
      return { name: `someone/model/${name}`, size: bytes.length, version: versions[name] ?? `"${name}-v1"`, ...former, read: async (at: number, n: number) => bytes.slice(at, at + n) };
    },
  };
  return set;
}

const errorOf = async (p: Promise<unknown>): Promise<FinetuneError> => {
  const e = await p.then(() => null, (x: unknown) => x);
  if (!(e instanceof FinetuneError)) throw new Error(`expected a FinetuneError, got ${String(e)}`);
  return e;
};

const config = new TextEncoder().encode('{"model_type": "mistral"}');
const shard = Uint8Array.from({ length: OFFLINE_COPY_PREFIX_BYTES + 4096 }, (_, i) => (i * 7) & 255);

describe('an offline copy of a remote model', () => {
  it('serves what an online load read (sizes, versions, names, bytes) once the server is gone, without asking it again', async () => {
    const store = memoryStoreFiles();
    const net = remote({ 'config.json': config, 'model.safetensors': shard });
    const online = withOfflineCopy(net, store, 'someone/model@main', { now: () => Date.parse('2026-12-07T10:20:00Z') });
    await (await online.open('config.json')).read(0, config.length);
    // Opened again without a read (the cache identity's probe): what was read of it stays.
    await online.open('config.json');
    const s = await online.open('model.safetensors');
    await s.read(0, 8);
    await s.read(8, 100);
    // A weight read past the first MiB is not kept.
    await s.read(OFFLINE_COPY_PREFIX_BYTES, 4096);
    expect(online.offline.notes()).toEqual([]);
    await online.offline.keep();
    expect(await store.list()).toEqual([await offlineCopyName('someone/model@main')]);

    net.down = true;
    net.opened.length = 0;
    const offline = withOfflineCopy(net, store, 'someone/model@main');
    const c = await offline.open('config.json');
    expect([c.name, c.size, c.version]).toEqual(['someone/model/config.json', config.length, '"config.json-v1"']);
    expect(await c.read(0, config.length)).toEqual(config);
    const o = await offline.open('model.safetensors');
    expect([o.size, o.version]).toEqual([shard.length, '"model.safetensors-v1"']);
    expect(await o.read(8, 100)).toEqual(shard.slice(8, 108));
    // Inside a kept range, not only at its start.
    expect(await o.read(20, 10)).toEqual(shard.slice(20, 30));
    // The server was asked once: the first failure sent every later open to the copy.
    expect(net.opened).toEqual(['config.json']);
    const past = await errorOf(o.read(OFFLINE_COPY_PREFIX_BYTES, 4096));
    expect(past.kind).toBe('network');
    expect(past.message).toMatch(
      /^someone\/model\/model\.safetensors: the server could not be reached \(someone\/model\/config\.json: could not connect \(ECONNREFUSED\) after 6 attempts\), and the offline copy of 2026-12-07 10:20 UTC holds only its descriptions, not bytes 1048576–1052671: the weights of these files are not in the weight cache/,
    );
    expect(offline.offline.notes()).toEqual([
      'offline: the server could not be reached (someone/model/config.json: could not connect (ECONNREFUSED) after 6 attempts); config.json, model.safetensors read from the offline copy of 2026-12-07 10:20 UTC (kept at an earlier load): the server may hold newer files',
    ]);
  });

  it('fails as the server fails for a file it does not hold, another model, a damaged copy, and an error that is not the network', async () => {
    const store = memoryStoreFiles();
    const net = remote({ 'config.json': config, 'tokenizer.model': new Uint8Array([1, 2, 3]) });
    const online = withOfflineCopy(net, store, 'someone/model@main');
    await (await online.open('config.json')).read(0, config.length);
    await online.offline.keep();
    net.down = true;
    // Never read online: not in the copy.
    const unknown = await errorOf(withOfflineCopy(net, store, 'someone/model@main').open('tokenizer.model'));
    expect(unknown.message).toBe('someone/model/tokenizer.model: could not connect (ECONNREFUSED) after 6 attempts');
    // Another source's copy is another file.
    expect((await errorOf(withOfflineCopy(net, store, 'someone/model@v2').open('config.json'))).kind).toBe('network');
    // A 404 is the server's answer, not its absence: no copy.
    net.down = false;
    const gone = await errorOf(withOfflineCopy(net, store, 'someone/model@main').open('generation_config.json'));
    expect(gone.details?.reason).toBe('not-found');
    // One byte of the copy changed: its hash no longer holds, and it is not used.
    net.down = true;
    const name = await offlineCopyName('someone/model@main');
    const bytes = (await store.read(name))!;
    const text = new TextDecoder().decode(bytes).replace('"size":25', '"size":26');
    expect(text).not.toBe(new TextDecoder().decode(bytes));
    await store.write(name, new TextEncoder().encode(text));
    expect((await errorOf(withOfflineCopy(net, store, 'someone/model@main').open('config.json'))).message).toMatch(/ECONNREFUSED/);
  });

  it("keeps what was read of a file whose formerVersion changes from answer to answer (a CDN node's ETag), under its content's version", async () => {
    const store = memoryStoreFiles();
    const net = remote({ 'config.json': config }, {}, { cdnEtags: true });
    const first = withOfflineCopy(net, store, 'm');
    await (await first.open('config.json')).read(0, config.length);
    // The cache identity's probe: the same contents from another node.
    await first.open('config.json');
    await first.offline.keep();
    // The next load from the cache: probes only, from yet other nodes; the copy keeps the bytes read before.
    const second = withOfflineCopy(net, store, 'm');
    await second.open('config.json');
    await second.offline.keep();
    net.down = true;
    const c = await withOfflineCopy(net, store, 'm').open('config.json');
    expect(await c.read(0, config.length)).toEqual(config);
    expect([c.version, c.formerVersion]).toEqual(['"config.json-v1"', '"cdn-node-3"']);
  });

  it("reads the copy at once where the machine says it is offline, and still asks the server for a file the copy lacks", async () => {
    const store = memoryStoreFiles();
    const net = remote({ 'config.json': config, 'tokenizer.model': new Uint8Array([1, 2, 3]) });
    const online = withOfflineCopy(net, store, 'm', { knownOffline: () => false });
    await (await online.open('config.json')).read(0, config.length);
    await online.offline.keep();
    net.opened.length = 0;
    const offline = withOfflineCopy(net, store, 'm', { knownOffline: () => true });
    expect(await (await offline.open('config.json')).read(0, config.length)).toEqual(config);
    expect(net.opened).toEqual([]);
    expect(offline.offline.notes()[0]).toMatch(/^offline: this machine is offline; config\.json read from the offline copy of/);
    // Not in the copy: asked of the server, which (the machine's word was wrong) answers.
    expect((await (await offline.open('tokenizer.model')).read(0, 3))).toEqual(new Uint8Array([1, 2, 3]));
    expect(net.opened).toEqual(['tokenizer.model']);
  });

  it('remembers a file the server did not have (a sharded index asked for before a single file): offline it is not found again, not unreachable', async () => {
    const store = memoryStoreFiles();
    const net = remote({ 'config.json': config, 'model.safetensors': shard });
    const online = withOfflineCopy(net, store, 'm');
    expect((await errorOf(online.open('model.safetensors.index.json'))).details?.reason).toBe('not-found');
    await (await online.open('model.safetensors')).read(0, 8);
    await online.offline.keep();
    net.down = true;
    const offline = withOfflineCopy(net, store, 'm');
    // The first open fails for want of the network, and its file's absence is what the copy says.
    const e = await errorOf(offline.open('model.safetensors.index.json'));
    expect([e.kind, e.details?.reason, e.message]).toEqual(['bad-input', 'not-found', 'someone/model/model.safetensors.index.json: not found (404)']);
    expect(await (await offline.open('model.safetensors')).read(0, 8)).toEqual(shard.slice(0, 8));
    // Found again online later: the file replaces its absence.
    net.down = false;
    const later = remote({ 'model.safetensors.index.json': config });
    const again = withOfflineCopy(later, store, 'm');
    await (await again.open('model.safetensors.index.json')).read(0, config.length);
    await again.offline.keep();
    later.down = true;
    expect(await (await withOfflineCopy(later, store, 'm').open('model.safetensors.index.json')).read(0, config.length)).toEqual(config);
  });

  it('a later load updates the copy: what it did not read stays, a file of a new version replaces the old one', async () => {
    const store = memoryStoreFiles();
    const net = remote({ 'config.json': config, 'model.safetensors': shard });
    const first = withOfflineCopy(net, store, 'm');
    await (await first.open('config.json')).read(0, config.length);
    await (await first.open('model.safetensors')).read(0, 64);
    await first.offline.keep();
    // A plan reads config.json alone: the shard's header stays kept.
    const plan = withOfflineCopy(net, store, 'm');
    await (await plan.open('config.json')).read(0, config.length);
    await plan.offline.keep();
    net.down = true;
    expect(await (await withOfflineCopy(net, store, 'm').open('model.safetensors')).read(0, 64)).toEqual(shard.slice(0, 64));
    // config.json changed on the server (a new version): its old bytes are not served for the new version.
    const newer = new TextEncoder().encode('{"model_type": "mistral", "x": 1}');
    const net2 = remote({ 'config.json': newer, 'model.safetensors': shard }, { 'config.json': '"config.json-v2"' });
    const again = withOfflineCopy(net2, store, 'm');
    await (await again.open('config.json')).read(0, newer.length);
    await again.offline.keep();
    net2.down = true;
    const c = await withOfflineCopy(net2, store, 'm').open('config.json');
    expect([c.size, c.version]).toEqual([newer.length, '"config.json-v2"']);
    expect(await c.read(0, newer.length)).toEqual(newer);
  });

  it('over HTTP: tiny-mistral opened online, then with its server gone, gives the same checkpoint and the same cache identity', async () => {
    const server = await startRangeServer('test/fixtures/tiny-mistral');
    const store = memoryStoreFiles();
    try {
      const online = withOfflineCopy(urlFileSet(server.base, { retryDelayMs: 1 }), store, server.base);
      const ckpt = await openBaseCheckpoint(online);
      const identity = await cacheIdentity(online, ckpt, server.base, 'nf4-double');
      await online.offline.keep();
      // The copy is small: the files' descriptions, not their weights.
      const kept = (await store.read(await offlineCopyName(server.base)))!;
      expect(kept.length).toBeLessThan(20_000);
      await server.close();
      const offline = withOfflineCopy(urlFileSet(server.base, { retryDelayMs: 1, retries: 1 }), store, server.base);
      const again = await openBaseCheckpoint(offline);
      expect(again.config).toEqual(ckpt.config);
      expect(again.files).toEqual(ckpt.files);
      expect(await cacheIdentity(offline, again, server.base, 'nf4-double')).toEqual(identity);
      expect(offline.offline.notes()[0]).toMatch(/^offline: the server could not be reached \(config\.json: .*\); config\.json, model\.safetensors\.index\.json, .* read from the offline copy of/);
      expect(isFinetuneError(await (await offline.open(ckpt.files[0])).read(1 << 21, 4).catch((e: unknown) => e), 'network')).toBe(true);
    } finally {
      await server.close().catch(() => undefined);
    }
  });

  it("the command line's --model keeps its copy in the weight cache's folder for a URL or a Hub id, never for a folder or without a cache", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'finetune-offline-'));
    const server = await startRangeServer('test/fixtures/tiny-mistral');
    try {
      expect(modelSpec('test/fixtures/tiny-mistral', { cacheDir }).files.offline).toBeUndefined();
      expect(modelSpec('someone/model', {}).files.offline).toBeUndefined();
      expect(modelSpec('someone/model', { cacheDir: null }).files.offline).toBeUndefined();
      expect(modelSpec('someone/model', { cacheDir }).files.offline).toBeDefined();
      const spec = modelSpec(server.base, { cacheDir });
      const ckpt = await openBaseCheckpoint(spec.files);
      expect(await keepOfflineCopy(spec.files)).toEqual([]);
      expect(readdirSync(cacheDir)).toEqual([await offlineCopyName(spec.cacheSource)]);
      await server.close();
      const offline = modelSpec(server.base, { cacheDir });
      expect((await openBaseCheckpoint(offline.files)).config).toEqual(ckpt.config);
      expect((await keepOfflineCopy(offline.files))[0]).toMatch(/^offline: the server could not be reached/);
      // HF_HUB_OFFLINE=1 (Hugging Face's switch): the copy at once, as the machine's own word.
      process.env.HF_HUB_OFFLINE = '1';
      try {
        const told = modelSpec(server.base, { cacheDir });
        await openBaseCheckpoint(told.files);
        expect((await keepOfflineCopy(told.files))[0]).toMatch(/^offline: this machine is offline; config\.json/);
      } finally {
        delete process.env.HF_HUB_OFFLINE;
      }
    } finally {
      await server.close().catch(() => undefined);
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  it('keeps tiny-mistral\'s config byte for byte', async () => {
    const store = memoryStoreFiles();
    const bytes = new Uint8Array(readFileSync('test/fixtures/tiny-mistral/config.json'));
    const net = remote({ 'config.json': bytes });
    const w = withOfflineCopy(net, store, 'x');
    await (await w.open('config.json')).read(0, bytes.length);
    await w.offline.keep();
    net.down = true;
    expect(await (await withOfflineCopy(net, store, 'x').open('config.json')).read(0, bytes.length)).toEqual(bytes);
  });
});
