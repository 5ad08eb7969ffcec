// `finetune bench int8`: the experimental int8 base path (docs/int8.md) against fp32 in the same run. Per shape:
// the plain fp32 product (the yardstick, following --gemm), the raw int8 GEMM (dot4I8Packed, both operands already
// quantised), the quantiser alone, and the NF4 forward and input gradient both ways (fp32 on the context's GEMM
// kernel; int8 including the quantisation of its input), each int8 line with its ratio to the fp32 one and the relative
// error of its output against the fp32 output. Random inputs: the error on a real model's activations comes from
// `finetune bench int8-ab` (src/run/int8-ab.ts). On a context made with the subgroup-matrix int8 kernel
// (--int8-kernel subgroup-matrix), each int8 product is timed on it too, beside the DP4A one: its rate over DP4A's and
// how many outputs differ from DP4A's in any bit (the kernels must agree to the bit: 0).

import type { GpuContext, Int8Kernel } from '../engine/gpu.ts';
import { int8_gemm, int8RowsBytes, quantize_rows_i8 } from '../engine/kernels/int8_matmul.ts';
import { gemm } from '../engine/kernels/matmul.ts';
import { nf4_destroy, nf4_quantize } from '../engine/kernels/nf4.ts';
import { nf4_matmul_backward, nf4_matmul_forward } from '../engine/kernels/nf4_matmul.ts';
import { compareBits } from '../engine/int8-kernel-check.ts';
import { relFrobenius } from '../engine/reference/int8.ts';
import { filled, type Nf4BenchShape } from './nf4.ts';
import { timeGpu } from '../engine/timing.ts';

export interface Int8BenchResult {
  bench: 'int8';
  variant: string;
  M: number;
  N: number;
  K: number;
  ms: number;
  /** 2·M·N·K / time (for the quantiser: its input's bytes / time, in GB/s, under `gbps` instead). */
  gflops?: number;
  gbps?: number;
  /** Against the plain fp32 product of the same M, N, K in this run. */
  vsPlain?: number;
  /** An int8 NF4 product's rate over the same product's in fp32 (the context's GEMM kernel), same run. */
  vsFp32?: number;
  /** ‖int8 − fp32‖ / ‖fp32‖ over the output. */
  relError?: number;
  /** A subgroup-matrix line's rate over the DP4A kernel's same product, same run. */
  vsDp4a?: number;
  /** Outputs of a subgroup-matrix line that differ in any bit from the DP4A kernel's (the kernels must agree: 0). */
  bitsDiffer?: number;
  reps: number;
}

interface Int8Timing {
  t: { ms: number; reps: number };
  /** GFLOP/s. */
  rate: number;
  output: Float32Array;
}

/** A subgroup-matrix product against the DP4A one of the same run: its rate over DP4A's, and the outputs that differ. */
const againstDp4a = (sm: Int8Timing, dp4a: Int8Timing): Pick<Int8BenchResult, 'vsDp4a' | 'bitsDiffer'> => ({
  vsDp4a: sm.rate / dp4a.rate,
  bitsDiffer: compareBits('', dp4a.output, sm.output).differing,
});

