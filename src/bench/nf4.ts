// `finetune bench nf4`: the fused NF4 products (forward Y = X·deq(W)ᵀ, backward dX = dY·deq(W), plain and
// double-quantised scales), each next to the plain tiled fp32 product C = A·B (no transposes) at the same M, N, K,
// measured in the same run on the same adapter. Goal on real GPUs: vsPlain ≥ 0.95 (k/v's 1024-wide outputs ≥ 0.8).
// The tiled products' vsPlain comes from rounds that time the plain product and the fused one alternately
// (engine/timing.ts `timePaired`): one plain measurement at the start of a shape carried whatever the GPU's clocks
// did until each product's turn.
// Both products run on shaders/nf4_matmul.wgsl and on the register-tiled kernel (shaders/matmul_tiled.wgsl), whatever
// --gemm says, and the tiled ones once more on the other block width where the device has room for both: which block
// a shape gets (NARROW_BELOW_BLOCKS) is a guess, and at k/v's shape the f32 products ran faster on the block not
// chosen (H200, 2026-12-04). Two stages of tiles are no longer timed here: slower on every NF4 product in both H200
// measurements (`bench matmul` still times them). The plain product follows --gemm. The tiled products on their own
// block are also timed with a K step's weights dequantised at the store, beside the default (dequantised ahead of the
// barrier since 2026-12-04, late): `vsDefault` says what that change is worth on the GPU at hand; and with a K step of
// 32 beside 16 where the device holds the 32-row tiles (`vsKStep16`).
// Each product is also timed "dequantised first": the whole weight dequantised to f32 (nf4_dequantize) and then the
// plain GEMM of the context's kernel on it, both inside the timed work, paired with the plain product. Where the fused
// forward stays under #9's 0.95 × plain, this says whether the bitsandbytes way (dequantise, then the fp32 GEMM, at the
// price of an N × K f32 scratch: 235 MB for gate/up at 7B) would reach it, before a training path is built on it.
// Not used by training.

import type { GpuContext } from '../engine/gpu.ts';
import { gemm } from '../engine/kernels/matmul.ts';
import { nf4_dequantize, nf4_destroy, nf4_quantize, type Nf4Weight } from '../engine/kernels/nf4.ts';
import { nf4BackwardBasic, nf4ForwardBasic } from '../engine/kernels/nf4_matmul.ts';
import { kStepAsked, releaseNf4Table, nf4BackwardArgs, nf4ForwardArgs, nf4MatmulBackwardTiled, nf4MatmulForwardTiled, nf4TiledVariant, nf4WideBlockFits, tiledWorkgroupBytes, type TiledBlock, type TiledOptions } from '../engine/kernels/matmul_tiled.ts';
import { maxRelError, randomArray } from '../engine/reference/common.ts';
import { benchTiming, timeGpu, timePaired } from '../engine/timing.ts';
import { MISTRAL_7B_LAYER } from './layer.ts';
import { projectionShapes, type ProjectionDims } from './matmul.ts';

export interface Nf4BenchShape {
  /** Tokens. */
  M: number;
  /** Out features (weight rows). */
  N: number;
  /** In features (weight cols), a multiple of 64. */
  K: number;
}

export interface Nf4BenchResult {
  bench: 'nf4';
  variant: string;
  M: number;
  N: number;
  K: number;
  ms: number;
  gflops: number;
  /**
   * GFLOP/s relative to the plain fp32 product at the same M, N, K in this run: for the tiled products the median of
   * rounds timed alternately with it (`vsPlainRounds`), for the others against the shape's plain line.
   */
  vsPlain: number;
  vsPlainRounds?: number[];
  /** The register-tiled products: max |tiled − basic| / max |basic| over Y or dX (only summation order differs). */
  diffVsBasic?: number;
  /** The tiled products: the block width, and whether it was forced against the shape's own choice. */
  block?: TiledBlock;
  blockForced?: boolean;
  /** A forced block's line: its rate over the line of the block the shape chooses. */
  vsOwnBlock?: number;
  /**
   * The tiled product on its own block with the weights dequantised at the store (TiledOptions.dequantAtStore, as
   * before 2026-12-04 late): its rate over the default arrangement timed beside it in alternating rounds (the median,
   * and the rounds); its vsPlain is the default line's times that.
   */
  dequantAtStore?: true;
  vsDefault?: number;
  vsDefaultRounds?: number[];
  /**
   * The tiled product on its own block with a K step of 32 (TiledOptions.kStep): its rate over the same product with
   * a K step of 16 timed beside it in alternating rounds (the median, and the rounds).
   */
  kStep?: 32;
  vsKStep16?: number;
  vsKStep16Rounds?: number[];
  /**
   * The product dequantised first: nf4_dequantize into an f32 [N, K] buffer, then the plain GEMM (the context's kernel,
   * `gemmKernel`; the forward with B transposed), timed together; `dequantMs` the dequantisation alone.
   */
  dequantFirst?: true;
  dequantMs?: number;
  gemmKernel?: string;
  reps: number;
}

