// The NF4 CPU reference (src/engine/reference/nf4.ts): tables, rounding rules, layout, and the PyTorch golden.
import { NF4_CODEBOOK, thresholds, NF4_THRESHOLDS, dynamicMap8, DYN8_TABLE, DYN8_THRESHOLDS } from '../../src/core/nf4-format.ts';
import { f16ArrayToF32, bf16ArrayToF32 } from '../../src/core/dtypes.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/engine/reference/common.ts';
import { absmaxSumRef, codeOf, dequantizeAbsmaxRef, dequantizeRef, divF32, doubleQuantRef, nf4CodeAt, nf4MatmulBackwardRef, nf4MatmulForwardRef, quantizeNf4Ref, quantizeRef } from '../../src/engine/reference/nf4.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const f = Math.fround;

/** The value of a WGSL hexadecimal float literal such as -0x1.647362p-1f. */
function hexFloat(lit: string): number {
  const m = /^(-?)0x([0-9a-f]+)(?:\.([0-9a-f]*))?p(-?\d+)f$/i.exec(lit);
  if (!m) throw new Error(`not a hex float: ${lit}`);
  const frac = m[3] ?? '';
  const mant = parseInt(m[2] + frac, 16) / 16 ** frac.length;
  return (m[1] ? -1 : 1) * mant * 2 ** Number(m[4]);
}

function wgslConstArray(file: string, name: string): number[] {
  const src = readFileSync(join(ROOT, 'shaders', file), 'utf8');
  const m = new RegExp(`const ${name} = array<f32, \\d+>\\(([^;]*)\\);`).exec(src);
  if (!m) throw new Error(`${file}: no const ${name}`);
  return m[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (s === '0.0f' ? 0 : hexFloat(s)));
}

