// Float64 reference of RoPE (shaders/rope.wgsl), HF's rotate_half convention, with angles computed directly.

import type { Vec } from './common.ts';

/** out = rope(x) (sign +1) or its transpose (sign −1); x (BT, nHeads·hd), pos (BT). */
export function ropeRef(x: Vec, pos: Vec, BT: number, nHeads: number, hd: number, theta: number, sign: 1 | -1 = 1): Float64Array {
  const half = hd / 2;
  const out = new Float64Array(BT * nHeads * hd);
  for (let t = 0; t < BT; t++) {
    for (let h = 0; h < nHeads; h++) {
      const base = (t * nHeads + h) * hd;
      for (let i = 0; i < half; i++) {
        const a = pos[t] * theta ** ((-2 * i) / hd);
        const c = Math.cos(a);
        const s = sign * Math.sin(a);
        const x0 = x[base + i];
        const x1 = x[base + i + half];
        out[base + i] = x0 * c - x1 * s;
        out[base + i + half] = x1 * c + x0 * s;
      }
    }
  }
  return out;
}

/**
 * The table HF's MistralRotaryEmbedding builds, emulated in fp32 with Math.fround at each rounding step
 * (inv_freq = 1 / theta^(float(2i)/hd); angle = fp32(p · inv_freq); cos/sin rounded to fp32), in ropeTable's layout.
 * Only used to measure how far our float64 table is from HF's fp32 one.
 */
export function ropeTableHfFp32(maxPos: number, hd: number, theta: number): Float32Array {
  const f = Math.fround;
  const half = hd / 2;
  const table = new Float32Array(2 * maxPos * half);
  const inv = Array.from({ length: half }, (_, i) => f(1 / f(theta ** f(f(2 * i) / hd))));
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = f(f(p) * inv[i]);
      table[p * half + i] = Math.cos(a);
      table[(maxPos + p) * half + i] = Math.sin(a);
    }
  }
  return table;
}
