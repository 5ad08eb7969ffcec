// CPU reference of the int8 family (shaders/int8_quant.wgsl, shaders/int8_matmul.wgsl): symmetric int8 operands
// with one scale per row of the reduction, the NF4 weight's int8 codes as the kernels form them, and the product.
// Scales come one per group of 64 values along the reduction. The f32 roundings that decide a code are spelled out
// (Math.fround); the integer sums are exact; their scaling and sum are float64 (the GPU's are f32: compare with a
// tolerance). The GPU divides with WGSL's f32 division (within 2.5 ULP,
// not correctly rounded), so a code that lands within a few ULP of a .5 tie may differ by one: tests allow that.

import { NF4_BLOCK, NF4_CODEBOOK, type Nf4Host } from '../../core/nf4-format.ts';
import type { Vec } from './common.ts';
import { blockScalesRef, nf4CodeAt } from './nf4.ts';

/** Values per scale group along a row (shaders/int8_quant.wgsl, shaders/int8_matmul.wgsl). */
export const GROUP = 64;

/**
 * Symmetric int8 operands: `rows` rows of `cols` codes, and one scale per group of 64 codes of a row (rows ×
 * ⌈cols/64⌉; value ≈ code · scale).
 */
export interface Int8Rows {
  rows: number;
  cols: number;
  codes: Int8Array;
  scales: Float64Array;
}

export const groupsOf = (cols: number): number => Math.ceil(cols / GROUP);

/** Round half to even: WGSL's `round`. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round rounds .5 up; a tie with an odd result goes down instead.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function code(x: number): number {
  return Math.max(-127, Math.min(127, roundHalfEven(x)));
}

/**
 * shaders/int8_quant.wgsl, per group of 64 values of a row: scale = amax / 127, code = round(x · fl32(127 / amax));
 * a group with a non-finite value scales to +inf (its codes are left 0).
 */
export function quantizeRowsRef(x: Vec, rows: number, cols: number): Int8Rows {
  const G = groupsOf(cols);
  const codes = new Int8Array(rows * cols);
  const scales = new Float64Array(rows * G);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < G; g++) {
      const [lo, hi] = [r * cols + g * GROUP, r * cols + Math.min(cols, (g + 1) * GROUP)];
      let amax = 0;
      let bad = false;
      for (let i = lo; i < hi; i++) {
        const a = Math.abs(x[i]);
        if (!Number.isFinite(a)) bad = true;
        else amax = Math.max(amax, a);
      }
      if (bad) {
        scales[r * G + g] = Infinity;
        continue;
      }
      scales[r * G + g] = Math.fround(amax / 127);
      const inv = amax > 0 ? Math.fround(127 / amax) : 0;
      for (let i = lo; i < hi; i++) codes[i] = code(Math.fround(x[i] * inv));
    }
  }
  return { rows, cols, codes, scales };
}

/** round(127 · NF4[c]): the NF4 values on the int8 grid (the forward's weight codes). */
export const NF4_INT8: readonly number[] = NF4_CODEBOOK.map((v) => code(127 * v));

/**
 * The forward's int8 weight (the NF4 form of shaders/int8_matmul.wgsl): W [N, K] row by row, each 64-block's codes
 * mapped through NF4_INT8 and scaled by absmax / 127. Rows of the result are W's rows (the reduction runs along K).
 */
export function int8WeightForwardRef(q: Nf4Host): Int8Rows {
  const { rows: N, cols: K } = q;
  const absmax = blockScalesRef(q);
  const codes = new Int8Array(N * K);
  for (let e = 0; e < N * K; e++) codes[e] = NF4_INT8[nf4CodeAt(q.codes, e)];
  return { rows: N, cols: K, codes, scales: Float64Array.from(absmax, (a) => Math.fround(a / 127)) };
}

/**
 * The input gradient's int8 weight (NF4 BACKWARD): a tile of 64 rows n × one 64-column block b shares the scale
 * S = the largest block scale of its rows, code = round(fl32(NF4[c] · fl32(absmax[n, b] · fl32(127 / S)))). Rows of
 * the result are W's columns (the reduction runs along N, in groups of 64 rows).
 */
export function int8WeightBackwardRef(q: Nf4Host): Int8Rows {
  const { rows: N, cols: K } = q;
  const absmax = blockScalesRef(q);
  const kb = K / NF4_BLOCK;
  const G = groupsOf(N);
  const codes = new Int8Array(K * N);
  const scales = new Float64Array(K * G);
  for (let b = 0; b < kb; b++) {
    for (let g = 0; g < G; g++) {
      const [n0, n1] = [g * GROUP, Math.min(N, (g + 1) * GROUP)];
      let s = 0;
      for (let n = n0; n < n1; n++) s = Math.max(s, absmax[n * kb + b]);
      const inv = s > 0 ? Math.fround(127 / s) : 0;
      for (let k = b * NF4_BLOCK; k < (b + 1) * NF4_BLOCK; k++) {
        scales[k * G + g] = Math.fround(s / 127);
        for (let n = n0; n < n1; n++) {
          const factor = Math.fround(absmax[n * kb + b] * inv);
          codes[k * N + n] = code(Math.fround(NF4_CODEBOOK[nf4CodeAt(q.codes, n * K + k)] * factor));
        }
      }
    }
  }
  return { rows: K, cols: N, codes, scales };
}

/** C (M, N) = alpha · Σ_g sa[m, g] · sb[n, g] · Σ_{k in g} a[m, k] · b[n, k] (+ C): the sums exact, the rest float64. */
export function int8GemmRef(a: Int8Rows, b: Int8Rows, alpha = 1, C?: Vec): Float64Array {
  if (a.cols !== b.cols) throw new Error(`reduction lengths ${a.cols} and ${b.cols} differ`);
  const [M, N, K] = [a.rows, b.rows, a.cols];
  const G = groupsOf(K);
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let sum = 0;
      for (let g = 0; g < G; g++) {
        let acc = 0;
        for (let k = g * GROUP; k < Math.min(K, (g + 1) * GROUP); k++) acc += a.codes[m * K + k] * b.codes[n * K + k];
        sum += a.scales[m * G + g] * b.scales[n * G + g] * acc;
      }
      out[m * N + n] = alpha * sum + (C ? C[m * N + n] : 0);
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
