// Products with a frozen NF4 weight (shaders/nf4_matmul.wgsl), llm.c style: forward and backward side by side.
// The weight is dequantised tile by tile in workgroup memory; the fp32 weight is never built.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import type { LowRankAdd } from './gemm_args.ts';
import { requireBytes, requireRowBlocks } from './elementwise.ts';
import { nf4BackwardInt8, nf4ForwardInt8 } from './int8_matmul.ts';
import { rowBlock, type RowBlock } from './matmul.ts';
import { nf4MatmulBackwardTiled, nf4MatmulForwardTiled } from './matmul_tiled.ts';
import { scaleBuffers, type Nf4Weight } from './nf4.ts';

export interface Nf4MatmulOptions {
  /** Add into the output instead of overwriting it (residual adds, gradient accumulation). */
  accumulate?: boolean;
  alpha?: number;
  /** Run this product on the int8 path (docs/int8.md); default: when the context's baseMatmul is 'int8'. */
  int8?: boolean;
  /**
   * A rank-r term added in the epilogue (GemmArgs.lowRank): fp32 products on the tiled kernel only, which the caller
   * checks (linear.ts: lowRankFuses); anywhere else it is refused.
   */
  lowRank?: LowRankAdd;
}

const BLOCK = 64;

function params(M: number, N: number, K: number, o: Nf4MatmulOptions): ArrayBuffer {
  const u = new ArrayBuffer(32);
  new Uint32Array(u).set([M, N, K, o.accumulate ? 1 : 0]);
  new Float32Array(u)[4] = o.alpha ?? 1;
  return u;
}

/**
 * The int8 path's probe (GpuContext.int8Probe): the same product in int8 and in fp32, alpha 1, into fresh buffers
 * handed to the listener.
 */
function probeInt8(ctx: GpuContext, kind: 'forward' | 'input-gradient', W: Nf4Weight, count: number, int8: (out: GPUBuffer) => void, fp32: (out: GPUBuffer) => void): void {
  const listener = ctx.int8Probe;
  if (!listener) return;
  const a = ctx.createBuffer(`int8 probe ${kind} (int8)`, count * 4, 'scratch');
  const b = ctx.createBuffer(`int8 probe ${kind} (fp32)`, count * 4, 'scratch');
  int8(a);
  fp32(b);
  listener({ kind, weight: W.codes.label.replace(/ codes$/, ''), int8: a, fp32: b, count });
}

function refuseLowRank(ctx: GpuContext, o: Nf4MatmulOptions, int8: boolean, what: string): void {
  if (o.lowRank && (int8 || ctx.gemmKernel === 'basic')) {
    throw new FinetuneError('internal', `${what}: a low-rank term rides only on the fp32 tiled products (run lowRankGemm after this one)`);
  }
}

/** Y (M, N) (+)= alpha · X (M, K) · deq(W)ᵀ, with W [N, K] = [rows, cols] in NF4. Any M; K % 64 == 0 by construction. */
export function nf4_matmul_forward(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: Nf4Weight, M: number, o: Nf4MatmulOptions = {}): void {
  requireRowBlocks(M, BLOCK, 'nf4_matmul_forward');
  if (M === 0) return;
  const [N, K] = [W.rows, W.cols];
  requireBytes(Y, M * N * 4, 'nf4_matmul_forward Y');
  requireBytes(X, M * K * 4, 'nf4_matmul_forward X');
  // The experimental int8 path when chosen (docs/int8.md); else the register-tiled forward follows the GEMM kernel
  // choice (docs/performance.md), as the backward does.
  const int8 = o.int8 ?? ctx.baseMatmul === 'int8';
  refuseLowRank(ctx, o, int8, 'nf4_matmul_forward');
  if (int8) {
    probeInt8(ctx, 'forward', W, M * N, (out) => nf4ForwardInt8(ctx, out, X, W, M), (out) => nf4ForwardFp32(ctx, out, X, W, M));
    nf4ForwardInt8(ctx, Y, X, W, M, o);
  } else nf4ForwardFp32(ctx, Y, X, W, M, o);
}

function nf4ForwardFp32(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: Nf4Weight, M: number, o: Nf4MatmulOptions = {}): void {
  if (ctx.gemmKernel !== 'basic') nf4MatmulForwardTiled(ctx, Y, X, W, M, o, { fixedShape: ctx.gemmKernel === 'tiled-fixed' });
  else nf4ForwardBasic(ctx, Y, X, W, M, o);
}

/**
 * The forward on this file's kernel (64×64 blocks; 16×64 at M ≤ 16), whatever the context's GEMM choice; no argument
 * checks.
 */
export function nf4ForwardBasic(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: Nf4Weight, M: number, o: Nf4MatmulOptions = {}, block: RowBlock = 'auto'): void {
  const { defines, rows } = rowBlock(M, block);
  ctx.dispatch(
    { shader: 'nf4_matmul', entry: 'forward', defines: { DQ: W.doubleQuant, ...defines } },
    [X, W.codes, ...scaleBuffers(W), Y],
    params(M, W.rows, W.cols, o),
    [Math.ceil(W.rows / BLOCK), Math.ceil(M / rows)],
  );
}

/** dX (M, K) (+)= alpha · dY (M, N) · deq(W), with W [N, K] in NF4: the input gradient of a frozen layer. */
export function nf4_matmul_backward(ctx: GpuContext, dX: GPUBuffer, dY: GPUBuffer, W: Nf4Weight, M: number, o: Nf4MatmulOptions = {}): void {
  requireRowBlocks(M, BLOCK, 'nf4_matmul_backward');
  if (M === 0) return;
  const [N, K] = [W.rows, W.cols];
  requireBytes(dX, M * K * 4, 'nf4_matmul_backward dX');
  requireBytes(dY, M * N * 4, 'nf4_matmul_backward dY');
  const int8 = o.int8 ?? ctx.baseMatmul === 'int8';
  refuseLowRank(ctx, o, int8, 'nf4_matmul_backward');
  if (int8) {
    probeInt8(ctx, 'input-gradient', W, M * K, (out) => nf4BackwardInt8(ctx, out, dY, W, M), (out) => nf4BackwardFp32(ctx, out, dY, W, M));
    nf4BackwardInt8(ctx, dX, dY, W, M, o);
  } else nf4BackwardFp32(ctx, dX, dY, W, M, o);
}

function nf4BackwardFp32(ctx: GpuContext, dX: GPUBuffer, dY: GPUBuffer, W: Nf4Weight, M: number, o: Nf4MatmulOptions = {}): void {
  if (ctx.gemmKernel !== 'basic') nf4MatmulBackwardTiled(ctx, dX, dY, W, M, o, { fixedShape: ctx.gemmKernel === 'tiled-fixed' });
  else nf4BackwardBasic(ctx, dX, dY, W, M, o);
}

/**
 * The input gradient on this file's kernel (64×64 blocks; 16×64 at M ≤ 16), whatever the context's GEMM choice; no
 * argument checks.
 */
export function nf4BackwardBasic(ctx: GpuContext, dX: GPUBuffer, dY: GPUBuffer, W: Nf4Weight, M: number, o: Nf4MatmulOptions = {}, block: RowBlock = 'auto'): void {
  const [N, K] = [W.rows, W.cols];
  const { defines, rows } = rowBlock(M, block);
  ctx.dispatch(
    { shader: 'nf4_matmul', entry: 'backward', defines: { BACKWARD: true, DQ: W.doubleQuant, ...defines } },
    [dY, W.codes, ...scaleBuffers(W), dX],
    params(M, N, K, o),
    [K / BLOCK, Math.ceil(M / rows)],
  );
}
