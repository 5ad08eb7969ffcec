// CPU reference of the int8 family (shaders/int8_quant.wgsl, shaders/int8_matmul.wgsl): symmetric int8 operands
// with one scale per row of the reduction, the NF4 weight's int8 codes as the kernels form them, and the product.
// The f32 roundings that decide a code are spelled out (Math.fround); the integer sum is exact; the epilogue is
// float64 (the GPU's is f32: compare with a tolerance). The GPU divides with WGSL's f32 division (within 2.5 ULP,
// not correctly rounded), so a code that lands within a few ULP of a .5 tie may differ by one: tests allow that.

import { NF4_BLOCK, NF4_CODEBOOK, type Nf4Host } from '../../core/nf4-format.ts';
import type { Vec } from './common.ts';
import { blockScalesRef, nf4CodeAt } from './nf4.ts';

/** Symmetric int8 operands: `rows` rows of `cols` codes and one scale per row (value ≈ code · scale). */
export interface Int8Rows {
  rows: number;
  cols: number;
  codes: Int8Array;
  scales: Float64Array;
}

/** Round half to even: WGSL's `round`. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round rounds .5 up; a tie with an odd result goes down instead.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function code(x: number): number {
  return Math.max(-127, Math.min(127, roundHalfEven(x)));
}

/** shaders/int8_quant.wgsl: scale = amax / 127, code = round(x · fl32(127 / amax)); a non-finite row scales to +inf. */
export function quantizeRowsRef(x: Vec, rows: number, cols: number): Int8Rows {
  const codes = new Int8Array(rows * cols);
  const scales = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    let bad = false;
    for (let c = 0; c < cols; c++) {
      const a = Math.abs(x[r * cols + c]);
      if (!Number.isFinite(a)) bad = true;
      else amax = Math.max(amax, a);
    }
    if (bad) {
      scales[r] = Infinity;
      continue;
    }
    scales[r] = Math.fround(amax / 127);
    const inv = amax > 0 ? Math.fround(127 / amax) : 0;
    for (let c = 0; c < cols; c++) codes[r * cols + c] = code(Math.fround(x[r * cols + c] * inv));
  }
  return { rows, cols, codes, scales };
}

/**
 * The forward's int8 weight (the NF4 form of shaders/int8_matmul.wgsl): row n of W [N, K] with scale
 * s_n = max of its block scales, code = round(fl32(NF4[c] · fl32(absmax · fl32(127 / s_n)))). Rows of the result are
 * W's rows (the reduction runs along K).
 */
export function int8WeightForwardRef(q: Nf4Host): Int8Rows {
  const { rows: N, cols: K } = q;
  const scales = blockScalesRef(q);
  const kb = K / NF4_BLOCK;
  const codes = new Int8Array(N * K);
  const out = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let b = 0; b < kb; b++) s = Math.max(s, scales[n * kb + b]);
    out[n] = Math.fround(s / 127);
    const inv = s > 0 ? Math.fround(127 / s) : 0;
    for (let k = 0; k < K; k++) {
      const factor = Math.fround(scales[n * kb + Math.floor(k / NF4_BLOCK)] * inv);
      codes[n * K + k] = code(Math.fround(NF4_CODEBOOK[nf4CodeAt(q.codes, n * K + k)] * factor));
    }
  }
  return { rows: N, cols: K, codes, scales: out };
}

/**
 * The input gradient's int8 weight (NF4 BACKWARD): column k of W with the scale S_b = the largest block scale down
 * its 64-column block b, code = round(fl32(NF4[c] · fl32(absmax[n, b] · fl32(127 / S_b)))). Rows of the result are
 * W's columns (the reduction runs along N).
 */
export function int8WeightBackwardRef(q: Nf4Host): Int8Rows {
  const { rows: N, cols: K } = q;
  const scales = blockScalesRef(q);
  const kb = K / NF4_BLOCK;
  const codes = new Int8Array(K * N);
  const out = new Float64Array(K);
  for (let b = 0; b < kb; b++) {
    let s = 0;
    for (let n = 0; n < N; n++) s = Math.max(s, scales[n * kb + b]);
    const inv = s > 0 ? Math.fround(127 / s) : 0;
    for (let k = b * NF4_BLOCK; k < (b + 1) * NF4_BLOCK; k++) {
      out[k] = Math.fround(s / 127);
      for (let n = 0; n < N; n++) {
        const factor = Math.fround(scales[n * kb + b] * inv);
        codes[k * N + n] = code(Math.fround(NF4_CODEBOOK[nf4CodeAt(q.codes, n * K + k)] * factor));
      }
    }
  }
  return { rows: K, cols: N, codes, scales: out };
}

/** C (M, N) = alpha · sa[m] · sb[n] · Σ_k a[m, k] · b[n, k] (+ C), the sum exact, the rest float64. */
export function int8GemmRef(a: Int8Rows, b: Int8Rows, alpha = 1, C?: Vec): Float64Array {
  if (a.cols !== b.cols) throw new Error(`reduction lengths ${a.cols} and ${b.cols} differ`);
  const [M, N, K] = [a.rows, b.rows, a.cols];
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += a.codes[m * K + k] * b.codes[n * K + k];
      out[m * N + n] = alpha * (a.scales[m] * b.scales[n]) * acc + (C ? C[m * N + n] : 0);
    }
  }
  return out;
}

/** Packs int8 codes 4 per u32 (first in the low byte), each row padded with zeros to whole words: the kernels' layout. */
export function packInt8Rows(r: Int8Rows): Uint32Array {
  const words = Math.ceil(r.cols / 4);
  const out = new Uint32Array(r.rows * words);
  const bytes = new Uint8Array(out.buffer);
  for (let i = 0; i < r.rows; i++) {
    for (let c = 0; c < r.cols; c++) bytes[(i * words) * 4 + c] = r.codes[i * r.cols + c] & 0xff;
  }
  return out;
}

/** The inverse of packInt8Rows. */
export function unpackInt8Rows(packed: Uint32Array, rows: number, cols: number): Int8Array {
  const words = Math.ceil(cols / 4);
  const bytes = new Int8Array(packed.buffer, packed.byteOffset, packed.byteLength);
  const out = new Int8Array(rows * cols);
  for (let i = 0; i < rows; i++) out.set(bytes.subarray(i * words * 4, i * words * 4 + cols), i * cols);
  return out;
}

/** ‖a − b‖ / ‖b‖ (Frobenius), the per-kernel error measure of docs/int8.md. */
export function relFrobenius(a: Vec, b: Vec): number {
  let d = 0;
  let r = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i] - b[i]) ** 2;
    r += b[i] ** 2;
  }
  return Math.sqrt(d) / Math.max(Math.sqrt(r), 1e-30);
}
