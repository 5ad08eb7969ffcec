// The experimental int8 base path (docs/int8.md): int8 quantisation of activations in groups of 64 values of a row
// (shaders/int8_quant.wgsl) and int8 products with int32 sums per group (shaders/int8_matmul.wgsl), the NF4 weight's
// int8 codes formed as tiles load.
// nf4_matmul_forward / nf4_matmul_backward route here when the context's `baseMatmul` is 'int8'. The products run on
// the context's `int8Kernel`: dot4I8Packed (every adapter) or tensor-core subgroup matrices
// (shaders/int8_matmul_sm.wgsl, where the device has them), which give the same bits.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { grid1d, requireBytes, requireRowBlocks } from './elementwise.ts';
import { scaleBuffers, type Nf4Weight } from './nf4.ts';

const BLOCK = 64;
/** Values per quantisation group along a row (one scale each): one NF4 block, one reduction step of the kernel. */
export const INT8_GROUP = 64;

export interface Int8MatmulOptions {
  accumulate?: boolean;
  alpha?: number;
}

/** Packed words per row of `cols` int8 codes (4 per u32, the tail padded with zeros). */
export const int8Words = (cols: number): number => Math.ceil(cols / 4);

/** Scale groups per row of `cols` values. */
export const int8Groups = (cols: number): number => Math.ceil(cols / INT8_GROUP);

/** Bytes of a packed int8 matrix of `rows` × `cols` plus its scales (one per group). */
export function int8RowsBytes(rows: number, cols: number): { codes: number; scales: number } {
  return { codes: rows * int8Words(cols) * 4, scales: rows * int8Groups(cols) * 4 };
}

/**
 * Q (rows, ⌈cols/4⌉ u32) and S (rows, ⌈cols/64⌉ f32) from X (rows, cols f32): symmetric int8 per group of 64 values
 * of a row, S = max|group| / 127. A group with a NaN or an infinity gets S = +inf, so whatever reads it comes out
 * non-finite.
 */
export function quantize_rows_i8(ctx: GpuContext, Q: GPUBuffer, S: GPUBuffer, X: GPUBuffer, rows: number, cols: number): void {
  if (rows === 0 || cols === 0) return;
  const words = int8Words(cols);
  const groups = int8Groups(cols);
  requireBytes(X, rows * cols * 4, 'quantize_rows_i8 X');
  requireBytes(Q, rows * words * 4, 'quantize_rows_i8 Q');
  requireBytes(S, rows * groups * 4, 'quantize_rows_i8 S');
  const g = grid1d(rows * groups, 1);
  ctx.dispatch({ shader: 'int8_quant', entry: 'quantize_groups' }, [X, Q, S], new Uint32Array([rows, cols, words, g[0], groups, 0, 0, 0]), g);
}

/** The shader of the context's int8 kernel; both take the same bindings, uniforms and 64 × 64 blocks. */
function int8Shader(ctx: GpuContext): 'int8_matmul' | 'int8_matmul_sm' {
  if (ctx.int8Kernel === 'dp4a') return 'int8_matmul';
  if (!ctx.hasInt8SubgroupMatrix) {
    throw new FinetuneError('internal', 'the subgroup-matrix int8 kernel was chosen on a device made without subgroup matrices (GpuContextOptions.int8Kernel)');
  }
  return 'int8_matmul_sm';
}

function params(M: number, N: number, K: number, reduction: number, o: Int8MatmulOptions): ArrayBuffer {
  const u = new ArrayBuffer(32);
  new Uint32Array(u).set([M, N, K, o.accumulate ? 1 : 0]);
  new Float32Array(u)[4] = o.alpha ?? 1;
  new Uint32Array(u)[5] = int8Words(reduction);
  new Uint32Array(u)[6] = int8Groups(reduction);
  return u;
}

/**
 * C (M, N) (+)= alpha · Σ_g sa[m, g] · sb[n, g] · Σ_{k in g} A[m, k] · B[n, k], A and B packed int8 rows (⌈K/4⌉
 * words) with one scale per group of 64 (⌈K/64⌉ per row): the plain int8 GEMM (tests and the raw-rate benchmark).
 */
export function int8_gemm(
  ctx: GpuContext,
  C: GPUBuffer,
  A: GPUBuffer,
  sa: GPUBuffer,
  B: GPUBuffer,
  sb: GPUBuffer,
  M: number,
  N: number,
  K: number,
  o: Int8MatmulOptions = {},
): void {
  requireRowBlocks(M, BLOCK, 'int8_gemm');
  if (M === 0 || N === 0 || K === 0) return;
  const a = int8RowsBytes(M, K);
  const b = int8RowsBytes(N, K);
  requireBytes(A, a.codes, 'int8_gemm A');
  requireBytes(B, b.codes, 'int8_gemm B');
  requireBytes(sa, a.scales, 'int8_gemm sa');
  requireBytes(sb, b.scales, 'int8_gemm sb');
  requireBytes(C, M * N * 4, 'int8_gemm C');
  ctx.dispatch({ shader: int8Shader(ctx), entry: 'main' }, [A, sa, B, sb, C], params(M, N, K, K, o), [Math.ceil(N / BLOCK), Math.ceil(M / BLOCK)]);
}

