// The register-tiled GEMM (shaders/matmul_tiled.wgsl): the same contract as the basic kernel, with the pipeline
// variant chosen from the shape. `gemm` (matmul.ts) runs it when the context's `gemmKernel` asks for it.

import { FinetuneError } from '../../core/errors.ts';
import { NF4_CODEBOOK } from '../../core/nf4-format.ts';
import type { BufferSlice } from '../buffer-slice.ts';
import { tiledKernelParts, type GpuContext, type TiledKernelParts, type TiledStages } from '../gpu.ts';
import { checkBatchStrides, checkGemmDropout, checkLowRank, gemmDropoutDefines, gemmUniforms, halfDefines, lowRankSpec, type GemmArgs, type LowRankAdd } from './gemm_args.ts';
import { scaleBuffers, type Nf4Weight } from './nf4.ts';

export const TILED_BM = 128;
/**
 * The K step: 16 (16 KiB of tiles for the wide block, what every adapter offers) or 32 ('deep', DEEP_K in the shader:
 * 32 KiB, half the barriers per FMA; the GEMM kernels 'tiled-k32' and 'tiled-warp-k32'). The same bits either way.
 */
export type TiledKStep = TiledKernelParts['kStep'];
/** Block width: 128 columns ('wide', 256 threads) or 64 ('narrow', 128 threads). */
export type TiledBlock = 'wide' | 'narrow';
export const TILED_BN: Readonly<Record<TiledBlock, number>> = { wide: 128, narrow: 64 };

/**
 * Below this many 128×128 blocks the narrow block is chosen, doubling the workgroup count. 264 is two per SM on an
 * H200 (132 SMs): a guess from the hardware, not a measurement (e.g. k_proj/v_proj at 2048 tokens: 16 × 8 = 128 wide
 * blocks, 256 narrow ones). `finetune bench matmul` prints both blocks so this can be set from numbers.
 */
export const NARROW_BELOW_BLOCKS = 264;

/** One pipeline variant of shaders/matmul_tiled.wgsl. */
export interface TiledVariant {
  block: TiledBlock;
  /** Edge tests compiled in: off only when M, N, K divide the block and K step. */
  check: boolean;
  /** The K step (TiledKStep). */
  kStep: TiledKStep;
  /** 128-bit loads and stores: every contiguous dimension and (for batch > 1) every batch stride a multiple of 4. */
  aligned: boolean;
  /** M, N, K compiled into the pipeline (one pipeline per shape). */
  fixedShape: boolean;
}

/** Choices a caller may force (tests, the bench); anything not given follows the shape. */
export interface TiledOptions {
  block?: TiledBlock;
  /** true forces edge tests on a shape that needs none; false on a shape that needs them is refused. */
  check?: boolean;
  /** false forces scalar loads on an aligned shape; true on an unaligned shape is refused. */
  aligned?: boolean;
  fixedShape?: boolean;
  /**
   * Two stages where the device has the workgroup memory for them (`tiledWorkgroupBytes`), else one; one with a K
   * step of 32.
   */
  stages?: TiledStages;
  /** The K step; default: the context's GEMM kernel's (32 for 'tiled-k32' and 'tiled-warp-k32'). */
  kStep?: TiledKStep;
  /** 'warp': a warp of threads covers 8 × 4 of the thread grid (WARP_MAP), 'row': 16 × 2; default: the context's kernel. */
  map?: 'row' | 'warp';
  /**
   * NF4 products, one stage: dequantise a K step's weights as they are stored into the tile, between the barriers
   * (before 2026-12-04, late), rather than into registers ahead of the barrier. The same bits; for `bench nf4`'s A/B.
   */
  dequantAtStore?: boolean;
}

/** Whether a product runs with the warp map: asked for, or the context's GEMM kernel's map ('tiled-warp', 'tiled-warp-k32'). */
function warpMapOf(ctx: GpuContext, o: TiledOptions): boolean {
  return (o.map ?? tiledKernelParts(ctx.gemmKernel)?.map ?? 'row') === 'warp';
}

