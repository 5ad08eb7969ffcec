// `finetune bench matmul`: GFLOP/s of every matmul variant on each GEMM kernel, at square sizes and at Mistral-7B's
// projection shapes, all in the same run on the same adapter: the basic kernel (shaders/matmul.wgsl), the
// register-tiled one (shaders/matmul_tiled.wgsl) with each block width, the tiled one with sizes compiled in, and for
// the f32 shapes with an output side of at most 16 (LoRA's rank-r products, e.g. --shapes 2048x8x4096,8x4096x2048) the
// skinny kernel (shaders/matmul_skinny.wgsl). Every other kernel's result also carries its largest difference from the
// basic kernel's output on the same inputs. A variant's vsPlain comes from rounds that time it and the same kernel's
// plain product alternately (engine/timing.ts `timePaired`), not from the plain line measured earlier.

import { f32ToF16Bits } from '../core/dtypes.ts';
import { tiledKernelParts, type GemmKernel, type GpuContext, type TiledStages } from '../engine/gpu.ts';
import { gemmBasic, type GemmArgs, type WeightStorage } from '../engine/kernels/matmul.ts';
import { gemmSkinny, skinnyFits } from '../engine/kernels/matmul_skinny.ts';
import { gemmTiled, tiledVariant, tiledWorkgroupBytes, type TiledBlock } from '../engine/kernels/matmul_tiled.ts';
import { maxRelError, randomArray } from '../engine/reference/common.ts';
import { benchTiming, timeGpu, timePaired, type PairedTiming, type Timing } from '../engine/timing.ts';

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  /** What the shape is, e.g. "k_proj/v_proj at 2048 tokens". */
  label?: string;
}


/** The kernels the bench runs: the GEMM kernels, and the skinny one where a shape fits it. */
export type BenchedKernel = GemmKernel | 'skinny';

export interface MatmulBenchResult {
  bench: 'matmul';
  kernel: BenchedKernel;
  /** Tiled kernels: the block width, and whether it was forced against the shape's own choice. */
  block?: TiledBlock;
  blockForced?: boolean;
  /** The tiled kernel's own block with two stages of workgroup tiles, and its rate over the one-stage line's. */
  stages?: 2;
  vsOneStage?: number;
  variant: string;
  shape?: string;
  M: number;
  N: number;
  K: number;
  ms: number;
  gflops: number;
  /**
   * GFLOP/s relative to the same kernel's plain product (no transposes, f32) at the same shape in this run: the median
   * of rounds in which the two were timed one right after the other (`vsPlainRounds`; 1 on the plain line itself).
   */
  vsPlain: number;
  vsPlainRounds?: number[];
  /** GFLOP/s relative to the basic kernel's same variant at the same shape in this run. */
  vsBasic: number;
  /** Other kernels: max |theirs − basic| / max |basic| over the output (both fp32; only summation order differs). */
  diffVsBasic?: number;
  reps: number;
}

export interface Variant {
  name: string;
  transA: boolean;
  transB: boolean;
  storage: WeightStorage;
}

export function matmulVariants(): Variant[] {
  const v: Variant[] = [
    { name: 'plain fp32 (C = A·B)', transA: false, transB: false, storage: 'f32' },
    { name: 'forward Y = X·Wᵀ', transA: false, transB: true, storage: 'f32' },
    { name: 'backward dW = dYᵀ·X', transA: true, transB: false, storage: 'f32' },
    { name: 'both transposed C = Aᵀ·Bᵀ', transA: true, transB: true, storage: 'f32' },
    { name: 'forward Y = X·Wᵀ, W bf16', transA: false, transB: true, storage: 'bf16' },
    { name: 'backward dX = dY·W, W bf16', transA: false, transB: false, storage: 'bf16' },
    { name: 'forward Y = X·Wᵀ, W f16', transA: false, transB: true, storage: 'f16' },
  ];
  return v;
}

