// CPU reference of the nf4 / nf4_matmul families (shaders/nf4.wgsl, shaders/nf4_matmul.wgsl): QLoRA's 4-bit
// NormalFloat quantisation as bitsandbytes lays it out, bnb's double quantisation of the block scales, and the
// products with a dequantised weight. Every rounding step is spelled out so the GPU can be held to it bit for bit:
//
//   absmax[b] = max |w| over block b (64 consecutive values of the row-major [out, in] weight)
//   code      = the number of NF4 thresholds t_i below fl32(w / absmax[b])   (t_i = fl32 midpoint of neighbours)
//   deq       = fl32(NF4[code] · absmax[b])
//
// The division is the correctly rounded fp32 quotient (what PyTorch computes; the golden was made that way), with
// quotients below 2^-126 flushed to zero (they pick the same code). Double quantisation (bnb `compress_statistics`):
//   offset    = fl32(sum / nblocks), the sum reduced in fp32 in the fixed order of `absmaxSumRef` (the GPU's order)
//   v[b]      = fl32(absmax[b] − offset);   per 256 consecutive blocks: scale = max |v|
//   q8[b]     = the number of DYN8 thresholds below fl32(v / scale)      (DYN8 = bnb's signed dynamic map)
//   absmax'   = fl32(fl32(DYN8[q8] · scale) + offset)

import { NF4_BLOCK, DQ_BLOCK, NF4_CODEBOOK, thresholds, NF4_THRESHOLDS, DYN8_TABLE, type Nf4Host, type Nf4DoubleQuantHost } from '../../core/nf4-format.ts';
import type { Vec } from './common.ts';
import { gemmRef } from './matmul.ts';


const TINY = 2 ** -126;

/** fl32(x / a) for finite x and a > 0, with results under 2^-126 in magnitude flushed to (signed) zero. */
export function divF32(x: number, a: number): number {
  if (a === 0) return 0;
  const q = Math.fround(x / a); // f64 quotient of two f32 then one rounding = the correctly rounded f32 quotient
  return Math.abs(q) < TINY ? 0 * Math.sign(q) : q;
}

/** Number of thresholds strictly below y (thresholds sorted ascending). */
export function codeOf(y: number, t: Vec): number {
  let lo = 0;
  let hi = t.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (y > t[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}


/** |x| as the f32 bit pattern compares: the same maximum the GPU finds on bits. */
function absmaxOf(w: Vec, start: number, n: number): number {
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(w[start + i]));
  return m;
}

/** NF4 quantisation of fp32 values (bf16/f16 weights: pass their exact fp32 values). */
export function quantizeNf4Ref(w: Vec, rows: number, cols: number): { codes: Uint8Array; absmax: Float32Array } {
  if (cols % NF4_BLOCK !== 0) throw new Error(`cols ${cols} is not a multiple of ${NF4_BLOCK}`);
  const n = rows * cols;
  const nb = n / NF4_BLOCK;
  const codes = new Uint8Array(n / 2);
  const absmax = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    const a = Math.fround(absmaxOf(w, b * NF4_BLOCK, NF4_BLOCK));
    absmax[b] = a;
    for (let j = 0; j < NF4_BLOCK; j++) {
      const e = b * NF4_BLOCK + j;
      const c = codeOf(divF32(w[e], a), NF4_THRESHOLDS);
      codes[e >> 1] |= (e & 1) === 0 ? c << 4 : c;
    }
  }
  return { codes, absmax };
}

/** The 4-bit code of element e in a bitsandbytes byte stream. */
export function nf4CodeAt(codes: Uint8Array, e: number): number {
  const byte = codes[e >> 1];
  return (e & 1) === 0 ? byte >> 4 : byte & 15;
}

