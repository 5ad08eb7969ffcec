// Fuzzing the adapter importer (adapter-import.ts over lora-adapter.ts's parseAdapter): whatever a PEFT folder or zip
// holds (an adapter_config.json of any JSON, fields of any type, weights in safetensors or torch.save with bytes
// changed or cut, an archive damaged), importAdapterDetailed either returns an adapter that is consistent (one entry per
// layer, every pair's A [r, in] and B [out, r] with the dims it records, only target modules, finite values, a scale
// within bounds, the base model's shapes when one is given) or throws FinetuneError('bad-input') naming the input;
// never a TypeError or RangeError.
import { zipSync, type Zippable } from 'fflate';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { importAdapterDetailed, type AdapterInput, type ImportedAdapter } from '../../../src/model/adapter-import.ts';
import { moduleShape } from '../../../src/model/checkpoint.ts';
import { parseMistralConfig, type MistralConfig } from '../../../src/model/config.ts';
import { MAX_LORA_SCALE, parseLoraConfig } from '../../../src/model/lora-adapter.ts';
import { memoryFileSet } from '../../../src/model/source.ts';
import { safetensorsTensors } from '../../helpers/safetensors-file.ts';
import { replicateTrainingZip, torchSaveStateDict, type FixtureTensor } from '../../helpers/torch-save.ts';
import { fixtureBytes, fixtureJson, TINY_ADAPTER, TINY_MISTRAL } from './helpers.ts';

const BASE = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));
const CONFIG = fixtureJson(`${TINY_ADAPTER}/adapter_config.json`) as Record<string, unknown>;
const SAFETENSORS = fixtureBytes(`${TINY_ADAPTER}/adapter_model.safetensors`);
const BIN = torchSaveStateDict(
  [...safetensorsTensors(SAFETENSORS)].map(([name, t]): FixtureTensor => ({ name, dtype: 'F32', shape: t.shape, data: new Float32Array(t.bytes.slice().buffer) })),
  { archive: 'adapter_model' },
);
const WHERE = 'fuzz-adapter';

function checkAdapter(got: ImportedAdapter, base: MistralConfig | undefined): void {
  const a = got.adapter;
  const r = a.config.r;
  expect(Number.isSafeInteger(r) && r > 0).toBe(true);
  expect(Number.isFinite(a.scaling) && a.scaling > 0 && a.scaling <= MAX_LORA_SCALE).toBe(true);
  expect(a.tensors.length).toBe(a.layers);
  if (base) expect(a.layers).toBe(base.layers);
  for (const m of a.config.targetModules) expect(PROJECTIONS).toContain(m);
  a.tensors.forEach((layer) => {
    for (const [m, pair] of Object.entries(layer)) {
      expect(a.config.targetModules).toContain(m);
      const d = a.dims[m as keyof typeof a.dims];
      expect(d).toBeDefined();
      expect(pair.A.length).toBe(r * d!.in);
      expect(pair.B.length).toBe(d!.out * r);
      if (base) expect([d!.out, d!.in]).toEqual(moduleShape(base, m as keyof typeof a.dims));
      for (const v of [pair.A, pair.B]) expect(v.every(Number.isFinite)).toBe(true);
    }
  });
  expect(['adapter_model.safetensors', 'adapter_model.bin']).toContain(got.weightsFile);
}

/** Imports and checks the contract; returns whether the input was accepted. */
async function checkContract(input: AdapterInput, base: MistralConfig | undefined): Promise<boolean> {
  let got: ImportedAdapter;
  try {
    got = await importAdapterDetailed(input, { where: WHERE, ...(base ? { base } : {}) });
  } catch (e) {
    if (!(e instanceof FinetuneError) || e.kind !== 'bad-input') throw e;
    expect(e.message.startsWith(WHERE), e.message).toBe(true);
    // A clear message: a sentence, not a dump of everything the input holds.
    expect(e.message.length).toBeLessThan(4000);
    return false;
  }
  checkAdapter(got, base);
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Mutations

/** Values of every JSON type for a config field, and objects with own keys that shadow Object.prototype's. */
const jsonValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 0.5, 4, 8, 1e308, 2 ** 53, '', 'none', 'LORA', 'CAUSAL_LM', 'q_proj', 'all-linear', '.*', '(a*)*b', [], {}, [0], [1, 1e9], ['q_proj', 'v_proj'], ['lm_head'], ['model.layers.40.self_attn.q_proj']),
  fc.constantFrom('{"toString":1}', '{"valueOf":{}}', '{"__proto__":{"a":1}}').map((t): unknown => JSON.parse(t)),
  fc.jsonValue({ maxDepth: 2 }),
);
const FIELDS = [...Object.keys(CONFIG), 'toString', 'constructor', '__proto__', 'hasOwnProperty', 'use_dora', 'exclude_modules', 'layers_to_transform'];

