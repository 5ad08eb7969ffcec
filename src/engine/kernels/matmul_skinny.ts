// The skinny GEMM (shaders/matmul_skinny.wgsl): the GemmArgs contract for products whose output has a small side
// (min(M, N) ≤ 16: LoRA's rank r) and a long reduction (a layer's 4096–14336 features, or its 2048 tokens). The general
// kernels tile C in 64- or 128-wide blocks, so with N = 8 they launch 16–64 workgroups that each idle 7/8 of their FMAs
// while walking all of K; such a product is bandwidth-bound, and wants many workgroups each reading its share of the
// long operand once. Here a 256-thread workgroup owns 8 or 32 long indices and every small one, its threads split K
// (32 lanes along K when the long operand is contiguous along K, else 32 lanes along the long side and 8 groups along
// K, so loads stay coalesced either way), and one barrier and a fixed-order reduction through 16 KiB of workgroup
// memory finish each output: deterministic, no atomics, so a resumed run reproduces bit for bit. The router
// (`skinnyFits`) is separate from what the kernel can compute (`skinnyCovers`), so tests reach every K. With lanes on
// K, a long operand that can be read in 16-byte quads takes the aligned variant (`SkinnyVariant.aligned`): four times
// the bytes in flight per thread, since the product is bound by the latency of those loads; but only where the small
// operand is stored along K (skinnyVariant says why). The scalar path keeps sixteen loads in flight a thread and reads
// a small operand stored along the small side in quads where it can (`SkinnyVariant.smallVec4`).

import { FinetuneError } from '../../core/errors.ts';
import { sliceBytes, sliceOffset, type BufferSlice } from '../buffer-slice.ts';
import type { GpuContext } from '../gpu.ts';
import { checkBatchStrides, checkGemmDropout, gemmDropoutDefines, gemmUniforms, type GemmArgs } from './gemm_args.ts';

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
  /**
   * The long operand bound as vec4 and read four consecutive k per load (the ALIGNED path): lanes on K, K % 4 == 0,
   * and its binding and batch entries starting on 16-byte boundaries (`quadReadable`).
   */
  aligned: boolean;
  /**
   * The small operand bound as vec4 (quadReadable). With `aligned`: stored along K (quads along k for each s) or with
   * S % 4 == 0 (quads along s for each k). On the scalar path: stored along the small side with S % 4 == 0 (a row k
   * in S / 4 quads). Otherwise it is read one float at a time.
   */
  smallVec4: boolean;
}

/** Choices a test or the clamp audit may force; anything not given follows the shape. */
export interface SkinnyOptions {
  /** false forces the scalar path where the aligned one could run; true where it cannot is refused. */
  aligned?: boolean;
  /** false: the small operand one float at a time where it could be read in quads (the same bits; for tests). */
  smallVec4?: false;
}

/**
 * Whether an operand can be bound as array<vec4f> and read in quads that start at multiples of 4 floats of its batch
 * entries: its binding starts on a 16-byte boundary (a slice's offset; WebGPU requires multiples of
 * minStorageBufferOffsetAlignment there, which the arenas make 256), holds at least one vec4 (the binding's minimum
 * size: an empty product may come with a 4-byte buffer), and with more than one batch entry every entry starts on a
 * multiple of 4 floats. The rows' length is the caller's to check. The batch-stride rule is matmul_tiled.ts's
 * (`tiledVariant`): only strides that are used count.
 */
function quadReadable(x: BufferSlice, stride: number | undefined, batch: number): boolean {
  return sliceOffset(x) % 16 === 0 && sliceBytes(x) >= 16 && (batch <= 1 || (stride ?? 0) % 4 === 0);
}

export function skinnyVariant(a: GemmArgs, o: SkinnyOptions = {}): SkinnyVariant {
  // A tie (both sides small) keeps the small side N, as for the LoRA products where r is N.
  const smallM = a.M < a.N;
  // The long operand's stored rows run along K when it is A untransposed or B transposed.
  const lanesOnK = smallM ? Boolean(a.transB) : !a.transA;
  const batch = a.batch ?? 1;
  const [long, longStride, small, smallStride] = smallM ? [a.B, a.strideB, a.A, a.strideA] : [a.A, a.strideA, a.B, a.strideB];
  // Rows of K floats: a quad never straddles two rows, and every row starts on a 16-byte boundary.
  const canAlign = lanesOnK && a.K % 4 === 0 && quadReadable(long, longStride, batch);
  if (o.aligned === true && !canAlign) {
    throw new FinetuneError('internal', `gemmSkinny: M=${a.M} N=${a.N} K=${a.K} cannot read its long operand in 16-byte quads (lanes on K, K % 4 == 0, 16-byte aligned binding and batch stride)`);
  }
  // The small operand's rows run along K (rows of K floats) when it is A untransposed or B transposed; else they
  // are S floats long.
  const smallAlongK = smallM ? !a.transA : Boolean(a.transB);
  const S = smallM ? a.M : a.N;
  // By itself the aligned path takes only products whose small operand is stored along K (t = drop(x)·Aᵀ): stored
  // along the small side (dt = dy·B), its quad loads of the small operand have a warp's lanes 128 bytes apart, and
  // such a product ran slower there than the scalar path's reads of whole rows are expected to (shaders/matmul_skinny.wgsl).
  const aligned = o.aligned ?? (canAlign && smallAlongK);
  // Aligned: quads along k (stored along K) or along s (rows of S % 4 == 0 floats). Scalar: quads along s only, the
  // same values as one float at a time. An empty small side is never read in quads, as one float at a time it is not.
  const quadRows = S > 0 && S % 4 === 0;
  const smallVec4 = o.smallVec4 !== false && quadReadable(small, smallStride, batch) && (aligned ? smallAlongK || quadRows : !smallAlongK && quadRows);
  return { smallM, lanesOnK, longPerGroup: lanesOnK ? GROUPS : WARP, aligned, smallVec4 };
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
export function gemmSkinny(ctx: GpuContext, a: GemmArgs, o: SkinnyOptions = {}): void {
  checkGemmDropout(a);
  checkBatchStrides(a);
  checkSkinny(a);
  const v = skinnyVariant(a, o);
  const defines: Record<string, boolean> = gemmDropoutDefines(a);
  // The shader's bindings are declared by operand (A_VEC4, B_VEC4), its paths by role (SMALL_M).
  const [longVec, smallVec] = v.smallM ? ['B_VEC4', 'A_VEC4'] : ['A_VEC4', 'B_VEC4'];
  if (v.aligned) Object.assign(defines, { ALIGNED: true, [longVec]: true });
  if (v.smallVec4) defines[smallVec] = true;
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
