// GGUF writer/reader and the LoRA export for llama.cpp. The format is checked against a file assembled byte by byte
// here; the q/k row permutation against a generic float64 reshape/swapaxes; the exported adapter by applying it the
// way llama.cpp does (ggml_mul_mat over ne-ordered tensors, scale alpha / r) to a permuted base.
import { ggufTensorF32, readGguf, type GgufFile, type GgufTensorInfo } from '../../helpers/gguf-reader.ts';
import { f16BitsToF32, f32ToF16Bits } from '../../../src/core/dtypes.ts';
import { PROJECTIONS, type Projection } from '../../../src/core/mistral.ts';
import { describe, expect, it } from 'vitest';
import {
  GgmlType,
  GgufType,
  ggufLoraAlpha,
  ggufLoraName,
  kvArray,
  kvBool,
  kvF32,
  kvI32,
  kvString,
  kvU32,
  kvU64,
  ggufHeaderString,
  loraToGguf,
  permuteQkRows,
  writeGguf,
  type GgufKv,
} from '../../../src/export/index.ts';
import { mulberry32 } from '../../../src/engine/reference/common.ts';
import { createAdapter, parseAdapter, type LoraAdapter } from '../../../src/model/lora-adapter.ts';
import { moduleShape } from '../../../src/model/checkpoint.ts';
import { parseMistralConfig, type MistralConfig } from '../../../src/model/config.ts';
import { errorOf, fixtureBytes, fixtureJson, TINY_ADAPTER, TINY_MISTRAL } from '../model/helpers.ts';

const tinyBase = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));

async function fixtureAdapter(): Promise<LoraAdapter> {
  return parseAdapter(fixtureJson(`${TINY_ADAPTER}/adapter_config.json`), fixtureBytes(`${TINY_ADAPTER}/adapter_model.safetensors`), { base: tinyBase });
}

// ---------------------------------------------------------------------------------------------------------------
// Independent helpers

/** A little-endian byte assembler for hand-made files. */
class Bytes {
  out: number[] = [];
  u8(v: number): this {
    this.out.push(v & 0xff);
    return this;
  }
  u32(v: number): this {
    for (let i = 0; i < 4; i++) this.out.push((v >>> (8 * i)) & 0xff);
    return this;
  }
  u64(v: number | bigint): this {
    let b = BigInt(v);
    for (let i = 0; i < 8; i++) {
      this.out.push(Number(b & 0xffn));
      b >>= 8n;
    }
    return this;
  }
  f32(v: number): this {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setFloat32(0, v, true);
    for (let i = 0; i < 4; i++) this.out.push(dv.getUint8(i));
    return this;
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    for (const x of b) this.out.push(x);
    return this;
  }
  ascii(s: string): this {
    for (const ch of s) this.out.push(ch.charCodeAt(0));
    return this;
  }
  padTo(a: number): this {
    while (this.out.length % a) this.out.push(0);
    return this;
  }
  bytes(): Uint8Array {
    return new Uint8Array(this.out);
  }
}

/** Row-major (C order) swapaxes of an n-d array: a generic float64 reference for numpy/torch swapaxes. */
function swapaxes(data: Float64Array, shape: number[], a1: number, a2: number): { data: Float64Array; shape: number[] } {
  const newShape = [...shape];
  [newShape[a1], newShape[a2]] = [newShape[a2], newShape[a1]];
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));
  const out = new Float64Array(data.length);
  const idx = new Array<number>(newShape.length).fill(0);
  for (let k = 0; k < out.length; k++) {
    const old = [...idx];
    [old[a1], old[a2]] = [old[a2], old[a1]];
    out[k] = data[old.reduce((s, v, i) => s + v * strides[i], 0)];
    for (let d = newShape.length - 1; d >= 0; d--) {
      if (++idx[d] < newShape[d]) break;
      idx[d] = 0;
    }
  }
  return { data: out, shape: newShape };
}

/** convert_hf_to_gguf.py LlamaModel.permute: reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols). */
function permuteReference(w: Float64Array, rows: number, cols: number, nHead: number): Float64Array {
  // A reshape of a contiguous array only reinterprets the shape.
  return swapaxes(w, [nHead, 2, rows / nHead / 2, cols], 1, 2).data;
}

