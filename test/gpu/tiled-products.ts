// Products on the tiled GEMM (kernels/matmul_tiled.ts) from inputs made by a seed, returning the output's bits: the
// tests of variants that must not change a bit (two stages of tiles, the warp map) run each one both ways and compare.
import type { GpuContext } from '../../src/engine/gpu.ts';
import type { GemmArgs, LowRankAdd } from '../../src/engine/kernels/gemm_args.ts';
import { gemmTiled, nf4MatmulBackwardTiled, nf4MatmulForwardTiled, type TiledOptions } from '../../src/engine/kernels/matmul_tiled.ts';
import { nf4_destroy, nf4_upload } from '../../src/engine/kernels/nf4.ts';
import { randomArray } from '../../src/engine/reference/common.ts';
import { gemmRef } from '../../src/engine/reference/matmul.ts';
import { quantizeRef } from '../../src/engine/reference/nf4.ts';
import { nf4TestWeights } from '../helpers/nf4-inputs.ts';

/**
 * One product; `more` adds tiled options to the product's own (two stages, a map). `reference`, for a plain f32 GEMM:
 * its output in float64 from the same inputs, so that two runs that disagree can be told apart (which one is wrong).
 */
export type TiledProduct = { name: string; run: (ctx: GpuContext, more?: TiledOptions) => Promise<Uint32Array>; reference?: () => Float64Array };

/**
 * Where two runs' output bits differ, in words: the first differing indices, and, when the product has a float64
 * reference, each run's largest relative error there (the one far from it is the wrong one). '' when they agree.
 */
export function outputDifference(p: TiledProduct, a: Uint32Array, b: Uint32Array, names: [string, string]): string {
  const at: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) at.push(i);
  if (at.length === 0 && a.length === b.length) return '';
  const fa = new Float32Array(a.buffer, a.byteOffset, a.length);
  const fb = new Float32Array(b.buffer, b.byteOffset, b.length);
  let text = `${p.name}: ${at.length} of ${a.length} outputs differ (first at ${at.slice(0, 8).join(', ')})`;
  const ref = p.reference?.();
  if (ref) {
    const scale = ref.reduce((m, x) => Math.max(m, Math.abs(x)), 0) || 1;
    const err = (f: Float32Array): number => at.reduce((m, i) => Math.max(m, Math.abs(f[i] - ref[i]) / scale), 0);
    text += `; largest error against float64 there: ${names[0]} ${err(fa).toExponential(2)}, ${names[1]} ${err(fb).toExponential(2)}`;
  }
  return text;
}

