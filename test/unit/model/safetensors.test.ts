import { f16BitsToF32, f32ToF16Bits } from '../../../src/core/dtypes.ts';
import { describe, expect, it } from 'vitest';
import { fromFloat32, openSafetensors, parseSafetensorsHeader, parseSafetensorsHeaderBytes, readTensor, toFloat32, toFloat64, typedView, writeSafetensors, type SafetensorsDtype } from '../../../src/model/safetensors.ts';
import { bytesSource } from '../../../src/model/source.ts';
import { errorOf, FIXTURES, fixtureBytes, guardedSource, NANO_DEMO, TINY_ADAPTER, TINY_MISTRAL } from './helpers.ts';

const enc = new TextEncoder();

/** A file from a header text (not padded unless the text is) and a data section. */
function rawFile(header: string, data: Uint8Array = new Uint8Array(0), declaredLength?: number): Uint8Array {
  const h = enc.encode(header);
  const out = new Uint8Array(8 + h.byteLength + data.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, declaredLength ?? h.byteLength, true);
  out.set(h, 8);
  out.set(data, 8 + h.byteLength);
  return out;
}

function headerText(file: Uint8Array): string {
  const n = new DataView(file.buffer, file.byteOffset).getUint32(0, true);
  return new TextDecoder().decode(file.subarray(8, 8 + n));
}

describe('safetensors reader on files written by PyTorch/safetensors', () => {
  it('parses the PEFT adapter fixture', async () => {
    const bytes = fixtureBytes(`${TINY_ADAPTER}/adapter_model.safetensors`);
    const h = await parseSafetensorsHeader(bytes);
    // The fixture's header was re-serialised with Python's JSON spacing (test/fixtures/README.md): 3760 bytes.
    expect(h.headerLength).toBe(3760);
    expect(h.dataOffset).toBe(3768);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.tensors.size).toBe(28);
    const a = h.tensors.get('base_model.model.model.layers.0.mlp.down_proj.lora_A.weight')!;
    expect(a).toMatchObject({ dtype: 'F32', shape: [4, 448], begin: 0, end: 7168, offset: 3768, numel: 1792 });
    expect(h.fileSize).toBe(bytes.byteLength);
  });

  it('parses a space-padded bf16 shard and reads a tensor through a ByteSource', async () => {
    const bytes = fixtureBytes(`${TINY_MISTRAL}/model-00003-of-00003.safetensors`);
    const src = guardedSource(bytes, 'shard3');
    const f = await openSafetensors(src);
    expect(headerText(bytes).endsWith('       ')).toBe(true); // padded with spaces, as the library writes
    expect(f.header.headerLength % 8).toBe(0);
    const norm = f.info('model.layers.0.input_layernorm.weight');
    expect(norm).toMatchObject({ dtype: 'BF16', shape: [128], begin: 0, end: 256 });
    const raw = await f.read('model.layers.0.input_layernorm.weight');
    expect(raw.byteLength).toBe(256);
    const v = toFloat32(raw, 'BF16');
    // bf16 → f32 is exact: the low 16 bits of every value are zero, and the bits match the file.
    const bits = new Uint32Array(v.buffer);
    const file16 = new DataView(bytes.buffer, bytes.byteOffset + norm.offset, 256);
    for (let i = 0; i < 128; i++) expect(bits[i]).toBe(file16.getUint16(2 * i, true) << 16);
    // Randomised RMSNorm weights (fixtures README): not all ones.
    expect(new Set(v).size).toBeGreaterThan(10);
    // Only the 8-byte prefix, the header and the tensor were read.
    expect(src.reads).toEqual([
      [0, 8],
      [8, f.header.headerLength],
      [norm.offset, 256],
    ]);
  });

  it('parses the demo model (single 39.6 MB file) from a source without reading the data', async () => {
    const bytes = fixtureBytes(`${NANO_DEMO}/model.safetensors`);
    const src = guardedSource(bytes);
    const h = await parseSafetensorsHeader(src);
    expect(h.tensors.get('lm_head.weight')).toMatchObject({ dtype: 'BF16', shape: [32000, 256], begin: 0, end: 16384000 });
    expect(h.tensors.size).toBe(2 + 4 * 9 + 1);
    expect(src.reads.reduce((s, [, l]) => s + l, 0)).toBe(8 + h.headerLength);
  });

  it('reads mixed dtypes of the golden file (F64, F32, I32) with the right values', async () => {
    const bytes = fixtureBytes(`${FIXTURES}/golden_lora.safetensors`);
    const f = await openSafetensors(bytesSource(bytes, 'golden'));
    const ids = typedView(await f.read('input_ids'), 'I32');
    expect(f.info('input_ids').shape).toEqual([2, 24]);
    expect(ids.length).toBe(48);
    expect(ids.every((t) => t >= 0 && t < 32000)).toBe(true);
    const labels = typedView(await f.read('labels'), 'I32');
    expect([...labels].some((t) => t === -100)).toBe(true);
    const loss = toFloat32(await f.read('loss'), 'F32');
    expect(loss[0]).toBeGreaterThan(5); // random 32000-way model: near ln(32000) ≈ 10.4
    expect(loss[0]).toBeLessThan(15);
    const lse = f.info('logsumexp');
    expect(lse.dtype).toBe('F64');
    const lse64 = toFloat64(await f.read('logsumexp'), 'F64');
    expect(toFloat32(await f.read('logsumexp'), 'F64')).toEqual(Float32Array.from(lse64));
    expect(f.header.metadata?.lora).toMatch(/r=4 alpha=8/);
  });
});

