// The NF4 storage format, as bitsandbytes defines it and QLoRA checkpoints store it: the 16 NormalFloat values, the
// 64-weight blocks with one absmax each, and double quantisation's 8-bit signed dynamic map over 256-block groups.
// The GPU kernels (engine/kernels/nf4.ts) and the float64 reference (engine/reference/nf4.ts) both read the format
// from here; neither defines it. See docs/nf4.md.

export const NF4_BLOCK = 64;
export const DQ_BLOCK = 256;

/** The 16 NF4 values (bitsandbytes / QLoRA), as fp32. */
export const NF4_CODEBOOK: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
].map(Math.fround);

/** fp32 midpoints between neighbouring entries of a sorted fp32 table: a value x gets code #{i : x > t[i]}. */
export function thresholds(table: ArrayLike<number>): Float32Array {
  const t = new Float32Array(table.length - 1);
  for (let i = 0; i < t.length; i++) t[i] = (table[i] + table[i + 1]) / 2; // exact in f64, one rounding to f32
  return t;
}

export const NF4_THRESHOLDS: Float32Array = thresholds(NF4_CODEBOOK);

/**
 * bitsandbytes' `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`, computed in float64 and
 * rounded once to fp32 (the table is an fp32 tensor). For exponent band i = 0..6 it takes the 2^i means of
 * neighbouring points of linspace(0.1, 1, 2^i + 1), scales them by 10^(i-6) and adds them with both signs; then 0
 * and 1.0 are appended and everything sorted: 2·127 + 2 = 256 values in [-0.99296875, 1].
 * (bitsandbytes computes the same formula in fp32 torch arithmetic, so a table it printed may differ from this one
 * in the last bit of some entries; a pre-quantised checkpoint stores its own table, see `Nf4Host.table`.)
 */
export function dynamicMap8(): Float64Array {
  const maxExponentBits = 7;
  const data: number[] = [];
  for (let i = 0; i < maxExponentBits; i++) {
    const items = 2 ** i + 1; // signed: 2^(i + non_sign_bits - max_exponent_bits) + 1 with non_sign_bits = 7
    const step = (1 - 0.1) / (items - 1);
    const scale = 10 ** (-(maxExponentBits - 1) + i);
    for (let k = 0; k < items - 1; k++) {
      const lo = 0.1 + step * k;
      const hi = k + 1 === items - 1 ? 1 : 0.1 + step * (k + 1);
      const mean = (lo + hi) / 2;
      data.push(scale * mean, -scale * mean);
    }
  }
  data.push(0, 1.0);
  if (data.length !== 256) throw new Error(`dynamic map has ${data.length} entries`);
  data.sort((a, b) => a - b);
  return Float64Array.from(data, Math.fround);
}

export const DYN8_TABLE: Float32Array = Float32Array.from(dynamicMap8());
export const DYN8_THRESHOLDS: Float32Array = thresholds(DYN8_TABLE);

/** A quantised weight on the CPU, in bitsandbytes' byte layout. */
export interface Nf4Host {
  rows: number;
  cols: number;
  /** rows·cols/2 bytes; byte b holds element 2b in its high nibble and 2b+1 in its low nibble. */
  codes: Uint8Array;
  /** fp32 absmax per block, when not double-quantised. */
  absmax: Float32Array | null;
  dq: Nf4DoubleQuantHost | null;
}

export interface Nf4DoubleQuantHost {
  /** One byte per block: the index into `table`. */
  codes: Uint8Array;
  /** fp32 scale per 256 blocks. */
  scale: Float32Array;
  offset: number;
  /** The 256-entry signed dynamic map (DYN8_TABLE unless a checkpoint brought its own). */
  table: Float32Array;
}

export function nf4Blocks(rows: number, cols: number): number {
  return (rows * cols) / NF4_BLOCK;
}