/** ggml_mul_mat(w, x) for a 2-D w (ne [n0, n1]) and a vector x of n0: out[i1] = Σ_i0 w[i1·n0 + i0] · x[i0]. */
function ggmlMulMat(w: { ne: number[]; data: ArrayLike<number> }, x: ArrayLike<number>): Float64Array {
  const [n0, n1] = w.ne;
  expect(x.length).toBe(n0);
  const out = new Float64Array(n1);
  for (let i1 = 0; i1 < n1; i1++) {
    let s = 0;
    for (let i0 = 0; i0 < n0; i0++) s += w.data[i1 * n0 + i0] * x[i0];
    out[i1] = s;
  }
  return out;
}

/** (rows, cols) row-major times a vector, float64. */
function matVec(m: ArrayLike<number>, rows: number, cols: number, x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += m[i * cols + j] * x[j];
    out[i] = s;
  }
  return out;
}

function randomF64(n: number, rnd: () => number): Float64Array {
  return Float64Array.from({ length: n }, () => rnd() * 2 - 1);
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m / (scale || 1);
}

function tensor(f: GgufFile, name: string): GgufTensorInfo {
  const t = f.tensors.get(name);
  if (!t) throw new Error(`no tensor ${name}`);
  return t;
}

function kvValue(f: GgufFile, key: string): GgufKv {
  const kv = f.kv.get(key);
  if (!kv) throw new Error(`no key ${key}`);
  return kv;
}

// ---------------------------------------------------------------------------------------------------------------

