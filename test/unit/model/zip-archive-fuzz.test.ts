// Fuzzing the zip reader (adapter zips, Replicate's training_output.zip, torch.save files): whatever the bytes,
// listZip and extractZip either answer entries that the archive really holds (each extracted one of the size and
// CRC-32 its directory records) or throw FinetuneError('bad-input'); never a RangeError or TypeError from a walk past
// the end, never a hang over a count the file cannot hold, never an allocation a length field asks for that the file's
// own size cannot back. zipNamesFromTail never throws: it answers names or null.
import { zipSync, type Zippable } from 'fflate';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { extractZip, listZip, looksLikeZip, zipNamesFromTail, type ZipEntryInfo } from '../../../src/model/zip-archive.ts';
import { alignedStoredZip, crc32 } from '../../helpers/torch-save.ts';

/** Smallest central-directory record: a listed entry that is really in the file takes at least this many bytes. */
const CENTRAL_RECORD_BYTES = 46;
/** Deflate's most output per input byte (zip-archive.ts allows 1032:1 plus 1 KiB), with room for the rest. */
const MOST_EXPANSION = 1100;

function expectRefusal(e: unknown): void {
  // A RangeError from a DataView read past the end, or any other plain error, fails here.
  if (!(e instanceof FinetuneError) || e.kind !== 'bad-input') throw e;
  expect(e.message).toMatch(/^fuzz\.zip: /);
}

/** The CRC-32 each central record holds, by name (the last record of a name wins; extractZip refuses repeats). */
function recordedCrcs(bytes: Uint8Array): Map<string, number> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map<string, number>();
  for (let at = 0; at + CENTRAL_RECORD_BYTES <= bytes.length; at++) {
    if (dv.getUint32(at, true) !== 0x02014b50) continue;
    const n = dv.getUint16(at + 28, true);
    if (at + CENTRAL_RECORD_BYTES + n > bytes.length) continue;
    // Names are Latin-1 unless the record's flags (bit 11) say UTF-8, as fflate reads them.
    const utf8 = (dv.getUint16(at + 8, true) & 0x800) !== 0;
    out.set(new TextDecoder(utf8 ? 'utf-8' : 'latin1').decode(bytes.subarray(at + 46, at + 46 + n)), dv.getUint32(at + 16, true));
  }
  return out;
}

type Outcome = 'extracted' | 'refused';

/**
 * Lists and extracts `bytes` and checks the contract; says whether extraction succeeded. Extraction runs with the
 * default limits, so that a claimed size the file cannot back would be allocated: the growth of the process's
 * ArrayBuffer memory over the call is held to what the file's own size can produce.
 */
function checkContract(bytes: Uint8Array): Outcome {
  const tail = zipNamesFromTail(bytes, bytes.length);
  if (tail !== null) for (const n of tail) expect(typeof n).toBe('string');
  let entries: ZipEntryInfo[];
  try {
    entries = listZip(bytes, 'fuzz.zip');
  } catch (e) {
    expectRefusal(e);
    // What cannot be listed cannot be extracted either.
    try {
      extractZip(bytes, 'fuzz.zip', () => true);
    } catch (e2) {
      expectRefusal(e2);
      return 'refused';
    }
    throw new Error('extractZip accepted what listZip refused');
  }
  // Every entry listed has a central record inside the file: a count the file cannot hold is no listing.
  expect(entries.length * CENTRAL_RECORD_BYTES).toBeLessThanOrEqual(bytes.length);
  for (const e of entries) {
    expect(Number.isSafeInteger(e.size) && e.size >= 0).toBe(true);
    expect(Number.isSafeInteger(e.originalSize) && e.originalSize >= 0).toBe(true);
  }
  const before = process.memoryUsage().arrayBuffers;
  let files: Map<string, Uint8Array>;
  try {
    files = extractZip(bytes, 'fuzz.zip', () => true);
  } catch (e) {
    expectRefusal(e);
    return 'refused';
  } finally {
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(grown, 'extraction allocated more than the file can expand to').toBeLessThanOrEqual(bytes.length * MOST_EXPANSION + (8 << 20));
  }
  const crcs = recordedCrcs(bytes);
  for (const [name, data] of files) {
    const listed = entries.find((e) => e.name === name);
    expect(listed).toBeDefined();
    expect(data.byteLength).toBe(listed!.originalSize);
    expect(crc32(data)).toBe(crcs.get(name));
  }
  return 'extracted';
}