export async function* benchInt8(ctx: GpuContext, shapes: readonly Nf4BenchShape[], minMs = 300): AsyncGenerator<Int8BenchResult> {
  for (const { M, N, K } of shapes) {
    const flop = 2 * M * N * K;
    const line = (variant: string, t: { ms: number; reps: number }, extra: Partial<Int8BenchResult> = {}): Int8BenchResult => ({
      bench: 'int8',
      variant,
      M,
      N,
      K,
      ms: t.ms,
      gflops: flop / (t.ms * 1e6),
      reps: t.reps,
      ...extra,
    });
    /**
     * `run` timed on one int8 kernel (the context's own is restored after), and what it left in `out`: cleared first,
     * so a kernel that wrote nothing shows as an error of 1.
     */
    const timeOn = async (kernel: Int8Kernel, run: () => void, out: GPUBuffer): Promise<Int8Timing> => {
      const before = ctx.int8Kernel;
      try {
        ctx.int8Kernel = kernel;
        ctx.clear(out);
        const t = await timeGpu(ctx, run, { minMs });
        return { t, rate: flop / (t.ms * 1e6), output: await ctx.readF32(out) };
      } finally {
        ctx.int8Kernel = before;
      }
    };
    const made: GPUBuffer[] = [];
    const make = (b: GPUBuffer): GPUBuffer => (made.push(b), b);
    try {
      const Wf = make(filled(ctx, 'bench W f32 [N, K]', N * K, 1));
      const X = make(filled(ctx, 'bench X (M, K)', M * K, 2));
      const dY = make(filled(ctx, 'bench dY (M, N)', M * N, 3));
      const Y = make(ctx.createBuffer('bench Y (M, N)', M * N * 4, 'scratch'));
      const dX = make(ctx.createBuffer('bench dX (M, K)', M * K * 4, 'scratch'));

      const tPlain = await timeGpu(ctx, () => gemm(ctx, { C: Y, A: X, B: Wf, M, N, K }), { minMs });
      const plain = flop / (tPlain.ms * 1e6);
      yield line('plain fp32 (C = A·B)', tPlain);

      // The raw int8 rate: X and Wᵀ quantised once, then only the product is timed.
      const xs = int8RowsBytes(M, K);
      const ws = int8RowsBytes(N, K);
      const Xq = make(ctx.createBuffer('bench Xq', xs.codes, 'scratch'));
      const Xs = make(ctx.createBuffer('bench X scales', xs.scales, 'scratch'));
      const Wq = make(ctx.createBuffer('bench Wq', ws.codes, 'scratch'));
      const Ws = make(ctx.createBuffer('bench W scales', ws.scales, 'scratch'));
      quantize_rows_i8(ctx, Wq, Ws, Wf, N, K);
      const tQuant = await timeGpu(ctx, () => quantize_rows_i8(ctx, Xq, Xs, X, M, K), { minMs });
      yield { bench: 'int8', variant: 'quantise X (M, K) to int8', M, N, K, ms: tQuant.ms, gbps: (M * K * 4) / (tQuant.ms * 1e6), reps: tQuant.reps };
      const gemmRun = (): void => int8_gemm(ctx, Y, Xq, Xs, Wq, Ws, M, N, K);
      const raw = await timeOn('dp4a', gemmRun, Y);
      yield line('int8 GEMM (dot4I8Packed, operands quantised)', raw.t, { vsPlain: raw.rate / plain });
      if (ctx.hasInt8SubgroupMatrix) {
        const sm = await timeOn('subgroup-matrix', gemmRun, Y);
        yield line('int8 GEMM (subgroup matrix, operands quantised)', sm.t, { vsPlain: sm.rate / plain, ...againstDp4a(sm, raw) });
      }

      const W = nf4_quantize(ctx, Wf, 'f32', N, K, { doubleQuant: true, label: 'bench W' });
      try {
        for (const kind of ['forward', 'input-gradient'] as const) {
          // The same product both ways, chosen per call (`int8`), whatever the context's baseMatmul says.
          const [out, run] =
            kind === 'forward'
              ? [Y, (int8: boolean) => nf4_matmul_forward(ctx, Y, X, W, M, { int8 })]
              : [dX, (int8: boolean) => nf4_matmul_backward(ctx, dX, dY, W, M, { int8 })];
          const name = kind === 'forward' ? 'nf4 forward Y = X·deq(W)ᵀ, double-quant' : 'nf4 backward dX = dY·deq(W), double-quant';
          const t32 = await timeGpu(ctx, () => run(false), { minMs });
          const ref = await ctx.readF32(out);
          const r32 = flop / (t32.ms * 1e6);
          yield line(`${name}, fp32 (${ctx.gemmKernel})`, t32, { vsPlain: r32 / plain });
          const dp4a = await timeOn('dp4a', () => run(true), out);
          yield line(`${name}, int8 (quantisation included)`, dp4a.t, { vsPlain: dp4a.rate / plain, vsFp32: dp4a.rate / r32, relError: relFrobenius(dp4a.output, ref) });
          if (ctx.hasInt8SubgroupMatrix) {
            const sm = await timeOn('subgroup-matrix', () => run(true), out);
            yield line(`${name}, int8 subgroup matrix (quantisation included)`, sm.t, {
              vsPlain: sm.rate / plain,
              vsFp32: sm.rate / r32,
              relError: relFrobenius(sm.output, ref),
              ...againstDp4a(sm, dp4a),
            });
          }
        }
      } finally {
        nf4_destroy(ctx, W);
      }
    } finally {
      ctx.flush();
      for (const b of made) ctx.destroy(b);
      ctx.releaseScratch();
    }
  }
}
