import { NF4_THRESHOLDS, type Nf4Host } from '../../src/core/nf4-format.ts';
import { f16ArrayToF32, bf16ArrayToF32 } from '../../src/core/dtypes.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import { isFinetuneError } from '../../src/core/errors.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import {
  nf4_absmax_mean,
  nf4_dequantize,
  nf4_destroy,
  nf4_download,
  nf4_quantize,
  nf4_upload,
  type Nf4SourceDtype,
  type Nf4Weight,
} from '../../src/engine/kernels/nf4.ts';
import { mulberry32 } from '../../src/engine/reference/common.ts';
import { absmaxSumRef, dequantizeRef, divF32, quantizeRef } from '../../src/engine/reference/nf4.ts';
import { gpuContext } from './context.ts';

/** Equal bit patterns, reporting the first difference. */
function expectSameBits(got: ArrayBufferView, want: ArrayBufferView, what: string): void {
  const a = new Uint8Array(got.buffer, got.byteOffset, got.byteLength);
  const b = new Uint8Array(want.buffer, want.byteOffset, want.byteLength);
  expect(a.length, `${what}: length`).toBe(b.length);
  let first = -1;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      if (first < 0) first = i;
      count++;
    }
  }
  expect(first < 0 ? '' : `${count} bytes differ, first at byte ${first}`, what).toBe('');
}

function expectSameHost(got: Nf4Host, want: Nf4Host): void {
  expectSameBits(got.codes, want.codes, 'codes');
  if (want.dq) {
    expect(got.dq).not.toBeNull();
    expectSameBits(got.dq!.codes, want.dq.codes, 'dq codes');
    expectSameBits(got.dq!.scale, want.dq.scale, 'dq scale');
    expectSameBits(new Float32Array([got.dq!.offset]), new Float32Array([want.dq.offset]), 'dq offset');
    expectSameBits(got.dq!.table, want.dq.table, 'dq table');
  } else {
    expectSameBits(got.absmax!, want.absmax!, 'absmax');
  }
}

/** Weights whose rows have very different magnitudes (as real projections do), so the block scales vary. */
function weights(rows: number, cols: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const scale = 0.002 + r() * r() * 0.2;
    for (let j = 0; j < cols; j++) {
      // Roughly normal: the sum of three uniforms.
      w[i * cols + j] = (r() + r() + r() - 1.5) * scale;
    }
  }
  return w;
}

/** Packs 16-bit patterns two per u32, first element in the low half (little-endian file order). */
function packHalves(bits: Uint16Array): Uint32Array {
  return new Uint32Array(bits.buffer.slice(bits.byteOffset, bits.byteOffset + bits.byteLength));
}

function bf16Bits(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer.slice(0));
  return Uint16Array.from(u, (v) => (v + 0x7fff + ((v >>> 16) & 1)) >>> 16);
}

function nextUp(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if (x === 0) return 2 ** -149;
  u[0] += x > 0 ? 1 : -1;
  return f[0];
}

function nextDown(x: number): number {
  return -nextUp(-x);
}

