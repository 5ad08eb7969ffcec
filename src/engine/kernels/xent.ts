// The fused lm_head + cross-entropy (shaders/xent.wgsl around the matmul family), chunk by chunk so that the
// [tokens × V] logits are never held at once:
//   logits (R, V) = h_chunk (R, C) · Wᵀ                    gemm, W = lm_head (V, C) stored f32 or bf16
//   per row: lse, loss term lse − logit[target], and the logits overwritten by dlogits = (softmax − onehot)·gradScale
//   dh_chunk (R, C) = dlogits (R, V) · W                     gemm
// then the per-row loss terms are summed in a fixed order into lossSum (deterministic: no float atomics), each
// weighted by lossWeights[t] when given.
// With `rows` (HeadRows) only the listed rows of h are computed: each chunk's rows are gathered into the chunk buffer
// and their dh scattered back, the other rows of dh zeroed. A token without a loss (a prompt under the instruct
// layout, padding, each sequence's last token) needs neither logits nor gradient, and at a vocabulary of 32,000 the
// lm_head is most of a small model's work (docs/performance.md, "The lm_head on counted tokens").

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { gemm, type WeightStorage } from './matmul.ts';

/** Target id that contributes neither loss nor gradient (PyTorch's ignore_index). */
export const IGNORE_INDEX = -100;

/** Work buffers of the fused lm_head + cross-entropy, sized for (BT, C, V, chunkTokens). */
export interface LmheadXentScratch {
  BT: number;
  C: number;
  V: number;
  chunkTokens: number;
  /** Sized to gather listed rows (HeadRows). */
  gather: boolean;
  logits: GPUBuffer; // (chunkTokens, V)
  hChunk: GPUBuffer; // (chunkTokens, C): rows of h copied out for chunks after the first
  dhChunk: GPUBuffer; // (chunkTokens, C)
  rowLoss: GPUBuffer; // (BT)
}

/** Bytes of each scratch buffer createLmheadXentScratch makes (the memory planner adds them up without a GPU). */
export interface XentScratchBytes {
  logits: number;
  hChunk: number;
  dhChunk: number;
  rowLoss: number;
}

/**
 * `gather`: the scratch serves listed rows (HeadRows), so even a single chunk needs the row buffers (its rows are
 * gathered into hChunk and its dh scattered from dhChunk); without, they are made only when BT spans several chunks.
 */
export function lmheadXentScratchBytes(BT: number, C: number, V: number, chunkTokens: number, gather = false): XentScratchBytes {
  const R = Math.min(chunkTokens, BT);
  const rowBuffers = gather || BT > R;
  return { logits: R * V * 4, hChunk: rowBuffers ? R * C * 4 : 4, dhChunk: rowBuffers ? R * C * 4 : 4, rowLoss: BT * 4 };
}

export function createLmheadXentScratch(ctx: GpuContext, BT: number, C: number, V: number, chunkTokens: number, gather = false): LmheadXentScratch {
  const R = Math.min(chunkTokens, BT);
  const sizes = lmheadXentScratchBytes(BT, C, V, chunkTokens, gather);
  const logitsBytes = sizes.logits;
  const limit = Math.min(ctx.device.limits.maxStorageBufferBindingSize, ctx.device.limits.maxBufferSize);
  if (logitsBytes > limit) {
    throw new FinetuneError('out-of-memory', `lm_head xent: a chunk of ${R} tokens needs ${logitsBytes} bytes of logits, over this GPU's ${limit}; use fewer chunk tokens`, {
      chunkTokens: R,
      bytes: logitsBytes,
      limit,
    });
  }
  return {
    BT,
    C,
    V,
    chunkTokens,
    gather,
    logits: ctx.createBuffer('xent logits chunk', sizes.logits, 'scratch'),
    hChunk: ctx.createBuffer('xent h chunk', sizes.hChunk, 'scratch'),
    dhChunk: ctx.createBuffer('xent dh chunk', sizes.dhChunk, 'scratch'),
    rowLoss: ctx.createBuffer('xent row losses', sizes.rowLoss, 'scratch'),
  };
}

