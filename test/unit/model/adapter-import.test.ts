// Adapter import: the tiny-adapter fixture (real PEFT output) brought in through every container the importer takes —
// PEFT folder or zip with .safetensors or .bin, Replicate's training_output.zip — comes back with exactly its tensors,
// and adapters that do not fit the model, or archives that try something, are refused with messages that say why.
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import { adapterZipBytes, importAdapter, importAdapterDetailed } from '../../../src/model/adapter-import.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { peftKey, readAdapter, type LoraAdapter } from '../../../src/model/lora-adapter.ts';
import { blobFileSet, memoryFileSet, type FileSet } from '../../../src/model/source.ts';
import { safetensorsTensors } from '../../helpers/safetensors-file.ts';
import { PickleWriter, replicateTrainingZip, torchSaveStateDict, torchZip, type FixtureTensor } from '../../helpers/torch-save.ts';
import { errorOf, fixtureBytes, fixtureJson, TINY_ADAPTER, TINY_MISTRAL } from './helpers.ts';

const base = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));
const configText = new TextDecoder().decode(fixtureBytes(`${TINY_ADAPTER}/adapter_config.json`));
const safetensors = fixtureBytes(`${TINY_ADAPTER}/adapter_model.safetensors`);

/** The fixture's tensors as torch.save would get them from PEFT (F32, the file's order). */
function fixtureTensors(): FixtureTensor[] {
  return [...safetensorsTensors(safetensors)].map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, data: new Float32Array(t.bytes.slice().buffer) }));
}
const bin = torchSaveStateDict(fixtureTensors(), { archive: 'adapter_model' });

/** Every tensor of `a` equals the fixture's, bit for bit. */
function expectFixtureTensors(a: LoraAdapter): void {
  const want = safetensorsTensors(safetensors);
  let n = 0;
  a.tensors.forEach((layer, l) => {
    for (const m of PROJECTIONS) {
      const p = layer[m];
      if (!p) continue;
      for (const [f, v] of [['A', p.A], ['B', p.B]] as const) {
        const w = want.get(peftKey(l, m, f))!;
        // Byte comparison through Buffer.equals: vitest's deep equality over 60 k-element arrays takes seconds.
        expect(Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(w.bytes), `${peftKey(l, m, f)} differs`).toBe(true);
        n++;
      }
    }
  });
  expect(n).toBe(want.size);
}