type ConfigEdit = { field: string; value: unknown } | { field: string; remove: true };
const configEditArb: fc.Arbitrary<ConfigEdit> = fc.oneof(
  fc.record({ field: fc.constantFrom(...FIELDS), value: jsonValueArb }),
  fc.record({ field: fc.constantFrom(...FIELDS), remove: fc.constant(true as const) }),
);

function editedConfig(edits: readonly ConfigEdit[]): string {
  const c = JSON.parse(JSON.stringify(CONFIG)) as Record<string, unknown>;
  for (const e of edits) {
    if ('remove' in e) delete c[e.field];
    else Object.defineProperty(c, e.field, { value: e.value, enumerable: true, configurable: true, writable: true });
  }
  return JSON.stringify(c);
}

type ByteMutation = { kind: 'flip'; at: number; xor: number } | { kind: 'cut'; keep: number } | { kind: 'u32'; at: number; value: number } | { kind: 'f32'; at: number; value: number };

const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(0, 1, 0xffffffff, 0x7fffffff), fc.nat({ max: 0xffffffff })) }),
  // A weight turned into a NaN or an infinity (or any float): the importer refuses those, naming the tensor.
  fc.record({ kind: fc.constant('f32' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(NaN, Infinity, -Infinity), fc.float()) }),
);

/** Mutations aimed at the first `headerBytes` (a safetensors header) half of the time, else anywhere. */
function mutateBytes(bytes: Uint8Array, m: ByteMutation, headerBytes: number, inHeader: boolean): Uint8Array {
  const out = bytes.slice();
  if (m.kind === 'cut') return out.slice(0, m.keep % (out.length + 1));
  if (out.length < 4) return out;
  const span = inHeader ? Math.min(headerBytes, out.length) : out.length;
  const at = m.at % Math.max(1, span - 3);
  if (m.kind === 'flip') out[at] ^= m.xor;
  else if (m.kind === 'u32') new DataView(out.buffer).setUint32(at, m.value, true);
  else new DataView(out.buffer).setFloat32(at & ~3, m.value, true);
  return out;
}

/** `bytes` with `m` applied within its last `n` bytes (a zip's directory and end record). */
function mutateTail(bytes: Uint8Array, m: ByteMutation, n: number): Uint8Array {
  const head = Math.max(0, bytes.length - n);
  const out = bytes.slice();
  const tail = mutateBytes(out.subarray(head), m, n, false);
  out.set(tail, head);
  return out;
}

const SAFETENSORS_HEADER = 8 + new DataView(SAFETENSORS.buffer, SAFETENSORS.byteOffset).getUint32(0, true);

interface Case {
  edits: ConfigEdit[];
  weights: 'safetensors' | 'bin';
  weightMuts: ByteMutation[];
  inHeader: boolean;
  container: 'folder' | 'zip' | 'replicate' | 'folder-with-zip';
  folder: string;
  level: 0 | 6;
  withBase: boolean;
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  edits: fc.array(configEditArb, { maxLength: 2 }),
  weights: fc.constantFrom('safetensors' as const, 'bin' as const),
  weightMuts: fc.array(byteMutationArb, { maxLength: 2 }),
  inHeader: fc.boolean(),
  container: fc.constantFrom('folder' as const, 'zip' as const, 'replicate' as const, 'folder-with-zip' as const),
  folder: fc.constantFrom('', 'out/', 'a/b/'),
  level: fc.constantFrom(0 as const, 6 as const),
  withBase: fc.boolean(),
});

function inputOf(c: Case): AdapterInput {
  const config = editedConfig(c.edits);
  const name = c.weights === 'safetensors' ? 'adapter_model.safetensors' : 'adapter_model.bin';
  const original = c.weights === 'safetensors' ? SAFETENSORS : BIN;
  let weights = original;
  for (const m of c.weightMuts) weights = mutateBytes(weights, m, c.weights === 'safetensors' ? SAFETENSORS_HEADER : original.length, c.inHeader);
  // Replicate's trainer writes torch.save weights (adapter_model.bin) beside files that are not the adapter.
  if (c.container === 'replicate' && c.weights === 'bin') return replicateTrainingZip(config, weights, c.folder.replace(/\/$/, ''));
  const files: Zippable = { [`${c.folder}adapter_config.json`]: new TextEncoder().encode(config), [`${c.folder}${name}`]: [weights, { level: c.level }] };
  if (c.container === 'folder') return memoryFileSet({ [`${c.folder}adapter_config.json`]: config, [`${c.folder}${name}`]: weights }, WHERE);
  const zip = zipSync(files);
  return c.container === 'zip' ? zip : memoryFileSet({ 'download.zip': zip }, WHERE);
}

