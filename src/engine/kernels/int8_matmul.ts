// The experimental int8 base path (docs/int8.md): per-row int8 quantisation of activations (shaders/int8_quant.wgsl)
// and int8 products with int32 sums (shaders/int8_matmul.wgsl), the NF4 weight's int8 codes formed as tiles load.
// nf4_matmul_forward / nf4_matmul_backward route here when the context's `baseMatmul` is 'int8'.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { grid1d, requireBytes } from './elementwise.ts';
import { scaleBuffers, type Nf4Weight } from './nf4.ts';

const BLOCK = 64;
/** The largest reduction whose int32 sum cannot overflow: 127² · K < 2^31. */
export const INT8_MAX_REDUCTION = Math.floor((2 ** 31 - 1) / (127 * 127));

export interface Int8MatmulOptions {
  accumulate?: boolean;
  alpha?: number;
}

/** Packed words per row of `cols` int8 codes (4 per u32, the tail padded with zeros). */
export const int8Words = (cols: number): number => Math.ceil(cols / 4);

/** Bytes of a packed int8 matrix of `rows` × `cols` plus its scales. */
export function int8RowsBytes(rows: number, cols: number): { codes: number; scales: number } {
  return { codes: rows * int8Words(cols) * 4, scales: rows * 4 };
}

/**
 * Q (rows, ⌈cols/4⌉ u32) and S (rows f32) from X (rows, cols f32): symmetric per-row int8, S = max|row| / 127.
 * A row with a NaN or an infinity gets S = +inf, so whatever reads it comes out non-finite.
 */
export function quantize_rows_i8(ctx: GpuContext, Q: GPUBuffer, S: GPUBuffer, X: GPUBuffer, rows: number, cols: number): void {
  if (rows === 0 || cols === 0) return;
  const words = int8Words(cols);
  requireBytes(X, rows * cols * 4, 'quantize_rows_i8 X');
  requireBytes(Q, rows * words * 4, 'quantize_rows_i8 Q');
  requireBytes(S, rows * 4, 'quantize_rows_i8 S');
  const g = grid1d(rows, 1);
  ctx.dispatch({ shader: 'int8_quant', entry: 'quantize_rows' }, [X, Q, S], new Uint32Array([rows, cols, words, g[0]]), g);
}

function params(M: number, N: number, K: number, KW: number, o: Int8MatmulOptions): ArrayBuffer {
  const u = new ArrayBuffer(32);
  new Uint32Array(u).set([M, N, K, o.accumulate ? 1 : 0]);
  new Float32Array(u)[4] = o.alpha ?? 1;
  new Uint32Array(u)[5] = KW;
  return u;
}

function checkReduction(K: number, what: string): void {
  if (K > INT8_MAX_REDUCTION) throw new FinetuneError('internal', `${what}: a reduction of ${K} could overflow the int32 sums (limit ${INT8_MAX_REDUCTION})`);
}

function checkTokens(M: number, what: string): void {
  if (!Number.isInteger(M) || M < 0) throw new FinetuneError('internal', `${what}: M = ${M} is not a row count`);
  if (Math.ceil(M / BLOCK) > 65535) throw new FinetuneError('internal', `${what}: M = ${M} is over ${65535 * BLOCK} rows`);
}

/**
 * C (M, N) (+)= alpha · sa[m] · sb[n] · Σ_k A[m, k] · B[n, k], A and B packed int8 rows (⌈K/4⌉ words) with their
 * scales: the plain int8 GEMM (tests and the raw-rate benchmark).
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
  checkTokens(M, 'int8_gemm');
  checkReduction(K, 'int8_gemm');
  if (M === 0 || N === 0) return;
  const KW = int8Words(K);
  requireBytes(A, M * KW * 4, 'int8_gemm A');
  requireBytes(B, N * KW * 4, 'int8_gemm B');
  requireBytes(sa, M * 4, 'int8_gemm sa');
  requireBytes(sb, N * 4, 'int8_gemm sb');
  requireBytes(C, M * N * 4, 'int8_gemm C');
  ctx.dispatch({ shader: 'int8_matmul', entry: 'main' }, [A, sa, B, sb, C], params(M, N, K, KW, o), [Math.ceil(N / BLOCK), Math.ceil(M / BLOCK)]);
}

/** Y (M, N) (+)= alpha · X · deq(W)ᵀ in int8, X given quantised (Xq: M × ⌈K/4⌉ words, sx: M scales). */
export function nf4_int8_forward(ctx: GpuContext, Y: GPUBuffer, Xq: GPUBuffer, sx: GPUBuffer, W: Nf4Weight, M: number, o: Int8MatmulOptions = {}): void {
  checkTokens(M, 'nf4_int8_forward');
  const [N, K] = [W.rows, W.cols];
  checkReduction(K, 'nf4_int8_forward');
  if (M === 0) return;
  requireBytes(Y, M * N * 4, 'nf4_int8_forward Y');
  requireBytes(Xq, M * int8Words(K) * 4, 'nf4_int8_forward Xq');
  ctx.dispatch(
    { shader: 'int8_matmul', entry: 'main', defines: { NF4: true, DQ: W.doubleQuant } },
    [Xq, sx, W.codes, ...scaleBuffers(W), Y],
    params(M, N, K, int8Words(K), o),
    [Math.ceil(N / BLOCK), Math.ceil(M / BLOCK)],
  );
}

/** dX (M, K) (+)= alpha · dY · deq(W) in int8, dY given quantised (dYq: M × ⌈N/4⌉ words, sdy: M scales). */
export function nf4_int8_backward(ctx: GpuContext, dX: GPUBuffer, dYq: GPUBuffer, sdy: GPUBuffer, W: Nf4Weight, M: number, o: Int8MatmulOptions = {}): void {
  checkTokens(M, 'nf4_int8_backward');
  const [N, K] = [W.rows, W.cols];
  checkReduction(N, 'nf4_int8_backward');
  if (M === 0) return;
  requireBytes(dX, M * K * 4, 'nf4_int8_backward dX');
  requireBytes(dYq, M * int8Words(N) * 4, 'nf4_int8_backward dYq');
  ctx.dispatch(
    { shader: 'int8_matmul', entry: 'main', defines: { NF4: true, BACKWARD: true, DQ: W.doubleQuant } },
    [dYq, sdy, W.codes, ...scaleBuffers(W), dX],
    params(M, N, K, int8Words(N), o),
    [K / BLOCK, Math.ceil(M / BLOCK)],
  );
}

/** Names of the context scratch buffers the routed products quantise into (GpuContext.scratch). */
export const INT8_SCRATCH = { codes: 'int8 activations', scales: 'int8 activation scales' } as const;

/** Bytes of context scratch the routed products need for M tokens and a reduction of up to `maxReduction`. */
export function int8ScratchBytes(M: number, maxReduction: number): number {
  const b = int8RowsBytes(M, maxReduction);
  return Math.max(4, Math.ceil(b.codes / 4) * 4) + Math.max(4, b.scales);
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