export function destroyLmheadXentScratch(ctx: GpuContext, s: LmheadXentScratch): void {
  for (const b of [s.logits, s.hChunk, s.dhChunk, s.rowLoss]) ctx.destroy(b);
}

/**
 * The rows of h the head computes, when not all of them: those whose token has a loss. Every per-token array of the
 * call (targets, lossWeights, lse) then holds one value per listed row, in the list's order.
 */
export interface HeadRows {
  /** (count) u32: rows of h, each in [0, BT), ascending. */
  index: GPUBuffer;
  count: number;
}

export interface LmheadXentForwardArgs {
  /** (1) f32, accumulated: lossSum += lossScale · Σ (lse − logit[target]) over counted tokens. */
  lossSum: GPUBuffer;
  /** (BT) f32, overwritten: logsumexp of every row's logits (ignored targets included). */
  lse: GPUBuffer;
  h: GPUBuffer; // (BT, C) f32, the final-norm output
  W: GPUBuffer; // (V, C) lm_head, f32 or bf16 packed two per u32
  wStorage?: WeightStorage;
  /** (BT) i32, already shifted: targets[t] is the token logits[t] must predict; −100 (or any id outside [0, V)) is ignored. */
  targets: GPUBuffer;
  BT: number;
  C: number;
  V: number;
  lossScale?: number;
  /**
   * (BT) f32, optional: a weight per token, lossSum += lossScale · Σ weight[t] · (lse − logit[target]) (a packed
   * validation pass, where tokens of different validation batches weigh differently). Absent: every token weighs 1.
   */
  lossWeights?: GPUBuffer;
  /** Tokens per chunk: the logits chunk is chunkTokens × V f32. */
  chunkTokens: number;
  /** Reused work buffers; without them temporary ones are made, and the recorded work is submitted to free them. */
  scratch?: LmheadXentScratch;
  /** Only these rows of h (HeadRows); absent: all BT rows. */
  rows?: HeadRows;
}

export interface LmheadXentArgs extends LmheadXentForwardArgs {
  /** (BT, C) f32, overwritten: d(loss · gradScale)/dh (0 in the rows HeadRows leaves out). */
  dh: GPUBuffer;
  /** Multiplies dlogits, e.g. 1 / (number of counted tokens). */
  gradScale: number;
}

function xentParams(V: number, row0: number, n: number, gradScale: number, lossScale: number): ArrayBuffer {
  const u = new ArrayBuffer(32);
  const u32 = new Uint32Array(u);
  const f32 = new Float32Array(u);
  u32[0] = V;
  u32[1] = row0;
  u32[2] = n;
  f32[4] = gradScale;
  f32[5] = lossScale;
  return u;
}