/** The K step a product asks for: its own, else the context's GEMM kernel's (32 for 'tiled-k32', 'tiled-warp-k32'). */
export function kStepAsked(ctx: GpuContext, o: TiledOptions = {}): TiledKStep {
  return o.kStep ?? tiledKernelParts(ctx.gemmKernel)?.kStep ?? 16;
}

/**
 * Workgroup memory of one variant: its stages of both tiles (kStep K rows of BM and BN floats), and NF4's code book
 * (in workgroup memory with a K step of 16; a storage buffer with 32, whose tiles fill 32 KiB).
 */
export function tiledWorkgroupBytes(block: TiledBlock, stages: TiledStages, nf4: boolean, kStep: TiledKStep = 16): number {
  return stages * kStep * (TILED_BM + TILED_BN[block]) * 4 + (nf4 && kStep === 16 ? 64 : 0);
}

/** The stages asked for where they fit in `limit` bytes of workgroup memory, else one; one with a K step of 32. */
function fittingStages(asked: TiledStages, block: TiledBlock, nf4: boolean, limit: number, kStep: TiledKStep): TiledStages {
  return asked === 2 && kStep === 16 && tiledWorkgroupBytes(block, 2, nf4) <= limit ? 2 : 1;
}

/** Refuses a variant (saying why) whose one stage of tiles does not fit the device's workgroup memory. */
function checkKStepFits(ctx: GpuContext, v: TiledVariant, nf4: boolean): void {
  const limit = ctx.device.limits.maxComputeWorkgroupStorageSize;
  const need = tiledWorkgroupBytes(v.block, 1, nf4, v.kStep);
  if (need > limit) {
    throw new FinetuneError('bad-input', `the tiled GEMM with a K step of ${v.kStep} needs ${need.toLocaleString('en-US')} bytes of workgroup memory (${v.block} block) and this GPU offers ${limit.toLocaleString('en-US')}`);
  }
}

/** Names of the NF4 code-book buffer the K step of 32 reads (ctx.scratch) and the buffers already holding it. */
const NF4_TABLE_SCRATCH = 'NF4 code book';
const filledTables = new WeakSet<GPUBuffer>();

/** Frees the NF4 code book's buffer, if one was made (the next product with a K step of 32 makes it again). */
export function releaseNf4Table(ctx: GpuContext): void {
  ctx.releaseScratch(NF4_TABLE_SCRATCH);
}

/** The NF4 code book as a 64-byte storage buffer of this context, written once. */
function nf4TableBuffer(ctx: GpuContext): GPUBuffer {
  const buf = ctx.scratch(NF4_TABLE_SCRATCH, 64);
  if (!filledTables.has(buf)) {
    ctx.write(buf, Float32Array.from(NF4_CODEBOOK));
    filledTables.add(buf);
  }
  return buf;
}

/** The variant `a` runs on; `o.kStep` is the K step (16 unless given: the context's choice is resolved by callers). */
export function tiledVariant(a: GemmArgs, o: TiledOptions = {}): TiledVariant {
  const { M, N, K } = a;
  const batch = a.batch ?? 1;
  const kStep = o.kStep ?? 16;
  const wideBlocks = Math.ceil(M / TILED_BM) * Math.ceil(N / TILED_BN.wide) * batch;
  const block = o.block ?? (N <= TILED_BN.narrow || wideBlocks < NARROW_BELOW_BLOCKS ? 'narrow' : 'wide');
  const divides = M % TILED_BM === 0 && N % TILED_BN[block] === 0 && K % kStep === 0;
  if (o.check === false && !divides) {
    throw new FinetuneError('internal', `gemmTiled: M=${M} N=${N} K=${K} does not divide the ${block} block and K step ${kStep}, so edge tests are needed`);
  }
  // Each operand's rows are contiguous along one dimension; a vec4 must never straddle two rows or two batch entries.
  const rows = [a.transA ? M : K, a.transB ? K : N, N];
  const strides = batch > 1 ? [a.strideA ?? 0, a.strideB ?? 0, a.strideC ?? 0] : [];
  const canAlign = [...rows, ...strides].every((v) => v % 4 === 0);
  if (o.aligned === true && !canAlign) {
    throw new FinetuneError('internal', `gemmTiled: M=${M} N=${N} K=${K} (or a batch stride) is not a multiple of 4, so 128-bit access is impossible`);
  }
  return { block, check: o.check ?? !divides, kStep, aligned: o.aligned ?? canAlign, fixedShape: o.fixedShape ?? false };
}

