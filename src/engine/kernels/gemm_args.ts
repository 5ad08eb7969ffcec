// The contract both GEMM kernels share (shaders/matmul.wgsl and shaders/matmul_tiled.wgsl): the arguments of one
// product and the uniform block both shaders read. `gemm` (matmul.ts) picks the kernel.

import { FinetuneError } from '../../core/errors.ts';
import type { BufferSlice } from '../buffer-slice.ts';

/** How the B operand (the weight) is stored. */
export type WeightStorage = 'f32' | 'bf16' | 'f16';

/**
 * The defines of a kernel reading a weight stored as `storage`: `flag` (that kernel's name for "16-bit values, two per
 * u32") for bf16 and f16, with HALF_F16 for f16 (shaders/half.wgsl decodes both on every adapter); none for f32.
 */
export function halfDefines(flag: string, storage: WeightStorage): Record<string, boolean> {
  return storage === 'f32' ? {} : { [flag]: true, HALF_F16: storage === 'f16' };
}

/**
 * LoRA dropout fused into a product (kernels/lora.ts builds it from a key and p): the mask keep(i) =
 * murmur3(state, i) ≥ threshold of shaders/lora.wgsl, with i an element's flat index in its stored matrix of one batch
 * entry. `on`: 'A' or 'B' drops that operand's elements as they are loaded (v → keep ? v · scale : 0; B f32 only);
 * 'out' drops the product in the epilogue: C = (C +) drop(alpha · op(A)·op(B)), beta 0 or 1.
 */
export interface GemmDropout {
  on: 'A' | 'B' | 'out';
  /** dropoutKeyState(key): the murmur3 state after the key's four words. */
  state: number;
  /** dropoutThreshold(p). */
  threshold: number;
  /** dropoutScale(p): f32(1 / (1 − p)). */
  scale: number;
}

/** C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b], all row-major. */
export interface GemmArgs {
  // Any operand may be a slice (the LoRA factors and their gradients live in arenas); element 0 is the slice's start.
  C: BufferSlice; // (batch, M, N)
  A: BufferSlice; // (batch, M, K) or (batch, K, M) with transA
  B: BufferSlice; // (batch, K, N) or (batch, N, K) with transB
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** 0 overwrites C (without reading it), 1 accumulates into it. */
  beta?: number;
  batch?: number;
  /** Elements between consecutive batch entries of each operand. */
  strideA?: number;
  strideB?: number;
  strideC?: number;
  bStorage?: WeightStorage;
  /** A dropout mask applied inside the product (absent: none). */
  dropout?: GemmDropout;
}

/**
 * The `Params` block of both shaders (48 bytes): sizes, batch strides, alpha, beta, and the dropout mask's state,
 * threshold and scale in what were padding slots (u32[3], u32[7], f32[10]; zero without dropout).
 */
export function gemmUniforms(a: GemmArgs): ArrayBuffer {
  const u = new ArrayBuffer(48);
  const u32 = new Uint32Array(u);
  const f32 = new Float32Array(u);
  u32[0] = a.M;
  u32[1] = a.N;
  u32[2] = a.K;
  u32[4] = a.strideA ?? 0;
  u32[5] = a.strideB ?? 0;
  u32[6] = a.strideC ?? 0;
  f32[8] = a.alpha ?? 1;
  f32[9] = a.beta ?? 0;
  if (a.dropout) {
    u32[3] = a.dropout.state;
    u32[7] = a.dropout.threshold;
    f32[10] = a.dropout.scale;
  }
  return u;
}

/** The WGSL defines of a dropout variant (both GEMM shaders), none without dropout. */
export function gemmDropoutDefines(a: GemmArgs): Record<string, boolean> {
  const d = a.dropout;
  if (!d) return {};
  return { DROPOUT: true, DROP_A: d.on === 'A', DROP_B: d.on === 'B', DROP_OUT: d.on === 'out' };
}

/** Refuses what the dropout variants do not cover: a non-f32 B dropped, an epilogue with beta other than 0 or 1. */
export function checkGemmDropout(a: GemmArgs): void {
  const d = a.dropout;
  if (!d) return;
  if (d.on === 'B' && (a.bStorage ?? 'f32') !== 'f32') throw new FinetuneError('internal', `gemm: dropout on B needs f32 storage, got ${a.bStorage}`);
  const beta = a.beta ?? 0;
  if (d.on === 'out' && beta !== 0 && beta !== 1) throw new FinetuneError('internal', `gemm: output dropout adds into C (beta 1) or overwrites it (beta 0), got beta ${beta}`);
  for (const [k, v] of [['state', d.state], ['threshold', d.threshold]] as const) {
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) throw new FinetuneError('internal', `gemm: dropout ${k} must be a u32, got ${v}`);
  }
}