// ---------------------------------------------------------------------------------------------------------------
// Valid archives: fflate's writer (stored and deflated entries, folders) and PyTorch's aligned stored layout

const entryArb = fc.record({
  name: fc.oneof(fc.constantFrom('adapter_config.json', 'a/adapter_model.bin', 'x/data.pkl', 'dir/', 'README.md'), fc.string({ minLength: 1, maxLength: 10 }).map((s) => s.replace(/\/+$/, 'f'))),
  data: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 4000 }).map((n) => new Uint8Array(n).fill(7))),
  level: fc.constantFrom(0 as const, 6 as const),
});

const zipArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uniqueArray(entryArb, { selector: (e) => e.name, maxLength: 4 }).map((es) => {
    const files: Zippable = {};
    for (const e of es) files[e.name] = e.name.endsWith('/') ? new Uint8Array(0) : [e.data, { level: e.level }];
    return zipSync(files);
  }),
  fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), fc.uint8Array({ maxLength: 48 })), { selector: ([n]) => n, maxLength: 3 }).map((es) => alignedStoredZip(es)),
);

/** Where the central directory and its records are, to aim mutations at their fields. */
function directory(bytes: Uint8Array): { eocd: number; records: number[] } | null {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let e = bytes.length - 22; e >= 0; e--) {
    if (dv.getUint32(e, true) === 0x06054b50) {
      eocd = e;
      break;
    }
  }
  if (eocd < 0) return null;
  const records: number[] = [];
  for (let at = 0; at + 4 <= eocd; at++) if (dv.getUint32(at, true) === 0x02014b50) records.push(at);
  return { eocd, records };
}

/** Values a hostile or corrupt length field holds. */
const hostileU32 = fc.oneof(fc.constantFrom(0, 1, 46, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 2_000_000, 2_000_000_000), fc.nat({ max: 0xffffffff }));

type Mutation =
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'truncate'; keep: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'record'; which: number; field: 16 | 20 | 24 | 42; value: number }
  | { kind: 'record16'; which: number; field: 10 | 28 | 30 | 32; value: number }
  | { kind: 'claim'; which: number; size: number; ratio: number }
  | { kind: 'eocd'; field: 8 | 10 | 12 | 16; value: number }
  | { kind: 'zip64'; count: number; offset: number; size: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: hostileU32 }),
  // Fields of a central record: CRC, compressed and extracted sizes, the local header's offset.
  fc.record({ kind: fc.constant('record' as const), which: fc.nat(), field: fc.constantFrom(16 as const, 20 as const, 24 as const, 42 as const), value: hostileU32 }),
  // Compression method and the name, extra and comment lengths.
  fc.record({ kind: fc.constant('record16' as const), which: fc.nat(), field: fc.constantFrom(10 as const, 28 as const, 30 as const, 32 as const), value: fc.oneof(fc.constantFrom(0, 8, 12, 0xffff), fc.nat({ max: 0xffff })) }),
  // A record's compressed and extracted sizes together, the one as many times the other as deflate allows or more.
  fc.record({ kind: fc.constant('claim' as const), which: fc.nat(), size: fc.oneof(hostileU32, fc.integer({ min: 0, max: 3_000_000 })), ratio: fc.constantFrom(1, 2, 1000, 1032, 2000) }),
  // The end record's entry counts, the directory's size and its offset.
  fc.record({ kind: fc.constant('eocd' as const), field: fc.constantFrom(8 as const, 10 as const, 12 as const, 16 as const), value: hostileU32 }),
  // A zip64 end record and locator in front of the end record, with the count and offset they claim.
  fc.record({ kind: fc.constant('zip64' as const), count: hostileU32, offset: hostileU32, size: hostileU32 }),
);