/** C (+)= alpha · op(A) · op(B) with the register-tiled kernel. B stored f32, bf16 or f16 (shaders/half.wgsl). */
export function gemmTiled(ctx: GpuContext, a: GemmArgs, o: TiledOptions = {}): void {
  const storage = a.bStorage ?? 'f32';
  checkGemmDropout(a);
  checkLowRank(a);
  checkBatchStrides(a);
  const v = tiledVariant(a, { ...o, kStep: kStepAsked(ctx, o) });
  checkKStepFits(ctx, v, false);
  const stages = fittingStages(o.stages ?? ctx.tiledStages, v.block, false, ctx.device.limits.maxComputeWorkgroupStorageSize, v.kStep);
  const lr = lowRankSpec(a);
  const constants: Record<string, number | boolean> = { TRANS_A: Boolean(a.transA), TRANS_B: Boolean(a.transB), CHECK: v.check, ...lr.constants };
  // 0 means "read the uniform", which holds the same value: a zero size needs no specialising.
  if (v.fixedShape) Object.assign(constants, { FIXED_M: a.M, FIXED_N: a.N, FIXED_K: a.K });
  ctx.dispatch(
    {
      shader: 'matmul_tiled',
      defines: { ALIGNED: v.aligned, NARROW: v.block === 'narrow', DOUBLE: stages === 2, DEEP_K: v.kStep === 32, WARP_MAP: warpMapOf(ctx, o), ...halfDefines('B_HALF', storage), ...gemmDropoutDefines(a), ...lr.defines },
      constants,
    },
    [a.A, a.B, a.C, ...lowRankBuffers(a)],
    gemmUniforms(a),
    [Math.ceil(a.N / TILED_BN[v.block]), Math.ceil(a.M / TILED_BM), a.batch ?? 1],
  );
}


/** The low-rank term's operands, bound after the variant's own buffers (none without one). */
function lowRankBuffers(a: GemmArgs): BufferSlice[] {
  return a.lowRank ? [a.lowRank.u, a.lowRank.v] : [];
}

/** Storage buffers a LOW_RANK variant binds beyond its product's own. */
export const LOW_RANK_BUFFERS = 2;

/** accumulate adds into the output (beta = 1) instead of overwriting it; alpha scales the product. */
export interface Nf4TiledOptions {
  accumulate?: boolean;
  alpha?: number;
  /** A rank-r term added in the epilogue (GemmArgs.lowRank). */
  lowRank?: LowRankAdd;
}

/**
 * Y (M, N) (+)= alpha · X (M, K) · deq(W)ᵀ, W [N, K] in NF4 (plain or double-quantised scales): the fused forward of
 * nf4_matmul.ts on the register-tiled kernel. The wide block needs 64 bytes over the 16 KiB every adapter offers; an
 * adapter with exactly 16 KiB gets the narrow block.
 */
export function nf4MatmulForwardTiled(ctx: GpuContext, Y: GPUBuffer, X: GPUBuffer, W: Nf4Weight, M: number, o: Nf4TiledOptions = {}, t: TiledOptions = {}): void {
  nf4Tiled(ctx, nf4ForwardArgs(Y, X, W, M, o), W, t);
}

/** The forward in GEMM terms: C = Y (M × W.rows), the reduction over W.cols, B = the codes read transposed. */
export function nf4ForwardArgs(Y: GPUBuffer, X: GPUBuffer, W: Nf4Weight, M: number, o: Nf4TiledOptions = {}): GemmArgs {
  return { C: Y, A: X, B: W.codes, M, N: W.rows, K: W.cols, transB: true, alpha: o.alpha, beta: o.accumulate ? 1 : 0, lowRank: o.lowRank };
}

/**
 * dX (M, K) (+)= alpha · dY (M, N) · deq(W), W [N, K] in NF4: the fused input gradient of nf4_matmul.ts on the
 * register-tiled kernel. As a GEMM the reduction runs over W's rows (the layer's outputs) and the output columns are
 * W's columns, so B = deq(W) is used as stored (no transB) and each B tile row is a run of consecutive codes.
 * Shared memory and block choice as the forward.
 */
