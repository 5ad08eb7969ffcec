// Fuzzing the safetensors reader: whatever the bytes, parsing either succeeds with every tensor inside the file or
// throws FinetuneError('bad-input'); it never throws anything else and never reads outside the file.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { DTYPE_SIZE, parseSafetensorsHeader, parseSafetensorsHeaderBytes, readTensor, writeSafetensors, type SafetensorsDtype } from '../../../src/model/safetensors.ts';
import { fixtureBytes, guardedSource, TINY_ADAPTER } from './helpers.ts';

const DTYPES = Object.keys(DTYPE_SIZE) as SafetensorsDtype[];

/** Parses through both entry points and checks the contract; returns whether the file was accepted. */
async function checkContract(bytes: Uint8Array): Promise<boolean> {
  const src = guardedSource(bytes, 'fuzz');
  let header;
  try {
    header = await parseSafetensorsHeader(src);
  } catch (e) {
    // A RangeError from the guarded source (an out-of-bounds read) or any other error fails here.
    if (!(e instanceof FinetuneError) || e.kind !== 'bad-input') throw e;
    // The synchronous path must refuse it too, with a FinetuneError.
    try {
      parseSafetensorsHeaderBytes(bytes);
    } catch (e2) {
      if (!(e2 instanceof FinetuneError) || e2.kind !== 'bad-input') throw e2;
      return false;
    }
    throw new Error('the byte path accepted what the source path refused');
  }
  for (const t of header.tensors.values()) {
    expect(t.offset).toBeGreaterThanOrEqual(header.dataOffset);
    expect(t.offset + (t.end - t.begin)).toBeLessThanOrEqual(bytes.byteLength);
    expect(t.end - t.begin).toBe(t.numel * DTYPE_SIZE[t.dtype]);
    const data = await readTensor(src, t);
    expect(data.byteLength).toBe(t.end - t.begin);
  }
  parseSafetensorsHeaderBytes(bytes);
  return true;
}

const tensorArb = fc.record({
  name: fc.string({ minLength: 0, maxLength: 12 }).filter((s) => s !== '__metadata__'),
  dtype: fc.constantFrom(...DTYPES),
  shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
});

/** A valid file of random tensors (unique names) with random data and optional metadata. */
const validFileArb = fc
  .tuple(
    fc.uniqueArray(tensorArb, { selector: (t) => t.name, maxLength: 5 }),
    fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }), { nil: undefined }),
    fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  )
  .map(([ts, md, seed]) => {
    let s = seed;
    const tensors = ts.map((t) => {
      const n = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype];
      const data = new Uint8Array(n);
      for (let i = 0; i < n; i++) data[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
      return { ...t, data };
    });
    return writeSafetensors(tensors, md ?? null);
  });

type Mutation =
  | { kind: 'flip'; at: number[]; xor: number[] }
  | { kind: 'truncate'; keep: number }
  | { kind: 'extend'; extra: Uint8Array }
  | { kind: 'length'; value: number; hi: number }
  | { kind: 'edit'; from: number; to: number; text: string; fixLength: boolean };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), xor: fc.array(fc.integer({ min: 1, max: 255 }), { minLength: 4, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('length' as const), value: fc.nat(), hi: fc.constantFrom(0, 0, 0, 1, 0xffffffff) }),
  fc.record({
    kind: fc.constant('edit' as const),
    from: fc.nat(),
    to: fc.nat(),
    // Snippets that look like header pieces, to reach the deeper checks.
    text: fc.oneof(
      fc.constantFrom('', '-1', '1e400', '0.5', 'null', '[]', '{}', '"F32"', '"BF16"', '"X9"', '[0,999999999999]', '[4,2]', '"__metadata__"', ',', ':', '"', '\\u0000', '9007199254740993'),
      fc.string({ maxLength: 6 }),
      fc.integer({ min: -5, max: 100000 }).map(String),
    ),
    fixLength: fc.boolean(),
  }),
);

function mutate(file: Uint8Array, m: Mutation): Uint8Array {
  const out = file.slice();
  if (out.length < 8 && (m.kind === 'length' || m.kind === 'edit' || m.kind === 'flip')) return out;
  const n = out.length >= 8 ? Math.min(new DataView(out.buffer).getUint32(0, true), out.length - 8) : 0;
  switch (m.kind) {
    case 'flip':
      m.at.forEach((a, i) => {
        out[a % out.length] ^= m.xor[i];
      });
      return out;
    case 'truncate':
      return out.slice(0, m.keep % (out.length + 1));
    case 'extend': {
      const bigger = new Uint8Array(out.length + m.extra.length);
      bigger.set(out);
      bigger.set(m.extra, out.length);
      return bigger;
    }
    case 'length': {
      const dv = new DataView(out.buffer);
      dv.setUint32(0, m.value % (out.length + 64), true);
      dv.setUint32(4, m.hi, true);
      return out;
    }
    case 'edit': {
      // Replace a slice of the header text, optionally fixing the length prefix.
      const text = new TextDecoder().decode(out.subarray(8, 8 + n));
      const a = m.from % (text.length + 1);
      const b = a + (m.to % Math.max(1, text.length - a + 1));
      const edited = new TextEncoder().encode(text.slice(0, a) + m.text + text.slice(b));
      const data = out.subarray(8 + n);
      const res = new Uint8Array(8 + edited.length + data.length);
      new DataView(res.buffer).setUint32(0, m.fixLength ? edited.length : n, true);
      res.set(edited, 8);
      res.set(data, 8 + edited.length);
      return res;
    }
  }
}

