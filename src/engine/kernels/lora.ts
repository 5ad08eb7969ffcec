// LoRA adapters on a frozen linear layer, forward and backward, with dropout from a counter-based RNG and the
// products on the GEMM (kernels/matmul.ts). PEFT's definition:
//   y = x·Wᵀ + scale · (drop(x)·Aᵀ)·Bᵀ,   A (r, in), B (out, r), scale = alpha / r (alpha / √r with rsLoRA)
// The base product x·Wᵀ is someone else's (NF4 matmul); lora_forward adds the adapter's term to y.
// The dropout mask is a pure function of (key, element index) (shaders/lora.wgsl describes it), so it is never
// stored, and neither is drop(x): the GEMM regenerates the mask where it reads x (or writes dx), by variant
// (`GemmDropout`: on operand A, on operand B, or on the output). Each fused product gives the same bits as
// lora_dropout into a buffer followed by the plain product (test/gpu/lora.test.ts checks it for both GEMM kernels).

import { PROJECTIONS, type Projection } from '../../core/mistral.ts';
import { FinetuneError } from '../../core/errors.ts';
import type { BufferSlice } from '../buffer-slice.ts';
import type { GpuContext } from '../gpu.ts';
import { grid1d, requireBytes } from './elementwise.ts';
import type { GemmArgs } from './gemm_args.ts';
import { gemm, lowRankGemm, type GemmDropout, type LowRankAdd } from './matmul.ts';
import { gemmSkinny, skinnyFits } from './matmul_skinny.ts';

/** The seven projections PEFT targets in Mistral, in the order used as the dropout key's `module`. */

export function loraModuleId(name: Projection): number {
  return PROJECTIONS.indexOf(name);
}

/**
 * What the dropout mask of one LoRA input depends on (each a u32). `step` must differ for every forward pass that
 * should see a new mask (use the micro-batch counter, not the optimizer step, under gradient accumulation); a
 * recomputation (gradient checkpointing) and the backward pass reuse the forward's key to get the same mask.
 */
export interface DropoutKey {
  seed: number;
  step: number;
  layer: number;
  module: number;
}

export interface LoraDropout {
  /** Drop probability in [0, 1]. */
  p: number;
  key: DropoutKey;
}

// murmur3_x86_32 on u32 words, the same arithmetic as shaders/lora.wgsl.
const rotl = (v: number, r: number): number => ((v << r) | (v >>> (32 - r))) >>> 0;

function murmurBlock(h: number, word: number): number {
  let k = Math.imul(word >>> 0, 0xcc9e2d51);
  k = rotl(k, 15);
  k = Math.imul(k, 0x1b873593);
  let s = (h ^ k) >>> 0;
  s = rotl(s, 13);
  return (Math.imul(s, 5) + 0xe6546b64) >>> 0;
}

