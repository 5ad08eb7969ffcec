// The skinny GEMM (shaders/matmul_skinny.wgsl): the GemmArgs contract for products whose output has a small side
// (min(M, N) ≤ 16: LoRA's rank r) and a long reduction (a layer's 4096–14336 features, or its 2048 tokens). The general
// kernels tile C in 64- or 128-wide blocks, so with N = 8 they launch 16–64 workgroups that each idle 7/8 of their FMAs
// while walking all of K; such a product is bandwidth-bound, and wants many workgroups each reading its share of the
// long operand once. Here a 256-thread workgroup owns 8 or 32 long indices and every small one, its threads split K
// (32 lanes along K when the long operand is contiguous along K, else 32 lanes along the long side and 8 groups along
// K, so loads stay coalesced either way), and one barrier and a fixed-order reduction through 16 KiB of workgroup
// memory finish each output: deterministic, no atomics, so a resumed run reproduces bit for bit. The router
// (`skinnyFits`) is separate from what the kernel can compute (`skinnyCovers`), so tests reach every K.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { checkGemmDropout, gemmDropoutDefines, gemmUniforms, type GemmArgs } from './gemm_args.ts';

/** The largest small side the kernel takes: four vec4 accumulators per thread, 16 × 256 partials in 16 KiB. */
export const SKINNY_MAX = 16;

/**
 * The shortest reduction `skinnyFits` routes here. Below 64 a thread's loop runs at most 2 steps (lanes along K) or 8
 * (groups along K), so the kernel's fixed cost (16 partials written per thread, a barrier, an 8- or 32-term sum per
 * output) is as large as the product, while the general kernels cover such a K in at most 4 of their 16-deep steps,
 * which bounds their waste. A reasoned guess, not a measurement; every LoRA product that qualifies has K ≥ 2048.
 */
export const SKINNY_MIN_K = 64;

const THREADS = 256;
const WARP = 32;
const GROUPS = THREADS / WARP;

/** One pipeline variant of shaders/matmul_skinny.wgsl and its grid. */
export interface SkinnyVariant {
  /** The small side is M (the long operand is B); else N (the long operand is A). */
  smallM: boolean;
  /** 32 lanes along K (the long operand contiguous along K) rather than 32 lanes along the long side. */
  lanesOnK: boolean;
  /** Long indices per workgroup: 8 with lanes on K, 32 otherwise. */
  longPerGroup: number;
}

export function skinnyVariant(a: GemmArgs): SkinnyVariant {
  // A tie (both sides small) keeps the small side N, as for the LoRA products where r is N.
  const smallM = a.M < a.N;
  // The long operand's stored rows run along K when it is A untransposed or B transposed.
  const lanesOnK = smallM ? Boolean(a.transB) : !a.transA;
  return { smallM, lanesOnK, longPerGroup: lanesOnK ? GROUPS : WARP };
}

/** What the kernel can compute: a small side of at most SKINNY_MAX and B stored as f32 (any K, any batch). */
export function skinnyCovers(a: GemmArgs): boolean {
  return Math.min(a.M, a.N) <= SKINNY_MAX && (a.bStorage ?? 'f32') === 'f32';
}

/** Whether a product belongs on this kernel: covered, not empty, and a reduction long enough (SKINNY_MIN_K). */
export function skinnyFits(a: GemmArgs): boolean {
  return skinnyCovers(a) && Math.max(a.M, a.N) > 0 && a.K >= SKINNY_MIN_K;
}

const U32_LIMIT = 2 ** 32;

/**
 * Refuses what the kernel cannot compute or index: a large small side, non-f32 B, u32 overflow. Too big a grid is
 * ctx.dispatch's refusal, as for every kernel.
 */
function checkSkinny(a: GemmArgs): void {
  const { M, N, K } = a;
  const shape = `M=${M} N=${N} K=${K}`;
  if (!skinnyCovers(a)) {
    throw new FinetuneError('internal', `gemmSkinny: ${shape} (B ${a.bStorage ?? 'f32'}) needs min(M, N) ≤ ${SKINNY_MAX} and f32 B`);
  }
  const batch = a.batch ?? 1;
  const entries: [number, number][] = [
    [M * K, a.strideA ?? 0],
    [K * N, a.strideB ?? 0],
    [M * N, a.strideC ?? 0],
  ];
  // Every index is a u32 in the shader: the last batch entry's last element must be below 2³².
  if (entries.some(([size, stride]) => (batch - 1) * stride + size >= U32_LIMIT)) {
    throw new FinetuneError('internal', `gemmSkinny: ${shape} batch ${batch} indexes past 2³² elements`);
  }
}

/** C (+)= alpha · op(A) · op(B) on the skinny kernel; refuses a shape it does not cover (skinnyCovers). */
export function gemmSkinny(ctx: GpuContext, a: GemmArgs): void {
  checkGemmDropout(a);
  checkSkinny(a);
  const v = skinnyVariant(a);
  const defines = gemmDropoutDefines(a);
  ctx.dispatch(
    {
      shader: 'matmul_skinny',
      defines: Object.keys(defines).length ? defines : undefined,
      constants: { TRANS_A: Boolean(a.transA), TRANS_B: Boolean(a.transB), SMALL_M: v.smallM, LANES_ON_K: v.lanesOnK },
    },
    [a.A, a.B, a.C],
    gemmUniforms(a),
    // An empty long side is a zero dimension, which ctx.dispatch skips; an empty small side writes nothing.
    [Math.ceil(Math.max(a.M, a.N) / v.longPerGroup), a.batch ?? 1],
  );
}