/** A property over megabytes of input: seconds alone, longer beside the other tiers on a 2-core machine. */
const SLOW_FUZZ_MS = 30_000;

describe('adapter importer under fuzzing', () => {
  it('the fixture is accepted in every container, with and without its base', async () => {
    for (const container of ['folder', 'zip', 'replicate', 'folder-with-zip'] as const) {
      for (const weights of ['safetensors', 'bin'] as const) {
        const c: Case = { edits: [], weights, weightMuts: [], inHeader: false, container, folder: 'out/', level: 6, withBase: true };
        expect(await checkContract(inputOf(c), BASE)).toBe(true);
      }
    }
  });

  it('configs with fields of any type and weights changed or cut, in folders and zips, never break the contract', async () => {
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        if (await checkContract(inputOf(c), c.withBase ? BASE : undefined)) accepted++;
        else refused++;
      }),
      { numRuns: 250 },
    );
    expect(accepted).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(50);
  }, SLOW_FUZZ_MS);

  it('an adapter zip damaged anywhere never breaks the contract', async () => {
    const zip = zipSync({ 'adapter_config.json': new TextEncoder().encode(JSON.stringify(CONFIG)), 'adapter_model.safetensors': [SAFETENSORS, { level: 0 }] });
    await fc.assert(
      fc.asyncProperty(fc.array(byteMutationArb, { minLength: 1, maxLength: 3 }), fc.boolean(), async (muts, tail) => {
        let z: Uint8Array = zip;
        // Half the time aimed at the directory and headers at the end, the other half anywhere.
        for (const m of muts) z = tail && m.kind !== 'cut' ? mutateTail(z, m, 200) : mutateBytes(z, m, z.length, false);
        await checkContract(z, BASE);
      }),
      { numRuns: 150 },
    );
  });

  it('huge listings: a folder of up to 200,000 names is refused or read, with a short message', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(2, 1_000, 200_000),
        fc.constantFrom('adapter_config.json', 'adapter_model.bin', 'x.gguf', 'x.zip', 'notes.txt'),
        fc.boolean(),
        async (n, file, sameDepth) => {
          const names = Array.from({ length: n }, (_, i) => (sameDepth ? `run-${i}/${file}` : `${'d/'.repeat(i % 5)}run-${i}/${file}`));
          const many = { name: WHERE, list: () => names, open: () => Promise.reject(new FinetuneError('bad-input', `${WHERE}: no such file`, { reason: 'not-found' })) };
          await checkContract(many, BASE);
        },
      ),
      { numRuns: 20 },
    );
  }, SLOW_FUZZ_MS);

  it('huge values: a config field holding a list of 20,000 names or a string of 1 MB is refused in words, shortly', () => {
    const many = (name: string): string[] => Array.from({ length: 20_000 }, () => name);
    fc.assert(
      fc.property(
        fc.constantFrom('target_modules', 'exclude_modules', 'layers_to_transform', 'modules_to_save', 'task_type', 'init_lora_weights', 'peft_type', 'r', 'use_dora', 'some_option'),
        fc.constantFrom<unknown>(many('model.layers.300.self_attn.q_proj'), many('lm_head'), many('q_proj'), 'x'.repeat(1 << 20), Array.from({ length: 20_000 }, (_, i) => i)),
        (field, value) => {
          const json = { ...CONFIG, [field]: value };
          try {
            parseLoraConfig(json, 'x/adapter_config.json', BASE.layers);
          } catch (e) {
            if (!(e instanceof FinetuneError) || e.kind !== 'bad-input') throw e;
            expect(e.message.length, e.message.slice(0, 200)).toBeLessThan(4000);
          }
        },
      ),
      { numRuns: 50 },
    );
  });

  it('parseLoraConfig: any JSON, and a config with any field of any type, is refused naming a field or read consistently', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.array(configEditArb, { minLength: 1, maxLength: 3 }).map((edits): unknown => JSON.parse(editedConfig(edits)))), fc.boolean(), (json, withDepth) => {
        try {
          const c = parseLoraConfig(json, 'x/adapter_config.json', withDepth ? BASE.layers : undefined);
          expect(c.targetModules.length).toBeGreaterThan(0);
          expect(Number.isSafeInteger(c.r) && c.r > 0).toBe(true);
          if (c.layersToTransform) for (const l of c.layersToTransform) expect(Number.isSafeInteger(l) && l >= 0).toBe(true);
        } catch (e) {
          if (!(e instanceof FinetuneError) || e.kind !== 'bad-input') throw e;
          expect(e.message.startsWith('x/adapter_config.json: ')).toBe(true);
          // What is refused is said in words, never by a function's source text or an object's default string.
          expect(e.message).not.toMatch(/\[native code\]|\[object Object\]/);
        }
      }),
      { numRuns: 600 },
    );
  });
});