function murmurFinal(h0: number, bytes: number): number {
  let h = (h0 ^ bytes) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function checkU32(v: number, what: string): void {
  if (!(Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) throw new FinetuneError('internal', `dropout key ${what} must be a u32, got ${v}`);
}

/** The murmur3 state after the key's four words: the uniform the shader starts from. */
export function dropoutKeyState(key: DropoutKey): number {
  checkU32(key.seed, 'seed');
  checkU32(key.step, 'step');
  checkU32(key.layer, 'layer');
  checkU32(key.module, 'module');
  let h = 0;
  for (const w of [key.seed, key.step, key.layer, key.module]) h = murmurBlock(h, w);
  return h;
}

/** murmur3_x86_32(seed, step, layer, module, i): the dropout RNG's value for element i (bit-exact with the GPU). */
export function dropoutHash(state: number, i: number): number {
  return murmurFinal(murmurBlock(state, i), 20);
}

/** Elements with hash ≥ threshold are kept. */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new FinetuneError('internal', `dropout probability must be in [0, 1], got ${p}`);
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/** f32(1 / (1 − p)), 0 when p = 1 (everything dropped, as torch). */
export function dropoutScale(p: number): number {
  return p >= 1 ? 0 : Math.fround(1 / (1 - p));
}

export interface DropoutOptions {
  /** out += drop(x) instead of out = drop(x) (out must then differ from x). */
  accumulate?: boolean;
}

/**
 * out (n) (+)= x (n) · mask / (1 − p), the mask regenerated from `key` (never stored). out === x works in place
 * (without accumulate). p = 0 is an exact copy (a buffer copy; with accumulate, out += x).
 * The LoRA products no longer call it (the GEMM applies the mask itself, `loraGemmDropout`): it is the standalone
 * form of the mask, the two-step reference the fused products are tested against bit for bit.
 */
export function lora_dropout(ctx: GpuContext, out: GPUBuffer, x: GPUBuffer, n: number, p: number, key: DropoutKey, o: DropoutOptions = {}): void {
  const u = new ArrayBuffer(16);
  const u32 = new Uint32Array(u);
  u32[1] = dropoutKeyState(key);
  u32[2] = dropoutThreshold(p);
  new Float32Array(u)[3] = dropoutScale(p);
  if (n === 0) return;
  u32[0] = n;
  requireBytes(out, n * 4, 'lora_dropout out');
  requireBytes(x, n * 4, 'lora_dropout x');
  const inplace = out === x;
  if (inplace && o.accumulate) throw new FinetuneError('internal', 'lora_dropout: accumulate needs out and x to differ');
  if (p === 0 && !o.accumulate) {
    // A buffer copy, bit for bit (a multiply by 1 could flush subnormals on some GPUs).
    if (!inplace) ctx.copy(x, 0, out, 0, n * 4);
    return;
  }
  ctx.dispatch(
    { shader: 'lora', defines: { INPLACE: inplace, ACCUMULATE: Boolean(o.accumulate) } },
    inplace ? [out] : [out, x],
    u,
    grid1d(n),
  );
}

/**
 * Scratch the LoRA kernels use instead of allocating per call; one set sized for the largest module serves all.
 * dt: ≥ BT·r f32 (backward only). Dropout needs none: the mask is applied inside the products.
 */
export interface LoraScratch {
  dt: GPUBuffer | null;
}

/** Bytes of each scratch buffer for BT tokens and rank r. */
export function loraScratchBytes(BT: number, r: number): { dt: number } {
  return { dt: BT * r * 4 };
}

function active(dropout: LoraDropout | null): dropout is LoraDropout {
  return dropout !== null && dropout.p > 0;
}

/**
 * A rank-r product (t = x·Aᵀ, dt = dy·B, dA, dB): on the skinny kernel when the context says so and the reduction is
 * long enough for it (kernels/matmul_skinny.ts), else on the GEMM kernel. The products with K = r (y += t·Bᵀ,
 * dx += dt·A) have a wide output and stay on the GEMM kernel.
 */
function loraGemm(ctx: GpuContext, a: GemmArgs): void {
  if (ctx.loraKernel === 'skinny' && skinnyFits(a)) gemmSkinny(ctx, a);
  else gemm(ctx, a);
}

/** The mask of `dropout` (p > 0) as a GEMM variant: on operand A, operand B, or the output. */
export function loraGemmDropout(dropout: LoraDropout, on: GemmDropout['on']): GemmDropout {
  return { on, state: dropoutKeyState(dropout.key), threshold: dropoutThreshold(dropout.p), scale: dropoutScale(dropout.p) };
}

/**
 * LoRA's up-projection y += scale · t·Bᵀ as a low-rank term (GemmArgs.lowRank): the training runner adds it in the
 * frozen base product's epilogue (mistral/linear.ts), lora_forward as a product of its own.
 */
export function loraUpTerm(t: BufferSlice, B: BufferSlice, r: number, scale: number): LowRankAdd {
  return { u: t, v: B, r, transV: true, scale };
}

/**
 * LoRA's input gradient dx += drop(dt·A) as a low-rank term (dt = scale · dy·B, as lora_backward returns it): the
 * forward's mask and 1/(1 − p) on the product, as the two-step path applied them.
 */
export function loraInputTerm(dt: BufferSlice, A: BufferSlice, r: number, dropout: LoraDropout | null): LowRankAdd {
  return { u: dt, v: A, r, transV: false, scale: 1, dropout: active(dropout) ? loraGemmDropout(dropout, 'out') : undefined };
}

/**
 * y (BT, outF) += scale · t·Bᵀ, with t (BT, r) = drop(x (BT, inF))·Aᵀ saved for the backward.
 * A (r, inF), B (outF, r) f32, whole buffers or slices of the adapter's arenas. dropout null or p = 0: no mask. Two
 * GEMMs with or without dropout (no scratch).
 */
export function lora_forward(
  ctx: GpuContext,
  y: GPUBuffer,
  t: GPUBuffer,
  x: GPUBuffer,
  A: BufferSlice,
  B: BufferSlice,
  BT: number,
  inF: number,
  outF: number,
  r: number,
  scale: number,
  dropout: LoraDropout | null,
): void {
  requireBytes(y, BT * outF * 4, 'lora_forward y');
  requireBytes(B, outF * r * 4, 'lora_forward B');
  lora_intermediate(ctx, t, x, A, BT, inF, r, dropout);
  lowRankGemm(ctx, y, loraUpTerm(t, B, r, scale), BT, outF);
}

/**
 * t (BT, r) = drop(x (BT, inF))·Aᵀ alone: the first half of lora_forward. Activation checkpointing recomputes it for a
 * module whose output the recomputation does not need (down_proj), with the forward's dropout key. One GEMM, the mask
 * applied to its A operand (x) as it is loaded.
 */
export function lora_intermediate(
  ctx: GpuContext,
  t: GPUBuffer,
  x: GPUBuffer,
  A: BufferSlice,
  BT: number,
  inF: number,
  r: number,
  dropout: LoraDropout | null,
): void {
  requireBytes(t, BT * r * 4, 'lora t');
  requireBytes(x, BT * inF * 4, 'lora x');
  requireBytes(A, r * inF * 4, 'lora A');
  loraGemm(ctx, { C: t, A: x, B: A, M: BT, N: r, K: inF, transB: true, dropout: active(dropout) ? loraGemmDropout(dropout, 'A') : undefined });
}

/**
 * The adapter's gradients, accumulated (+=) so zeroing is the caller's explicit step:
 *   dB (outF, r) += scale · dyᵀ·t
 *   dt (BT, r)    = scale · dy·B                      (in scratch.dt, which it returns)
 *   dA (r, inF)  += dtᵀ·drop(x)                       (the mask regenerated from the forward's key, on B's loads)
 *   dx (BT, inF) += drop'(dt·A)                       (the same mask and scale on the product, in the epilogue)
 * dy (BT, outF) is the layer output's gradient; x, t, A, B as in lora_forward. Four GEMMs, with or without dropout.
 * With dx null the last is the caller's: the training runner adds it as a low-rank term (loraInputTerm) on the
 * frozen base's input gradient.
 */
export function lora_backward(
  ctx: GpuContext,
  dx: GPUBuffer | null,
  dA: BufferSlice,
  dB: BufferSlice,
  dy: GPUBuffer,
  x: GPUBuffer,
  t: GPUBuffer,
  A: BufferSlice,
  B: BufferSlice,
  BT: number,
  inF: number,
  outF: number,
  r: number,
  scale: number,
  dropout: LoraDropout | null,
  scratch: LoraScratch,
): GPUBuffer {
  if (!scratch.dt) throw new FinetuneError('internal', 'lora_backward needs scratch.dt (BT·r f32)');
  const dt = scratch.dt;
  requireBytes(dt, BT * r * 4, 'lora_backward scratch.dt');
  if (dx) requireBytes(dx, BT * inF * 4, 'lora_backward dx');
  requireBytes(dA, r * inF * 4, 'lora_backward dA');
  requireBytes(dB, outF * r * 4, 'lora_backward dB');
  requireBytes(dy, BT * outF * 4, 'lora_backward dy');
  requireBytes(x, BT * inF * 4, 'lora_backward x');
  requireBytes(t, BT * r * 4, 'lora_backward t');
  requireBytes(A, r * inF * 4, 'lora_backward A');
  requireBytes(B, outF * r * 4, 'lora_backward B');
  loraGemm(ctx, { C: dB, A: dy, B: t, M: outF, N: r, K: BT, transA: true, alpha: scale, beta: 1 });
  loraGemm(ctx, { C: dt, A: dy, B, M: BT, N: r, K: outF, alpha: scale });
  const on = active(dropout);
  loraGemm(ctx, { C: dA, A: dt, B: x, M: r, N: inF, K: BT, transA: true, beta: 1, dropout: on ? loraGemmDropout(dropout, 'B') : undefined });
  if (dx) lowRankGemm(ctx, dx, loraInputTerm(dt, A, r, dropout), BT, inF);
  return dt;
}