describe('safetensors writer', () => {
  it('rewrites PyTorch-written files byte for byte (tensor order, header layout, padding)', async () => {
    // (tiny-adapter's header is no longer as the library writes it — re-serialised with spaces — so it is not here.)
    for (const path of [`${FIXTURES}/golden_lora.safetensors`, `${TINY_MISTRAL}/model-00003-of-00003.safetensors`]) {
      const bytes = fixtureBytes(path);
      const f = await openSafetensors(bytesSource(bytes));
      const tensors = await Promise.all(
        // Shuffle the input order: the writer must sort by dtype (descending) then name itself.
        f.names().reverse().map(async (name) => ({ ...f.info(name), data: await f.read(name) })),
      );
      const out = writeSafetensors(tensors, f.header.metadata);
      expect(out.byteLength).toBe(bytes.byteLength);
      expect(Buffer.from(out).equals(Buffer.from(bytes))).toBe(true);
    }
  });

  it('matches the reference serialisation of small examples', () => {
    const data = new Float32Array([0, 1, 2, 3, 4, 5]);
    const a = writeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data }]);
    expect(headerText(a)).toBe('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'); // 64 bytes, no padding
    expect(new Float32Array(a.slice(8 + 64).buffer)).toEqual(data);
    const b = writeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data }]);
    expect(headerText(b)).toBe('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ');
    expect(Array.from(writeSafetensors([]))).toEqual([8, 0, 0, 0, 0, 0, 0, 0, ...enc.encode('{}      ')]);
    expect(headerText(writeSafetensors([], { framework: 'pt' }))).toBe('{"__metadata__":{"framework":"pt"}}     ');
  });

  it('orders by descending dtype alignment, then by name (code point order), and round-trips', async () => {
    const items: { name: string; dtype: SafetensorsDtype; shape: number[]; data: Uint8Array }[] = [
      { name: 'b', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
      { name: 'a', dtype: 'BF16', shape: [2], data: fromFloat32([1.5, -2], 'BF16') },
      { name: 'z', dtype: 'I64', shape: [1], data: new Uint8Array(new BigInt64Array([-5n]).buffer) },
      { name: 'y', dtype: 'F64', shape: [], data: new Uint8Array(new Float64Array([Math.PI]).buffer) },
      { name: 'é', dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) },
      { name: 'e', dtype: 'F32', shape: [2], data: new Uint8Array(new Float32Array([7, 8]).buffer) },
      { name: '10', dtype: 'F16', shape: [1], data: fromFloat32([0.5], 'F16') },
      { name: 'c', dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
      { name: 'i8', dtype: 'I8', shape: [1], data: new Uint8Array([0xff]) },
    ];
    const out = writeSafetensors(items, { format: 'pt', note: 'ünïcode' });
    const h = parseSafetensorsHeaderBytes(out);
    expect([...h.tensors.keys()]).toEqual(['z', 'y', 'e', 'é', 'a', '10', 'i8', 'b', 'c']);
    expect(h.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
    expect(h.dataOffset % 8).toBe(0);
    const src = bytesSource(out);
    for (const it of items) {
      const info = h.tensors.get(it.name)!;
      expect(info.shape).toEqual(it.shape);
      expect(await readTensor(src, info)).toEqual(it.data);
    }
    expect(typedView(await readTensor(src, h.tensors.get('z')!), 'I64')[0]).toBe(-5n);
    expect(toFloat32(await readTensor(src, h.tensors.get('a')!), 'BF16')).toEqual(new Float32Array([1.5, -2]));
    expect(typedView(await readTensor(src, h.tensors.get('i8')!), 'I8')[0]).toBe(-1);
  });

  it('refuses inconsistent input', async () => {
    const d = new Uint8Array(4);
    expect((await errorOf(() => writeSafetensors([{ name: 'a', dtype: 'F32', shape: [2], data: d }]))).message).toMatch(/4 data bytes.*needs 8/);
    expect((await errorOf(() => writeSafetensors([{ name: 'a', dtype: 'F32', shape: [1], data: d }, { name: 'a', dtype: 'F32', shape: [1], data: d }]))).message).toMatch(/duplicate/);
    expect((await errorOf(() => writeSafetensors([{ name: '__metadata__', dtype: 'F32', shape: [1], data: d }]))).message).toMatch(/__metadata__/);
  });
});

