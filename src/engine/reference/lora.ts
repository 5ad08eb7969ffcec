// References of the LoRA family (shaders/lora.wgsl + the GEMMs in kernels/lora.ts): a textbook byte-wise
// murmur3_x86_32 (independent of the word-wise copy in kernels/lora.ts) for the dropout mask, and float64 products.

import type { Vec } from './common.ts';
import { gemmRef } from './matmul.ts';

/** MurmurHash3_x86_32 of a byte string (Austin Appleby's reference algorithm). */
export function murmur3x86_32(bytes: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = Math.floor(bytes.length / 4);
  for (let b = 0; b < blocks; b++) {
    const j = b * 4;
    let k = bytes[j] | (bytes[j + 1] << 8) | (bytes[j + 2] << 16) | (bytes[j + 3] << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks * 4;
  const rest = bytes.length & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= bytes[tail + 2] << 16;
    if (rest >= 2) k ^= bytes[tail + 1] << 8;
    k ^= bytes[tail];
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export interface DropoutKeyRef {
  seed: number;
  step: number;
  layer: number;
  module: number;
}

/** keep[i] = murmur3(LE bytes of seed, step, layer, module, i) ≥ round(p · 2³²). */
export function dropoutMaskRef(n: number, p: number, key: DropoutKeyRef): Uint8Array {
  const threshold = Math.min(0xffffffff, Math.round(p * 2 ** 32));
  const msg = new Uint32Array([key.seed, key.step, key.layer, key.module, 0]);
  const bytes = new Uint8Array(msg.buffer);
  const keep = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    msg[4] = i;
    keep[i] = murmur3x86_32(bytes) >= threshold ? 1 : 0;
  }
  return keep;
}

/** drop(x) as the GPU computes it in f32: x · f32(1/(1−p)) rounded to f32 where kept, 0 elsewhere. */
export function dropoutRef(x: Vec, p: number, key: DropoutKeyRef): Float32Array {
  const keep = dropoutMaskRef(x.length, p, key);
  const scale = p >= 1 ? 0 : Math.fround(1 / (1 - p));
  return Float32Array.from(x, (v, i) => (keep[i] ? v * scale : 0));
}

/** Float64 LoRA forward: t = xd·Aᵀ (BT, r), y = y0 + scale · t·Bᵀ (BT, outF); xd = drop(x) already applied. */
export function loraForwardRef(y0: Vec, xd: Vec, A: Vec, B: Vec, BT: number, inF: number, outF: number, r: number, scale: number): { y: Float64Array; t: Float64Array } {
  const t = gemmRef(xd, A, BT, r, inF, false, true);
  const tb = gemmRef(t, B, BT, outF, r, false, true);
  return { t, y: Float64Array.from(tb, (v, i) => y0[i] + scale * v) };
}

/**
 * Float64 LoRA backward from the float64 chain rule, with keep/scale the dropout mask (null: none):
 * dB = scale·dyᵀ·t, dt = scale·dy·B, dA = dtᵀ·xd, dx = mask ⊙ (dt·A) · dropScale. Returned without the priors.
 */
export function loraBackwardRef(
  dy: Vec,
  xd: Vec,
  t: Vec,
  A: Vec,
  B: Vec,
  BT: number,
  inF: number,
  outF: number,
  r: number,
  scale: number,
  keep: Uint8Array | null,
  dropScale: number,
): { dA: Float64Array; dB: Float64Array; dx: Float64Array } {
  const dB = gemmRef(dy, t, outF, r, BT, true, false).map((v) => v * scale);
  const dt = gemmRef(dy, B, BT, r, outF).map((v) => v * scale);
  const dA = gemmRef(dt, xd, r, inF, BT, true, false);
  const dx = gemmRef(dt, A, BT, inF, r).map((v, i) => (keep ? (keep[i] ? v * dropScale : 0) : v));
  return { dA, dB, dx };
}
