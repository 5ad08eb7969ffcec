// Fuzzing the restricted torch.save reader (docs/torch-pickle.md): whatever the pickle or the zip around it holds,
// unpickleStateDict and readTorchStateDict either build values whose every tensor is consistent (its bytes are its
// shape's elements times its dtype's size, at most 8 dimensions, all views together within twice the storages' bytes)
// or throw FinetuneError('bad-input') naming the file; never a TypeError or RangeError, never a hang, and never a name
// outside the allowed ones taken.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { ALLOWED_GLOBALS, readTorchStateDict, TORCH_DTYPE_SIZE, unpickleStateDict, type TorchTensor } from '../../../src/model/torch-pickle.ts';
import { PickleWriter, stateDictPickle, torchZip, type FixtureDtype, type FixtureTensor } from '../../helpers/torch-save.ts';

function expectRefusal(e: unknown, where: string): void {
  if (!(e instanceof FinetuneError) || e.kind !== 'bad-input') throw e;
  expect(e.message.startsWith(`${where}: `), e.message).toBe(true);
  // A refusal of a name carries it; only names outside the allowed ones (or opcodes) are refused that way.
  const refused = e.details?.refused;
  if (typeof refused === 'string' && refused.includes('.')) expect(e.message).toContain('refused');
}

function checkTensor(t: TorchTensor): number {
  expect(['F32', 'F16', 'BF16']).toContain(t.dtype);
  expect(t.shape.length).toBeLessThanOrEqual(8);
  for (const d of t.shape) expect(Number.isSafeInteger(d) && d >= 0).toBe(true);
  const numel = t.shape.reduce((a, b) => a * b, 1);
  expect(t.data.byteLength).toBe(numel * TORCH_DTYPE_SIZE[t.dtype]);
  return t.data.byteLength;
}

/** Every tensor reachable from a value the unpickler built (lists and dicts may hold themselves: each is seen once). */
function tensorsIn(root: unknown): TorchTensor[] {
  const out: TorchTensor[] = [];
  const seen = new Set<unknown>();
  const stack = [root];
  while (stack.length) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    const o = v as { kind?: string; items?: unknown[]; entries?: Map<unknown, unknown>; tensor?: TorchTensor; qualname?: string };
    if (o.kind === 'tensor' && o.tensor) out.push(o.tensor);
    if (o.kind === 'global') expect(ALLOWED_GLOBALS).toContain(o.qualname);
    // One by one: a spread of a list of hundreds of thousands overflows the call stack.
    for (const item of o.items ?? []) stack.push(item);
    for (const item of o.entries?.values() ?? []) stack.push(item);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Pickles made of random opcodes: the ones the reader takes, with arguments right or lying, and any byte

const STORAGES = new Map<string, Uint8Array>([
  ['0', new Uint8Array(24).map((_, i) => i)],
  ['1', new Uint8Array(8).fill(3)],
]);
/** What each storage holds, as persistent ids name it: (class, numel) of each key, right and wrong. */
const STORAGE_CLASSES = ['FloatStorage', 'HalfStorage', 'BFloat16Storage', 'ByteStorage'];

const smallInt = fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constantFrom(-1, 255, 65535, 2 ** 31 - 1, -(2 ** 31)));