/** Y (M, N) (+)= alpha · X · deq(W)ᵀ in int8, X given quantised (Xq: M × K/4 words, sx: M × K/64 scales). */
export function nf4_int8_forward(ctx: GpuContext, Y: GPUBuffer, Xq: GPUBuffer, sx: GPUBuffer, W: Nf4Weight, M: number, o: Int8MatmulOptions = {}): void {
  nf4Int8(ctx, Y, Xq, sx, W, M, o, false);
}

/** dX (M, K) (+)= alpha · dY · deq(W) in int8, dY given quantised (dYq: M × ⌈N/4⌉ words, sdy: M × ⌈N/64⌉ scales). */
export function nf4_int8_backward(ctx: GpuContext, dX: GPUBuffer, dYq: GPUBuffer, sdy: GPUBuffer, W: Nf4Weight, M: number, o: Int8MatmulOptions = {}): void {
  nf4Int8(ctx, dX, dYq, sdy, W, M, o, true);
}

/**
 * Both NF4 products: the forward reduces over W's K columns and writes N outputs per row; the input gradient
 * (BACKWARD) reduces over its N rows and writes K.
 */
function nf4Int8(ctx: GpuContext, out: GPUBuffer, q: GPUBuffer, s: GPUBuffer, W: Nf4Weight, M: number, o: Int8MatmulOptions, backward: boolean): void {
  const what = backward ? 'nf4_int8_backward' : 'nf4_int8_forward';
  requireRowBlocks(M, BLOCK, what);
  if (M === 0) return;
  const [N, K] = [W.rows, W.cols];
  const [reduction, outCols] = backward ? [N, K] : [K, N];
  const a = int8RowsBytes(M, reduction);
  requireBytes(out, M * outCols * 4, `${what} output`);
  requireBytes(q, a.codes, `${what} quantised input`);
  requireBytes(s, a.scales, `${what} input scales`);
  ctx.dispatch(
    { shader: int8Shader(ctx), entry: 'main', defines: { NF4: true, BACKWARD: backward, DQ: W.doubleQuant } },
    [q, s, W.codes, ...scaleBuffers(W), out],
    params(M, N, K, reduction, o),
    [Math.ceil(outCols / BLOCK), Math.ceil(M / BLOCK)],
  );
}

/** Names of the context scratch buffers the routed products quantise into (GpuContext.scratch). */
export const INT8_SCRATCH = { codes: 'int8 activations', scales: 'int8 activation scales' } as const;

/** Bytes of context scratch the routed products need for M tokens and a reduction of up to `maxReduction`. */
export function int8ScratchBytes(M: number, maxReduction: number): number {
  const b = int8RowsBytes(M, maxReduction);
  return Math.max(4, b.codes) + Math.max(4, b.scales);
}

/** Quantises `rows × cols` of X into the context's scratch and returns it. */
function quantizeToScratch(ctx: GpuContext, X: GPUBuffer, rows: number, cols: number): { q: GPUBuffer; s: GPUBuffer } {
  const b = int8RowsBytes(rows, cols);
  const q = ctx.scratch(INT8_SCRATCH.codes, b.codes);
  const s = ctx.scratch(INT8_SCRATCH.scales, b.scales);
  quantize_rows_i8(ctx, q, s, X, rows, cols);
  return { q, s };
}

/** The routed forward: quantise X (M, K) per token, then Y (+)= alpha · X · deq(W)ᵀ in int8. */
export function nf4ForwardInt8(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: Nf4Weight, M: number, o: Int8MatmulOptions = {}): void {
  const { q, s } = quantizeToScratch(ctx, X, M, W.cols);
  nf4_int8_forward(ctx, Y, q, s, W, M, o);
}

/** The routed input gradient: quantise dY (M, N) per token, then dX (+)= alpha · dY · deq(W) in int8. */
export function nf4BackwardInt8(ctx: GpuContext, dX: GPUBuffer, dY: GPUBuffer, W: Nf4Weight, M: number, o: Int8MatmulOptions = {}): void {
  const { q, s } = quantizeToScratch(ctx, dY, M, W.rows);
  nf4_int8_backward(ctx, dX, q, s, W, M, o);
}