/** The sum of absmax in the GPU's order: fp32 tree sums over chunks of 256, then a strided pass and a tree over the partials. */
export function absmaxSumRef(absmax: Vec): number {
  const tree = (v: Float32Array): number => {
    for (let s = v.length >> 1; s > 0; s >>= 1) for (let i = 0; i < s; i++) v[i] = Math.fround(v[i] + v[i + s]);
    return v[0];
  };
  const nPartials = Math.ceil(absmax.length / 256);
  const partials = new Float32Array(nPartials);
  for (let p = 0; p < nPartials; p++) {
    const v = new Float32Array(256);
    for (let i = 0; i < 256; i++) v[i] = p * 256 + i < absmax.length ? absmax[p * 256 + i] : 0;
    partials[p] = tree(v);
  }
  const v = new Float32Array(256);
  for (let t = 0; t < 256; t++) {
    let acc = 0;
    for (let p = t; p < nPartials; p += 256) acc = Math.fround(acc + partials[p]);
    v[t] = acc;
  }
  return tree(v);
}

/** bitsandbytes double quantisation of the fp32 block scales. */
export function doubleQuantRef(absmax: Vec, table: Float32Array = DYN8_TABLE): Nf4DoubleQuantHost {
  const nb = absmax.length;
  const offset = divF32(absmaxSumRef(absmax), nb);
  const th = thresholds(table);
  const nGroups = Math.ceil(nb / DQ_BLOCK);
  const codes = new Uint8Array(nb);
  const scale = new Float32Array(nGroups);
  for (let g = 0; g < nGroups; g++) {
    const end = Math.min(nb, (g + 1) * DQ_BLOCK);
    let s = 0;
    for (let b = g * DQ_BLOCK; b < end; b++) s = Math.max(s, Math.abs(Math.fround(absmax[b] - offset)));
    scale[g] = s;
    for (let b = g * DQ_BLOCK; b < end; b++) codes[b] = codeOf(divF32(Math.fround(absmax[b] - offset), s), th);
  }
  return { codes, scale, offset, table: table.slice() };
}

/** absmax recovered from double quantisation: fl32(fl32(table[q] · scale) + offset). */
export function dequantizeAbsmaxRef(dq: Nf4DoubleQuantHost): Float32Array {
  const out = new Float32Array(dq.codes.length);
  for (let b = 0; b < out.length; b++) {
    out[b] = Math.fround(Math.fround(dq.table[dq.codes[b]] * dq.scale[Math.floor(b / DQ_BLOCK)]) + dq.offset);
  }
  return out;
}

export function quantizeRef(w: Vec, rows: number, cols: number, doubleQuant: boolean): Nf4Host {
  const { codes, absmax } = quantizeNf4Ref(w, rows, cols);
  if (!doubleQuant) return { rows, cols, codes, absmax, dq: null };
  return { rows, cols, codes, absmax: null, dq: doubleQuantRef(absmax) };
}

/** The fp32 block scales a quantised weight dequantises with. */
export function blockScalesRef(q: Nf4Host): Float32Array {
  if (q.dq) return dequantizeAbsmaxRef(q.dq);
  if (!q.absmax) throw new Error('an Nf4Host needs absmax or dq');
  return q.absmax;
}

/** The dequantised fp32 weight, row-major [rows, cols]. */
export function dequantizeRef(q: Nf4Host): Float32Array {
  const scales = blockScalesRef(q);
  const n = q.rows * q.cols;
  const out = new Float32Array(n);
  for (let e = 0; e < n; e++) out[e] = NF4_CODEBOOK[nf4CodeAt(q.codes, e)] * scales[Math.floor(e / NF4_BLOCK)];
  return out;
}

/** Y (M, N) = X (M, K) · deq(W)ᵀ in float64, W quantised [N, K]. */
export function nf4MatmulForwardRef(X: Vec, q: Nf4Host, M: number): Float64Array {
  return gemmRef(X, dequantizeRef(q), M, q.rows, q.cols, false, true);
}

/** dX (M, K) = dY (M, N) · deq(W) in float64. */
export function nf4MatmulBackwardRef(dY: Vec, q: Nf4Host, M: number): Float64Array {
  return gemmRef(dY, dequantizeRef(q), M, q.cols, q.rows);
}