type Op = (w: PickleWriter) => void;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  // Values.
  smallInt.map((n): Op => (w) => void w.int(n)),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((n): Op => (w) => {
    let v = n;
    const out: number[] = [];
    for (let i = 0; i < 9 && (v !== 0n || i === 0); i++, v >>= 8n) out.push(Number(v & 0xffn));
    w.raw(0x8a, out.length, ...out);
  }),
  fc.constantFrom<Op>(
    (w) => void w.none(),
    (w) => void w.bool(true),
    (w) => void w.bool(false),
    (w) => void w.emptyTuple(),
    (w) => void w.emptyList(),
    (w) => void w.emptyDict(),
    (w) => void w.mark(),
    (w) => void w.tuple(),
    (w) => void w.tupleN(1),
    (w) => void w.tupleN(2),
    (w) => void w.tupleN(3),
    (w) => void w.setitem(),
    (w) => void w.setitems(),
    (w) => void w.reduce(),
    (w) => void w.build(),
    (w) => void w.binpersid(),
    (w) => void w.stackGlobal(),
    (w) => void w.raw(0x30), // POP
    (w) => void w.raw(0x31), // POP_MARK
    (w) => void w.raw(0x32), // DUP
    (w) => void w.raw(0x61), // APPEND
    (w) => void w.raw(0x65), // APPENDS
    (w) => void w.raw(0x94), // MEMOIZE
    (w) => void w.stop(),
    (w) => void w.proto(2),
    (w) => void w.raw(0x47, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), // BINFLOAT 1.0
  ),
  fc.constantFrom('storage', 'cpu', '0', '1', '9', 'a b', 'collections', 'OrderedDict', 'torch', 'torch._utils', '_rebuild_tensor_v2', 'FloatStorage').map((s): Op => (w) => void w.unicode(s)),
  fc.string({ maxLength: 6 }).map((s): Op => (w) => void w.shortUnicode(s)),
  fc.constantFrom(
    ['collections', 'OrderedDict'],
    ['torch._utils', '_rebuild_tensor_v2'],
    ['torch._utils', '_rebuild_parameter'],
    ...STORAGE_CLASSES.map((c) => ['torch', c]),
    ['os', 'system'],
    ['builtins', 'eval'],
  ).map(([m, n]): Op => (w) => void w.global(m, n)),
  // Memo.
  fc.nat({ max: 6 }).map((i): Op => (w) => void w.raw(0x71, i)),
  fc.nat({ max: 6 }).map((i): Op => (w) => void w.get(i)),
  fc.constantFrom(0, 7, 2 ** 32 - 1).map((i): Op => (w) => void w.raw(0x6a, i & 0xff, (i >>> 8) & 0xff, (i >>> 16) & 0xff, i >>> 24)),
  // Lengths that lie: strings, bytes and frames claiming more (or far more) than is left.
  fc.record({ op: fc.constantFrom(0x58, 0x42), len: fc.constantFrom(0, 3, 100, 2 ** 31, 2 ** 32 - 1), body: fc.uint8Array({ maxLength: 4 }) }).map(
    ({ op, len, body }): Op => (w) => void w.raw(op, len & 0xff, (len >>> 8) & 0xff, (len >>> 16) & 0xff, len >>> 24, ...body),
  ),
  fc.record({ op: fc.constantFrom(0x8d, 0x95), len: fc.constantFrom(0n, 3n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n) }).map(({ op, len }): Op => (w) => {
    const b: number[] = [];
    for (let i = 0n; i < 8n; i++) b.push(Number((len >> (8n * i)) & 0xffn));
    w.raw(op, ...b);
  }),
  fc.record({ len: fc.nat({ max: 255 }), body: fc.uint8Array({ maxLength: 4 }) }).map(({ len, body }): Op => (w) => void w.raw(0x43, len, ...body)),
  // Any byte: the opcodes refused by name, the text ones, and ones that are none.
  fc.integer({ min: 0, max: 255 }).map((b): Op => (w) => void w.raw(b)),
);