describe('NF4 tables', () => {
  it('has the 16 QLoRA values, ascending from -1 to 1 with 0 at index 7', () => {
    expect(NF4_CODEBOOK.length).toBe(16);
    expect(NF4_CODEBOOK[0]).toBe(-1);
    expect(NF4_CODEBOOK[7]).toBe(0);
    expect(NF4_CODEBOOK[15]).toBe(1);
    expect(NF4_CODEBOOK[8]).toBe(f(0.07958029955625534));
    for (let i = 1; i < 16; i++) expect(NF4_CODEBOOK[i]).toBeGreaterThan(NF4_CODEBOOK[i - 1]);
  });

  it('puts each threshold at the fp32 midpoint of its neighbours', () => {
    expect(NF4_THRESHOLDS.length).toBe(15);
    for (let i = 0; i < 15; i++) expect(NF4_THRESHOLDS[i]).toBe(f((NF4_CODEBOOK[i] + NF4_CODEBOOK[i + 1]) / 2));
    expect(NF4_THRESHOLDS[7]).toBe(f(0.07958029955625534 / 2));
  });

  it('writes the same codebook and thresholds into the shaders (exact hexadecimal floats)', () => {
    expect(wgslConstArray('nf4_values.wgsl', 'NF4_VALUES')).toEqual([...NF4_CODEBOOK]);
    expect(wgslConstArray('nf4.wgsl', 'NF4_T')).toEqual([...NF4_THRESHOLDS]);
  });

  it('every shader that decodes NF4 codes takes the values from the one partial, none keeps its own copy', () => {
    for (const file of ['nf4.wgsl', 'nf4_matmul.wgsl', 'nf4_matvec.wgsl', 'matmul_tiled.wgsl', 'int8_matmul.wgsl']) {
      const src = readFileSync(join(ROOT, 'shaders', file), 'utf8');
      expect(src, file).toMatch(/^\/\/#include nf4_values$/m);
      expect(src, file).not.toMatch(/const \w+ = array<f32, 16>/);
    }
  });
});

describe("bitsandbytes' signed dynamic map (create_dynamic_map(signed=True))", () => {
  const t = dynamicMap8();

  it('has 256 strictly ascending fp32 values from -0.99296875 to 1 with 0 at index 127', () => {
    expect(t.length).toBe(256);
    for (let i = 1; i < 256; i++) expect(t[i]).toBeGreaterThan(t[i - 1]);
    for (const v of t) expect(f(v)).toBe(v);
    // Largest magnitude of band 6: mean of the last two points of linspace(0.1, 1, 65) = 1 - 0.9/128.
    expect(t[0]).toBe(f(-0.99296875));
    expect(t[254]).toBe(f(0.99296875));
    expect(t[255]).toBe(1);
    expect(t[127]).toBe(0);
  });

  it('is symmetric except for the appended 1.0', () => {
    for (let j = 0; j < 127; j++) expect(t[j]).toBe(-t[254 - j]);
  });

  it('holds 2^i values per exponent band i, each in (0.1·10^(i-6), 10^(i-6))', () => {
    const positives = [...t.slice(128, 255)];
    let at = 0;
    for (let i = 0; i < 7; i++) {
      const band = positives.slice(at, at + 2 ** i);
      at += 2 ** i;
      for (const v of band) {
        expect(v).toBeGreaterThan(0.1 * 10 ** (i - 6));
        expect(v).toBeLessThan(10 ** (i - 6));
      }
    }
    expect(at).toBe(127);
  });

  it('matches values worked out by hand from the formula', () => {
    // Band 0: linspace(0.1, 1, 2) has one mean, 0.55, scaled by 1e-6: the smallest positive value.
    expect(t[128]).toBe(f(0.55e-6));
    // Band 1: means of linspace(0.1, 1, 3) = [0.1, 0.55, 1] are 0.325 and 0.775, scaled by 1e-5.
    expect(t[129]).toBe(f(0.325e-6 * 10));
    expect(t[130]).toBe(f(0.775e-5));
    // Band 5: the 15th of 32 means of linspace(0.1, 1, 33) is 0.1 + 0.028125·14.5 = 0.5078125; × 0.1 = 13/256 exactly.
    expect(t[128 + 31 + 14]).toBe(0.05078125);
    // Band 6 starts at 0.1 + 0.9/128 = 0.10703125.
    expect(t[128 + 63]).toBe(f(0.10703125));
  });

  it('exports the table as fp32 with fp32 midpoints as thresholds', () => {
    expect([...DYN8_TABLE]).toEqual([...t]);
    expect(DYN8_THRESHOLDS.length).toBe(255);
    for (let i = 0; i < 255; i++) expect(DYN8_THRESHOLDS[i]).toBe(f((t[i] + t[i + 1]) / 2));
  });
});

describe('rounding rules', () => {
  it('divides with one fp32 rounding and flushes quotients under 2^-126', () => {
    expect(divF32(1, 3)).toBe(f(1 / 3));
    expect(divF32(f(0.1), f(0.3))).toBe(f(f(0.1) / f(0.3)));
    expect(divF32(-2, 4)).toBe(-0.5);
    expect(divF32(2 ** -100, 2 ** 30)).toBe(0);
    expect(divF32(5, 0)).toBe(0);
  });

  it('gives a value on a threshold the lower code and the next fp32 above it the higher', () => {
    const t = NF4_THRESHOLDS[9];
    const above = new Float32Array([t]);
    new Uint32Array(above.buffer)[0] += 1;
    expect(codeOf(t, NF4_THRESHOLDS)).toBe(9);
    expect(codeOf(above[0], NF4_THRESHOLDS)).toBe(10);
    expect(codeOf(-1, NF4_THRESHOLDS)).toBe(0);
    expect(codeOf(1, NF4_THRESHOLDS)).toBe(15);
    expect(codeOf(0, NF4_THRESHOLDS)).toBe(7);
    expect(codeOf(-0, NF4_THRESHOLDS)).toBe(7);
  });

  it('converts f16 and bf16 bit patterns exactly', () => {
    expect([...f16ArrayToF32(new Uint16Array([0x3c00, 0xc000, 0x0001, 0x03ff, 0x0400, 0x7bff, 0x8000]))]).toEqual([
      1,
      -2,
      2 ** -24,
      1023 * 2 ** -24,
      2 ** -14,
      65504,
      -0,
    ]);
    expect([...bf16ArrayToF32(new Uint16Array([0x3f80, 0xbf00, 0x0001]))]).toEqual([1, -0.5, 2 ** -133]);
  });
});

describe('NF4 quantisation (reference)', () => {
  it("packs bitsandbytes' byte stream: the first of two elements in the high nibble", () => {
    const w = new Float32Array(64);
    w[0] = 2; // absmax 2: code 15
    w[1] = -2; // code 0
    w[2] = 0; // code 7
    w[3] = 0.5; // 0.25 lies between 0.2461 (code 10) and 0.3379 (11), nearer 10
    const { codes, absmax } = quantizeNf4Ref(w, 1, 64);
    expect(absmax[0]).toBe(2);
    expect(codes[0]).toBe(0xf0);
    expect(codes[1]).toBe(0x7a);
    expect(nf4CodeAt(codes, 3)).toBe(10);
    expect(codes.length).toBe(32);
    expect(dequantizeRef({ rows: 1, cols: 64, codes, absmax, dq: null }).slice(0, 4)).toEqual(
      new Float32Array([2, -2, 0, f(NF4_CODEBOOK[10] * 2)]),
    );
  });

  it('uses one absmax per 64 consecutive values of the row-major weight', () => {
    const w = new Float32Array(2 * 128).map((_, i) => (i % 64 === 5 ? Math.floor(i / 64) + 1 : 0.01));
    expect([...quantizeNf4Ref(w, 2, 128).absmax]).toEqual([1, 2, 3, 4]);
  });

  it('rejects an input dimension that is not a multiple of 64', () => {
    expect(() => quantizeNf4Ref(new Float32Array(96), 1, 96)).toThrow(/multiple of 64/);
  });

  it('reproduces PyTorch’s NF4 round trip of every tiny-mistral projection exactly', () => {
    const fixtures = join(ROOT, 'test', 'fixtures');
    const read = (p: string) => {
      const file = readFileSync(p);
      const n = Number(file.readBigUInt64LE(0));
      const header = JSON.parse(file.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
      return { header, data: file.subarray(8 + n) };
    };
    const golden = read(join(fixtures, 'golden_qlora.safetensors'));
    const index = JSON.parse(readFileSync(join(fixtures, 'tiny-mistral', 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    let checked = 0;
    for (const key of Object.keys(golden.header).filter((k) => k.startsWith('nf4_dequant/'))) {
      const module = key.slice('nf4_dequant/'.length);
      const shard = read(join(fixtures, 'tiny-mistral', index.weight_map[module]));
      const e = shard.header[module];
      const [rows, cols] = e.shape;
      const bytes = new Uint8Array(shard.data.subarray(e.data_offsets[0], e.data_offsets[1]));
      const values = bf16ArrayToF32(new Uint16Array(bytes.buffer, 0, rows * cols));
      const g = golden.header[key];
      const want = new Uint32Array(new Uint8Array(golden.data.subarray(g.data_offsets[0], g.data_offsets[1])).buffer);
      const got = new Uint32Array(dequantizeRef(quantizeRef(values, rows, cols, false)).buffer);
      expect(got.length, module).toBe(want.length);
      let differ = 0;
      for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) differ++;
      expect(differ, module).toBe(0);
      checked++;
    }
    expect(checked).toBe(14);
  });
});

describe('double quantisation (reference)', () => {
  it('works a two-block example out by hand', () => {
    // offset = (0.5 + 1.5) / 2 = 1; v = [-0.5, 0.5]; scale = 0.5; v / scale = [-1, 1] → nearest codes 0 (-0.99296875) and 255 (1).
    const dq = doubleQuantRef(new Float32Array([0.5, 1.5]));
    expect(dq.offset).toBe(1);
    expect([...dq.scale]).toEqual([0.5]);
    expect([...dq.codes]).toEqual([0, 255]);
    expect([...dequantizeAbsmaxRef(dq)]).toEqual([f(f(DYN8_TABLE[0] * 0.5) + 1), 1.5]);
  });

  it('keeps one scale per 256 blocks and codes each block against its own group', () => {
    const r = mulberry32(1);
    const absmax = Float32Array.from({ length: 600 }, (_, i) => f((i < 256 ? 1 : 0.01) * (0.5 + r())));
    const dq = doubleQuantRef(absmax);
    expect(dq.scale.length).toBe(3);
    expect(dq.codes.length).toBe(600);
    const back = dequantizeAbsmaxRef(dq);
    for (let b = 0; b < 600; b++) {
      // The 8-bit map's worst relative step is about 1.4 % of the group's scale, half of that is the error bound.
      expect(Math.abs(back[b] - absmax[b])).toBeLessThanOrEqual(dq.scale[Math.floor(b / 256)] * 0.0071 + 1e-7);
    }
  });

  it('sums absmax in the GPU’s tree order (exact for small integers, fp32 otherwise)', () => {
    const ints = Float32Array.from({ length: 70000 }, (_, i) => i % 7);
    let exact = 0;
    for (const v of ints) exact += v;
    expect(absmaxSumRef(ints)).toBe(exact);
    const tiny = new Float32Array([1, 2 ** -30, 2 ** -30]);
    // Tree: (1 + 2^-30) rounds to 1, then + (2^-30 + 0) → 1; a different order (small ones first) would give 1 + 2^-29.
    expect(absmaxSumRef(tiny)).toBe(1);
  });
});

describe('products with a dequantised weight (reference)', () => {
  it('forward is X · deq(W)ᵀ and backward dY · deq(W)', () => {
    const [M, N, K] = [3, 2, 64];
    const r = mulberry32(2);
    const w = Float32Array.from({ length: N * K }, () => r() - 0.5);
    const q = quantizeRef(w, N, K, true);
    const deq = dequantizeRef(q);
    const X = Float32Array.from({ length: M * K }, () => r() - 0.5);
    const dY = Float32Array.from({ length: M * N }, () => r() - 0.5);
    const Y = nf4MatmulForwardRef(X, q, M);
    const dX = nf4MatmulBackwardRef(dY, q, M);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += X[m * K + k] * deq[n * K + k];
        expect(Y[m * N + n]).toBeCloseTo(s, 12);
      }
      for (let k = 0; k < K; k++) {
        let s = 0;
        for (let n = 0; n < N; n++) s += dY[m * N + n] * deq[n * K + k];
        expect(dX[m * K + k]).toBeCloseTo(s, 12);
      }
    }
  });
});