/** The layer dimensions projection shapes come from (bench/layer.ts's MISTRAL_7B_LAYER or a small stand-in). */
export interface ProjectionDims {
  C: number;
  I: number;
  nKV: number;
  hd: number;
}

/** A layer's projection products at each token count: q/o, k/v, gate/up, down (Mistral-7B: N, K = 4096×4096, 1024×4096, 14336×4096, 4096×14336). */
export function projectionShapes(tokens: readonly number[], d: ProjectionDims): MatmulShape[] {
  return tokens.flatMap((M) => [
    { M, N: d.C, K: d.C, label: `q_proj/o_proj at ${M} tokens` },
    { M, N: d.nKV * d.hd, K: d.C, label: `k_proj/v_proj at ${M} tokens` },
    { M, N: d.I, K: d.C, label: `gate_proj/up_proj at ${M} tokens` },
    { M, N: d.C, K: d.I, label: `down_proj at ${M} tokens` },
  ]);
}

export function squareShapes(sizes: readonly number[]): MatmulShape[] {
  return sizes.map((n) => ({ M: n, N: n, K: n }));
}

/** Random input written in chunks of a repeated pattern (uploading hundreds of MB of fresh numbers is slow). */
function filled(ctx: GpuContext, label: string, values: number, seed: number, storage: WeightStorage): GPUBuffer {
  const bytesPer = storage === 'f32' ? 4 : 2;
  const buf = ctx.createBuffer(label, Math.ceil(values / 2) * 2 * bytesPer, 'scratch');
  const chunkLen = Math.min(values, 1 << 20) & ~1;
  const chunk = randomArray(Math.max(chunkLen, 2), seed);
  // bf16: the top halves of random f32s; f16: the same values rounded; both packed two per u32 (finite, like a real weight).
  const data =
    storage === 'bf16' ? new Uint16Array(new Uint32Array(chunk.buffer).map((u) => u >>> 16)) : storage === 'f16' ? Uint16Array.from(chunk, (v) => f32ToF16Bits(v)) : chunk;
  for (let off = 0; off < values; off += data.length) {
    const len = Math.min(data.length, values - off);
    ctx.write(buf, len === data.length ? data : data.subarray(0, len), off * bytesPer);
  }
  return buf;
}

interface Run {
  kernel: BenchedKernel;
  block?: TiledBlock;
  blockForced?: boolean;
  /** Tiled kernels: stages of workgroup tiles (1 unless 2 is timed too). */
  stages?: TiledStages;
}

function record(ctx: GpuContext, run: Run, a: GemmArgs): void {
  if (run.kernel === 'basic') gemmBasic(ctx, a);
  else if (run.kernel === 'skinny') gemmSkinny(ctx, a);
  else gemmTiled(ctx, a, { block: run.block, fixedShape: run.kernel === 'tiled-fixed', stages: run.stages ?? 1, ...tiledKernelParts(run.kernel) });
}

/**
 * The runs per shape: basic, tiled with its own block choice (and with two stages of tiles, where the device has the
 * workgroup memory), tiled with the other block, tiled with sizes fixed, and the skinny kernel where the product is
 * one LoRA's rank-r products would route there (skinnyFits).
 */
function runsFor(a: GemmArgs, kernels: readonly GemmKernel[], workgroupBytes: number): Run[] {
  const runs: Run[] = [];
  const own = tiledVariant(a).block;
  for (const kernel of kernels) {
    if (kernel === 'basic') runs.push({ kernel });
    else if (kernel === 'tiled-fixed') runs.push({ kernel, block: own });
    else if (tiledKernelParts(kernel)?.kStep === 32) {
      // One stage only; each block where the device holds its 32 K rows of tiles.
      for (const block of [own, own === 'wide' ? 'narrow' : 'wide'] as const) {
        if (tiledWorkgroupBytes(block, 1, false, 32) <= workgroupBytes) runs.push({ kernel, block, ...(block === own ? {} : { blockForced: true }) });
      }
    } else {
      runs.push({ kernel, block: own });
      if (tiledWorkgroupBytes(own, 2, false) <= workgroupBytes) runs.push({ kernel, block: own, stages: 2 });
      runs.push({ kernel, block: own === 'wide' ? 'narrow' : 'wide', blockForced: true });
    }
  }
  if (skinnyFits(a)) runs.push({ kernel: 'skinny' });
  return runs;
}

