import { readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import { expectedTensors, openBaseCheckpoint, INDEX_FILE } from '../../../src/model/checkpoint.ts';
import { openSafetensors, toFloat64, typedView, writeSafetensors } from '../../../src/model/safetensors.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { bytesSource, memoryFileSet, urlFileSet, type FileSet } from '../../../src/model/source.ts';
import { safetensorsTensors } from '../../helpers/safetensors-file.ts';
import { errorOf, FIXTURES, fixtureBytes, MISTRAL_7B_V02, NANO_DEMO, TINY_MISTRAL } from './helpers.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';

/** The tiny-mistral directory as an in-memory file map, to derive broken variants from. */
function tinyFiles(): Record<string, Uint8Array | string> {
  const out: Record<string, Uint8Array | string> = {};
  for (const f of readdirSync(TINY_MISTRAL)) out[f] = fixtureBytes(`${TINY_MISTRAL}/${f}`);
  return out;
}

function tinyIndex(): { metadata: Record<string, number>; weight_map: Record<string, string> } {
  return JSON.parse(new TextDecoder().decode(fixtureBytes(`${TINY_MISTRAL}/${INDEX_FILE}`)));
}

describe('expectedTensors', () => {
  it('lists the 291 tensors of Mistral-7B-Instruct-v0.2 with their shapes', () => {
    const m = expectedTensors(parseMistralConfig(MISTRAL_7B_V02));
    expect(m.size).toBe(291); // docs/mistral.md: the Hub index holds 291 tensors
    let params = 0;
    for (const s of m.values()) params += s.reduce((a, b) => a * b, 1);
    expect(params * 2).toBe(14483464192); // bf16 bytes in the Hub index
    expect(m.get('model.layers.31.self_attn.k_proj.weight')).toEqual([1024, 4096]);
    expect(m.get('model.layers.0.mlp.down_proj.weight')).toEqual([4096, 14336]);
    expect(m.get('lm_head.weight')).toEqual([32000, 4096]);
  });
});

describe('openBaseCheckpoint', () => {
  it('opens the 3-shard tiny-mistral through its index', async () => {
    const ck = await openBaseCheckpoint(nodeDirectory(TINY_MISTRAL));
    expect(ck.config.hidden).toBe(128);
    expect(ck.files.sort()).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    expect(ck.tensorNames).toHaveLength(3 + 2 * 9);
    expect(new Set(ck.tensorNames)).toEqual(new Set(expectedTensors(ck.config).keys()));
    // Stored as config.json says: nothing to warn about.
    expect(ck.storedDtype).toBe('bfloat16');
    expect(ck.warnings.join(' ')).not.toContain('safetensors store');
    expect(ck.totalBytes).toBe(17237248); // the index's metadata.total_size
    expect(ck.warnings).toEqual([]);
    const emb = ck.info('model.embed_tokens.weight');
    expect(emb).toMatchObject({ file: 'model-00001-of-00003.safetensors', dtype: 'BF16', shape: [32000, 128] });
    expect(ck.info('lm_head.weight').file).toBe('model-00002-of-00003.safetensors');
    const q = await ck.read('model.layers.1.self_attn.q_proj.weight');
    expect(q).toMatchObject({ dtype: 'BF16', shape: [128, 128] });
    // The bytes are those of the named shard at the tensor's offsets.
    const shard = fixtureBytes(`${TINY_MISTRAL}/${ck.info('model.layers.1.self_attn.q_proj.weight').file}`);
    const t = ck.info('model.layers.1.self_attn.q_proj.weight');
    expect(Buffer.from(q.bytes).equals(Buffer.from(shard.subarray(t.offset, t.offset + t.end - t.begin)))).toBe(true);
    expect((await errorOf(() => ck.info('model.layers.2.self_attn.q_proj.weight'))).message).toMatch(/no tensor named/);
  });

  it('reads embeddings that equal the float64 golden hidden_states/0 (bf16 → f32 exact)', async () => {
    const ck = await openBaseCheckpoint(nodeDirectory(TINY_MISTRAL));
    const emb = await ck.readFloat32('model.embed_tokens.weight');
    const golden = await openSafetensors(bytesSource(fixtureBytes(`${FIXTURES}/golden_lora.safetensors`)));
    const ids = typedView(await golden.read('input_ids'), 'I32');
    const h0 = toFloat64(await golden.read('hidden_states/0'), golden.info('hidden_states/0').dtype);
    expect(h0.length).toBe(ids.length * 128);
    for (let t = 0; t < ids.length; t++) {
      for (let c = 0; c < 128; c++) expect(emb[ids[t] * 128 + c]).toBe(h0[t * 128 + c]);
    }
  });

  it('opens the single-file demo model', async () => {
    const ck = await openBaseCheckpoint(nodeDirectory(NANO_DEMO));
    expect(ck.files).toEqual(['model.safetensors']);
    expect(ck.config.layers).toBe(4);
    expect(ck.tensorNames).toHaveLength(3 + 4 * 9);
    const norm = await ck.readFloat32('model.norm.weight');
    expect(norm.length).toBe(256);
    expect(norm.every(Number.isFinite)).toBe(true);
  });

  it('follows weight_map when a layer spans shards', async () => {
    // Re-shard tiny-mistral so that layer 0's attention and MLP tensors alternate between two files.
    const src = await openBaseCheckpoint(nodeDirectory(TINY_MISTRAL));
    const a: Parameters<typeof writeSafetensors>[0] = [];
    const b: Parameters<typeof writeSafetensors>[0] = [];
    const weightMap: Record<string, string> = {};
    let i = 0;
    for (const name of src.tensorNames) {
      const t = await src.read(name);
      const toA = i++ % 2 === 0;
      (toA ? a : b).push({ name, ...t, data: t.bytes });
      weightMap[name] = toA ? 'part-a.safetensors' : 'part-b.safetensors';
    }
    const layer0 = src.tensorNames.filter((n) => n.startsWith('model.layers.0.'));
    expect(new Set(layer0.map((n) => weightMap[n])).size).toBe(2);
    const files = memoryFileSet({
      'config.json': fixtureBytes(`${TINY_MISTRAL}/config.json`),
      [INDEX_FILE]: JSON.stringify({ metadata: {}, weight_map: weightMap }),
      'part-a.safetensors': writeSafetensors(a, { format: 'pt' }),
      'part-b.safetensors': writeSafetensors(b, { format: 'pt' }),
    });
    const ck = await openBaseCheckpoint(files);
    for (const name of layer0) {
      expect(ck.info(name).file).toBe(weightMap[name]);
      expect(Buffer.from((await ck.read(name)).bytes).equals(Buffer.from((await src.read(name)).bytes))).toBe(true);
    }
  });

  it('names every missing and mis-shaped tensor', async () => {
    // Drop two tensors from the index: missing.
    const idx = tinyIndex();
    delete idx.weight_map['model.layers.1.mlp.up_proj.weight'];
    delete idx.weight_map['model.norm.weight'];
    const e1 = await errorOf(() => openBaseCheckpoint(memoryFileSet({ ...tinyFiles(), [INDEX_FILE]: JSON.stringify(idx) }, 'tiny')));
    expect(e1.message).toMatch(/missing tensors: model\.layers\.1\.mlp\.up_proj\.weight; model\.norm\.weight/);
    expect(e1.details?.missing).toEqual(['model.layers.1.mlp.up_proj.weight', 'model.norm.weight']);

    // A config that disagrees with the weights: mis-shaped (and the extra layer is missing).
    const cfg = JSON.parse(new TextDecoder().decode(fixtureBytes(`${TINY_MISTRAL}/config.json`)));
    const e2 = await errorOf(() => openBaseCheckpoint(memoryFileSet({ ...tinyFiles(), 'config.json': JSON.stringify({ ...cfg, intermediate_size: 512, num_hidden_layers: 3 }) })));
    expect(e2.message).toMatch(/model\.layers\.0\.mlp\.gate_proj\.weight is \[448, 128\], expected \[512, 128\]/);
    expect(e2.message).toMatch(/missing tensors: model\.layers\.2\.input_layernorm\.weight/);

    // Tied embeddings declared: lm_head becomes an extra tensor, reported as a warning only.
    const tied = await openBaseCheckpoint(memoryFileSet({ ...tinyFiles(), 'config.json': JSON.stringify({ ...cfg, tie_word_embeddings: true }) }));
    expect(tied.warnings.join(' ')).toMatch(/ignoring 1 tensor.*lm_head\.weight/);
  });

  it('refuses an F64 matrix when it opens the checkpoint (the load refused it only when it reached it); F64 norms load', async () => {
    const ck = await openBaseCheckpoint(nodeDirectory(TINY_MISTRAL));
    const asF64 = async (name: string) => ({ name, dtype: 'F64' as const, shape: ck.info(name).shape, data: new Uint8Array(Float64Array.from(await ck.readFloat32(name)).buffer) });
    const tensors = [];
    for (const name of ck.tensorNames) {
      if (name === 'model.layers.1.self_attn.o_proj.weight' || name === 'model.norm.weight') tensors.push(await asF64(name));
      else tensors.push({ name, dtype: ck.info(name).dtype, shape: ck.info(name).shape, data: (await ck.read(name)).bytes });
    }
    const files = { 'config.json': fixtureBytes(`${TINY_MISTRAL}/config.json`), 'model.safetensors': writeSafetensors(tensors) };
    const e = await errorOf(() => openBaseCheckpoint(memoryFileSet(files, 'f64')));
    expect(e.message).toMatch(/tensors of a dtype the model cannot use: model\.layers\.1\.self_attn\.o_proj\.weight is F64 \(matrices must be BF16, F16 or F32\)$/);
    expect(e.message).not.toContain('model.norm.weight');
    // The norm alone in F64 is read as f32 by the load: accepted.
    tensors[tensors.findIndex((t) => t.name === 'model.layers.1.self_attn.o_proj.weight')] = { name: 'model.layers.1.self_attn.o_proj.weight', dtype: ck.info('model.layers.1.self_attn.o_proj.weight').dtype, shape: ck.info('model.layers.1.self_attn.o_proj.weight').shape, data: (await ck.read('model.layers.1.self_attn.o_proj.weight')).bytes };
    const ok = await openBaseCheckpoint(memoryFileSet({ ...files, 'model.safetensors': writeSafetensors(tensors) }, 'f64-norm'));
    expect(ok.info('model.norm.weight').dtype).toBe('F64');
  });

  it('reports broken layouts clearly', async () => {
    const files = tinyFiles();
    // A shard named by the index is absent.
    const noShard = { ...files };
    delete noShard['model-00002-of-00003.safetensors'];
    expect((await errorOf(() => openBaseCheckpoint(memoryFileSet(noShard, 'tiny')))).message).toMatch(/shard "model-00002-of-00003\.safetensors" named by model\.safetensors\.index\.json is missing/);
    // The index points a tensor at a shard that does not hold it.
    const idx = tinyIndex();
    idx.weight_map['model.norm.weight'] = 'model-00001-of-00003.safetensors';
    expect((await errorOf(() => openBaseCheckpoint(memoryFileSet({ ...files, [INDEX_FILE]: JSON.stringify(idx) })))).message).toMatch(
      /puts "model\.norm\.weight" in "model-00001-of-00003\.safetensors", but "model-00001-of-00003\.safetensors" has no such tensor/,
    );
    // A weight_map entry trying to escape the directory.
    const evil = tinyIndex();
    evil.weight_map['model.norm.weight'] = '../../etc/passwd';
    expect((await errorOf(() => openBaseCheckpoint(memoryFileSet({ ...files, [INDEX_FILE]: JSON.stringify(evil) })))).details?.reason).toBe('bad-name');
    // No config, no weights.
    const noCfg = { ...files };
    delete noCfg['config.json'];
    expect((await errorOf(() => openBaseCheckpoint(memoryFileSet(noCfg, 'tiny')))).message).toMatch(/tiny: no config\.json$/);
    // A folder picked one level too high: the subfolder holding the model is named.
    const nested = Object.fromEntries(Object.entries(files).map(([k, v]) => [`Mistral-7B/${k}`, v]));
    expect((await errorOf(() => openBaseCheckpoint(memoryFileSet(nested, 'models')))).message).toBe('models: no config.json (the model\'s files look to be in "Mistral-7B": pick that folder)');
    // The folders' names are the user's: quoted as JSON strings (an escape sequence escaped, a comma inside one told apart).
    const odd = memoryFileSet({ 'a, b/config.json': files['config.json'], 'x/out\u001b]0;owned\u0007/config.json': files['config.json'] }, 'models');
    expect((await errorOf(() => openBaseCheckpoint(odd))).message).toBe('models: no config.json (the model\'s files look to be in "a, b", "x/out\\u001b]0;owned\\u0007": pick that folder)');
    const onlyCfg = memoryFileSet({ 'config.json': files['config.json'] }, 'tiny');
    expect((await errorOf(() => openBaseCheckpoint(onlyCfg))).message).toMatch(/no model\.safetensors or model\.safetensors\.index\.json/);
    // Without list(): the index is tried first, then model.safetensors.
    const unlisted = { name: 'remote', open: onlyCfg.open };
    expect((await errorOf(() => openBaseCheckpoint(unlisted))).message).toMatch(/remote: no model\.safetensors or model\.safetensors\.index\.json/);
    // Bad index JSON.
    expect((await errorOf(() => openBaseCheckpoint(memoryFileSet({ ...files, [INDEX_FILE]: '{"weight_map": 3}' })))).message).toMatch(/missing "weight_map" object/);
  });

  it('refuses a hostile config.json served through a FileSet before building anything proportional to it', async () => {
    const cfg = JSON.parse(new TextDecoder().decode(fixtureBytes(`${TINY_MISTRAL}/config.json`)));
    const withConfig = (c: unknown) => memoryFileSet({ ...tinyFiles(), 'config.json': typeof c === 'string' ? c : JSON.stringify(c) }, 'hub');
    // Out of all bounds: refused by the config check (formerly a V8 heap out-of-memory that aborted the process).
    const huge = await errorOf(() => openBaseCheckpoint(withConfig({ ...cfg, num_hidden_layers: 1e9 })));
    expect(huge.kind).toBe('bad-input');
    expect(huge.message).toBe('hub/config.json: "num_hidden_layers" is 1000000000, more than 1024: not a model this program can load (is the config corrupt?)');
    // Within bounds but more layers than the tensors hold: compared with the tensors, not expanded into 9 × 1000 names.
    const many = await errorOf(() => openBaseCheckpoint(withConfig({ ...cfg, num_hidden_layers: 1000 })));
    expect(many.message).toMatch(/config\.json says num_hidden_layers 1000, the tensors hold 2 layers/);
    expect((many.details?.missing as string[]).length).toBe(9); // layer 2's tensors only
    // Nesting 200 000 levels deep: a clear error, not a stack overflow.
    const deep = await errorOf(() => openBaseCheckpoint(withConfig(`{"rope_scaling":${'['.repeat(200_000)}${']'.repeat(200_000)}}`)));
    expect(deep.message).toMatch(/config\.json nests JSON deeper than 64 levels/);
  });

  it('an index naming 60,000 distinct shards is refused by their number, before any is opened', async () => {
    const weightMap: Record<string, string> = {};
    for (let i = 0; i < 60_000; i++) weightMap[`t${i}`] = `shard-${i}.safetensors`;
    const inner = memoryFileSet({ 'config.json': JSON.stringify(MISTRAL_7B_V02), [INDEX_FILE]: JSON.stringify({ weight_map: weightMap }) }, 'hub');
    const opened: string[] = [];
    const files: FileSet = { name: 'hub', list: () => inner.list!(), open: (name, o) => (opened.push(name), inner.open(name, o)) };
    const started = Date.now();
    const e = await errorOf(() => openBaseCheckpoint(files));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe(`hub/${INDEX_FILE}: names more than 9219 shard files, one for each tensor of the deepest Mistral model this program loads (1024 layers): the index is corrupt or not a Mistral checkpoint's`);
    // Nothing but the config and the index: 60,000 shards were all opened at once (requests, on the Hub), after each
    // name had been looked for among the shards so far with includes() (6 s here; minutes for an index's 400,000).
    expect(opened).toEqual(['config.json', INDEX_FILE]);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  /** tiny-mistral with each tensor in a file of its own, through an index (21 shards). */
  async function onePerShard(): Promise<{ files: Record<string, Uint8Array | string>; names: string[] }> {
    const src = await openBaseCheckpoint(nodeDirectory(TINY_MISTRAL));
    const files: Record<string, Uint8Array | string> = { 'config.json': fixtureBytes(`${TINY_MISTRAL}/config.json`) };
    const weightMap: Record<string, string> = {};
    const names: string[] = [];
    for (const [i, name] of src.tensorNames.entries()) {
      const t = await src.read(name);
      const file = `shard-${String(i).padStart(3, '0')}.safetensors`;
      files[file] = writeSafetensors([{ name, ...t, data: t.bytes }], { format: 'pt' });
      weightMap[name] = file;
      names.push(file);
    }
    files[INDEX_FILE] = JSON.stringify({ metadata: {}, weight_map: weightMap });
    return { files, names };
  }

  /** `bytes` as a FileSet whose shard opens go through `openShard` (given the plain open), the other files straight. */
  function shardOpens(bytes: Record<string, Uint8Array | string>, openShard: (file: string, openIt: () => ReturnType<FileSet['open']>) => ReturnType<FileSet['open']>): FileSet {
    const mem = memoryFileSet(bytes, 'many');
    return { name: 'many', list: () => mem.list?.() ?? [], open: (file, o) => (file.endsWith('.safetensors') ? openShard(file, () => mem.open(file, o)) : mem.open(file, o)) };
  }

  it('opens a many-shard index a few shards at a time (all of them were opened at once: a request each, on the Hub)', async () => {
    const { files: bytes, names } = await onePerShard();
    let open = 0;
    let most = 0;
    const opened: string[] = [];
    const files = shardOpens(bytes, async (file, openIt) => {
      opened.push(file);
      most = Math.max(most, ++open);
      try {
        await new Promise((r) => setTimeout(r, 2));
        const src = await openIt();
        // Until its header is read the probe is in flight too.
        return { ...src, read: async (a: number, b: number) => (await new Promise((r) => setTimeout(r, 1)), src.read(a, b)) };
      } finally {
        open--;
      }
    });
    const ck = await openBaseCheckpoint(files);
    expect(names.length).toBe(21);
    expect(opened.sort()).toEqual(names);
    expect(most).toBeGreaterThan(1);
    expect(most).toBeLessThanOrEqual(8);
    const direct = await openBaseCheckpoint(nodeDirectory(TINY_MISTRAL));
    for (const name of direct.tensorNames) expect(Buffer.from((await ck.read(name)).bytes).equals(Buffer.from((await direct.read(name)).bytes))).toBe(true);
  });

  it('after a shard fails, the shards not yet opened are not opened', async () => {
    const { files: bytes, names } = await onePerShard();
    const opened: string[] = [];
    const FAILING = names[3] as string;
    const files = shardOpens(bytes, async (file, openIt) => {
      opened.push(file);
      await new Promise((r) => setTimeout(r, 5));
      if (file === FAILING) throw new FinetuneError('network', `${file}: network failure (read ECONNRESET)`, { reason: 'network' });
      return openIt();
    });
    const e = await errorOf(() => openBaseCheckpoint(files));
    expect(e.message).toBe(`${FAILING}: network failure (read ECONNRESET)`);
    // The eight lanes' first shards, and at most one more each that began before the failure was heard.
    expect(opened.length).toBeLessThanOrEqual(16);
    expect(opened).toContain(FAILING);
  });

  it("a shard that fails stops the other shards' probes: their opens and header reads are aborted", async () => {
    const mem = memoryFileSet(tinyFiles(), 'tiny');
    const FAILING = 'model-00002-of-00003.safetensors';
    const signals = new Map<string, AbortSignal | undefined>();
    const aborted: string[] = [];
    /** Resolves when `signal` aborts (never without one), recording the file. */
    const untilAborted = (file: string, signal: AbortSignal | undefined): Promise<never> =>
      new Promise((_, reject) => signal?.addEventListener('abort', () => (aborted.push(file), reject(signal.reason)), { once: true }));
    const files: FileSet = {
      name: 'slow-hub',
      list: () => mem.list?.() ?? [],
      async open(file, options) {
        if (!file.endsWith('.safetensors')) return mem.open(file);
        signals.set(file, options?.signal);
        if (file === FAILING) {
          await new Promise((r) => setTimeout(r, 20));
          throw new FinetuneError('network', `${file}: network failure (read ECONNRESET)`, { reason: 'network' });
        }
        // Shard 1 opens, then its header read hangs as a slow probe would; shard 3's open itself hangs.
        if (file === 'model-00003-of-00003.safetensors') return untilAborted(file, options?.signal);
        const src = await mem.open(file);
        return { name: src.name, size: src.size, read: () => untilAborted(file, options?.signal) };
      },
    };
    const e = await errorOf(() => openBaseCheckpoint(files));
    // The shard's own failure is what is said, not the aborts it caused.
    expect(e.message).toBe(`${FAILING}: network failure (read ECONNRESET)`);
    expect([...signals.keys()].sort()).toEqual(['model-00001-of-00003.safetensors', FAILING, 'model-00003-of-00003.safetensors']);
    expect([...signals.values()].every((sig) => sig?.aborted === true)).toBe(true);
    await new Promise((r) => setTimeout(r, 0));
    expect(aborted.sort()).toEqual(['model-00001-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
  });

  it('over HTTP, a missing shard closes the request of a shard whose server has not answered yet', async () => {
    const files = tinyFiles();
    const HANGS = 'model-00003-of-00003.safetensors';
    const MISSING = 'model-00002-of-00003.safetensors';
    let hangingIn: () => void = () => {};
    const hangingArrived = new Promise<void>((r) => (hangingIn = r));
    let hangingClosed: () => void = () => {};
    const closed = new Promise<string>((r) => (hangingClosed = () => r('closed')));
    const server = createServer((req, res) => {
      const name = decodeURIComponent((req.url ?? '').slice(1));
      if (name === HANGS) {
        // Never answered: only the client's abort ends it (the idle timeout is minutes away).
        res.on('close', hangingClosed);
        return hangingIn();
      }
      const body = files[name];
      // The missing shard is answered once the hanging request is in, so that there is something to abort.
      if (body === undefined || name === MISSING) return void hangingArrived.then(() => res.writeHead(404).end());
      const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const [start, end] = m ? [Number(m[1]), Math.min(Number(m[2]), bytes.length - 1)] : [0, bytes.length - 1];
      res.writeHead(m ? 206 : 200, { 'content-range': `bytes ${start}-${end}/${bytes.length}`, 'content-length': end - start + 1 });
      res.end(Buffer.from(bytes.subarray(start, end + 1)));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const e = await errorOf(() => openBaseCheckpoint(urlFileSet(url, { retries: 0 })));
      expect(e.message).toMatch(/shard "model-00002-of-00003\.safetensors" named by model\.safetensors\.index\.json is missing/);
      const timeout = new Promise<string>((r) => setTimeout(() => r('the request for the other shard was still open 3 s later'), 3000));
      expect(await Promise.race([closed, timeout])).toBe('closed');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('names tensors from the files quoted (a control character in one is escaped, not passed on to a terminal)', async () => {
    const files = tinyFiles();
    const evil = 'extra\u001b[2J';
    // A tensor the model does not use, in a shard: named in the warning.
    const shard = 'model-00003-of-00003.safetensors';
    const own = [...safetensorsTensors(files[shard] as Uint8Array)].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.bytes }));
    const withExtra = writeSafetensors([...own, { name: evil, dtype: 'F32', shape: [1], data: new Uint8Array(4) }]);
    const idx = tinyIndex();
    idx.weight_map[evil] = shard;
    const ck = await openBaseCheckpoint(memoryFileSet({ ...files, [shard]: withExtra, [INDEX_FILE]: JSON.stringify(idx) }, 'tiny'));
    expect(ck.warnings).toContain(`ignoring 1 tensor(s) a Mistral model does not use: ${JSON.stringify(evil)}`);
    // The index putting it in a shard that does not hold it.
    const e = await errorOf(() => openBaseCheckpoint(memoryFileSet({ ...files, [INDEX_FILE]: JSON.stringify(idx) }, 'tiny')));
    expect(e.message).toBe(`tiny: ${INDEX_FILE} puts ${JSON.stringify(evil)} in "${shard}", but "${shard}" has no such tensor`);
    // A weight_map value that is not a file name.
    const notName = tinyIndex() as { weight_map: Record<string, unknown> };
    notName.weight_map[evil] = 3;
    const f = await errorOf(() => openBaseCheckpoint(memoryFileSet({ ...files, [INDEX_FILE]: JSON.stringify(notName) }, 'tiny')));
    expect(f.message).toBe(`tiny/${INDEX_FILE}: weight_map[${JSON.stringify(evil)}] must be a file name, got 3`);
    // A folder without weights: its files are listed, each quoted.
    const g = await errorOf(() => openBaseCheckpoint(memoryFileSet({ 'config.json': files['config.json'], [`${evil}.bin`]: new Uint8Array(1) }, 'tiny')));
    expect(g.message).toBe(`tiny: no model.safetensors or ${INDEX_FILE} (files: "config.json", ${JSON.stringify(`${evil}.bin`)})`);
    for (const m of [...ck.warnings, e.message, f.message, g.message]) expect(m).not.toContain('\u001b');
  });

  it('opens a single-file checkpoint from a FileSet that cannot list itself (like the Hub)', async () => {
    const mem = memoryFileSet({ 'config.json': fixtureBytes(`${NANO_DEMO}/config.json`), 'model.safetensors': fixtureBytes(`${NANO_DEMO}/model.safetensors`) });
    const ck = await openBaseCheckpoint({ name: 'hub-like', open: mem.open });
    expect(ck.files).toEqual(['model.safetensors']);
  });
});