describe('GGUF writer and reader', () => {
  it('writes exactly the bytes of a hand-assembled v3 file and reads them back', () => {
    const data = new Float32Array([1.5, -2, 3.25, 0, 7, -0.5]); // shape (2, 3) → ne [3, 2]
    const half = new Uint16Array([f32ToF16Bits(0.5), f32ToF16Bits(-4)]); // shape (2,) → ne [2]
    const written = writeGguf(
      [kvString('general.architecture', 'llama'), kvU32('n', 7), kvF32('x', 0.25), kvBool('flag', true)],
      [
        { name: 'w', shape: [2, 3], type: GgmlType.F32, data },
        { name: 'h', shape: [2], type: GgmlType.F16, data: half },
      ],
    );
    const b = new Bytes().ascii('GGUF').u32(3).u64(2).u64(4);
    b.str('general.architecture').u32(8).str('llama');
    b.str('n').u32(4).u32(7);
    b.str('x').u32(6).f32(0.25);
    b.str('flag').u32(7).u8(1);
    b.str('w').u32(2).u64(3).u64(2).u32(0).u64(0);
    b.str('h').u32(1).u64(2).u32(1).u64(32); // 24 bytes of w, padded to 32
    b.padTo(32);
    const dataStart = b.out.length;
    for (const v of data) b.f32(v);
    b.padTo(32);
    for (const v of half) b.u8(v & 0xff).u8(v >> 8);
    b.padTo(32);
    expect(written).toEqual(b.bytes());

    const f = readGguf(written);
    expect(f.version).toBe(3);
    expect(f.alignment).toBe(32);
    expect(f.dataOffset).toBe(dataStart);
    expect([...f.kv.keys()]).toEqual(['general.architecture', 'n', 'x', 'flag']);
    expect(kvValue(f, 'general.architecture')).toEqual({ key: 'general.architecture', type: GgufType.STRING, value: 'llama' });
    expect(kvValue(f, 'x').value).toBe(0.25);
    expect(kvValue(f, 'flag').value).toBe(true);
    const w = tensor(f, 'w');
    expect(w).toMatchObject({ ne: [3, 2], shape: [2, 3], type: GgmlType.F32, numel: 6, offset: 0, byteLength: 24 });
    expect(ggufTensorF32(w)).toEqual(data);
    const h = tensor(f, 'h');
    expect(h).toMatchObject({ ne: [2], shape: [2], type: GgmlType.F16, offset: 32, byteLength: 4 });
    expect(Array.from(ggufTensorF32(h))).toEqual([0.5, -4]);
  });

  it('round-trips every value type, nested arrays, 64-bit integers and a custom alignment', () => {
    const kvs: GgufKv[] = [
      kvU32('general.alignment', 64),
      { key: 'u8', type: GgufType.UINT8, value: 255 },
      { key: 'i8', type: GgufType.INT8, value: -128 },
      { key: 'u16', type: GgufType.UINT16, value: 65535 },
      { key: 'i16', type: GgufType.INT16, value: -32768 },
      { key: 'i32', type: GgufType.INT32, value: -2147483648 },
      { key: 'f64', type: GgufType.FLOAT64, value: Math.PI },
      kvU64('u64', 0xfedcba9876543210n),
      { key: 'i64', type: GgufType.INT64, value: -(2n ** 63n) },
      kvString('unicode', 'Mistral ✓ ünïcødé 🦙'),
      kvArray('tokens', GgufType.STRING, ['<unk>', '<s>', '</s>', '']),
      kvArray('nested', GgufType.ARRAY, [
        { itemType: GgufType.INT32, values: [1, -2, 3] },
        { itemType: GgufType.BOOL, values: [] },
      ]),
      kvBool('no', false),
    ];
    const rnd = mulberry32(3);
    const q8 = new Uint8Array(34 * 2).map(() => Math.floor(rnd() * 256)); // Q8_0: 2 blocks of 32
    const bytes = writeGguf(kvs, [
      { name: 'a', shape: [5], type: GgmlType.F32, data: new Float32Array([1, 2, 3, 4, 5]) },
      { name: 'q', shape: [1, 64], type: GgmlType.Q8_0, data: q8 },
    ]);
    const f = readGguf(bytes);
    expect(f.alignment).toBe(64);
    expect(f.dataOffset % 64).toBe(0);
    expect([...f.kv.values()]).toEqual(kvs);
    expect(tensor(f, 'q')).toMatchObject({ offset: 64, byteLength: 68, ne: [64, 1] });
    expect(tensor(f, 'q').data).toEqual(q8);
    expect(bytes.length % 64).toBe(0);
  });

  it('refuses malformed files with FinetuneError("bad-input") naming the problem', async () => {
    const good = writeGguf([kvString('k', 'v')], [{ name: 't', shape: [4], type: GgmlType.F32, data: new Float32Array(4) }]);
    const mutate = (fn: (b: Uint8Array, dv: DataView) => void): Uint8Array => {
      const b = good.slice();
      fn(b, new DataView(b.buffer));
      return b;
    };
    const cases: [string, Uint8Array, RegExp][] = [
      ['empty', new Uint8Array(0), /file ends/],
      ['bad magic', mutate((b) => (b[0] = 0x46)), /not a GGUF file/],
      ['version 1', mutate((_, dv) => dv.setUint32(4, 1, true)), /version 1 is not supported/],
      ['huge tensor count', mutate((_, dv) => dv.setBigUint64(8, 2n ** 40n, true)), /cannot fit/],
      ['u64 past 2^53', mutate((_, dv) => dv.setBigUint64(16, 2n ** 60n, true)), /implausibly large/],
      ['truncated', good.subarray(0, good.length - 20), /runs past the end/],
      ['truncated header', good.subarray(0, 75), /file ends inside t offset/],
      ['unknown value type', mutate((_, dv) => dv.setUint32(24 + 9, 13, true)), /unknown value type 13/],
    ];
    // The tensor info: after the KV (8+1 key, 4 type, 8+1 value) = 24 + 22 = 46: name (8+1), n_dims, ne, type, offset.
    const info = 24 + 9 + 4 + 9;
    cases.push(['zero dims', mutate((_, dv) => dv.setUint32(info + 9, 0, true)), /0 dimensions/]);
    cases.push(['five dims', mutate((_, dv) => dv.setUint32(info + 9, 5, true)), /5 dimensions/]);
    cases.push(['unknown ggml type', mutate((_, dv) => dv.setUint32(info + 9 + 4 + 8, 99, true)), /unsupported ggml type 99/]);
    cases.push(['Q8_0 row of 4', mutate((_, dv) => dv.setUint32(info + 9 + 4 + 8, GgmlType.Q8_0, true)), /not a multiple of the Q8_0 block size 32/]);
    cases.push(['misplaced offset', mutate((_, dv) => dv.setBigUint64(info + 9 + 4 + 8 + 4, 32n, true)), /expected 0/]);
    cases.push(['bad UTF-8 key', mutate((b) => (b[24 + 8] = 0xff)), /not valid UTF-8/]);
    const two = writeGguf([kvBool('a', true), kvBool('b', true)], []);
    const dupKey = two.slice();
    dupKey[24 + 8 + 1 + 4 + 1 + 8] = 'a'.charCodeAt(0);
    cases.push(['duplicate key', dupKey, /duplicate key "a"/]);
    const badBool = two.slice();
    badBool[24 + 8 + 1 + 4] = 2;
    cases.push(['bool 2', badBool, /boolean byte 2/]);
    const align = writeGguf([kvU32('general.alignment', 32)], []);
    cases.push(['alignment 48', (() => { const b = align.slice(); new DataView(b.buffer).setUint32(24 + 8 + 17 + 4, 48, true); return b; })(), /power of two/]);

    for (const [what, bytes, re] of cases) {
      const e = await errorOf(() => readGguf(bytes));
      expect(e.kind, what).toBe('bad-input');
      expect(e.message, what).toMatch(re);
    }
    expect(() => readGguf(good)).not.toThrow();
  });

  it('refuses to write what llama.cpp could not load', () => {
    const f32 = (n: number): Float32Array => new Float32Array(n);
    expect(() => writeGguf([kvU32('a', 1), kvU32('a', 2)], [])).toThrow(/duplicate key/);
    expect(() => writeGguf([], [{ name: 'x'.repeat(64), shape: [1], type: GgmlType.F32, data: f32(1) }])).toThrow(/1–63 bytes/);
    expect(() => writeGguf([], [{ name: 't', shape: [2, 2], type: GgmlType.F32, data: f32(3) }])).toThrow(/12 data bytes/);
    expect(() => writeGguf([], [{ name: 't', shape: [1, 1, 1, 1, 1], type: GgmlType.F32, data: f32(1) }])).toThrow(/5 dimensions/);
    expect(() => writeGguf([{ key: 'u', type: GgufType.UINT32, value: -1 }], [])).toThrow(/does not fit/);
    expect(() => writeGguf([{ key: 'u', type: GgufType.UINT64, value: 5 }], [])).toThrow(/does not fit/);
    expect(() => writeGguf([kvU32('general.alignment', 24)], [])).toThrow(/power of two/);
  });
});

