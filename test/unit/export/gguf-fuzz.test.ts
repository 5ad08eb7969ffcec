// Fuzzing the GGUF reader: whatever the bytes, readGguf either returns a file whose every tensor lies inside the
// input, laid out as llama.cpp requires, or throws FinetuneError('bad-input'); never anything else (no RangeError from
// a DataView, no TypeError, no hang). Valid files from the writer, with arbitrary KVs and tensors, read back equal.
import { ggufTensorF32, readGguf } from '../../helpers/gguf-reader.ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GgmlType, GgufType, writeGguf, type GgufArray, type GgufData, type GgufKv, type GgufTensorToWrite } from '../../../src/export/index.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { mulberry32 } from '../../../src/engine/reference/common.ts';

/** Reads and checks the contract; returns whether the bytes were accepted. */
function checkContract(bytes: Uint8Array): boolean {
  let f;
  try {
    f = readGguf(bytes);
  } catch (e) {
    if (!(e instanceof FinetuneError) || e.kind !== 'bad-input') throw e;
    return false;
  }
  expect(f.dataOffset % f.alignment).toBe(0);
  let expected = 0;
  for (const t of f.tensors.values()) {
    expect(t.offset).toBe(expected);
    expect(t.data.byteOffset - bytes.byteOffset).toBe(f.dataOffset + t.offset);
    expect(f.dataOffset + t.offset + t.byteLength).toBeLessThanOrEqual(bytes.byteLength);
    expect(t.data.byteLength).toBe(t.byteLength);
    expect(t.ne.length).toBeGreaterThanOrEqual(1);
    expect(t.ne.length).toBeLessThanOrEqual(4);
    if (t.type === GgmlType.F32 || t.type === GgmlType.F16 || t.type === GgmlType.BF16 || t.type === GgmlType.F64) {
      expect(ggufTensorF32(t).length).toBe(t.numel);
    }
    expected = t.offset + Math.ceil(t.byteLength / f.alignment) * f.alignment;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries for valid files

const scalarTypes = [
  GgufType.UINT8,
  GgufType.INT8,
  GgufType.UINT16,
  GgufType.INT16,
  GgufType.UINT32,
  GgufType.INT32,
  GgufType.FLOAT32,
  GgufType.BOOL,
  GgufType.STRING,
  GgufType.UINT64,
  GgufType.INT64,
  GgufType.FLOAT64,
] as const;
type ScalarType = (typeof scalarTypes)[number];

function valueArb(t: ScalarType): fc.Arbitrary<GgufData> {
  switch (t) {
    case GgufType.UINT8:
      return fc.integer({ min: 0, max: 255 });
    case GgufType.INT8:
      return fc.integer({ min: -128, max: 127 });
    case GgufType.UINT16:
      return fc.integer({ min: 0, max: 65535 });
    case GgufType.INT16:
      return fc.integer({ min: -32768, max: 32767 });
    case GgufType.UINT32:
      return fc.integer({ min: 0, max: 0xffffffff });
    case GgufType.INT32:
      return fc.integer({ min: -0x80000000, max: 0x7fffffff });
    case GgufType.FLOAT32:
      return fc.float();
    case GgufType.BOOL:
      return fc.boolean();
    case GgufType.STRING:
      return fc.string({ unit: 'grapheme', maxLength: 12 });
    case GgufType.UINT64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case GgufType.INT64:
      return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
    case GgufType.FLOAT64:
      return fc.double();
  }
}

const arrayArb: fc.Arbitrary<GgufArray> = fc
  .constantFrom(...scalarTypes)
  .chain((t) => fc.array(valueArb(t), { maxLength: 6 }).map((values): GgufArray => ({ itemType: t, values })));

const kvValueArb: fc.Arbitrary<{ type: GgufKv['type']; value: GgufData }> = fc.oneof(
  fc.constantFrom(...scalarTypes).chain((t) => valueArb(t).map((value) => ({ type: t as GgufKv['type'], value }))),
  arrayArb.map((value) => ({ type: GgufType.ARRAY as GgufKv['type'], value })),
  fc.array(arrayArb, { maxLength: 3 }).map((values) => ({ type: GgufType.ARRAY as GgufKv['type'], value: { itemType: GgufType.ARRAY, values } as GgufArray })),
);

const kvsArb: fc.Arbitrary<GgufKv[]> = fc
  .uniqueArray(fc.tuple(fc.string({ unit: 'grapheme', maxLength: 20 }), kvValueArb), { selector: ([k]) => k, maxLength: 6 })
  .map((list) => list.filter(([k]) => k !== 'general.alignment').map(([key, v]) => ({ key, ...v })));

const tensorArb: fc.Arbitrary<GgufTensorToWrite> = fc
  .record({
    type: fc.constantFrom(GgmlType.F32, GgmlType.F16, GgmlType.I8, GgmlType.Q8_0, GgmlType.BF16),
    outer: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 3 }),
    inner: fc.integer({ min: 0, max: 5 }),
    seed: fc.integer(),
  })
  .map(({ type, outer, inner, seed }) => {
    const ne0 = type === GgmlType.Q8_0 ? 32 * inner : inner;
    const shape = [...outer, ne0];
    const numel = shape.reduce((a, b) => a * b, 1);
    const bytes = type === GgmlType.Q8_0 ? (numel / 32) * 34 : numel * ({ [GgmlType.F32]: 4, [GgmlType.F16]: 2, [GgmlType.BF16]: 2, [GgmlType.I8]: 1 } as Record<number, number>)[type];
    const rnd = mulberry32(seed);
    return { name: '', shape, type, data: Uint8Array.from({ length: bytes }, () => Math.floor(rnd() * 256)) };
  });