describe('safetensors reader under fuzzing', () => {
  it('random bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 96 }), async (bytes) => {
        await checkContract(bytes);
      }),
      { numRuns: 400 },
    );
  });

  it('random bytes behind a plausible length prefix and "{"', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 96 }), fc.nat({ max: 120 }), async (body, len) => {
        const bytes = new Uint8Array(9 + body.length);
        new DataView(bytes.buffer).setUint32(0, len, true);
        bytes[8] = 0x7b;
        bytes.set(body, 9);
        await checkContract(bytes);
      }),
      { numRuns: 400 },
    );
  });

  it('valid files are accepted; mutated ones never break the contract', async () => {
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(validFileArb, fc.array(mutationArb, { minLength: 0, maxLength: 3 }), async (file, muts) => {
        if (muts.length === 0) expect(await checkContract(file)).toBe(true);
        let f = file;
        for (const m of muts) f = mutate(f, m);
        if (await checkContract(f)) accepted++;
        else refused++;
      }),
      { numRuns: 600 },
    );
    // The mutations reach both outcomes (the fuzzer is not only producing garbage or only no-ops).
    expect(accepted).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(100);
  });

  it('mutations of a real PEFT file never break the contract', async () => {
    const real = fixtureBytes(`${TINY_ADAPTER}/adapter_model.safetensors`);
    await fc.assert(
      fc.asyncProperty(fc.array(mutationArb, { minLength: 1, maxLength: 2 }), async (muts) => {
        let f = real;
        for (const m of muts) f = mutate(f, m);
        await checkContract(f);
      }),
      { numRuns: 150 },
    );
  });
});

/** A file whose header is `header` verbatim, followed by `dataBytes` zero bytes. */
function withHeader(header: string, dataBytes = 0): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  return out;
}

async function refusal(bytes: Uint8Array): Promise<string> {
  expect(await checkContract(bytes)).toBe(false);
  try {
    parseSafetensorsHeaderBytes(bytes);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('accepted');
}

describe('hostile headers', () => {
  it('nesting 200 000 levels deep is refused with a clear message, not a stack overflow', async () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    expect(await refusal(withHeader(`{"x":{"dtype":"F32","shape":${deep},"data_offsets":[0,0]}}`))).toMatch(/header nests JSON deeper than 8 levels/);
    expect(await refusal(withHeader(`{"__metadata__":${'{"a":'.repeat(200_000)}1${'}'.repeat(200_000)}}`))).toMatch(/deeper than/);
  });

  it('two tensors of one name are refused (JSON.parse would keep the last silently), escaped or not', async () => {
    const t = (o: number) => `{"dtype":"U8","shape":[2],"data_offsets":[${o},${o + 2}]}`;
    expect(await refusal(withHeader(`{"a":${t(0)},"b":${t(2)},"a":${t(4)}}`, 6))).toMatch(/names tensor "a" twice/);
    expect(await refusal(withHeader(`{"a":${t(0)}, "\\u0061" :${t(2)}}`, 4))).toMatch(/names tensor "a" twice/);
    expect(await refusal(withHeader(`{"__metadata__":{},"__metadata__":{"k":"v"}}`))).toMatch(/names __metadata__ twice/);
    // Equal keys one level down are not duplicates, nor is a string value equal to a name.
    expect(await checkContract(withHeader(`{"a":${t(0)},"b":${t(2)},"__metadata__":{"a":"b","b":"a"}}`, 4))).toBe(true);
  });

  it('a valid file with one of its entries repeated is always refused (fuzz)', async () => {
    await fc.assert(
      fc.asyncProperty(validFileArb, fc.nat(), async (file, pick) => {
        const n = new DataView(file.buffer).getUint32(0, true);
        const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))) as Record<string, unknown>;
        const names = Object.keys(header).filter((k) => k !== '__metadata__');
        fc.pre(names.length > 0);
        const name = names[pick % names.length];
        // Text with the entry twice: the second copy precedes the rest, so JSON.parse alone would accept it.
        const text = `{${JSON.stringify(name)}:${JSON.stringify(header[name])},${JSON.stringify(header).slice(1)}`;
        const msg = await refusal(withHeader(text, file.length - 8 - n));
        expect(msg).toContain('twice');
      }),
      { numRuns: 200 },
    );
  });
});
