// `finetune bench spirv` and `bench clamps`: which bounds clamps WGSL's robustness leaves in the kernels' hot loops.
//
// Every pipeline a training step can run with a multiply-accumulate loop (the tiled and basic GEMMs in each of their
// variants, the fused NF4 products, the skinny LoRA products, the tiled attention) is compiled once on small inputs,
// through the same dispatch functions the engine calls, by a process whose Dawn prints each pipeline's SPIR-V
// (`bench spirv`). Dawn prints from C++ straight to file descriptor 1, out of that process's reach, so `bench clamps`
// runs `bench spirv` as a child (src/cli/spirv-audit.ts) and reads its output here: per pipeline, each innermost
// loop's multiply-adds and clamped indices (./spirv-loops.ts). A hot loop is one with at least HOT_MULTIPLIES
// multiply-adds per iteration; test/gpu/clamp_free.test.ts holds every one of them to no clamped workgroup-memory index.

import type { GpuContext } from '../engine/gpu.ts';
import { attention_backward_tiled } from '../engine/kernels/attention.ts';
import { attention_forward_tiled } from '../engine/kernels/attention_flash.ts';
import type { GemmArgs, LowRankAdd } from '../engine/kernels/gemm_args.ts';
import { gemmBasic } from '../engine/kernels/matmul.ts';
import { gemmSkinny } from '../engine/kernels/matmul_skinny.ts';
import { gemmTiled, nf4MatmulBackwardTiled, nf4MatmulForwardTiled, tiledWorkgroupBytes, type TiledBlock, type TiledOptions } from '../engine/kernels/matmul_tiled.ts';
import { nf4_destroy, nf4_quantize, type Nf4Weight } from '../engine/kernels/nf4.ts';
import { nf4BackwardBasic, nf4ForwardBasic } from '../engine/kernels/nf4_matmul.ts';
import { splitSpirvDump, spirvModuleClamps, type LoopClamps } from './spirv-loops.ts';

/** Multiply-adds per iteration from which an innermost loop counts as hot (a 4×4 register tile's step has 4). */
export const HOT_MULTIPLIES = 4;

/** One pipeline (or the pair of a backward) to compile, and how: one call of the engine's dispatch function. */
interface HotPipeline {
  name: string;
  run(ctx: GpuContext, inputs: Inputs): void;
}

/** Buffers every pipeline reads and writes, big enough for all of them (their values do not matter here). */
interface Inputs {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  d: GPUBuffer;
  e: GPUBuffer;
  seg: GPUBuffer;
  /** The attention backward's dS scratch (a buffer none of the others alias: its kernel writes it). */
  spill: GPUBuffer;
  nf4: Nf4Weight;
  nf4dq: Nf4Weight;
}

const FLOATS = 1 << 18; // 1 MiB each: the largest use is attention's q at 32 tokens × 32 heads × 128
const DROPOUT = { state: 12345, threshold: 2 ** 30, scale: 1 / 0.75 };
/** Edge-free (every side divides the block and K step), edge-tested but 128-bit, and scalar shapes. */
const GEMM_SHAPES = [
  { shape: 'divisible', M: 128, N: 128, K: 32 },
  { shape: 'edges', M: 132, N: 136, K: 20 },
  { shape: 'unaligned', M: 130, N: 70, K: 18 },
] as const;
const TRANSPOSES = [
  { op: 'A·B', transA: false, transB: false },
  { op: 'A·Bᵀ', transA: false, transB: true },
  { op: 'Aᵀ·B', transA: true, transB: false },
  { op: 'Aᵀ·Bᵀ', transA: true, transB: true },
] as const;
/** Mistral-7B's head layout and the small layout the SwiftShader benchmarks use. */
const HEAD_LAYOUTS = [
  { layout: 'Mistral-7B', nH: 32, nKV: 8, hd: 128 },
  { layout: 'small', nH: 8, nKV: 2, hd: 32 },
] as const;

function args(i: Inputs, M: number, N: number, K: number, extra: Partial<GemmArgs> = {}): GemmArgs {
  return { C: i.c, A: i.a, B: i.b, M, N, K, ...extra };
}