/** Every (transA, transB) pair. */
export const TRANSPOSES: readonly [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

const bitsOf = async (ctx: GpuContext, b: GPUBuffer): Promise<Uint32Array> => new Uint32Array((await ctx.readF32(b)).buffer);

/** LoRA's term for the epilogue: U (M × r) and V (r × N, transV) from the seed. */
function lowRankOf(ctx: GpuContext, M: number, N: number, r: number, seed: number): { add: LowRankAdd; buffers: GPUBuffer[] } {
  const u = ctx.upload('U', randomArray(M * r, seed), 'scratch');
  const v = ctx.upload('V', randomArray(r * N, seed + 1), 'scratch');
  return { add: { u, v, r, transV: true, scale: 0.5 }, buffers: [u, v] };
}

/**
 * A GEMM's f32 inputs from seeds of its shape, and the strides between its batch entries (the product's own, else
 * each operand's size). B has one float more where a bf16 B of odd length needs it.
 */
function gemmInputs(a: Omit<GemmArgs, 'A' | 'B' | 'C'>): { A: Float32Array; B: Float32Array; C: Float32Array; batch: number; sA: number; sB: number; sC: number } {
  const batch = a.batch ?? 1;
  const [sA, sB, sC] = [a.strideA ?? a.M * a.K, a.strideB ?? a.K * a.N, a.strideC ?? a.M * a.N];
  const oddHalf = a.bStorage === 'bf16' && (sB * batch) % 2 ? 1 : 0;
  return {
    A: randomArray(sA * batch, a.M + 3 * a.K),
    B: randomArray(sB * batch + oddHalf, a.N + 5 * a.K),
    C: randomArray(sC * batch, a.M * a.N),
    batch,
    sA,
    sB,
    sC,
  };
}

/** One f32 GEMM (`rank` > 0: with LoRA's term of that rank in the epilogue). */
export function gemmProduct(name: string, a: Omit<GemmArgs, 'A' | 'B' | 'C'>, o: TiledOptions = {}, rank = 0): TiledProduct {
  return {
    name,
    run: async (ctx, more = {}) => {
      const x = gemmInputs(a);
      const A = ctx.upload('A', x.A, 'scratch');
      const B = ctx.upload('B', a.bStorage === 'bf16' ? new Float32Array(new Uint16Array(x.B.buffer).filter((_, i) => i % 2 === 1).buffer) : x.B, 'scratch');
      const C = ctx.upload('C', x.C, 'scratch');
      const lr = rank ? lowRankOf(ctx, a.M, a.N, rank, a.M + a.N) : null;
      // The strides the buffers were sized with: the kernel's default is 0 (every batch entry on the same matrices),
      // which made "a batch of 2" two workgroups accumulating into the same C at once, a race whose result depended
      // on their order (it failed a CI run once, 2026-12-04).
      const strides = x.batch > 1 ? { strideA: x.sA, strideB: x.sB, strideC: x.sC } : {};
      gemmTiled(ctx, { ...a, ...strides, A, B, C, ...(lr ? { lowRank: lr.add } : {}) }, { ...o, ...more });
      const bits = await bitsOf(ctx, C);
      for (const b of [A, B, C, ...(lr?.buffers ?? [])]) ctx.destroy(b);
      return bits;
    },
    // The same inputs in float64: C = alpha · op(A) · op(B) + beta · C0, batch by batch.
    reference: a.bStorage === 'bf16' || a.dropout || rank ? undefined : () => {
      const { A, B, C: C0, batch, sA, sB, sC } = gemmInputs(a);
      const out = Float64Array.from(C0);
      for (let z = 0; z < batch; z++) {
        const prod = gemmRef(A.subarray(z * sA), B.subarray(z * sB), a.M, a.N, a.K, a.transA, a.transB);
        for (let m = 0; m < a.M; m++) {
          for (let n = 0; n < a.N; n++) {
            const o = z * sC + m * a.N + n;
            out[o] = (a.alpha ?? 1) * prod[m * a.N + n] + (a.beta ?? 0) * C0[o];
          }
        }
      }
      return out;
    },
  };
}

/** The NF4 forward (Y = X·deq(W)ᵀ) or input gradient (dX = dY·deq(W)), accumulating with alpha 0.75. */
export function nf4Product(name: string, N: number, K: number, M: number, doubleQuant: boolean, backward: boolean, o: TiledOptions = {}, rank = 0): TiledProduct {
  return {
    name,
    run: async (ctx, more = {}) => {
      const W = nf4_upload(ctx, quantizeRef(nf4TestWeights(N, K, N + K), N, K, doubleQuant), 'W');
      const In = ctx.upload('in', randomArray(M * (backward ? N : K), M + N), 'scratch');
      const Out = ctx.upload('out', randomArray(M * (backward ? K : N), M + K), 'scratch');
      const lr = rank ? lowRankOf(ctx, M, backward ? K : N, rank, M + 7) : null;
      const f = backward ? nf4MatmulBackwardTiled : nf4MatmulForwardTiled;
      f(ctx, Out, In, W, M, { accumulate: true, alpha: 0.75, ...(lr ? { lowRank: lr.add } : {}) }, { ...o, ...more });
      const bits = await bitsOf(ctx, Out);
      for (const b of [In, Out, ...(lr?.buffers ?? [])]) ctx.destroy(b);
      nf4_destroy(ctx, W);
      return bits;
    },
  };
}