describe('importing an adapter', () => {
  const containers: [string, () => Uint8Array | ReturnType<typeof memoryFileSet>, string, string][] = [
    ['a PEFT folder with adapter_model.safetensors', () => memoryFileSet({ 'adapter_config.json': configText, 'adapter_model.safetensors': safetensors }, 'peft'), '', 'adapter_model.safetensors'],
    ['a PEFT folder with adapter_model.bin', () => memoryFileSet({ 'adapter_config.json': configText, 'adapter_model.bin': bin }, 'peft'), '', 'adapter_model.bin'],
    ['a PEFT zip with adapter_model.safetensors', () => zipSync({ 'adapter_config.json': new TextEncoder().encode(configText), 'adapter_model.safetensors': safetensors }), '', 'adapter_model.safetensors'],
    ['a PEFT zip with adapter_model.bin in a folder', () => zipSync({ 'my-adapter/adapter_config.json': new TextEncoder().encode(configText), 'my-adapter/adapter_model.bin': bin }), 'my-adapter', 'adapter_model.bin'],
    ["Replicate's training_output.zip as it comes", () => replicateTrainingZip(configText, bin), 'training_output', 'adapter_model.bin'],
    ["Replicate's zip with the adapter at the top level", () => replicateTrainingZip(configText, bin, ''), '', 'adapter_model.bin'],
    ["Replicate's zip with the adapter two folders down", () => replicateTrainingZip(configText, bin, 'output/weights'), 'output/weights', 'adapter_model.bin'],
    ["a folder holding Replicate's zip unopened", () => memoryFileSet({ 'training_output.zip': replicateTrainingZip(configText, bin) }, 'download'), 'training_output', 'adapter_model.bin'],
  ];
  for (const [name, input, folder, weightsFile] of containers) {
    it(`${name}: the tensors the fixture wrote, exactly`, async () => {
      const got = await importAdapterDetailed(input(), { base });
      expect(got.folder).toBe(folder);
      expect(got.weightsFile).toBe(weightsFile);
      expect(got.adapter.config.r).toBe(4);
      expect(got.adapter.scaling).toBe(2);
      expectFixtureTensors(got.adapter);
    });
  }

  it('a directory on disk reads the same as readAdapter', async () => {
    const a = await importAdapter(nodeDirectory(TINY_ADAPTER), { base });
    const b = await readAdapter(nodeDirectory(TINY_ADAPTER), { base });
    expect(a.tensors).toEqual(b.tensors);
  });

  it('bf16 and f16 .bin tensors are widened exactly', async () => {
    // bf16: the top half of each fixture float (truncation, so the expected value is the float with its low half zero).
    const tensors = fixtureTensors().map((t) => ({ ...t, dtype: 'BF16' as const, data: Uint16Array.from(new Uint32Array((t.data as Float32Array).slice().buffer), (u) => u >>> 16) }));
    const a = await importAdapter(memoryFileSet({ 'adapter_config.json': configText, 'adapter_model.bin': torchSaveStateDict(tensors) }), { base });
    const want = safetensorsTensors(safetensors).get(peftKey(1, 'down_proj', 'B'))!;
    const wantBits = new Uint32Array(want.bytes.slice().buffer).map((u) => u & 0xffff0000);
    expect(new Uint32Array(a.tensors[1].down_proj!.B.buffer)).toEqual(wantBits);
    const half = fixtureTensors().map((t) => ({ ...t, dtype: 'F16' as const, data: Uint16Array.from((t.data as Float32Array).map(() => 0x3c00)) }));
    const h = await importAdapter(memoryFileSet({ 'adapter_config.json': configText, 'adapter_model.bin': torchSaveStateDict(half) }), { base });
    expect(Array.from(h.tensors[0].q_proj!.A.subarray(0, 3))).toEqual([1, 1, 1]);
  });

  // A folder picked in the page (blobFileSet): each file has one name, its path below the picked folder. Nested files
  // were also listed under their bare names, so a checkpoint's adapter_config.json could pass for the top-level one,
  // and two adapters side by side could be read as one (one's config with the other's weights).
  it('a picked folder: the adapter below it is found by its path, a checkpoint below that is not taken for it', async () => {
    const picked = (files: Record<string, string | Uint8Array>): FileSet =>
      blobFileSet(
        Object.entries(files).map(([path, data]) => {
          const f = new File([data as BlobPart], path.split('/').pop()!);
          Object.defineProperty(f, 'webkitRelativePath', { value: `download/${path}` });
          return f;
        }),
        'download',
      );
    const other = JSON.stringify({ ...JSON.parse(configText), r: 99 });
    // The checkpoint's files come first, as a folder listing may give them.
    const withCheckpoint = picked({ 'out/checkpoint-10/adapter_config.json': other, 'out/checkpoint-10/adapter_model.safetensors': safetensors, 'out/adapter_config.json': configText, 'out/adapter_model.safetensors': safetensors });
    const got = await importAdapterDetailed(withCheckpoint, { base });
    expect(got.folder).toBe('out');
    expect(got.adapter.config.r).toBe(4);
    expectFixtureTensors(got.adapter);
    const twins = picked({ 'a/adapter_model.safetensors': safetensors, 'b/adapter_config.json': other, 'a/adapter_config.json': configText, 'b/adapter_model.safetensors': safetensors });
    expect((await errorOf(() => importAdapter(twins, { base }))).message).toMatch(/^download: holds several adapters \("a\/adapter_config\.json", "b\/adapter_config\.json"\); give one of them$/);
  });

  it('prefers the shallowest adapter (a checkpoint folder below the final one) and refuses two at the same depth', async () => {
    const enc = new TextEncoder();
    const other = JSON.stringify({ ...JSON.parse(configText), r: 99 });
    const withCheckpoint = zipSync({ 'out/adapter_config.json': enc.encode(configText), 'out/adapter_model.bin': bin, 'out/checkpoint-10/adapter_config.json': enc.encode(other), 'out/checkpoint-10/adapter_model.bin': bin });
    expect((await importAdapterDetailed(withCheckpoint, { base })).folder).toBe('out');
    const twins = zipSync({ 'a/adapter_config.json': enc.encode(configText), 'a/adapter_model.bin': bin, 'b/adapter_config.json': enc.encode(configText), 'b/adapter_model.bin': bin });
    expect((await errorOf(() => importAdapter(twins))).message).toMatch(/holds several adapters \("a\/adapter_config\.json", "b\/adapter_config\.json"\)/);
  });
});