export function hotPipelines(ctx: GpuContext): HotPipeline[] {
  const out: HotPipeline[] = [];
  const blocks: TiledBlock[] = ['wide', 'narrow'];
  for (const block of blocks) {
    for (const t of TRANSPOSES) {
      for (const s of GEMM_SHAPES) {
        const o: TiledOptions = { block, stages: 1 };
        out.push({ name: `tiled GEMM ${t.op}, ${block}, ${s.shape}`, run: (c, i) => gemmTiled(c, args(i, s.M, s.N, s.K, { transA: t.transA, transB: t.transB }), o) });
      }
    }
    for (const bStorage of ['bf16', 'f16'] as const) {
      out.push({ name: `tiled GEMM A·Bᵀ, B ${bStorage}, ${block}`, run: (c, i) => gemmTiled(c, args(i, 128, 128, 32, { transB: true, bStorage }), { block, stages: 1 }) });
    }
    // The LoRA products' fused dropout, where each falls: t = drop(x)·Aᵀ, dA = dtᵀ·drop(x), dx += drop(dt·A).
    out.push({ name: `tiled GEMM A·Bᵀ, dropout on A, ${block}`, run: (c, i) => gemmTiled(c, args(i, 128, 128, 32, { transB: true, dropout: { on: 'A', ...DROPOUT } }), { block, stages: 1 }) });
    out.push({ name: `tiled GEMM Aᵀ·B, dropout on B, ${block}`, run: (c, i) => gemmTiled(c, args(i, 128, 128, 32, { transA: true, dropout: { on: 'B', ...DROPOUT } }), { block, stages: 1 }) });
    out.push({ name: `tiled GEMM A·B, dropout on the output, ${block}`, run: (c, i) => gemmTiled(c, args(i, 128, 128, 32, { beta: 1, dropout: { on: 'out', ...DROPOUT } }), { block, stages: 1 }) });
    out.push({ name: `tiled GEMM A·B, sizes compiled in, ${block}`, run: (c, i) => gemmTiled(c, args(i, 128, 128, 32), { block, stages: 1, fixedShape: true }) });
    // Two stages (`--tiled-stages 2`) where the adapter's workgroup memory holds them.
    const limit = ctx.device.limits.maxComputeWorkgroupStorageSize;
    if (tiledWorkgroupBytes(block, 2, false) <= limit) {
      out.push({ name: `tiled GEMM A·B, two stages, ${block}`, run: (c, i) => gemmTiled(c, args(i, 128, 128, 32), { block, stages: 2 }) });
    }
    if (tiledWorkgroupBytes(block, 2, true) <= limit) {
      out.push({ name: `tiled NF4 forward, two stages, ${block}`, run: (c, i) => nf4MatmulForwardTiled(c, i.c, i.a, i.nf4, 128, {}, { block, stages: 2 }) });
      out.push({ name: `tiled NF4 input gradient, two stages, ${block}`, run: (c, i) => nf4MatmulBackwardTiled(c, i.c, i.a, i.nf4, 128, {}, { block, stages: 2 }) });
    }
    // A K step of 32 ('tiled-k32') where the adapter's workgroup memory holds its tiles: the transposes, dropout, and
    // both NF4 products (their code book a storage buffer at this step).
    if (tiledWorkgroupBytes(block, 1, false, 32) <= limit) {
      for (const t of TRANSPOSES) {
        out.push({ name: `tiled GEMM ${t.op}, K step 32, ${block}`, run: (c, i) => gemmTiled(c, args(i, 128, 128, 64, { transA: t.transA, transB: t.transB }), { block, kStep: 32 }) });
      }
      out.push({ name: `tiled GEMM A·Bᵀ, dropout on A, K step 32, ${block}`, run: (c, i) => gemmTiled(c, args(i, 128, 128, 64, { transB: true, dropout: { on: 'A', ...DROPOUT } }), { block, kStep: 32 }) });
      for (const dq of [false, true]) {
        const tag = dq ? ', double-quant' : '';
        out.push({ name: `tiled NF4 forward${tag}, K step 32, ${block}`, run: (c, i) => nf4MatmulForwardTiled(c, i.c, i.a, dq ? i.nf4dq : i.nf4, 128, {}, { block, kStep: 32 }) });
        out.push({ name: `tiled NF4 input gradient${tag}, K step 32, ${block}`, run: (c, i) => nf4MatmulBackwardTiled(c, i.c, i.a, dq ? i.nf4dq : i.nf4, 128, {}, { block, kStep: 32 }) });
      }
    }
    for (const dq of [false, true]) {
      const tag = dq ? ', double-quant' : '';
      out.push({ name: `tiled NF4 forward${tag}, ${block}`, run: (c, i) => nf4MatmulForwardTiled(c, i.c, i.a, dq ? i.nf4dq : i.nf4, 128, {}, { block, stages: 1 }) });
      out.push({ name: `tiled NF4 input gradient${tag}, ${block}`, run: (c, i) => nf4MatmulBackwardTiled(c, i.c, i.a, dq ? i.nf4dq : i.nf4, 128, {}, { block, stages: 1 }) });
    }
    // LoRA's terms in the NF4 products' epilogue (mistral/linear.ts): y += s·t·Bᵀ on the forward, dx += drop(dt·A) on
    // the input gradient, rank 8.
    const up = (i: Inputs): LowRankAdd => ({ u: i.d, v: i.e, r: 8, transV: true, scale: 2 });
    const inputGrad = (i: Inputs): LowRankAdd => ({ u: i.d, v: i.e, r: 8, transV: false, scale: 1, dropout: { on: 'out', ...DROPOUT } });
    out.push({ name: `tiled NF4 forward, double-quant, LoRA up-projection in the epilogue, ${block}`, run: (c, i) => nf4MatmulForwardTiled(c, i.c, i.a, i.nf4dq, 128, { lowRank: up(i) }, { block, stages: 1 }) });
    out.push({ name: `tiled NF4 input gradient, double-quant, LoRA input gradient in the epilogue, ${block}`, run: (c, i) => nf4MatmulBackwardTiled(c, i.c, i.a, i.nf4dq, 128, { lowRank: inputGrad(i) }, { block, stages: 1 }) });
  }
  // The basic kernels on both row blocks: 64 rows, and 16 rows for products of at most 16 rows (a short sequence, a
  // prompt chunk of 9–16 rows), which M = 16 picks.
  for (const t of TRANSPOSES) {
    out.push({ name: `basic GEMM ${t.op}`, run: (c, i) => gemmBasic(c, args(i, 128, 128, 32, { transA: t.transA, transB: t.transB })) });
    out.push({ name: `basic GEMM ${t.op}, 16-row block`, run: (c, i) => gemmBasic(c, args(i, 16, 128, 32, { transA: t.transA, transB: t.transB })) });
  }
  out.push({ name: 'basic GEMM A·Bᵀ, B bf16', run: (c, i) => gemmBasic(c, args(i, 128, 128, 32, { transB: true, bStorage: 'bf16' })) });
  for (const dq of [false, true]) {
    const tag = dq ? ', double-quant' : '';
    for (const [M, rows] of [[128, ''], [16, ', 16-row block']] as const) {
      out.push({ name: `basic NF4 forward${tag}${rows}`, run: (c, i) => nf4ForwardBasic(c, i.c, i.a, dq ? i.nf4dq : i.nf4, M) });
      out.push({ name: `basic NF4 input gradient${tag}${rows}`, run: (c, i) => nf4BackwardBasic(c, i.c, i.a, dq ? i.nf4dq : i.nf4, M) });
    }
  }
  // LoRA's rank-8 products on the skinny kernel (kernels/lora.ts): t = drop(x)·Aᵀ, dt = dy·B, dB = dyᵀ·t, dA = dtᵀ·drop(x).
  // t reads its long operand in 16-byte quads (aligned: K % 4 == 0), and otherwise one float at a time; dt, dB and dA
  // take the scalar path with their small operand (stored along r) in quads, dt the aligned path only when forced, and
  // at rank 3 (no quads of a 3-wide row) one float at a time inside it.
  const tArgs: Partial<GemmArgs> = { transB: true, dropout: { on: 'A', ...DROPOUT } };
  out.push({ name: 'skinny t = x·Aᵀ, dropout on x, aligned', run: (c, i) => gemmSkinny(c, args(i, 256, 8, 256, tArgs)) });
  out.push({ name: 'skinny t = x·Aᵀ, dropout on x, scalar', run: (c, i) => gemmSkinny(c, args(i, 256, 8, 256, tArgs), { aligned: false }) });
  out.push({ name: 'skinny dt = dy·B, aligned', run: (c, i) => gemmSkinny(c, args(i, 256, 8, 256), { aligned: true }) });
  out.push({ name: 'skinny dt = dy·B, scalar, B in quads', run: (c, i) => gemmSkinny(c, args(i, 256, 8, 256)) });
  out.push({ name: 'skinny dt = dy·B at rank 3, aligned', run: (c, i) => gemmSkinny(c, args(i, 256, 3, 256), { aligned: true }) });
  out.push({ name: 'skinny dB = dyᵀ·t, t in quads', run: (c, i) => gemmSkinny(c, args(i, 256, 8, 256, { transA: true })) });
  out.push({ name: 'skinny dA = dtᵀ·x, dropout on x, dt in quads', run: (c, i) => gemmSkinny(c, args(i, 8, 256, 256, { transA: true, dropout: { on: 'B', ...DROPOUT } })) });
  for (const h of HEAD_LAYOUTS) {
    const T = 32;
    const subgroups = ctx.hasSubgroups ? [false, true] : [false];
    for (const sg of subgroups) {
      out.push({
        name: `tiled attention forward, ${h.layout}${sg ? ', subgroups' : ''}`,
        run: (c, i) => {
          const before = c.useSubgroups;
          c.useSubgroups = sg;
          try {
            attention_forward_tiled(c, i.c, i.d, i.a, i.b, i.b, i.seg, 1, T, h.nH, h.nKV, h.hd);
          } finally {
            c.useSubgroups = before;
          }
        },
      });
    }
    // The backward's statistics pass, then its dK/dV and dQ kernels.
    // Written: dq, dk, dv (c, d, e); read: dout, out, lse, q, k, v.
    out.push({ name: `tiled attention backward, ${h.layout}`, run: (c, i) => attention_backward_tiled(c, i.c, i.d, i.e, i.a, i.a, i.b, i.a, i.b, i.b, i.seg, 1, T, h.nH, h.nKV, h.hd) });
    // The same with dS through a scratch: the dK/dV kernel that writes it and the dQ kernel that reads it back.
    out.push({ name: `tiled attention backward, dS through a scratch, ${h.layout}`, run: (c, i) => attention_backward_tiled(c, i.c, i.d, i.e, i.a, i.a, i.b, i.a, i.b, i.b, i.seg, 1, T, h.nH, h.nKV, h.hd, undefined, i.spill) });
  }
  return out;
}

