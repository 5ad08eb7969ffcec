// Fuzzing the base-checkpoint opener (checkpoint.ts): whatever a model folder or repository holds (config.json of any
// JSON, an index whose weight_map names anything, shards with bytes changed or cut, files missing), openBaseCheckpoint
// either returns a checkpoint that holds every tensor its config needs, of the config's shape and a floating-point
// dtype, each read back at its shape's size, or throws FinetuneError('bad-input') naming the folder; never a TypeError
// or RangeError, never a read outside a file.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { expectedTensors, INDEX_FILE, openBaseCheckpoint, SINGLE_FILE, type BaseCheckpoint } from '../../../src/model/checkpoint.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { DTYPE_SIZE, writeSafetensors, type SafetensorsDtype, type TensorToWrite } from '../../../src/model/safetensors.ts';
import type { FileSet } from '../../../src/model/source.ts';
import { guardedSource } from './helpers.ts';

/** A Mistral config small enough to write whole in every run (2 layers, hidden 8). */
const CONFIG = {
  architectures: ['MistralForCausalLM'],
  model_type: 'mistral',
  vocab_size: 16,
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  sliding_window: null,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  hidden_act: 'silu',
};
const WHERE = 'fuzz-model';

/** The tensors CONFIG needs, in `dtype`, with data that shows a slip; split into `shards` files round-robin. */
function checkpointFiles(dtype: SafetensorsDtype, shards: number): Record<string, Uint8Array | string> {
  const expected = expectedTensors(parseMistralConfig(CONFIG));
  const parts: TensorToWrite[][] = Array.from({ length: shards }, () => []);
  const weightMap: Record<string, string> = {};
  const shardName = (i: number): string => (shards === 1 ? SINGLE_FILE : `model-${i + 1}-of-${shards}.safetensors`);
  let i = 0;
  for (const [name, shape] of expected) {
    const n = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
    parts[i % shards].push({ name, dtype, shape, data: new Uint8Array(n).map((_, k) => (k * 37 + i) & 0x3f) });
    weightMap[name] = shardName(i % shards);
    i++;
  }
  const files: Record<string, Uint8Array | string> = { 'config.json': JSON.stringify(CONFIG) };
  parts.forEach((p, s) => (files[shardName(s)] = writeSafetensors(p, { format: 'pt' })));
  if (shards > 1) files[INDEX_FILE] = JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap });
  return files;
}

/** A FileSet over the files whose every read is checked to lie inside its file (guardedSource). */
function guardedFileSet(files: Record<string, Uint8Array | string>, listable: boolean): FileSet {
  const bytes = new Map(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v]));
  const set: FileSet = {
    name: WHERE,
    async open(name) {
      const b = bytes.get(name);
      if (!b) throw new FinetuneError('bad-input', `${WHERE}: no file ${JSON.stringify(name)}`, { reason: 'not-found', file: name });
      // Named as a folder's or a repository's files are (a path, "repo/file"), so that messages begin with the set's name.
      return guardedSource(b, `${WHERE}/${name}`);
    },
  };
  return listable ? { ...set, list: () => [...bytes.keys()].sort() } : set;
}

async function checkCheckpoint(ck: BaseCheckpoint): Promise<void> {
  const expected = expectedTensors(ck.config);
  let total = 0;
  for (const name of ck.tensorNames) {
    const t = ck.info(name);
    expect(t.end - t.begin).toBe(t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype]);
    total += t.end - t.begin;
  }
  expect(ck.totalBytes).toBe(total);
  expect(new Set(ck.tensorNames).size).toBe(ck.tensorNames.length);
  for (const [name, shape] of expected) {
    expect(ck.has(name), name).toBe(true);
    const t = ck.info(name);
    expect(t.shape).toEqual(shape);
    expect(['BF16', 'F16', 'F32', 'F64']).toContain(t.dtype);
    const read = await ck.read(name);
    expect(read.bytes.byteLength).toBe(shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype]);
  }
}

/** Opens and checks the contract; returns whether the checkpoint was accepted. */
async function checkContract(files: FileSet): Promise<boolean> {
  let ck: BaseCheckpoint;
  try {
    ck = await openBaseCheckpoint(files);
  } catch (e) {
    // A RangeError from guardedSource (a read outside a file) or any other plain error fails here.
    if (!(e instanceof FinetuneError) || e.kind !== 'bad-input') throw e;
    expect(e.message.startsWith(WHERE), e.message).toBe(true);
    expect(e.message.length).toBeLessThan(4000);
    return false;
  }
  await checkCheckpoint(ck);
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Mutations

const anyValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, 0, -1, 1.5, 1e9, '', 'x', '../x.safetensors', '/abs.safetensors', 'a\\b', SINGLE_FILE, 'model-1-of-2.safetensors', 'missing.safetensors', [], {}, ['a']),
  fc.constantFrom('{"toString":1}', '{"__proto__":{"a":"b"}}').map((t): unknown => JSON.parse(t)),
  fc.jsonValue({ maxDepth: 2 }),
);

type Edit =
  | { file: 'config.json'; key: string; value: unknown }
  | { file: 'index'; where: 'weight_map' | 'top' | 'metadata'; key: string; value: unknown }
  | { file: 'index'; where: 'drop'; key: string }
  | { file: 'shard'; which: number; kind: 'flip' | 'cut' | 'u32' | 'len'; at: number; value: number }
  | { file: 'remove'; which: number };

