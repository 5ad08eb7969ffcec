// The contract both GEMM kernels share (shaders/matmul.wgsl and shaders/matmul_tiled.wgsl): the arguments of one
// product and the uniform block both shaders read. `gemm` (matmul.ts) picks the kernel.

import { FinetuneError } from '../../core/errors.ts';
import { sliceBytes, type BufferSlice } from '../buffer-slice.ts';

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

/**
 * A rank-r product added to a GEMM's output in its epilogue (the tiled kernel's LOW_RANK variant):
 *   C += drop(scale · U·op(V)),  U (M, r), V (N, r) with transV, else (r, N), both f32 row-major.
 * LoRA's up-projection (y += s · t·Bᵀ) and input gradient (dx += drop(dt·A)) ride on the frozen base's products this
 * way instead of a second pass over C. `lowRankGemm` (matmul.ts) is the same sum as a product of its own, with the
 * same bits on the tiled kernel.
 */
export interface LowRankAdd {
  u: BufferSlice;
  v: BufferSlice;
  r: number;
  transV: boolean;
  scale: number;
  /** The mask on the term (on: 'out', index r · N + c); absent: none. */
  dropout?: GemmDropout;
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
  /** A rank-r term added in the epilogue (tiled kernel only; batch 1, beta 0 or 1, without `dropout`). */
  lowRank?: LowRankAdd;
}

/**
 * The `Params` block of both shaders (48 bytes): sizes, batch strides, alpha, beta, and the dropout mask's state,
 * threshold and scale in what were padding slots (u32[3], u32[7], f32[10]; zero without dropout), and the low-rank
 * term's scale (f32[11]). The mask is the product's own or, with `lowRank`, the term's (never both).
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
  const d = a.dropout ?? a.lowRank?.dropout;
  if (d) {
    u32[3] = d.state;
    u32[7] = d.threshold;
    f32[10] = d.scale;
  }
  if (a.lowRank) f32[11] = a.lowRank.scale;
  return u;
}

/** The LOW_RANK variant's defines and override constants (matmul_tiled.wgsl), none without a low-rank term. */
export function lowRankSpec(a: GemmArgs): { defines: Record<string, boolean>; constants: Record<string, number | boolean> } {
  const l = a.lowRank;
  if (!l) return { defines: {}, constants: {} };
  return { defines: { LOW_RANK: true, DROPOUT: Boolean(l.dropout), LR_DROP: Boolean(l.dropout) }, constants: { LR_R: l.r, LR_TRANS_V: l.transV } };
}

/** Refuses a low-rank term the epilogue does not cover, or operands too small for it. */
export function checkLowRank(a: GemmArgs): void {
  const l = a.lowRank;
  if (!l) return;
  const fail = (why: string): never => {
    throw new FinetuneError('internal', `gemm low-rank term: ${why}`);
  };
  if (a.dropout) fail('the product has its own dropout (they share the mask uniforms)');
  if ((a.batch ?? 1) !== 1) fail(`batch ${a.batch}: one matrix only`);
  const beta = a.beta ?? 0;
  if (beta !== 0 && beta !== 1) fail(`beta ${beta}: 0 or 1 only`);
  if (!(Number.isInteger(l.r) && l.r >= 1)) fail(`rank ${l.r}`);
  if (l.dropout && l.dropout.on !== 'out') fail(`its mask is on the output, not '${l.dropout.on}'`);
  if (sliceBytes(l.u) < a.M * l.r * 4) fail(`U holds ${sliceBytes(l.u)} bytes, (${a.M}, ${l.r}) f32 needs ${a.M * l.r * 4}`);
  if (sliceBytes(l.v) < a.N * l.r * 4) fail(`V holds ${sliceBytes(l.v)} bytes, ${a.N} × ${l.r} f32 needs ${a.N * l.r * 4}`);
}

/** The WGSL defines of a dropout variant (both GEMM shaders), none without dropout. */
export function gemmDropoutDefines(a: GemmArgs): Record<string, boolean> {
  const d = a.dropout;
  if (!d) return {};
  return { DROPOUT: true, DROP_A: d.on === 'A', DROP_B: d.on === 'B', DROP_OUT: d.on === 'out' };
}

/**
 * A batched product whose C entries overlap (strideC 0, the default) has every batch entry's workgroups writing the
 * same outputs at once: a race whose result depends on their order (a test helper once ran one so). Refused.
 */
export function checkBatchStrides(a: GemmArgs): void {
  const batch = a.batch ?? 1;
  if (batch > 1 && (a.strideC ?? 0) < a.M * a.N) {
    throw new FinetuneError('internal', `gemm: a batch of ${batch} with strideC ${a.strideC ?? 0} (under M·N = ${a.M * a.N}) writes the entries' outputs over each other, a race: give strideC ≥ M·N`);
  }
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