/** The marker `bench spirv` prints before compiling each pipeline: one JSON line. */
export interface SpirvMarker {
  bench: 'spirv';
  pipeline: string;
}

export function spirvMarker(pipeline: string): string {
  return JSON.stringify({ bench: 'spirv', pipeline } satisfies SpirvMarker);
}

export function isSpirvMarker(line: string): boolean {
  return line.startsWith('{"bench":"spirv"');
}

/**
 * Compiles every hot pipeline on this context (whose Dawn must dump shaders to be of use), calling `mark` with each
 * marker line just before; `mark` must write it synchronously, so that it lands before what Dawn prints.
 */
export async function compileHotPipelines(ctx: GpuContext, mark: (line: string) => void): Promise<void> {
  mark(spirvMarker('setup'));
  const made = ['a', 'b', 'c', 'd', 'e'].map((n) => ctx.createBuffer(`spirv ${n}`, FLOATS * 4, 'scratch'));
  const seg = ctx.createBuffer('spirv seg', 1024 * 4, 'scratch');
  const spill = ctx.createBuffer('spirv dS', FLOATS * 4, 'scratch');
  const nf4 = nf4_quantize(ctx, made[0], 'f32', 128, 128, { label: 'spirv nf4' });
  const nf4dq = nf4_quantize(ctx, made[0], 'f32', 128, 128, { doubleQuant: true, label: 'spirv nf4 dq' });
  const inputs: Inputs = { a: made[0], b: made[1], c: made[2], d: made[3], e: made[4], seg, spill, nf4, nf4dq };
  const pipelines = hotPipelines(ctx);
  try {
    await ctx.sync();
    for (const p of pipelines) {
      mark(spirvMarker(p.name));
      p.run(ctx, inputs);
      await ctx.sync();
    }
  } finally {
    nf4_destroy(ctx, nf4);
    nf4_destroy(ctx, nf4dq);
    for (const b of [...made, seg, spill]) ctx.destroy(b);
  }
}