const NAMES = [...expectedTensors(parseMistralConfig(CONFIG)).keys()];

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ file: fc.constant('config.json' as const), key: fc.constantFrom(...Object.keys(CONFIG), 'head_dim', 'dtype'), value: fc.oneof(anyValueArb, fc.constantFrom(1, 2, 3, 4, 8, 16, 32)) }),
  fc.record({
    file: fc.constant('index' as const),
    where: fc.constantFrom('weight_map' as const, 'top' as const, 'metadata' as const),
    key: fc.oneof(fc.constantFrom(...NAMES, 'weight_map', 'metadata', 'total_size', 'extra.weight'), fc.string({ maxLength: 8 })),
    value: anyValueArb,
  }),
  fc.record({ file: fc.constant('index' as const), where: fc.constant('drop' as const), key: fc.constantFrom(...NAMES) }),
  fc.record({
    file: fc.constant('shard' as const),
    which: fc.nat(),
    kind: fc.constantFrom('flip' as const, 'cut' as const, 'u32' as const, 'len' as const),
    at: fc.nat(),
    value: fc.oneof(fc.nat({ max: 0xffffffff }), fc.constantFrom(0, 1, 0xffffffff, 0x7fffffff)),
  }),
  fc.record({ file: fc.constant('remove' as const), which: fc.nat() }),
);

function applyEdit(files: Record<string, Uint8Array | string>, e: Edit): void {
  const shardNames = Object.keys(files).filter((n) => n.endsWith('.safetensors')).sort();
  switch (e.file) {
    case 'config.json': {
      if (typeof files['config.json'] !== 'string') return; // removed by an earlier edit
      const c = JSON.parse(files['config.json'] as string) as Record<string, unknown>;
      Object.defineProperty(c, e.key, { value: e.value, enumerable: true, configurable: true, writable: true });
      files['config.json'] = JSON.stringify(c);
      return;
    }
    case 'index': {
      if (typeof files[INDEX_FILE] !== 'string') return;
      const index = JSON.parse(files[INDEX_FILE]) as Record<string, unknown>;
      const target = e.where === 'top' ? index : (index[e.where === 'drop' ? 'weight_map' : e.where] as Record<string, unknown> | undefined);
      if (typeof target !== 'object' || target === null) return;
      if (e.where === 'drop') delete target[e.key];
      else Object.defineProperty(target, e.key, { value: e.value, enumerable: true, configurable: true, writable: true });
      files[INDEX_FILE] = JSON.stringify(index);
      return;
    }
    case 'shard': {
      if (shardNames.length === 0) return; // removed by an earlier edit
      const name = shardNames[e.which % shardNames.length];
      const b = (files[name] as Uint8Array).slice();
      if (b.length < 8 && e.kind !== 'cut') return; // cut short by an earlier edit
      if (e.kind === 'cut') files[name] = b.slice(0, e.at % (b.length + 1));
      else if (e.kind === 'len') {
        // The header's length prefix, or a u32 inside the header.
        new DataView(b.buffer).setUint32(e.at % 2 === 0 ? 0 : 4, e.value, true);
        files[name] = b;
      } else if (e.kind === 'flip') {
        // Read here, not before the cut above: a shard cut shorter than its length prefix has none to read.
        const headerEnd = Math.min(b.length, 8 + new DataView(b.buffer).getUint32(0, true));
        b[e.at % headerEnd] ^= (e.value % 255) + 1;
        files[name] = b;
      } else {
        new DataView(b.buffer).setUint32(e.at % (b.length - 3), e.value, true);
        files[name] = b;
      }
      return;
    }
    case 'remove': {
      const all = Object.keys(files).sort();
      delete files[all[e.which % all.length]];
    }
  }
}

/** A property over megabytes of input: seconds alone, longer beside the other tiers on a 2-core machine. */
const SLOW_FUZZ_MS = 30_000;

describe('base checkpoint opener under fuzzing', () => {
  it('the written checkpoints open whole, single file or sharded, listable or not', async () => {
    for (const shards of [1, 2, 3]) {
      for (const dtype of ['BF16', 'F16', 'F32'] as const) {
        for (const listable of [true, false]) expect(await checkContract(guardedFileSet(checkpointFiles(dtype, shards), listable))).toBe(true);
      }
    }
  });

  it('configs, indexes and shards changed, cut or missing never break the contract', async () => {
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom<SafetensorsDtype>('BF16', 'F32', 'F64', 'I32'), fc.integer({ min: 1, max: 3 }), fc.boolean(), fc.array(editArb, { minLength: 0, maxLength: 3 }), async (dtype, shards, listable, edits) => {
        const files = checkpointFiles(dtype, shards);
        for (const e of edits) applyEdit(files, e);
        if (await checkContract(guardedFileSet(files, listable))) accepted++;
        else refused++;
      }),
      { numRuns: 500 },
    );
    expect(accepted).toBeGreaterThan(30);
    expect(refused).toBeGreaterThan(150);
  });

  it('huge counts: an index naming up to 60,000 tensors in as many shards is refused or read at once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(10, 9_000, 60_000), fc.boolean(), async (n, distinct) => {
        const files = checkpointFiles('F32', 2);
        const index = JSON.parse(files[INDEX_FILE] as string) as { weight_map: Record<string, string> };
        for (let i = 0; i < n; i++) index.weight_map[`extra.${i}`] = distinct ? `extra-${i}.safetensors` : 'model-1-of-2.safetensors';
        files[INDEX_FILE] = JSON.stringify(index);
        await checkContract(guardedFileSet(files, true));
      }),
      { numRuns: 6 },
    );
  }, SLOW_FUZZ_MS);

  it('random bytes as config.json, index and model.safetensors', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 100 }), fc.constantFrom('config.json', INDEX_FILE, SINGLE_FILE), async (bytes, file) => {
        const files = checkpointFiles('F32', file === INDEX_FILE ? 2 : 1);
        files[file] = bytes;
        await checkContract(guardedFileSet(files, true));
      }),
      { numRuns: 200 },
    );
  });
});