/** A persistent id with a tensor around it: the pieces in the right order, their values from the fuzzer. */
const tensorCallArb: fc.Arbitrary<Op> = fc
  .record({
    cls: fc.constantFrom(...STORAGE_CLASSES),
    key: fc.constantFrom('0', '1', '2', 'x/y'),
    numel: fc.oneof(fc.constantFrom(2, 6, 8, 12, 24), smallInt),
    offset: smallInt,
    shape: fc.array(fc.oneof(fc.integer({ min: 0, max: 4 }), smallInt), { maxLength: 9 }),
    stride: fc.array(fc.oneof(fc.integer({ min: 0, max: 4 }), smallInt), { maxLength: 9 }),
    hooks: fc.boolean(),
  })
  .map((t): Op => (w) => {
    w.global('torch._utils', '_rebuild_tensor_v2').mark();
    w.mark().unicode('storage').global('torch', t.cls).unicode(t.key).unicode('cpu').int(t.numel).tuple().binpersid();
    w.int(t.offset);
    for (const xs of [t.shape, t.stride]) {
      w.mark();
      for (const x of xs) w.int(x);
      w.tuple();
    }
    w.bool(false);
    if (t.hooks) w.global('collections', 'OrderedDict').emptyTuple().reduce();
    else w.emptyDict();
    w.tuple().reduce();
  });

const pickleArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.boolean(), fc.array(fc.oneof({ weight: 6, arbitrary: opArb }, { weight: 1, arbitrary: tensorCallArb }), { maxLength: 40 }), fc.boolean())
  .map(([dict, ops, stop]) => {
    const w = new PickleWriter().proto(2);
    if (dict) w.emptyDict().mark().unicode('k');
    for (const op of ops) op(w);
    if (dict) w.setitems();
    if (stop) w.stop();
    return w.finish();
  });

function checkPickle(pkl: Uint8Array, maxTensorBytes?: number): boolean {
  let root: unknown;
  try {
    root = unpickleStateDict(pkl, (k) => STORAGES.get(k), 'fuzz.pkl', maxTensorBytes === undefined ? {} : { maxTensorBytes });
  } catch (e) {
    expectRefusal(e, 'fuzz.pkl');
    return false;
  }
  let total = 0;
  for (const t of tensorsIn(root)) total += checkTensor(t);
  if (maxTensorBytes !== undefined) expect(total).toBeLessThanOrEqual(maxTensorBytes);
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Whole torch.save files from the fixture writer, mutated

const DTYPES: FixtureDtype[] = ['F32', 'F16', 'BF16'];

const stateDictArb: fc.Arbitrary<FixtureTensor[]> = fc
  .uniqueArray(
    fc.record({ name: fc.string({ minLength: 1, maxLength: 10 }), dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 }), seed: fc.nat() }),
    { selector: (t) => t.name, maxLength: 4 },
  )
  .map((ts) =>
    ts.map(({ name, dtype, shape, seed }): FixtureTensor => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = dtype === 'F32' ? Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i)) : Uint16Array.from({ length: n }, (_, i) => (seed * 31 + i * 977) & 0xffff);
      return { name, dtype, shape, data };
    }),
  );

type PickleMutation = { kind: 'flip'; at: number; xor: number } | { kind: 'cut'; keep: number } | { kind: 'u32'; at: number; value: number } | { kind: 'byte'; at: number; value: number };

const pickleMutationArb: fc.Arbitrary<PickleMutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff, 1_000_000_000), fc.nat({ max: 0xffffffff })) }),
  // An opcode or a small argument replaced (a size, a stride, a memo index, a count).
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x28, 0x2e, 0x52, 0x51, 0x68, 0x71, 0x74, 0x75, 0x85, 0x86, 0x87)) }),
);

function mutatePickle(pkl: Uint8Array, m: PickleMutation): Uint8Array {
  const out = pkl.slice();
  if (m.kind === 'cut') return out.slice(0, m.keep % (out.length + 1));
  if (out.length < 4) return out;
  if (m.kind === 'flip') out[m.at % out.length] ^= m.xor;
  else if (m.kind === 'byte') out[m.at % out.length] = m.value;
  else new DataView(out.buffer).setUint32(m.at % (out.length - 3), m.value, true);
  return out;
}