/** One compiled module of one pipeline: its hot loops and their clamps (one `bench clamps` line). */
export interface ClampsResult {
  bench: 'clamps';
  pipeline: string;
  entry: string;
  /** Innermost loops with at least HOT_MULTIPLIES multiply-adds per iteration. */
  hotLoops: number;
  /** The most multiply-adds per iteration of any of its loops. */
  mostMultiplies: number;
  /** Clamped workgroup-memory indices per iteration, summed over the hot loops. */
  workgroupClamps: number;
  /** Clamped storage-buffer indices per iteration, summed over the hot loops (global loads: not avoidable). */
  storageClamps: number;
  /** Clamped indices into function-local arrays or vectors, summed over the hot loops. */
  otherClamps: number;
  /** Clamped workgroup-memory indices per iteration in its other innermost loops (tile fills, reductions), summed. */
  workgroupClampsElsewhere: number;
  /** The hot loops themselves (function, header id, multiply-adds and clamps per iteration). */
  loops: LoopClamps[];
}

const total = (loops: readonly LoopClamps[], k: 'workgroup' | 'storage' | 'other'): number => loops.reduce((s, l) => s + l[k], 0);

/**
 * Reads `bench spirv`'s output: one result per module compiled after a pipeline's marker, and how many pipelines were
 * marked (the setup's marker and modules excluded).
 */
