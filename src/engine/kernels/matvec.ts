// Y (M, N) = alpha · X (M, K) · W (N, K)ᵀ (+ Y) for M ≤ MATVEC_MAX_ROWS (shaders/matvec.wgsl): a linear layer's
// forward for the one or few rows of a generation step, where the tiled GEMM would compute 64-row blocks of which one
// is used. Same contract as matmul_forward; the weight f32 or bf16 as stored, or NF4 (nf4_matvec_forward, the same
// contract as nf4_matmul_forward).

import { FinetuneError } from '../../core/errors.ts';
import type { BufferSlice } from '../buffer-slice.ts';
import type { GpuContext } from '../gpu.ts';
import { grid1d, requireBytes } from './elementwise.ts';
import { halfDefines } from './gemm_args.ts';
import type { MatmulOptions } from './matmul.ts';
import { scaleBuffers, type Nf4Weight } from './nf4.ts';
import type { Nf4MatmulOptions } from './nf4_matmul.ts';

/** The most rows one call takes (MAX_M in the shader). */
export const MATVEC_MAX_ROWS = 8;
const WG = 64; // output columns per workgroup (WG in the shader)

/** Y (M, N) = alpha · X (M, K) · W (N, K)ᵀ, or Y += … with accumulate. W f32, bf16 or f16; any of the three may be a slice. */
export function matvec_forward(ctx: GpuContext, Y: BufferSlice, X: BufferSlice, W: BufferSlice, M: number, N: number, K: number, o: MatmulOptions = {}): void {
  const storage = o.wStorage ?? 'f32';
  if (!(M >= 1 && M <= MATVEC_MAX_ROWS)) throw new FinetuneError('internal', `matvec_forward: ${M} rows, must be 1..${MATVEC_MAX_ROWS}`);
  if (N === 0 || K === 0) return;
  requireBytes(X, M * K * 4, 'matvec_forward X');
  requireBytes(W, N * K * (storage === 'f32' ? 4 : 2), 'matvec_forward W');
  requireBytes(Y, M * N * 4, 'matvec_forward Y');
  const [nx, ny] = grid1d(N, WG);
  const u = new ArrayBuffer(32);
  const u32 = new Uint32Array(u);
  const f32 = new Float32Array(u);
  u32[0] = M;
  u32[1] = N;
  u32[2] = K;
  u32[3] = nx;
  f32[4] = o.alpha ?? 1;
  f32[5] = o.accumulate ? 1 : 0;
  ctx.dispatch({ shader: 'matvec', defines: halfDefines('W_HALF', storage) }, [X, W, Y], u, [nx, ny]);
}

/** Y (M, N) (+)= alpha · X (M, K) · deq(W)ᵀ with an NF4 weight W [N, K] (shaders/nf4_matvec.wgsl), M ≤ MATVEC_MAX_ROWS. */
export function nf4_matvec_forward(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: Nf4Weight, M: number, o: Nf4MatmulOptions = {}): void {
  if (!(M >= 1 && M <= MATVEC_MAX_ROWS)) throw new FinetuneError('internal', `nf4_matvec_forward: ${M} rows, must be 1..${MATVEC_MAX_ROWS}`);
  const [N, K] = [W.rows, W.cols];
  if (K % 64 !== 0) throw new FinetuneError('internal', `nf4_matvec_forward: in-features ${K} are not a multiple of 64`);
  requireBytes(X, M * K * 4, 'nf4_matvec_forward X');
  requireBytes(Y, M * N * 4, 'nf4_matvec_forward Y');
  const [nx, ny] = grid1d(N, WG);
  const u = new ArrayBuffer(32);
  const u32 = new Uint32Array(u);
  u32[0] = M;
  u32[1] = N;
  u32[2] = K;
  u32[3] = nx;
  new Float32Array(u)[4] = o.alpha ?? 1;
  u32[5] = o.accumulate ? 1 : 0;
  ctx.dispatch({ shader: 'nf4_matvec', defines: { DQ: W.doubleQuant } }, [X, W.codes, ...scaleBuffers(W), Y], u, [nx, ny]);
}