function run(ctx: GpuContext, a: LmheadXentForwardArgs, grad: { dh: GPUBuffer; gradScale: number } | null): void {
  const { BT, C, V, chunkTokens } = a;
  if (!(chunkTokens >= 1 && chunkTokens <= 65535 && Number.isInteger(chunkTokens))) {
    throw new FinetuneError('internal', `lm_head xent: chunkTokens ${chunkTokens} must be an integer in [1, 65535]`);
  }
  if (BT < 1 || C < 1 || V < 1) throw new FinetuneError('internal', `lm_head xent: empty shape (BT ${BT}, C ${C}, V ${V})`);
  const listed = a.rows ?? null;
  if (listed && !(Number.isInteger(listed.count) && listed.count >= 0 && listed.count <= BT)) {
    throw new FinetuneError('internal', `lm_head xent: ${listed.count} listed rows of ${BT}`);
  }
  const s = a.scratch ?? createLmheadXentScratch(ctx, BT, C, V, chunkTokens, listed !== null);
  if (s.C !== C || s.V !== V || s.BT < BT || s.chunkTokens < Math.min(chunkTokens, BT) || (listed && !s.gather)) {
    throw new FinetuneError('internal', `lm_head xent: scratch sized for (BT ${s.BT}, C ${s.C}, V ${s.V}, chunk ${s.chunkTokens}${s.gather ? ', gather' : ''})`);
  }
  const bStorage = a.wStorage ?? 'f32';
  const rowSpec = { shader: 'xent', entry: 'rows', constants: { WRITE_GRAD: grad !== null } };
  const rowCount = listed ? listed.count : BT;
  // The rows left out get no gradient; the listed ones are overwritten below.
  if (listed && grad) ctx.clear(grad.dh, 0, BT * C * 4);
  for (let r0 = 0; r0 < rowCount; r0 += chunkTokens) {
    const R = Math.min(chunkTokens, rowCount - r0);
    let hIn = a.h;
    if (listed) {
      gather_rows(ctx, s.hChunk, a.h, listed.index, r0, R, C);
      hIn = s.hChunk;
    } else if (r0 > 0) {
      ctx.copy(a.h, r0 * C * 4, s.hChunk, 0, R * C * 4);
      hIn = s.hChunk;
    }
    gemm(ctx, { C: s.logits, A: hIn, B: a.W, M: R, N: V, K: C, transB: true, bStorage }); // (R, V)
    ctx.dispatch(rowSpec, [s.logits, a.targets, s.rowLoss, a.lse], xentParams(V, r0, 0, grad?.gradScale ?? 0, 0), [R]);
    if (grad) {
      const out = r0 === 0 && !listed ? grad.dh : s.dhChunk;
      gemm(ctx, { C: out, A: s.logits, B: a.W, M: R, N: C, K: V, bStorage }); // (R, C)
      if (listed) scatter_rows(ctx, grad.dh, s.dhChunk, listed.index, r0, R, C);
      else if (r0 > 0) ctx.copy(s.dhChunk, 0, grad.dh, r0 * C * 4, R * C * 4);
    }
  }
  const params = xentParams(V, 0, rowCount, 0, a.lossScale ?? 1);
  if (a.lossWeights) ctx.dispatch({ shader: 'xent', entry: 'loss_sum_weighted' }, [s.rowLoss, a.lossSum, a.lossWeights], params, [1]);
  else ctx.dispatch({ shader: 'xent', entry: 'loss_sum' }, [s.rowLoss, a.lossSum], params, [1]);
  if (!a.scratch) {
    ctx.flush();
    destroyLmheadXentScratch(ctx, s);
  }
}

/** out[i, :] = src[index[row0 + i], :] for i < n, rows of `width` f32 (shaders/xent.wgsl gather_rows). */
export function gather_rows(ctx: GpuContext, out: GPUBuffer, src: GPUBuffer, index: GPUBuffer, row0: number, n: number, width: number): void {
  if (n > 0) ctx.dispatch({ shader: 'xent', entry: 'gather_rows' }, [src, index, out], xentParams(width, row0, n, 0, 0), [n]);
}

/** gather_rows' backward: out[index[row0 + i], :] = src[i, :] for i < n; the other rows of out are left as they are. */
export function scatter_rows(ctx: GpuContext, out: GPUBuffer, src: GPUBuffer, index: GPUBuffer, row0: number, n: number, width: number): void {
  if (n > 0) ctx.dispatch({ shader: 'xent', entry: 'scatter_rows' }, [src, index, out], xentParams(width, row0, n, 0, 0), [n]);
}

/**
 * Loss, lse and dh of the lm_head + cross-entropy over BT tokens, chunkTokens rows of logits at a time.
 * dh (BT, C) and lse (BT) are overwritten; lossSum (1) is accumulated.
 */
export function lmhead_xent_forward_backward(ctx: GpuContext, a: LmheadXentArgs): void {
  run(ctx, a, { dh: a.dh, gradScale: a.gradScale });
}

/** The same without the gradient (validation): lossSum accumulated, lse overwritten. */
export function lmhead_xent_forward(ctx: GpuContext, a: LmheadXentForwardArgs): void {
  run(ctx, a, null);
}