describe('permuteQkRows', () => {
  it('equals reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols) on small shapes', () => {
    const rnd = mulberry32(11);
    for (const [nHead, hd, cols] of [
      [1, 2, 1],
      [1, 8, 3],
      [2, 4, 5],
      [3, 6, 2],
      [8, 16, 4],
      [2, 10, 7],
    ]) {
      const rows = nHead * hd;
      const m = randomF64(rows * cols, rnd).map(Math.fround);
      const got = permuteQkRows(Float32Array.from(m), rows, cols, nHead);
      expect(Array.from(got), `${nHead}×${hd}×${cols}`).toEqual(Array.from(permuteReference(m, rows, cols, nHead)));
    }
  });

  it('turns HF rotate_half RoPE into llama.cpp’s adjacent-pair RoPE (and its inverse would not)', () => {
    // For q = W x: P·rope_hf(q) must equal rope_norm(P·q), per head, for every position.
    const nHead = 2;
    const hd = 8;
    const theta = 10000;
    const ropeHf = (q: Float64Array, pos: number): Float64Array => {
      const out = new Float64Array(q.length);
      const half = hd / 2;
      for (let h = 0; h < nHead; h++) {
        for (let i = 0; i < half; i++) {
          const a = pos * theta ** (-(2 * i) / hd);
          const x1 = q[h * hd + i];
          const x2 = q[h * hd + i + half];
          out[h * hd + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
          out[h * hd + i + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
        }
      }
      return out;
    };
    const ropeNorm = (q: Float64Array, pos: number): Float64Array => {
      const out = new Float64Array(q.length);
      for (let h = 0; h < nHead; h++) {
        for (let i = 0; i < hd / 2; i++) {
          const a = pos * theta ** (-(2 * i) / hd);
          const x0 = q[h * hd + 2 * i];
          const x1 = q[h * hd + 2 * i + 1];
          out[h * hd + 2 * i] = x0 * Math.cos(a) - x1 * Math.sin(a);
          out[h * hd + 2 * i + 1] = x0 * Math.sin(a) + x1 * Math.cos(a);
        }
      }
      return out;
    };
    const rows = nHead * hd;
    const P = (v: Float64Array): Float64Array => Float64Array.from(permuteQkRows(Float32Array.from(v), rows, 1, nHead));
    const Pinv = (v: Float64Array): Float64Array => {
      const p = P(Float64Array.from({ length: rows }, (_, i) => i));
      const out = new Float64Array(rows);
      p.forEach((src, dst) => (out[src] = v[dst]));
      return out;
    };
    const rnd = mulberry32(5);
    const q = Float64Array.from(randomF64(rows, rnd), Math.fround);
    for (const pos of [1, 3, 17]) {
      expect(maxRel(ropeNorm(P(q), pos), P(ropeHf(q, pos)))).toBeLessThan(1e-6);
      expect(maxRel(ropeNorm(Pinv(q), pos), Pinv(ropeHf(q, pos)))).toBeGreaterThan(1e-2);
    }
  });
});

describe('loraToGguf', () => {
  it('writes the llama.cpp adapter KVs and blk.N.*.weight.lora_a/lora_b with llama.cpp’s shapes', async () => {
    const a = await fixtureAdapter();
    const f = readGguf(loraToGguf(a, tinyBase));
    expect(f.version).toBe(3);
    expect(kvValue(f, 'general.architecture')).toMatchObject({ type: GgufType.STRING, value: 'llama' });
    expect(kvValue(f, 'general.type')).toMatchObject({ type: GgufType.STRING, value: 'adapter' });
    expect(kvValue(f, 'adapter.type')).toMatchObject({ type: GgufType.STRING, value: 'lora' });
    expect(kvValue(f, 'adapter.lora.alpha')).toMatchObject({ type: GgufType.FLOAT32, value: 8 });
    expect(kvValue(f, 'general.name')).toMatchObject({ type: GgufType.STRING, value: 'LoRA adapter for tiny-mistral' });

    const expected = new Set<string>();
    for (let l = 0; l < 2; l++) {
      for (const t of ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down']) {
        expected.add(`blk.${l}.${t}.weight.lora_a`);
        expected.add(`blk.${l}.${t}.weight.lora_b`);
      }
    }
    expect(new Set(f.tensors.keys())).toEqual(expected);

    const r = 4;
    for (let l = 0; l < 2; l++) {
      for (const m of PROJECTIONS) {
        const [out, inn] = moduleShape(tinyBase, m);
        const ta = tensor(f, ggufLoraName(l, m, 'a'));
        const tb = tensor(f, ggufLoraName(l, m, 'b'));
        expect(ta.type).toBe(GgmlType.F32);
        // llama-adapter.cpp: model ne [in, out]; a.ne[0] == in, b.ne[1] == out, a.ne[1] == b.ne[0] (= r).
        expect(ta.ne).toEqual([inn, r]);
        expect(tb.ne).toEqual([r, out]);
        const p = a.tensors[l][m]!;
        expect(ggufTensorF32(ta)).toEqual(p.A);
        const nHead = m === 'q_proj' ? tinyBase.heads : m === 'k_proj' ? tinyBase.kvHeads : 0;
        const wantB = nHead ? Float32Array.from(permuteReference(Float64Array.from(p.B), out, r, nHead)) : p.B;
        expect(ggufTensorF32(tb), `${m} ${l}`).toEqual(wantB);
        if (nHead) expect(ggufTensorF32(tb)).not.toEqual(p.B);
      }
    }
  });

  it('applied the llama.cpp way to the permuted base, it gives the permuted PEFT-adapted output', async () => {
    // llama.cpp: y = W' x + (alpha / r) · mul_mat(lora_b, mul_mat(lora_a, x)) with W' the GGUF (row-permuted for q/k)
    // base. PEFT: y = (W + scaling · B A) x. They must agree up to the same row permutation: P(W + sBA) = PW + s(PB)A.
    const a = await fixtureAdapter();
    const rnd = mulberry32(21);
    for (const a2 of [a, rsloraAdapter(tinyBase, rnd)]) {
      const f = readGguf(loraToGguf(a2, tinyBase));
      const alpha = kvValue(f, 'adapter.lora.alpha').value as number;
      for (const m of PROJECTIONS) {
        const p = a2.tensors[1][m];
        if (!p) continue;
        const [out, inn] = moduleShape(tinyBase, m);
        const r = a2.config.r;
        const W = randomF64(out * inn, rnd);
        const nHead = m === 'q_proj' ? tinyBase.heads : m === 'k_proj' ? tinyBase.kvHeads : 0;
        const permute = (v: Float64Array, cols: number): Float64Array => (nHead ? permuteReference(v, out, cols, nHead) : v);
        const x = randomF64(inn, rnd);

        const bax = matVec(p.B, out, r, matVec(p.A, r, inn, x));
        const hf = matVec(W, out, inn, x).map((y, i) => y + a2.scaling * bax[i]);
        const ta = tensor(f, ggufLoraName(1, m, 'a'));
        const tb = tensor(f, ggufLoraName(1, m, 'b'));
        const scale = alpha / tb.ne[0]; // llama_adapter_lora_weight::get_scale: alpha / b->ne[0]
        const lora = ggmlMulMat({ ne: tb.ne, data: ggufTensorF32(tb) }, ggmlMulMat({ ne: ta.ne, data: ggufTensorF32(ta) }, x));
        const llama = ggmlMulMat({ ne: [inn, out], data: permute(W, inn) }, x).map((y, i) => y + scale * lora[i]);
        expect(maxRel(llama, permute(hf, 1)), `${m} rslora=${a2.config.useRslora}`).toBeLessThan(1e-6);
      }
    }
  });

  it('preserves PEFT’s rsLoRA scale alpha/√r: writes alpha·√r since llama.cpp divides by r', () => {
    const a = rsloraAdapter(tinyBase, mulberry32(2));
    expect(a.config).toMatchObject({ r: 5, loraAlpha: 3, useRslora: true });
    expect(ggufLoraAlpha(a.config)).toBeCloseTo(3 * Math.sqrt(5), 12);
    const f = readGguf(loraToGguf(a, tinyBase));
    const alpha = kvValue(f, 'adapter.lora.alpha').value as number;
    expect(alpha).toBe(Math.fround(3 * Math.sqrt(5)));
    expect(Math.abs(alpha / 5 - 3 / Math.sqrt(5)) / (3 / Math.sqrt(5))).toBeLessThan(1e-7);
    expect(ggufLoraAlpha({ r: 5, loraAlpha: 3, useRslora: false })).toBe(3);
    // Only the adapted modules are written.
    expect(new Set([...f.tensors.keys()].map((n) => n.split('.')[2]))).toEqual(new Set(['attn_q', 'attn_k', 'ffn_down']));
  });

  it('writes F16 tensors when asked (values rounded to half) and a custom name; output is deterministic', async () => {
    const a = await fixtureAdapter();
    const bytes = loraToGguf(a, tinyBase, { dtype: 'F16', name: 'my adapter' });
    expect(loraToGguf(a, tinyBase, { dtype: 'F16', name: 'my adapter' })).toEqual(bytes);
    const f = readGguf(bytes);
    expect(kvValue(f, 'general.name').value).toBe('my adapter');
    expect(kvValue(f, 'general.file_type').value).toBe(1);
    const t = tensor(f, ggufLoraName(0, 'v_proj', 'a'));
    expect(t.type).toBe(GgmlType.F16);
    expect(t.byteLength).toBe(2 * t.numel);
    expect(Array.from(ggufTensorF32(t))).toEqual(Array.from(a.tensors[0].v_proj!.A, (v) => f16BitsToF32(f32ToF16Bits(v))));
  });

  it('refuses an adapter that does not fit the base model, or holds nothing', async () => {
    const a = await fixtureAdapter();
    const wide: MistralConfig = { ...tinyBase, hidden: 256 };
    const e = await errorOf(() => loraToGguf(a, wide));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(/wrong base model/);
    const shallow: MistralConfig = { ...tinyBase, layers: 1 };
    expect((await errorOf(() => loraToGguf(a, shallow))).message).toMatch(/layer 1, but the base model has 1 layer$/);
    const empty: LoraAdapter = { ...a, tensors: a.tensors.map(() => ({})) };
    expect((await errorOf(() => loraToGguf(empty, tinyBase))).message).toMatch(/no LoRA tensors/);
  });

  it('exports a Mistral-7B-shaped adapter (GQA ×4, head_dim 128) with consistent names and sizes', () => {
    const mistral: MistralConfig = { ...tinyBase, hidden: 4096, intermediate: 14336, layers: 2, heads: 32, kvHeads: 8, headDim: 128 };
    const a = createAdapter(mistral, { r: 2, alpha: 16, targetModules: ['q_proj', 'k_proj'], random: mulberry32(9) });
    const rnd = mulberry32(10);
    for (const layer of a.tensors) for (const p of Object.values(layer)) p.B.forEach((_, i) => (p.B[i] = rnd()));
    const f = readGguf(loraToGguf(a, mistral));
    expect(tensor(f, 'blk.1.attn_q.weight.lora_b').ne).toEqual([2, 4096]);
    expect(tensor(f, 'blk.1.attn_k.weight.lora_b').ne).toEqual([2, 1024]);
    expect(tensor(f, 'blk.1.attn_k.weight.lora_a').ne).toEqual([4096, 2]);
    const kb = ggufTensorF32(tensor(f, 'blk.1.attn_k.weight.lora_b'));
    expect(kb).toEqual(Float32Array.from(permuteReference(Float64Array.from(a.tensors[1].k_proj!.B), 1024, 2, 8)));
  });
});

/** rsLoRA r=5 alpha=3 on q, k, down with random B. */
function rsloraAdapter(base: MistralConfig, rnd: () => number): LoraAdapter {
  const mods: Projection[] = ['q_proj', 'k_proj', 'down_proj'];
  const a = createAdapter(base, { r: 5, alpha: 3, targetModules: mods, useRslora: true, random: rnd });
  for (const layer of a.tensors) for (const p of Object.values(layer)) for (let i = 0; i < p.B.length; i++) p.B[i] = rnd() - 0.5;
  return a;
}

describe('ggufHeaderString', () => {
  it('finds every string KV the strict reader finds, past scalars, strings and nested arrays, and null where the bytes end first', () => {
    const kvs = [
      kvU32('a.u32', 7),
      kvF32('a.f32', 1.5),
      kvBool('a.bool', true),
      kvU64('a.u64', 2n ** 40n),
      kvArray('a.nested', GgufType.ARRAY, [{ itemType: GgufType.STRING, values: ['x', 'yy'] }, { itemType: GgufType.INT32, values: [1, 2, 3] }]),
      kvArray('a.strings', GgufType.STRING, ['é', '', 'three']),
      kvString('general.type', 'adapter'),
      kvI32('a.i32', -4),
      kvString('general.name', 'naïve name'),
    ];
    const file = writeGguf(kvs, []);
    const strict = readGguf(file);
    for (const kv of kvs) {
      const want = strict.kv.get(kv.key);
      expect(ggufHeaderString(file, kv.key)).toBe(want?.type === GgufType.STRING ? want.value : null);
    }
    expect(ggufHeaderString(file, 'absent')).toBeNull();
    // general.name's bytes are the header's last: one byte short of them, it is not found (nothing is guessed).
    const name = new TextEncoder().encode('naïve name');
    const nameEnd = file.findIndex((_, i) => name.every((b, j) => file[i + j] === b)) + name.length - 1;
    expect(nameEnd).toBeGreaterThan(name.length);
    expect(ggufHeaderString(file.subarray(0, nameEnd + 1), 'general.name')).toBe('naïve name');
    expect(ggufHeaderString(file.subarray(0, nameEnd), 'general.name')).toBeNull();
    expect(ggufHeaderString(new TextEncoder().encode('GGUF but not one'), 'general.type')).toBeNull();
    expect(ggufHeaderString(new TextEncoder().encode('{"a":1}'), 'general.type')).toBeNull();
  });
});