export function nf4MatmulBackwardTiled(ctx: GpuContext, dX: GPUBuffer, dY: GPUBuffer, W: Nf4Weight, M: number, o: Nf4TiledOptions = {}, t: TiledOptions = {}): void {
  nf4Tiled(ctx, nf4BackwardArgs(dX, dY, W, M, o), W, t);
}

/** The input gradient in GEMM terms: C = dX (M × W.cols), the reduction over W.rows, B = the codes as stored. */
export function nf4BackwardArgs(dX: GPUBuffer, dY: GPUBuffer, W: Nf4Weight, M: number, o: Nf4TiledOptions = {}): GemmArgs {
  return { C: dX, A: dY, B: W.codes, M, N: W.cols, K: W.rows, transB: false, alpha: o.alpha, beta: o.accumulate ? 1 : 0, lowRank: o.lowRank };
}

/**
 * Whether the NF4 products' wide block fits this device at a K step (16: its 64 bytes of code book over WebGPU's 16 KiB
 * minimum; 32: 32 KiB of tiles).
 */
export function nf4WideBlockFits(ctx: GpuContext, kStep: TiledKStep = 16): boolean {
  return ctx.device.limits.maxComputeWorkgroupStorageSize >= tiledWorkgroupBytes('wide', 1, true, kStep);
}

/** The variant an NF4 product (nf4ForwardArgs, nf4BackwardArgs) runs on: the narrow block where the wide one does not fit. */
export function nf4TiledVariant(ctx: GpuContext, a: GemmArgs, t: TiledOptions = {}): TiledVariant {
  const kStep = kStepAsked(ctx, t);
  return tiledVariant(a, nf4WideBlockFits(ctx, kStep) ? { ...t, kStep } : { ...t, kStep, block: 'narrow' });
}

/**
 * Storage buffers an NF4 product on this kernel binds before any low-rank term's: the activations, codes, output and
 * the weight's scale buffers, and with a K step of 32 the code book (mistral/linear.ts counts them against the limit).
 */
export function nf4TiledBufferCount(ctx: GpuContext, W: Nf4Weight): number {
  return 3 + scaleBuffers(W).length + (kStepAsked(ctx) === 32 ? 1 : 0);
}

/** One NF4 product on matmul_tiled.wgsl: `a` in GEMM terms, its B the weight's codes (transB: forward, else gradient). */
function nf4Tiled(ctx: GpuContext, a: GemmArgs, W: Nf4Weight, t: TiledOptions): void {
  checkLowRank(a);
  const limit = ctx.device.limits.maxComputeWorkgroupStorageSize;
  const v = nf4TiledVariant(ctx, a, t);
  checkKStepFits(ctx, v, true);
  const stages = fittingStages(t.stages ?? ctx.tiledStages, v.block, true, limit, v.kStep);
  const lr = lowRankSpec(a);
  const deep = v.kStep === 32;
  const constants: Record<string, number | boolean> = { TRANS_A: false, TRANS_B: Boolean(a.transB), CHECK: v.check, DEQ_BEFORE_BARRIER: !t.dequantAtStore, ...lr.constants };
  if (v.fixedShape) Object.assign(constants, { FIXED_M: a.M, FIXED_N: a.N, FIXED_K: a.K });
  ctx.dispatch(
    { shader: 'matmul_tiled', defines: { ALIGNED: v.aligned, NARROW: v.block === 'narrow', DOUBLE: stages === 2, DEEP_K: deep, WARP_MAP: warpMapOf(ctx, t), NF4: true, DQ: W.doubleQuant, ...lr.defines }, constants },
    // Binding order of the NF4 variant: the activations, codes, the output, the scale buffers, a low-rank term's, then
    // (K step 32) the code book.
    [a.A, W.codes, a.C, ...scaleBuffers(W), ...lowRankBuffers(a), ...(deep ? [nf4TableBuffer(ctx)] : [])],
    gemmUniforms(a),
    [Math.ceil(a.N / TILED_BN[v.block]), Math.ceil(a.M / TILED_BM)],
  );
}