export function clampsFromDump(text: string): { results: ClampsResult[]; pipelines: number } {
  const results: ClampsResult[] = [];
  let pipelines = 0;
  for (const piece of splitSpirvDump(text, isSpirvMarker)) {
    const { pipeline } = JSON.parse(piece.marker) as SpirvMarker;
    if (pipeline === 'setup') continue;
    pipelines++;
    for (const m of piece.modules) {
      const mod = spirvModuleClamps(m);
      const hot = mod.loops.filter((l) => l.multiplies >= HOT_MULTIPLIES);
      results.push({
        bench: 'clamps',
        pipeline,
        entry: mod.entry,
        hotLoops: hot.length,
        mostMultiplies: Math.max(0, ...mod.loops.map((l) => l.multiplies)),
        workgroupClamps: total(hot, 'workgroup'),
        storageClamps: total(hot, 'storage'),
        otherClamps: total(hot, 'other'),
        workgroupClampsElsewhere: total(mod.loops.filter((l) => l.multiplies < HOT_MULTIPLIES), 'workgroup'),
        loops: hot,
      });
    }
  }
  return { results, pipelines };
}

/** The last line of `bench clamps`: totals over every compiled module. */
export function clampsSummary(results: readonly ClampsResult[], pipelines: number, robustness: boolean) {
  const sum = (k: 'hotLoops' | 'workgroupClamps' | 'storageClamps' | 'otherClamps' | 'workgroupClampsElsewhere'): number => results.reduce((s, r) => s + r[k], 0);
  return {
    bench: 'clamps-summary',
    robustness,
    pipelines,
    modules: results.length,
    hotLoops: sum('hotLoops'),
    workgroupClamps: sum('workgroupClamps'),
    storageClamps: sum('storageClamps'),
    otherClamps: sum('otherClamps'),
    workgroupClampsElsewhere: sum('workgroupClampsElsewhere'),
    /** Pipelines with a clamped workgroup-memory index in a hot loop. */
    clampedPipelines: [...new Set(results.filter((r) => r.workgroupClamps > 0).map((r) => r.pipeline))],
  };
}