const fileArb = fc.record({
  kvs: kvsArb,
  tensors: fc.array(tensorArb, { maxLength: 4 }).map((ts) => ts.map((t, i) => ({ ...t, name: `blk.${i}.t` }))),
  alignment: fc.constantFrom(null, 1, 8, 32, 64),
});

function build(f: { kvs: GgufKv[]; tensors: GgufTensorToWrite[]; alignment: number | null }): { bytes: Uint8Array; kvs: GgufKv[] } {
  const kvs = f.alignment === null ? f.kvs : [{ key: 'general.alignment', type: GgufType.UINT32, value: f.alignment } as GgufKv, ...f.kvs];
  return { bytes: writeGguf(kvs, f.tensors), kvs };
}

describe('readGguf fuzz', () => {
  it('round-trips arbitrary valid files from the writer', () => {
    fc.assert(
      fc.property(fileArb, (spec) => {
        const { bytes, kvs } = build(spec);
        expect(checkContract(bytes)).toBe(true);
        const f = readGguf(bytes);
        expect(f.alignment).toBe(spec.alignment ?? 32);
        expect([...f.kv.values()]).toEqual(kvs);
        expect([...f.tensors.keys()]).toEqual(spec.tensors.map((t) => t.name));
        for (const t of spec.tensors) {
          const got = f.tensors.get(t.name)!;
          expect(got.shape).toEqual(t.shape);
          expect(got.ne).toEqual([...t.shape].reverse());
          expect(got.type).toBe(t.type);
          expect(got.data).toEqual(t.data);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('never throws anything but bad-input on random bytes, with or without a valid header', () => {
    const header = new Uint8Array([0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (rest, withHeader) => {
        const bytes = withHeader ? new Uint8Array([...header, ...rest]) : rest;
        checkContract(bytes);
      }),
      { numRuns: 400 },
    );
  });

  it('never throws anything but bad-input on mutated valid files (byte flips, u64 overwrites, truncation)', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('u64' as const), at: fc.nat(), value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n)) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    );
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(fileArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (spec, muts) => {
        let bytes = build(spec).bytes.slice();
        for (const m of muts) {
          if (bytes.length === 0) break;
          const at = m.at % bytes.length;
          if (m.kind === 'flip') bytes[at] = m.value;
          else if (m.kind === 'cut') bytes = bytes.slice(0, at);
          else if (at + 8 <= bytes.length) new DataView(bytes.buffer).setBigUint64(at, m.value, true);
        }
        if (checkContract(bytes)) accepted++;
        else refused++;
      }),
      { numRuns: 400 },
    );
    // Both outcomes happen: the fuzz reaches past the first checks.
    expect(accepted).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });
});
