// Linear-layer products on the GPU, llm.c style: matmul_forward and matmul_backward side by side,
// outputs first, then what backward needs, then inputs, then dimensions.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import type { BufferSlice } from '../buffer-slice.ts';
import { checkBatchStrides, checkGemmDropout, gemmDropoutDefines, gemmUniforms, halfDefines, type GemmArgs, type LowRankAdd, type WeightStorage } from './gemm_args.ts';
import { gemmTiled } from './matmul_tiled.ts';

export type { GemmArgs, GemmDropout, LowRankAdd, WeightStorage } from './gemm_args.ts';

const BLOCK = 64;
/** Products with at most this many output rows run on 16 × 64 blocks (shaders/matmul.wgsl, SHORT). */
export const SHORT_ROWS = 16;

/** Which row block a basic kernel runs: 'auto' takes 16-row blocks (SHORT) at M ≤ SHORT_ROWS; tests force either. */
export type RowBlock = 'auto' | 'short' | 'square';

/** The SHORT define and the row-block height for M rows (the basic GEMM's and the basic NF4 products' choice). */
export function rowBlock(M: number, block: RowBlock): { defines: { SHORT?: true }; rows: number } {
  const short = block === 'short' || (block === 'auto' && M <= SHORT_ROWS);
  return short ? { defines: { SHORT: true }, rows: SHORT_ROWS } : { defines: {}, rows: BLOCK };
}

/**
 * C (+)= alpha · op(A) · op(B) with the kernel the context's `gemmKernel` names (GpuContextOptions). B may be stored
 * f32, bf16 or f16 on either kernel and on every adapter (shaders/half.wgsl decodes the 16-bit formats).
 */
export function gemm(ctx: GpuContext, a: GemmArgs): void {
  if (ctx.gemmKernel !== 'basic') gemmTiled(ctx, a, { fixedShape: ctx.gemmKernel === 'tiled-fixed' });
  else gemmBasic(ctx, a);
}

/**
 * The basic kernel (shaders/matmul.wgsl: 64×64 blocks, 4×4 outputs per thread), whatever the context says; at most
 * SHORT_ROWS output rows on 16 × 64 blocks instead, the same bits without the 64-row block's FMAs on zero rows.
 * `block` forces one of the two (tests compare them).
 */
export function gemmBasic(ctx: GpuContext, a: GemmArgs, block: RowBlock = 'auto'): void {
  const storage = a.bStorage ?? 'f32';
  checkGemmDropout(a);
  checkBatchStrides(a);
  if (a.lowRank) throw new FinetuneError('internal', 'gemmBasic: a low-rank term rides only on the tiled kernel (run lowRankGemm after the product)');
  const { defines: blockDefines, rows } = rowBlock(a.M, block);
  const defines = { ...halfDefines('B_HALF', storage), ...gemmDropoutDefines(a), ...blockDefines };
  // Both blocks are BLOCK columns wide.
  const grid: [number, number, number] = [Math.ceil(a.N / BLOCK), Math.ceil(a.M / rows), a.batch ?? 1];
  ctx.dispatch(
    {
      shader: 'matmul',
      defines: Object.keys(defines).length ? defines : undefined,
      constants: { TRANS_A: Boolean(a.transA), TRANS_B: Boolean(a.transB) },
    },
    [a.A, a.B, a.C],
    gemmUniforms(a),
    grid,
  );
}

/**
 * C (M, N) += drop(scale · U·op(V)) as a product of its own: the unfused form of a low-rank term (GemmArgs.lowRank),
 * for kernels and adapters the epilogue does not serve. On the tiled kernel both forms give the same bits.
 */
export function lowRankGemm(ctx: GpuContext, C: BufferSlice, l: LowRankAdd, M: number, N: number): void {
  gemm(ctx, { C, A: l.u, B: l.v, M, N, K: l.r, transB: l.transV, alpha: l.scale, beta: 1, dropout: l.dropout });
}

export interface MatmulOptions {
  /** Add into the output instead of overwriting it (gradient accumulation, residual adds). */
  accumulate?: boolean;
  alpha?: number;
  wStorage?: WeightStorage;
  /** A rank-r term added in the tiled kernel's epilogue (the caller checks that the context's kernel is tiled). */
  lowRank?: LowRankAdd;
}

/** Y (M, N) = alpha · X (M, K) · W (N, K)ᵀ */
export function matmul_forward(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: GPUBuffer, M: number, N: number, K: number, o: MatmulOptions = {}): void {
  gemm(ctx, { C: Y, A: X, B: W, M, N, K, transB: true, alpha: o.alpha, beta: o.accumulate ? 1 : 0, bStorage: o.wStorage, lowRank: o.lowRank });
}

/**
 * dX (M, K) = alpha · dY (M, N) · W (N, K);  dW (N, K) = alpha · dY (M, N)ᵀ · X (M, K).
 * Pass null for a gradient that is not needed (a frozen weight has no dW).
 */
export function matmul_backward(
  ctx: GpuContext,
  dX: GPUBuffer | null,
  dW: GPUBuffer | null,
  dY: GPUBuffer,
  X: GPUBuffer,
  W: GPUBuffer,
  M: number,
  N: number,
  K: number,
  o: MatmulOptions = {},
): void {
  const beta = o.accumulate ? 1 : 0;
  if (dX) gemm(ctx, { C: dX, A: dY, B: W, M, N: K, K: N, alpha: o.alpha, beta, bStorage: o.wStorage, lowRank: o.lowRank });
  else if (o.lowRank) throw new FinetuneError('internal', 'matmul_backward: a low-rank term needs dX to add into');
  if (dW) gemm(ctx, { C: dW, A: dY, B: X, M: N, N: K, K: M, transA: true, alpha: o.alpha, beta });
}