/**
 * The projection shapes of a layer of `d` (Mistral-7B's by default) at these token counts, as `bench matmul` has them:
 * q/o (C→C), k/v (C→nKV·hd: Mistral-7B's 1024-wide outputs, whose products fill the GPU least), gate/up (C→I), down
 * (I→C). Each shape's line pair is the fused forward Y = X·deq(W)ᵀ and its input gradient dX = dY·deq(W).
 */
export function projectionNf4Shapes(tokens: readonly number[] = [512, 2048], d: ProjectionDims = MISTRAL_7B_LAYER): Nf4BenchShape[] {
  return projectionShapes(tokens, d).map(({ M, N, K }) => ({ M, N, K }));
}

/** Random input filled on the GPU side from a small repeated pattern (uploading GBs of random numbers is slow). */
export function filled(ctx: GpuContext, label: string, n: number, seed: number): GPUBuffer {
  const buf = ctx.createBuffer(label, n * 4, 'scratch');
  const chunkLen = Math.min(n, 1 << 20);
  const chunk = randomArray(chunkLen, seed);
  for (let off = 0; off < n; off += chunkLen) {
    const len = Math.min(chunkLen, n - off);
    ctx.write(buf, len === chunkLen ? chunk : chunk.subarray(0, len), off * 4);
  }
  return buf;
}