function checkFile(bin: Uint8Array): boolean {
  let tensors: Map<string, TorchTensor>;
  try {
    tensors = readTorchStateDict(bin, 'fuzz.bin');
  } catch (e) {
    expectRefusal(e, 'fuzz.bin');
    return false;
  }
  let total = 0;
  for (const [name, t] of tensors) {
    expect(typeof name).toBe('string');
    total += checkTensor(t);
  }
  // Views are bounded by twice the storages' bytes, which lie in the file.
  expect(total).toBeLessThanOrEqual(2 * bin.length);
  return true;
}

/** A property over megabytes of input: seconds alone, longer beside the other tiers on a 2-core machine. */
const SLOW_FUZZ_MS = 30_000;

describe('torch.save reader under fuzzing', () => {
  it('pickles of random opcodes, right and lying arguments', () => {
    let accepted = 0;
    fc.assert(
      fc.property(pickleArb, fc.option(fc.integer({ min: 0, max: 200 }), { nil: undefined }), (pkl, maxTensorBytes) => {
        if (checkPickle(pkl, maxTensorBytes)) accepted++;
      }),
      { numRuns: 1500 },
    );
    expect(accepted).toBeGreaterThan(10);
  });

  it('huge counts: a frame of hundreds of thousands of items taken by one opcode', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0x5d, 0x7d, 0x4e), // EMPTY_LIST, EMPTY_DICT, or a value under the mark
        fc.constantFrom(1_000, 150_000, 400_000),
        fc.constantFrom(0x4e, 0x88, 0x32), // NONE, NEWTRUE, DUP
        fc.constantFrom(0x65, 0x74, 0x75, 0x31), // APPENDS, TUPLE, SETITEMS, POP_MARK
        (container, n, item, taker) => {
          // PROTO 2, the container, MARK, NONE (for DUP to copy), the items, the taker, STOP.
          const pkl = new Uint8Array(7 + n);
          pkl.set([0x80, 2, container, 0x28, 0x4e]);
          pkl.fill(item, 5, 4 + n);
          pkl.set([taker, 0x2e], 4 + n);
          checkPickle(pkl);
        },
      ),
      { numRuns: 40 },
    );
  }, SLOW_FUZZ_MS);

  it('random bytes as a pickle and as a torch.save file', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        checkPickle(bytes);
        checkPickle(new Uint8Array([0x80, 0x02, ...bytes]));
        checkFile(bytes);
        checkFile(new Uint8Array([0x50, 0x4b, 0x03, 0x04, ...bytes]));
      }),
      { numRuns: 400 },
    );
  });

  it('state dicts from the writer read back; their pickles mutated (and zipped again) never break the contract', () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(stateDictArb, fc.constantFrom('OrderedDict' as const, 'dict' as const), fc.boolean(), fc.array(pickleMutationArb, { maxLength: 3 }), (tensors, container, parameters, muts) => {
        const { pickle, storages } = stateDictPickle(tensors, { container, parameters });
        if (muts.length === 0) {
          const got = readTorchStateDict(torchZip(pickle, storages), 'fuzz.bin');
          expect([...got.keys()]).toEqual(tensors.map((t) => t.name));
          for (const t of tensors) expect(got.get(t.name)?.shape).toEqual(t.shape);
        }
        let pkl = pickle;
        for (const m of muts) pkl = mutatePickle(pkl, m);
        if (checkFile(torchZip(pkl, storages))) accepted++;
        else refused++;
      }),
      { numRuns: 600 },
    );
    expect(accepted).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(100);
  });

  it('torch.save files cut or with bytes changed never break the contract', () => {
    fc.assert(
      fc.property(stateDictArb, fc.array(pickleMutationArb, { minLength: 1, maxLength: 3 }), (tensors, muts) => {
        const { pickle, storages } = stateDictPickle(tensors);
        let bin = torchZip(pickle, storages);
        for (const m of muts) bin = mutatePickle(bin, m);
        checkFile(bin);
      }),
      { numRuns: 400 },
    );
  });
});