describe("the README beside an adapter's config", () => {
  const card = '# My adapter\n\n## Training\n\nTrained for 3 steps.\n';
  it('is read from a folder and from a zip (in a folder of it too), and is absent when there is none', async () => {
    const folder = await importAdapterDetailed(memoryFileSet({ 'adapter_config.json': configText, 'adapter_model.safetensors': safetensors, 'README.md': card }, 'peft'));
    expect(folder.readme).toBe(card);
    const zipped = await importAdapterDetailed(zipSync({ 'a/adapter_config.json': new TextEncoder().encode(configText), 'a/adapter_model.safetensors': safetensors, 'a/README.md': new TextEncoder().encode(card), 'README.md': new TextEncoder().encode('another') }));
    expect(zipped.readme).toBe(card);
    expect((await importAdapterDetailed(memoryFileSet({ 'adapter_config.json': configText, 'adapter_model.safetensors': safetensors }, 'peft'))).readme).toBeUndefined();
  });

  it('is left unread, never refusing the adapter, when it is over 1 MiB', async () => {
    const huge = new Uint8Array((1 << 20) + 1).fill(0x61);
    const folder = await importAdapterDetailed(memoryFileSet({ 'adapter_config.json': configText, 'adapter_model.safetensors': safetensors, 'README.md': huge }, 'peft'));
    expect(folder.readme).toBeUndefined();
    const zipped = await importAdapterDetailed(zipSync({ 'adapter_config.json': new TextEncoder().encode(configText), 'adapter_model.safetensors': safetensors, 'README.md': huge }));
    expect(zipped.readme).toBeUndefined();
    expectFixtureTensors(zipped.adapter);
  });
});