describe('safetensors validation messages', () => {
  const good = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const data8 = new Uint8Array(8);
  const msg = async (file: Uint8Array): Promise<string> => {
    const e = await errorOf(() => parseSafetensorsHeader(guardedSource(file)));
    expect(e.kind).toBe('bad-input');
    // The in-memory path must agree with the source path.
    const e2 = await errorOf(() => parseSafetensorsHeaderBytes(file));
    expect(e2.message.replace(/^[^:]*: /, '')).toBe(e.message.replace(/^[^:]*: /, ''));
    return e.message;
  };

  it('accepts the baseline file', async () => {
    const h = await parseSafetensorsHeader(rawFile(good, data8));
    expect(h.tensors.get('a')?.numel).toBe(2);
    expect(h.metadata).toBeNull();
  });

  it('explains each kind of damage', async () => {
    expect(await msg(new Uint8Array(5))).toMatch(/5 bytes is shorter than the 8-byte header length/);
    expect(await msg(rawFile(good, data8, 2 ** 31))).toMatch(/header length 2147483648 is absurd/);
    const huge = rawFile(good, data8);
    huge[7] = 0x01; // high bits set: 2^56 + …
    expect(await msg(huge)).toMatch(/is absurd/);
    // 2^63 exactly, as the file says it (a double rounded it to 9223372036854776000).
    const top = rawFile(good, data8);
    top.set([0, 0, 0, 0, 0, 0, 0, 0x80], 0);
    expect(await msg(top)).toMatch(/header length 9223372036854775808 is absurd/);
    expect(await msg(rawFile(good, data8, 5000))).toMatch(/header length 5000 goes beyond the end of the file \(\d+ bytes\)/);
    const notUtf8 = rawFile('{}      ');
    notUtf8[9] = 0xff; // a byte that never occurs in UTF-8
    expect(await msg(notUtf8)).toMatch(/not valid UTF-8/);
    expect(await msg(rawFile('{"a": nope}'))).toMatch(/not valid JSON/);
    expect(await msg(rawFile('[1,2,3]   '))).toMatch(/not an object/);
    expect(await msg(rawFile('"str"'))).toMatch(/not an object/);
    expect(await msg(rawFile('{"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}}', data8))).toMatch(/tensor "a": unknown dtype "F128"/);
    expect(await msg(rawFile('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', data8))).toMatch(/shape must be a list of non-negative integers, got \[-2\]/);
    expect(await msg(rawFile('{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}', data8))).toMatch(/non-negative integers/);
    expect(await msg(rawFile('{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}', data8))).toMatch(/non-negative integers/);
    expect(await msg(rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}', data8))).toMatch(/data_offsets must be \[begin, end\]/);
    expect(await msg(rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}', data8))).toMatch(/data_offsets must be/);
    expect(await msg(rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":["0",8]}}', data8))).toMatch(/data_offsets must be/);
    expect(await msg(rawFile('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', data8))).toMatch(/hold 8 bytes but shape \[3\] of F32 needs 12 bytes/);
    expect(await msg(rawFile('{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}', data8))).toMatch(/impossible number of bytes/);
    expect(await msg(rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', new Uint8Array(3)))).toMatch(/truncated, 5 bytes missing/);
    expect(await msg(rawFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}', data8))).toMatch(
      /tensors "a" \[0, 8\) and "b" \[4, 8\) overlap/,
    );
    expect(await msg(rawFile('{"__metadata__":{"format":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', data8))).toMatch(/__metadata__\["format"\] must be a string/);
    expect(await msg(rawFile('{"__metadata__":["pt"]}'))).toMatch(/__metadata__ must be an object of strings/);
    expect(await msg(rawFile('{"a":[1,2]}'))).toMatch(/entry must be an object/);
  });

  it('reports overlaps hidden behind an empty tensor', async () => {
    const h = '{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"e":{"dtype":"U8","shape":[0],"data_offsets":[2,2]},"c":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}';
    expect(await msg(rawFile(h, data8))).toMatch(/"a" \[0, 8\) and "c" \[4, 6\) overlap/);
  });

  it('accepts empty tensors, scalars and gaps', async () => {
    const h = parseSafetensorsHeaderBytes(
      rawFile('{"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"t":{"dtype":"U8","shape":[1],"data_offsets":[12,13]}}', new Uint8Array(16)),
    );
    expect(h.tensors.get('s')?.numel).toBe(1);
    expect(h.tensors.get('e')?.numel).toBe(0);
    expect([...h.tensors.keys()]).toEqual(['e', 's', 't']);
  });
});

describe('dtype conversion', () => {
  it('f16 decode/encode round-trips all 65536 bit patterns (NaNs stay NaN)', () => {
    for (let h = 0; h < 65536; h++) {
      const x = f16BitsToF32(h);
      if (Number.isNaN(x)) {
        expect((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0).toBe(true);
        expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(x)))).toBe(true);
        continue;
      }
      expect(f32ToF16Bits(x)).toBe(h);
    }
  });

  it('f16 known values and rounding', () => {
    expect(f16BitsToF32(0x3c00)).toBe(1);
    expect(f16BitsToF32(0xc000)).toBe(-2);
    expect(f16BitsToF32(0x7bff)).toBe(65504);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds up past the largest finite half
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // tie at the smallest subnormal → even (0)
    expect(f32ToF16Bits(1.5 * 2 ** -25)).toBe(1);
    const bytes = fromFloat32([1, -0.5, 65504], 'F16');
    expect(toFloat32(bytes, 'F16')).toEqual(new Float32Array([1, -0.5, 65504]));
  });

  it('bf16 encode rounds to nearest even; decode is exact', () => {
    const x = new Float32Array([1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -3.140625, 1e-40, Infinity, NaN]);
    const back = toFloat32(fromFloat32(x, 'BF16'), 'BF16');
    expect(back[0]).toBe(1);
    expect(back[1]).toBe(1); // tie → even
    expect(back[2]).toBe(1 + 4 * 2 ** -8);
    expect(back[3]).toBe(-3.140625);
    expect(back[5]).toBe(Infinity);
    expect(Number.isNaN(back[6])).toBe(true);
  });

  it('handles unaligned bytes and refuses partial elements and non-float dtypes', async () => {
    const f = new Float32Array([1.25, -7]);
    const buf = new Uint8Array(9);
    buf.set(new Uint8Array(f.buffer), 1);
    expect(toFloat32(buf.subarray(1), 'F32')).toEqual(f);
    expect((await errorOf(() => toFloat32(new Uint8Array(3), 'F32'))).message).toMatch(/not a whole number of F32/);
    expect((await errorOf(() => toFloat32(new Uint8Array(4), 'I32'))).message).toMatch(/not a floating-point dtype/);
    expect(toFloat64(new Uint8Array(new Int32Array([-3, 9]).buffer), 'I32')).toEqual(new Float64Array([-3, 9]));
  });
});