export async function* benchMatmul(
  ctx: GpuContext,
  shapes: readonly MatmulShape[],
  minMs = 300,
  kernels: readonly GemmKernel[] = ['basic', 'tiled', 'tiled-fixed'],
): AsyncGenerator<MatmulBenchResult> {
  for (const { M, N, K, label } of shapes) {
    const A = filled(ctx, 'bench A', M * K, 1, 'f32');
    const Bs = { f32: filled(ctx, 'bench B', N * K, 2, 'f32'), bf16: filled(ctx, 'bench B bf16', N * K, 2, 'bf16'), f16: filled(ctx, 'bench B f16', N * K, 2, 'f16') };
    const C = ctx.createBuffer('bench C', M * N * 4, 'scratch');
    try {
      const plain = new Map<string, number>();
      const plainArgs: GemmArgs = { C, A, B: Bs.f32, M, N, K };
      for (const v of matmulVariants()) {
        const a: GemmArgs = { C, A, B: Bs[v.storage], M, N, K, transA: v.transA, transB: v.transB, bStorage: v.storage };
        const runs = runsFor(a, kernels, ctx.device.limits.maxComputeWorkgroupStorageSize);
        let basicGflops = 0;
        let basicOut: Float32Array | null = null;
        let oneStage: number | undefined; // the tiled kernel's own block with one stage: the two-stage line's yardstick
        for (const run of runs) {
          const key = `${run.kernel}|${run.block ?? ''}|${run.stages ?? 1}`;
          // The first variant is the plain product; the others are timed beside it on the same kernel, then run once
          // more alone so that C holds their own output.
          let paired: PairedTiming | undefined;
          let t: Timing;
          if (plain.has(key)) {
            paired = await timePaired(ctx, () => record(ctx, run, plainArgs), () => record(ctx, run, a), benchTiming(minMs));
            record(ctx, run, a);
            t = paired.candidate;
          } else {
            t = await timeGpu(ctx, () => record(ctx, run, a), benchTiming(minMs));
          }
          const gflops = (2 * M * N * K) / (t.ms * 1e6);
          if (!paired) plain.set(key, gflops);
          let diffVsBasic: number | undefined;
          if ((run.kernel === 'tiled' || run.kernel === 'tiled-warp') && !run.blockForced && run.stages !== 2) oneStage = gflops;
          if (run.kernel === 'basic') {
            basicGflops = gflops;
            if (runs.length > 1) basicOut = await ctx.readF32(C);
          } else if (basicOut) {
            diffVsBasic = maxRelError(await ctx.readF32(C), basicOut);
          }
          yield {
            bench: 'matmul',
            kernel: run.kernel,
            ...(run.block ? { block: run.block, blockForced: run.blockForced ?? false } : {}),
            ...(run.stages === 2 ? { stages: 2, vsOneStage: gflops / (oneStage ?? gflops) } : {}),
            variant: v.name,
            ...(label ? { shape: label } : {}),
            M,
            N,
            K,
            ms: t.ms,
            gflops,
            vsPlain: paired ? paired.ratio : 1,
            ...(paired ? { vsPlainRounds: paired.ratios } : {}),
            vsBasic: basicGflops ? gflops / basicGflops : 1,
            ...(diffVsBasic === undefined ? {} : { diffVsBasic }),
            reps: t.reps,
          };
        }
      }
    } finally {
      for (const b of [A, ...Object.values(Bs), C]) ctx.destroy(b);
    }
  }
}