function mutate(file: Uint8Array, m: Mutation): Uint8Array {
  const out = file.slice();
  const dv = new DataView(out.buffer);
  if (m.kind === 'truncate') return out.slice(0, m.keep % (out.length + 1));
  if (out.length === 0) return out;
  switch (m.kind) {
    case 'flip':
      out[m.at % out.length] ^= m.xor;
      return out;
    case 'u32':
      if (out.length >= 4) dv.setUint32(m.at % (out.length - 3), m.value, true);
      return out;
  }
  const dir = directory(out);
  if (dir === null) return out;
  switch (m.kind) {
    case 'record':
    case 'record16': {
      if (dir.records.length === 0) return out;
      const at = dir.records[m.which % dir.records.length] + m.field;
      if (m.kind === 'record' && at + 4 <= out.length) dv.setUint32(at, m.value, true);
      if (m.kind === 'record16' && at + 2 <= out.length) dv.setUint16(at, m.value & 0xffff, true);
      return out;
    }
    case 'claim': {
      if (dir.records.length === 0) return out;
      const at = dir.records[m.which % dir.records.length];
      if (at + 28 > out.length) return out;
      dv.setUint32(at + 20, m.size, true);
      dv.setUint32(at + 24, Math.min(0xffffffff, m.size * m.ratio), true);
      return out;
    }
    case 'eocd':
      if (m.field === 8 || m.field === 10) dv.setUint16(dir.eocd + m.field, m.value & 0xffff, true);
      else dv.setUint32(dir.eocd + m.field, m.value, true);
      return out;
    case 'zip64': {
      const z = new Uint8Array(56 + 20);
      const zv = new DataView(z.buffer);
      zv.setUint32(0, 0x06064b50, true);
      zv.setUint32(24, m.count, true);
      zv.setUint32(32, m.count, true);
      zv.setUint32(40, m.size, true);
      zv.setUint32(48, m.offset, true);
      zv.setUint32(56, 0x07064b50, true);
      zv.setUint32(56 + 8, dir.eocd, true);
      const res = new Uint8Array(out.length + z.length);
      res.set(out.subarray(0, dir.eocd));
      res.set(z, dir.eocd);
      res.set(out.subarray(dir.eocd), dir.eocd + z.length);
      return res;
    }
  }
}

/** A property over megabytes of input: seconds alone, longer beside the other tiers on a 2-core machine. */
const SLOW_FUZZ_MS = 30_000;

describe('zip reader under fuzzing', () => {
  it('random bytes, with and without a zip signature in front and an end record behind', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), fc.boolean(), (body, head, end) => {
        const bytes = new Uint8Array([...(head ? [0x50, 0x4b, 0x03, 0x04] : []), ...body, ...(end ? [0x50, 0x4b, 0x05, 0x06, ...body.slice(0, 18)] : [])]);
        checkContract(bytes);
      }),
      { numRuns: 400 },
    );
  });

  it('valid archives are read whole; mutated ones never break the contract', () => {
    let extracted = 0;
    let refused = 0;
    fc.assert(
      fc.property(zipArb, fc.array(mutationArb, { minLength: 0, maxLength: 3 }), (zip, muts) => {
        expect(looksLikeZip(zip)).toBe(true);
        if (muts.length === 0) expect(checkContract(zip)).toBe('extracted');
        let f = zip;
        for (const m of muts) f = mutate(f, m);
        if (checkContract(f) === 'extracted') extracted++;
        else refused++;
      }),
      { numRuns: 500 },
    );
    // Both outcomes happen: the mutations reach past the first checks and are not all no-ops.
    expect(extracted).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(100);
  });

  it('an archive cut at every length is refused or read consistently', () => {
    fc.assert(
      fc.property(zipArb, (zip) => {
        for (let keep = 0; keep < zip.length; keep++) checkContract(zip.subarray(0, keep));
      }),
      { numRuns: 15 },
    );
  }, SLOW_FUZZ_MS);
});
