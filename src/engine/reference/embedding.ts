// Reference of the embedding lookup (shaders/embedding.wgsl): ids outside [0, V) give zero rows.

import type { Vec } from './common.ts';

export function embeddingRef(ids: Vec, table: Vec, V: number, C: number): Float64Array {
  const out = new Float64Array(ids.length * C);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id >= V) continue;
    for (let c = 0; c < C; c++) out[t * C + c] = table[id * C + c];
  }
  return out;
}

/** bf16 bits (round to nearest even) of f32 values, and the f32 values they stand for. */
export function toBf16(x: Float32Array): { bits: Uint16Array; values: Float32Array } {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const bits = new Uint16Array(x.length);
  const values = new Float32Array(x.length);
  const v32 = new Uint32Array(values.buffer);
  for (let i = 0; i < x.length; i++) {
    const r = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
    bits[i] = r;
    v32[i] = r << 16;
  }
  return { bits, values };
}