export async function* benchNf4(ctx: GpuContext, shapes: readonly Nf4BenchShape[], minMs = 300): AsyncGenerator<Nf4BenchResult> {
  // Without room for the wide block both products run on the narrow one, and there is no other block to time.
  const bothBlocks = nf4WideBlockFits(ctx);
  for (const { M, N, K } of shapes) {
    const flop = 2 * M * N * K;
    const result = (variant: string, t: { ms: number; reps: number }, plain: number): Nf4BenchResult => {
      const gflops = flop / (t.ms * 1e6);
      return { bench: 'nf4', variant, M, N, K, ms: t.ms, gflops, vsPlain: plain ? gflops / plain : 1, reps: t.reps };
    };
    const made: GPUBuffer[] = [];
    const weights: Nf4Weight[] = [];
    try {
      const Wf = filled(ctx, 'bench W f32 [N, K]', N * K, 1);
      made.push(Wf);
      const X = filled(ctx, 'bench X (M, K)', M * K, 2);
      made.push(X);
      const dY = filled(ctx, 'bench dY (M, N)', M * N, 3);
      made.push(dY);
      const Y = ctx.createBuffer('bench Y (M, N)', M * N * 4, 'scratch');
      made.push(Y);
      const dX = ctx.createBuffer('bench dX (M, K)', M * K * 4, 'scratch');
      made.push(dX);
      // The weight dequantised to f32 [N, K], for the products dequantised first.
      const Wd = ctx.createBuffer('bench deq(W) f32 [N, K]', N * K * 4, 'scratch');
      made.push(Wd);

      // Plain: C (M, N) = A (M, K) · B (K, N), the same FLOPs as both fused products.
      const plainProduct = (): void => gemm(ctx, { C: Y, A: X, B: Wf, M, N, K });
      const tPlain = await timeGpu(ctx, plainProduct, benchTiming(minMs));
      const plain = flop / (tPlain.ms * 1e6);
      yield result('plain fp32 (C = A·B)', tPlain, plain);

      const other = (b: TiledBlock): TiledBlock => (b === 'wide' ? 'narrow' : 'wide');
      for (const doubleQuant of [false, true]) {
        const W = nf4_quantize(ctx, Wf, 'f32', N, K, { doubleQuant, label: 'bench W' });
        weights.push(W);
        await ctx.sync();
        const tag = doubleQuant ? ', double-quant' : '';
        const products = [
          {
            name: `nf4 forward Y = X·deq(W)ᵀ${tag}`,
            out: Y,
            own: nf4TiledVariant(ctx, nf4ForwardArgs(Y, X, W, M)).block,
            basic: () => nf4ForwardBasic(ctx, Y, X, W, M),
            tiled: (block: TiledBlock, o: TiledOptions = {}) => nf4MatmulForwardTiled(ctx, Y, X, W, M, {}, { stages: 1, block, ...o }),
            // Y (M, N) = X (M, K) · Wdᵀ, Wd [N, K].
            dequantFirst: () => {
              nf4_dequantize(ctx, Wd, W);
              gemm(ctx, { C: Y, A: X, B: Wd, M, N, K, transB: true });
            },
          },
          {
            name: `nf4 backward dX = dY·deq(W)${tag}`,
            out: dX,
            own: nf4TiledVariant(ctx, nf4BackwardArgs(dX, dY, W, M)).block,
            basic: () => nf4BackwardBasic(ctx, dX, dY, W, M),
            tiled: (block: TiledBlock, o: TiledOptions = {}) => nf4MatmulBackwardTiled(ctx, dX, dY, W, M, {}, { stages: 1, block, ...o }),
            // dX (M, K) = dY (M, N) · Wd, Wd [N, K] as stored: the plain product's own arrangement.
            dequantFirst: () => {
              nf4_dequantize(ctx, Wd, W);
              gemm(ctx, { C: dX, A: dY, B: Wd, M, N: K, K: N });
            },
          },
        ];
        for (const p of products) {
          yield result(p.name, await timeGpu(ctx, p.basic, { minMs }), plain);
          const basicOut = await ctx.readF32(p.out);
          // Timed beside the plain product (which writes Y too), then run once more alone for its output.
          const tiled = async (variant: string, block: TiledBlock): Promise<{ line: Nf4BenchResult; diffVsBasic: number }> => {
            const paired = await timePaired(ctx, plainProduct, () => p.tiled(block), benchTiming(minMs));
            // Cleared first, so a tiled kernel that wrote nothing shows as a difference of 1, not 0.
            ctx.clear(p.out);
            p.tiled(block);
            const diffVsBasic = maxRelError(await ctx.readF32(p.out), basicOut);
            return { line: { ...result(variant, paired.candidate, plain), vsPlain: paired.ratio, vsPlainRounds: paired.ratios }, diffVsBasic };
          };
          const own = await tiled(`${p.name}, tiled`, p.own);
          yield { ...own.line, block: p.own, blockForced: false, diffVsBasic: own.diffVsBasic };
          // The arrangement before 2026-12-04 (late), timed beside the default one: the A/B of where a step dequantises.
          const ab = await timePaired(ctx, () => p.tiled(p.own), () => p.tiled(p.own, { dequantAtStore: true }), benchTiming(minMs));
          ctx.clear(p.out);
          p.tiled(p.own, { dequantAtStore: true });
          yield {
            ...result(`${p.name}, tiled, dequantised at the store`, ab.candidate, plain),
            vsPlain: own.line.vsPlain * ab.ratio,
            block: p.own,
            blockForced: false,
            dequantAtStore: true,
            vsDefault: ab.ratio,
            vsDefaultRounds: ab.ratios,
            diffVsBasic: maxRelError(await ctx.readF32(p.out), basicOut),
          };
          // The K step of 32 (DEEP_K) timed beside 16 on the product's own block, where the device holds its tiles.
          if (tiledWorkgroupBytes(p.own, 1, true, 32) <= ctx.device.limits.maxComputeWorkgroupStorageSize) {
            const deep = await timePaired(ctx, () => p.tiled(p.own, { kStep: 16 }), () => p.tiled(p.own, { kStep: 32 }), benchTiming(minMs));
            ctx.clear(p.out);
            p.tiled(p.own, { kStep: 32 });
            // `own` ran the context's K step: where that is 16, the 32-step's share of plain is own's times this ratio.
            const ownIs16 = kStepAsked(ctx) === 16;
            yield {
              ...result(`${p.name}, tiled, K step 32`, deep.candidate, plain),
              ...(ownIs16 ? { vsPlain: own.line.vsPlain * deep.ratio } : {}),
              block: p.own,
              blockForced: false,
              kStep: 32,
              vsKStep16: deep.ratio,
              vsKStep16Rounds: deep.ratios,
              diffVsBasic: maxRelError(await ctx.readF32(p.out), basicOut),
            };
          }
          // Dequantised first, then the plain GEMM: paired with the plain product, the dequantisation also timed alone.
          {
            const paired = await timePaired(ctx, plainProduct, p.dequantFirst, benchTiming(minMs));
            const dequant = await timeGpu(ctx, () => nf4_dequantize(ctx, Wd, W), { minMs });
            ctx.clear(p.out);
            p.dequantFirst();
            yield {
              ...result(`${p.name}, dequantised first`, paired.candidate, plain),
              vsPlain: paired.ratio,
              vsPlainRounds: paired.ratios,
              dequantFirst: true,
              dequantMs: dequant.ms,
              gemmKernel: ctx.gemmKernel,
              diffVsBasic: maxRelError(await ctx.readF32(p.out), basicOut),
            };
          }
          if (bothBlocks) {
            const block = other(p.own);
            const forced = await tiled(`${p.name}, tiled, ${block} block`, block);
            yield { ...forced.line, block, blockForced: true, vsOwnBlock: forced.line.gflops / own.line.gflops, diffVsBasic: forced.diffVsBasic };
          }
        }
        nf4_destroy(ctx, W);
        weights.pop();
      }
    } finally {
      ctx.flush();
      for (const w of weights) nf4_destroy(ctx, w);
      for (const b of made) ctx.destroy(b);
      // The K step of 32's code book (a named scratch buffer of the context).
      releaseNf4Table(ctx);
    }
  }
}