describe('nf4 quantisation on the GPU equals the CPU reference bit for bit', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  async function roundTrip(src: ArrayBufferView, dtype: Nf4SourceDtype, values: Float32Array, rows: number, cols: number, doubleQuant: boolean): Promise<void> {
    const bSrc = ctx.upload('src', src, 'scratch');
    const w = nf4_quantize(ctx, bSrc, dtype, rows, cols, { doubleQuant, label: 'w' });
    const want = quantizeRef(values, rows, cols, doubleQuant);
    expectSameHost(await nf4_download(ctx, w), want);
    const out = ctx.createBuffer('deq', rows * cols * 4, 'scratch');
    nf4_dequantize(ctx, out, w);
    expectSameBits(await ctx.readF32(out), dequantizeRef(want), 'dequantised');
    nf4_destroy(ctx, w);
    ctx.destroy(out);
    ctx.destroy(bSrc);
  }

  it('quantises f32 weights (odd row count, several blocks per row)', async () => {
    const [rows, cols] = [37, 192];
    const w = weights(rows, cols, 1);
    await roundTrip(w, 'f32', w, rows, cols, false);
  });

  it('quantises bf16 weights packed two per word', async () => {
    const [rows, cols] = [24, 128];
    const bits = bf16Bits(weights(rows, cols, 2));
    await roundTrip(packHalves(bits), 'bf16', bf16ArrayToF32(bits), rows, cols, false);
  });

  it('quantises f16 weights, subnormals included', async () => {
    const [rows, cols] = [16, 64];
    const r = mulberry32(3);
    const bits = new Uint16Array(rows * cols);
    for (let i = 0; i < bits.length; i++) {
      // Rows 0..7: any finite f16 (exponent field < 31); rows 8..15: subnormals and tiny normals only.
      const row = Math.floor(i / cols);
      const mag = row < 8 ? Math.floor(r() * 0x7c00) : Math.floor(r() * 0x0800);
      bits[i] = (r() < 0.5 ? 0x8000 : 0) | mag;
    }
    await roundTrip(packHalves(bits), 'f16', f16ArrayToF32(bits), rows, cols, false);
  });

  it('handles the corners: zero blocks, ±absmax, −0, values on and next to every rounding threshold', async () => {
    const cols = 64;
    const rowsList: number[][] = [];
    rowsList.push(new Array(cols).fill(0)); // all zero: absmax 0, every code is the code of 0
    rowsList.push(Array.from({ length: cols }, (_, j) => (j === 5 ? -0.75 : j === 9 ? 0.75 : j % 2 ? -0 : 0.1)));
    const r = mulberry32(4);
    for (let k = 0; k < 12; k++) {
      // x = t·a and its f32 neighbours: the quotient lands on or one ulp beside a threshold t, where only an
      // exactly rounded division picks the reference's code.
      const a = Math.fround(0.01 + r() * 3);
      const row = [a];
      for (const t of NF4_THRESHOLDS) {
        const x = Math.fround(t * a);
        row.push(x, nextUp(x), nextDown(x));
      }
      while (row.length < cols) row.push(Math.fround((r() * 2 - 1) * a));
      rowsList.push(row.slice(0, cols));
    }
    const w = Float32Array.from(rowsList.flat());
    await roundTrip(w, 'f32', w, rowsList.length, cols, false);
  });

  it('codes subnormal f32 weights exactly (where the hardware division may flush them)', async () => {
    const cols = 64;
    const r = mulberry32(12);
    const w = new Float32Array(2 * cols);
    // Block 0: everything subnormal, absmax included; block 1: a tiny normal absmax with subnormal neighbours.
    for (let j = 0; j < cols; j++) w[j] = (r() < 0.5 ? -1 : 1) * Math.floor(r() * 5000) * 2 ** -149;
    w[0] = 6000 * 2 ** -149;
    for (let j = 0; j < cols; j++) w[cols + j] = (r() < 0.5 ? -1 : 1) * Math.floor(r() * 2 ** 23) * 2 ** -149;
    w[cols] = 2 ** -125;
    const bSrc = ctx.upload('src', w, 'scratch');
    const gw = nf4_quantize(ctx, bSrc, 'f32', 2, cols);
    // Codes and scales only: a subnormal product code · absmax may be flushed by a GPU's multiplier.
    expectSameHost(await nf4_download(ctx, gw), quantizeRef(w, 2, cols, false));
    nf4_destroy(ctx, gw);
    ctx.destroy(bSrc);
  });

  it('double-quantises the block scales (several groups of 256 blocks, a partial last one)', async () => {
    const [rows, cols] = [300, 128]; // 600 blocks: groups of 256, 256, 88
    const w = weights(rows, cols, 5);
    await roundTrip(w, 'f32', w, rows, cols, true);
  });

  it('double-quantises bf16 weights of a Mistral-like k_proj shape', async () => {
    const [rows, cols] = [32, 128];
    const bits = bf16Bits(weights(rows, cols, 6));
    await roundTrip(packHalves(bits), 'bf16', bf16ArrayToF32(bits), rows, cols, true);
  });

  it('double-quantises a constant-scale weight (scale 0: every block decodes to the offset)', async () => {
    const [rows, cols] = [4, 64];
    const w = new Float32Array(rows * cols).map((_, i) => (i % 64 === 0 ? 0.5 : 0.01));
    await roundTrip(w, 'f32', w, rows, cols, true);
  });

  it('computes the double-quant offset over more than 256 partial sums in the reference order', async () => {
    const n = 256 * 300 + 77;
    const r = mulberry32(7);
    const absmax = Float32Array.from({ length: n }, () => Math.fround(r() * r() * 0.3));
    const bA = ctx.upload('absmax', absmax, 'scratch');
    const bP = ctx.createBuffer('partials', Math.ceil(n / 256) * 4, 'scratch');
    const bO = ctx.createBuffer('offset', 4, 'scratch');
    nf4_absmax_mean(ctx, bO, bA, bP, n);
    const want = divF32(absmaxSumRef(absmax), n);
    expectSameBits(await ctx.readF32(bO), new Float32Array([want]), 'offset');
    for (const b of [bA, bP, bO]) ctx.destroy(b);
  });

  it('uploads a CPU-quantised weight and dequantises it exactly (both scale formats)', async () => {
    const [rows, cols] = [20, 128];
    const w = weights(rows, cols, 8);
    for (const dq of [false, true]) {
      const host = quantizeRef(w, rows, cols, dq);
      const gw: Nf4Weight = nf4_upload(ctx, host, 'uploaded');
      expectSameHost(await nf4_download(ctx, gw), host);
      const out = ctx.createBuffer('deq', rows * cols * 4, 'scratch');
      nf4_dequantize(ctx, out, gw);
      expectSameBits(await ctx.readF32(out), dequantizeRef(host), `dequantised (dq ${dq})`);
      nf4_destroy(ctx, gw);
      ctx.destroy(out);
    }
  });

  it('refuses an input dimension that is not a multiple of 64', () => {
    const b = ctx.createBuffer('src', 4 * 96, 'scratch');
    let err: unknown = null;
    try {
      nf4_quantize(ctx, b, 'f32', 4, 96);
    } catch (e) {
      err = e;
    }
    expect(isFinetuneError(err, 'bad-input')).toBe(true);
    ctx.destroy(b);
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