describe('adapters that do not fit, or try something', () => {
  const enc = new TextEncoder();
  const withConfig = (patch: Record<string, unknown>): string => JSON.stringify({ ...JSON.parse(configText), ...patch });

  it('a model of another shape: names the module, its shapes and the weight it should fit', async () => {
    const wider = parseMistralConfig({ ...(fixtureJson(`${TINY_MISTRAL}/config.json`) as object), hidden_size: 256, head_dim: 32 });
    const e = await errorOf(() => importAdapter(replicateTrainingZip(configText, bin), { base: wider }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(/"training_output"\/adapter_model\.bin: q_proj of layer 0: lora_A \[4, 128\] \/ lora_B \[128, 4\] do not fit the base model's \[256, 256\] weight/);
  });

  // The fixture adapter has 2 layers. A model of another depth is said in one sentence with both counts, not as a list
  // of the modules that are missing (14 of them for a 2-layer adapter on the 4-layer demo model) or left over.
  it('a model with fewer layers than the adapter: both layer counts, first', async () => {
    const shallow = parseMistralConfig({ ...(fixtureJson(`${TINY_MISTRAL}/config.json`) as object), num_hidden_layers: 1 });
    const e = await errorOf(() => importAdapter(replicateTrainingZip(configText, bin), { base: shallow }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(
      /^adapter zip\/"training_output"\/adapter_model\.bin: this adapter has 2 layers, the model has 1: it was trained for a model of another depth \(its tensors for layer 1 have no layer to go to\)\. Load the model it was trained for/,
    );
  });

  it('a model with more layers than the adapter: both layer counts, then how many modules that leaves out', async () => {
    const deep = parseMistralConfig({ ...(fixtureJson(`${TINY_MISTRAL}/config.json`) as object), num_hidden_layers: 4 });
    const e = await errorOf(() => importAdapter(memoryFileSet({ 'adapter_config.json': configText, 'adapter_model.safetensors': safetensors }, 'peft'), { base: deep }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(
      /^peft\/adapter_model\.safetensors: this adapter has 2 layers, the model has 4: it was trained for a model of another depth \(the 14 modules of layers 2–3 would have no weights\)\. Load the model it was trained for \(base_model_name_or_path in its adapter_config\.json\), or an adapter trained for this one\.$/,
    );
    expect(e.message).not.toMatch(/missing/);
    // One layer, and one module left without weights, in the singular.
    const single = JSON.stringify({ ...JSON.parse(configText), target_modules: ['q_proj'] });
    const layer0 = torchSaveStateDict(fixtureTensors().filter((t) => t.name.includes('layers.0.') && t.name.includes('q_proj')));
    const one = await errorOf(() => importAdapter(replicateTrainingZip(single, layer0), { base }));
    expect(one.message).toMatch(/: this adapter has 1 layer, the model has 2: it was trained for a model of another depth \(the 1 module of layer 1 would have no weights\)\./);
  });

  it('a layer missing in the middle is still named module by module (not a depth mismatch)', async () => {
    const deep = parseMistralConfig({ ...(fixtureJson(`${TINY_MISTRAL}/config.json`) as object), num_hidden_layers: 3 });
    // Layers 0 and 2 present, 1 absent: the adapter's tensors reach the model's last layer, so the depth agrees.
    const renamed = torchSaveStateDict(fixtureTensors().flatMap((t) => (t.name.includes('layers.1.') ? [{ ...t, name: t.name.replace('layers.1.', 'layers.2.') }] : [t])));
    const e = await errorOf(() => importAdapter(replicateTrainingZip(configText, renamed), { base: deep }));
    expect(e.message).toMatch(/missing q_proj of layer 1/);
    expect(e.message).not.toMatch(/another depth/);
  });

  it('a rank that disagrees with the tensors', async () => {
    const e = await errorOf(() => importAdapter(replicateTrainingZip(withConfig({ r: 8 }), bin), { base }));
    expect(e.message).toMatch(/adapter_model\.bin: .*lora_A\.weight has shape \[4, 128\] but r = 8/);
  });

  it('tensors for a module that target_modules does not name', async () => {
    const e = await errorOf(() => importAdapter(replicateTrainingZip(withConfig({ target_modules: ['q_proj', 'k_proj', 'v_proj', 'gate_proj', 'up_proj', 'down_proj'] }), bin), { base }));
    expect(e.message).toMatch(/o_proj \(layer 0\) is not in target_modules/);
  });

  it('a target module with no tensors', async () => {
    const noDown = torchSaveStateDict(fixtureTensors().filter((t) => !t.name.includes('down_proj')));
    const e = await errorOf(() => importAdapter(replicateTrainingZip(configText, noDown), { base }));
    expect(e.message).toMatch(/missing down_proj of layer 0/);
  });

  it('an adapter_model.bin on its own (no config) says what else is needed', async () => {
    const e = await errorOf(() => importAdapter(bin));
    expect(e.message).toMatch(/is a torch\.save file \(an adapter_model\.bin on its own\); its adapter_config\.json is needed too/);
  });

  it('a zip damaged in transit (one byte of the weights changed) is refused by its CRC-32, not read as other numbers', async () => {
    // fflate checks no CRC: one flipped byte came back as one weight changed (stored) or five (deflated), without a word.
    const zipped = (level: 0 | 6): Uint8Array => zipSync({ 'adapter_config.json': enc.encode(configText), 'adapter_model.safetensors': [safetensors, { level }] });
    const stored = zipped(0);
    // The last weight's high byte, in the archive's copy of the file.
    stored[Buffer.from(stored).indexOf(Buffer.from(safetensors.subarray(-64))) + 63] ^= 0x40;
    const deflated = zipped(6);
    deflated[deflated.length >> 1] ^= 0x40;
    for (const damaged of [stored, deflated]) {
      const e = await errorOf(() => importAdapter(damaged, { base, where: 'a.zip' }));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toMatch(/^a\.zip: "adapter_model\.safetensors" is damaged: its CRC-32 is [0-9a-f]{8}, the archive recorded [0-9a-f]{8} \(a broken download or copy\?\); get the file again$/);
    }
    // The undamaged archives read exactly.
    expectFixtureTensors(await importAdapter(zipped(0), { base }));
    expectFixtureTensors(await importAdapter(zipped(6), { base }));
  });

  it('an adapter_config.json past 16 MiB is refused by its size, naming it, before it is read or extracted', async () => {
    // A folder (disk, picked files, the Hub): the size the source reports is checked before a byte is read.
    const folder: FileSet = {
      name: 'peft',
      list: () => ['adapter_config.json', 'adapter_model.safetensors'],
      async open(name) {
        if (name !== 'adapter_config.json') return memoryFileSet({ 'adapter_model.safetensors': safetensors }).open(name);
        return { name, size: 10e9, read: () => Promise.reject(new RangeError('must not be read')) };
      },
    };
    const e = await errorOf(() => importAdapter(folder, { base }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe('peft/adapter_config.json is 10000000000 bytes, more than the 16 MiB (16777216-byte) limit for a JSON file; it is not a config or index this program reads');
    // A zip: the size the archive records for the entry, before it is inflated. (17 MiB of spaces deflate to 17 KiB,
    // and the padded config imported as it was.)
    const padded = new Uint8Array(17 * 1024 * 1024).fill(0x20);
    padded.set(enc.encode(configText));
    const zipped = zipSync({ 'a/adapter_config.json': padded, 'a/adapter_model.safetensors': safetensors });
    const z = await errorOf(() => importAdapter(zipped, { base, where: 'x.zip' }));
    expect(z.kind).toBe('bad-input');
    expect(z.message).toBe(`x.zip/"a"/adapter_config.json is ${padded.byteLength} bytes, more than the 16 MiB (16777216-byte) limit for a JSON file; it is not a config or index this program reads`);
    // Below the limit, padding and all, it reads.
    expectFixtureTensors(await importAdapter(zipSync({ 'adapter_config.json': padded.subarray(0, 16 * 1024 * 1024), 'adapter_model.safetensors': safetensors }), { base }));
  });

  it('a zip holding two entries of one name (two adapter_model.safetensors) is refused naming it, not read as the last', async () => {
    // The second copy differs in its last weight; unzip kept the last of the two without a word.
    const other = safetensors.slice();
    other[other.length - 1] ^= 0x40;
    const zipped = zipSync({ 'a/adapter_config.json': enc.encode(configText), 'a/adapter_model.safetensors': [safetensors, { level: 0 }], 'a/adapter_model.safetensorZ': [other, { level: 0 }] });
    // zipSync takes an object (one entry per name): the second name is made the first's, in its local header and in
    // the central directory alike (same length, and a CRC covers the data only, so both records stay valid).
    const from = Buffer.from('a/adapter_model.safetensorZ');
    const to = Buffer.from('a/adapter_model.safetensors');
    const twice = Buffer.from(zipped);
    let renamed = 0;
    for (let at = twice.indexOf(from); at >= 0; at = twice.indexOf(from, at + 1), renamed++) to.copy(twice, at);
    expect(renamed).toBe(2);
    const e = await errorOf(() => importAdapter(new Uint8Array(twice), { base, where: 'x.zip' }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe('x.zip: holds "a/adapter_model.safetensors" twice; which one is meant cannot be told: make the zip again with one of them');
    // Duplicates among entries that are not read are left alone (a README twice, a stray file twice).
    const readmes = Buffer.from(zipSync({ 'adapter_config.json': enc.encode(configText), 'adapter_model.safetensors': safetensors, 'notes.txt': enc.encode('1'), 'notes.txz': enc.encode('2') }));
    for (let at = readmes.indexOf('notes.txz'); at >= 0; at = readmes.indexOf('notes.txz', at + 1)) Buffer.from('notes.txt').copy(readmes, at);
    expectFixtureTensors(await importAdapter(new Uint8Array(readmes), { base }));
  });

  it('two adapter_config.json at the top of a zip are refused as one entry twice, not as "several adapters"', async () => {
    const zipped = zipSync({ 'adapter_config.json': enc.encode(configText), 'adapter_config.jsoZ': enc.encode(configText), 'adapter_model.safetensors': safetensors });
    const twice = Buffer.from(zipped);
    for (let at = twice.indexOf('adapter_config.jsoZ'); at >= 0; at = twice.indexOf('adapter_config.jsoZ', at + 1)) Buffer.from('adapter_config.json').copy(twice, at);
    const e = await errorOf(() => importAdapter(new Uint8Array(twice), { base, where: 'x.zip' }));
    expect(e.message).toBe('x.zip: holds "adapter_config.json" twice; which one is meant cannot be told: make the zip again with one of them');
    // Two adapters in two folders at one depth are still "several adapters".
    const two = zipSync({ 'a/adapter_config.json': enc.encode(configText), 'a/adapter_model.safetensors': safetensors, 'b/adapter_config.json': enc.encode(configText), 'b/adapter_model.safetensors': safetensors });
    expect((await errorOf(() => importAdapter(two, { base, where: 'y.zip' }))).message).toBe('y.zip: holds several adapters ("a/adapter_config.json", "b/adapter_config.json"); give one of them');
  });

  it('a folder of 200,000 adapters at one depth is refused naming the first few, not with a RangeError (a spread of every name overflowed the call stack)', async () => {
    const names = Array.from({ length: 200_000 }, (_, i) => `run-${i}/adapter_config.json`);
    const many: FileSet = {
      name: 'picked',
      list: () => names,
      open: () => Promise.reject(new Error('nothing is opened: the listing alone is refused')),
    };
    const e = await errorOf(() => importAdapter(many, { base }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe('picked: holds several adapters ("run-0/adapter_config.json", "run-1/adapter_config.json", "run-2/adapter_config.json", "run-3/adapter_config.json", "run-4/adapter_config.json", "run-5/adapter_config.json", "run-6/adapter_config.json", "run-7/adapter_config.json", … 200000 in all); give one of them');
  });

  it('a weights file read whole (adapter_model.bin, a zip in a folder) past 2 GiB is refused by its size before a byte is read', async () => {
    const HUGE = 2 ** 31;
    const reads: string[] = [];
    /** A folder whose `big` file claims HUGE bytes; a read of it is recorded and fails (none may happen). */
    const folder = (big: string, others: Record<string, Uint8Array | string>): FileSet => {
      const mem = memoryFileSet(others, 'big');
      return {
        name: 'big',
        list: () => [...(mem.list?.() ?? []), big],
        async open(name) {
          if (name !== big) return mem.open(name);
          return {
            name,
            size: HUGE,
            read: async (offset: number, length: number): Promise<Uint8Array> => {
              reads.push(`${name} ${offset}+${length}`);
              throw new RangeError('must not be read');
            },
          };
        },
      };
    };
    const bin = await errorOf(() => importAdapter(folder('adapter_model.bin', { 'adapter_config.json': configText }), { base }));
    expect(bin.kind).toBe('bad-input');
    expect(bin.message).toBe(`big/adapter_model.bin is ${HUGE} bytes, more than the 2147483647-byte limit (2 GiB) for an adapter .bin or zip, which is read whole: a rank-128 LoRA of all seven projections of a 7B model is 1.3 GB in float32; a larger adapter is read as adapter_model.safetensors (tensor by tensor) beside its adapter_config.json`);
    const zip = await errorOf(() => importAdapter(folder('training_output.zip', {}), { base }));
    expect(zip.message).toMatch(/^big\/"training_output\.zip" is 2147483648 bytes, more than the 2147483647-byte limit \(2 GiB\) for an adapter \.bin or zip, which is read whole/);
    expect(reads).toEqual([]);
    // At the limit, the size is let through to the reading (here the fake's refusal to be read).
    const atLimit: FileSet = { name: 'edge', list: () => ['adapter_model.bin', 'adapter_config.json'], open: async (name) => (name === 'adapter_model.bin' ? { name, size: 2 ** 31 - 1, read: () => Promise.reject(new RangeError('read at the limit')) } : memoryFileSet({ 'adapter_config.json': configText }).open(name)) };
    await expect(importAdapter(atLimit, { base })).rejects.toThrow('read at the limit');
  });

  it("the page's zip (a File it was given) is refused past 2 GiB - 1 bytes by its size, before it is read", async () => {
    // What the page hands the worker: a File, read whole. One that claims 2^31 bytes must not be read at all.
    let reads = 0;
    const huge = { size: 2 ** 31, arrayBuffer: (): Promise<ArrayBuffer> => { reads++; throw new RangeError('must not be read'); } };
    const e = await errorOf(() => adapterZipBytes('huge.zip', huge));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe('huge.zip is 2147483648 bytes, more than the 2147483647-byte limit (2 GiB) for an adapter .bin or zip, which is read whole: a rank-128 LoRA of all seven projections of a 7B model is 1.3 GB in float32; a larger adapter is read as adapter_model.safetensors (tensor by tensor) beside its adapter_config.json');
    expect(reads).toBe(0);
    // At the limit it is read; a real Blob's bytes come back as they are, and bytes already in memory pass through.
    const atLimit = { size: 2 ** 31 - 1, arrayBuffer: (): Promise<ArrayBuffer> => { reads++; return Promise.resolve(new Uint8Array([1, 2, 3]).buffer); } };
    expect(await adapterZipBytes('edge.zip', atLimit)).toEqual(new Uint8Array([1, 2, 3]));
    expect(reads).toBe(1);
    const zip = zipSync({ 'adapter_config.json': new TextEncoder().encode(configText), 'adapter_model.safetensors': safetensors });
    expectFixtureTensors(await importAdapter(await adapterZipBytes('peft.zip', new Blob([zip])), { base }));
    expect(await adapterZipBytes('peft.zip', zip)).toBe(zip);
  });

  it('names a folder from inside the input quoted in the paths it gives (a zip\'s, a picked folder\'s, a zip\'s in a folder)', async () => {
    const enc = new TextEncoder();
    const badConfig = JSON.stringify({ ...(JSON.parse(configText) as Record<string, unknown>), r: 0 });
    // In a zip, a folder named with an escape sequence (it would retitle a terminal's window): escaped, delimited.
    const evil = 'out\u001b]0;owned\u0007';
    const zipped = zipSync({ [`${evil}/adapter_config.json`]: enc.encode(badConfig), [`${evil}/adapter_model.safetensors`]: safetensors });
    const z = await errorOf(() => importAdapter(zipped, { base, where: 'x.zip' }));
    expect(z.message).toBe(`x.zip/${JSON.stringify(evil)}/adapter_config.json: "r" must be a positive integer, got 0`);
    expect(z.message).not.toMatch(/[\u0000-\u001f]/);
    // A folder's subfolder (a file set refuses control characters in names, not a comma or a quote): delimited too.
    const odd = 'v2, "final"';
    const folder = memoryFileSet({ [`${odd}/adapter_config.json`]: badConfig, [`${odd}/adapter_model.safetensors`]: safetensors }, 'picked');
    const f = await errorOf(() => importAdapter(folder, { base }));
    expect(f.message).toBe(`picked/${JSON.stringify(odd)}/adapter_config.json: "r" must be a positive integer, got 0`);
    // A zip found in a folder is named so too.
    const zipInFolder = memoryFileSet({ [`${odd}.zip`]: zipSync({ 'notes.txt': enc.encode('x') }) }, 'picked');
    const n = await errorOf(() => importAdapter(zipInFolder, { base }));
    expect(n.message).toBe(`picked/${JSON.stringify(`${odd}.zip`)}: holds no adapter_config.json: not a PEFT adapter (files: "notes.txt")`);
  });

  it('a zip that holds only another zip is not opened', async () => {
    const nested = zipSync({ 'inner.zip': replicateTrainingZip(configText, bin) });
    const e = await errorOf(() => importAdapter(nested));
    expect(e.message).toMatch(/only nested archive\(s\) "inner\.zip": zips inside zips are not opened/);
  });

  it('a training_output.zip whose adapter_model.bin calls os.system is refused, naming it', async () => {
    const evil = new PickleWriter().proto(2).global('os', 'system').unicode('echo pwned').tupleN(1).reduce().stop().finish();
    const e = await errorOf(() => importAdapter(replicateTrainingZip(configText, torchZip(evil, new Map())), { base }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(/"training_output"\/adapter_model\.bin: .*refused global "os\.system"/);
  });

  it('a GGUF LoRA (a zip of the fuller export without its PEFT files, or the file itself) says it is not read, and what is', async () => {
    const gguf = new Uint8Array([...enc.encode('GGUF'), 3, 0, 0, 0, 0, 0, 0, 0]);
    const want = /is a GGUF LoRA \(llama\.cpp's format\), which this app writes but does not read: import the PEFT files of the same adapter \(adapter_config\.json with adapter_model\.safetensors\)/;
    expect((await errorOf(() => importAdapter(zipSync({ 'adapter.gguf': gguf, 'README.md': enc.encode('x') }), { where: 'a.zip' }))).message).toMatch(new RegExp(`^a\\.zip: "adapter\\.gguf" ${want.source}`));
    expect((await errorOf(() => importAdapter(gguf, { where: 'lora.gguf' }))).message).toMatch(new RegExp(`^lora\\.gguf: ${want.source}`));
    expect((await errorOf(() => importAdapter(memoryFileSet({ 'adapter.gguf': gguf }, 'folder')))).message).toMatch(new RegExp(`^folder: "adapter\\.gguf" ${want.source}`));
  });

  it('the weights without their config (beside a GGUF, as an export folder is) say the config is missing, not that GGUF is not read', async () => {
    const gguf = new Uint8Array([...enc.encode('GGUF'), 3, 0, 0, 0, 0, 0, 0, 0]);
    const want = /holds "adapter_model\.safetensors" but no adapter_config\.json beside it: a PEFT adapter needs both/;
    expect((await errorOf(() => importAdapter(memoryFileSet({ 'adapter_model.safetensors': safetensors, 'adapter.gguf': gguf, 'README.md': 'x' }, 'out/adapter')))).message).toMatch(new RegExp(`^out/adapter: ${want.source}`));
    expect((await errorOf(() => importAdapter(zipSync({ 'adapter_model.safetensors': safetensors, 'adapter.gguf': gguf }), { where: 'a.zip' }))).message).toMatch(new RegExp(`^a\\.zip: ${want.source}`));
  });

  it('an adapter holding a NaN or an infinity is refused at import, naming the tensor (generation printed ⁇, a GGUF export wrote it)', async () => {
    const tensors = fixtureTensors();
    const last = tensors[tensors.length - 1];
    for (const bad of [NaN, Infinity]) {
      const data = last.data.slice();
      data[2] = bad;
      const poisoned = torchSaveStateDict([...tensors.slice(0, -1), { ...last, data }], { archive: 'adapter_model' });
      const e = await errorOf(() => importAdapter(memoryFileSet({ 'adapter_config.json': configText, 'adapter_model.bin': poisoned }, 'nan-adapter')));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toBe(`nan-adapter: is not usable: the adapter holds ${bad} in ${last.name} (index 2)`);
    }
  });

  it('not a zip, and no adapter inside', async () => {
    expect((await errorOf(() => importAdapter(enc.encode('hello')))).message).toMatch(/is not a zip archive/);
    expect((await errorOf(() => importAdapter(zipSync({ 'notes.txt': enc.encode('x') })))).message).toMatch(/holds no adapter_config\.json: not a PEFT adapter \(files: "notes\.txt"\)/);
    expect((await errorOf(() => importAdapter(memoryFileSet({ 'adapter_config.json': configText }, 'half')))).message).toMatch(/half: has adapter_config\.json but neither adapter_model\.safetensors nor adapter_model\.bin/);
  });
});
