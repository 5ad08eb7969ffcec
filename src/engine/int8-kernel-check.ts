// Before a context trains with the tensor-core int8 kernel (shaders/int8_matmul_sm.wgsl), it proves on this very
// device that the kernel gives the DP4A kernel's numbers: both kernels form the same int8 operands and exact integer
// sums and scale them in the same f32 order, so their outputs must agree bit for bit, and any difference is a bug
// (ours, or the driver's). The probe covers each product the int8 path runs (the plain GEMM, the NF4 forward and
// input gradient, plain and double-quantised scales) on shapes whose every side is ragged, with alpha and
// accumulation, so the edge handling and the epilogue are compared too. A few milliseconds on a GPU.

import { FinetuneError } from '../core/errors.ts';
import type { GpuContext, Int8Kernel } from './gpu.ts';
import { int8_gemm, int8RowsBytes, nf4_int8_backward, nf4_int8_forward, quantize_rows_i8 } from './kernels/int8_matmul.ts';
import { nf4_destroy, nf4_quantize } from './kernels/nf4.ts';

export interface Int8KernelComparison {
  product: string;
  /** Outputs compared, and how many differ in any bit. */
  outputs: number;
  differing: number;
  /** Largest |candidate − dp4a| over the outputs (NaN where one side is NaN and the other is not). */
  maxAbsDiff: number;
  /** Largest |dp4a output|: a probe whose outputs were all zero would prove nothing. */
  referenceMaxAbs: number;
}

/** How two float32 arrays of one product differ, bit for bit. */
export function compareBits(product: string, reference: Float32Array, candidate: Float32Array): Int8KernelComparison {
  if (reference.length !== candidate.length) throw new Error(`${product}: ${candidate.length} outputs against ${reference.length}`);
  const a = new Uint32Array(reference.buffer, reference.byteOffset, reference.length);
  const b = new Uint32Array(candidate.buffer, candidate.byteOffset, candidate.length);
  let differing = 0;
  let maxAbsDiff = 0;
  let referenceMaxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    referenceMaxAbs = Math.max(referenceMaxAbs, Math.abs(reference[i]));
    if (a[i] === b[i]) continue;
    differing++;
    const d = Math.abs(candidate[i] - reference[i]);
    maxAbsDiff = Number.isNaN(d) ? NaN : Math.max(maxAbsDiff, d);
  }
  return { product, outputs: a.length, differing, maxAbsDiff, referenceMaxAbs };
}

/** n pseudo-random values in [-2, 2) from `seed` (a linear congruential sequence: the probe needs variety, not quality). */
function probeValues(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = Math.imul(seed, 0x9e3779b9) >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = (x / 2 ** 32) * 4 - 2;
  }
  return out;
}

/** One product of the probe: runs it on the context's current int8 kernel into `out`. */
interface ProbeProduct {
  product: string;
  out: GPUBuffer;
  count: number;
  run: () => void;
}

/**
 * Runs every probe product on 'dp4a' and on `candidate` and compares them; the context's `int8Kernel` is restored.
 * Ragged shapes: M = 70 tokens (two 64-row blocks, the second mostly empty), N = 72 (two 64-wide blocks), a GEMM
 * reduction of 200 (four groups, the last partly empty) and NF4 reductions of 128 (two blocks) and 72 rows.
 */
export async function compareInt8Kernels(ctx: GpuContext, candidate: Int8Kernel): Promise<Int8KernelComparison[]> {
  const M = 70;
  const N = 72;
  const made: GPUBuffer[] = [];
  const upload = (label: string, n: number, seed: number): GPUBuffer => {
    const b = ctx.upload(label, probeValues(n, seed), 'scratch');
    made.push(b);
    return b;
  };
  const buffer = (label: string, bytes: number): GPUBuffer => {
    const b = ctx.createBuffer(label, Math.max(4, bytes), 'scratch');
    made.push(b);
    return b;
  };
  const quantised = (label: string, X: GPUBuffer, rows: number, cols: number): { q: GPUBuffer; s: GPUBuffer } => {
    const bytes = int8RowsBytes(rows, cols);
    const q = buffer(`${label} codes`, bytes.codes);
    const s = buffer(`${label} scales`, bytes.scales);
    quantize_rows_i8(ctx, q, s, X, rows, cols);
    return { q, s };
  };
  const weights = [
    nf4_quantize(ctx, upload('probe W', N * 128, 11), 'f32', N, 128, { label: 'probe W' }),
    nf4_quantize(ctx, upload('probe W dq', N * 128, 12), 'f32', N, 128, { doubleQuant: true, label: 'probe W dq' }),
  ];
  const before = ctx.int8Kernel;
  try {
    const K = 200;
    const a = quantised('probe A', upload('probe A f32', M * K, 1), M, K);
    const b = quantised('probe B', upload('probe B f32', N * K, 2), N, K);
    const x = quantised('probe X', upload('probe X f32', M * 128, 3), M, 128);
    const dy = quantised('probe dY', upload('probe dY f32', M * N, 4), M, N);
    const products: ProbeProduct[] = [];
    const gemmOut = buffer('probe C', M * N * 4);
    products.push({ product: 'int8 GEMM', out: gemmOut, count: M * N, run: () => int8_gemm(ctx, gemmOut, a.q, a.s, b.q, b.s, M, N, K, { alpha: 0.75 }) });
    for (const W of weights) {
      const scales = W.doubleQuant ? 'double-quantised' : 'plain';
      const y = buffer('probe Y', M * N * 4);
      products.push({ product: `NF4 forward, ${scales} scales`, out: y, count: M * N, run: () => nf4_int8_forward(ctx, y, x.q, x.s, W, M) });
      const dx = buffer('probe dX', M * 128 * 4);
      const start = probeValues(M * 128, 5);
      products.push({
        product: `NF4 input gradient, ${scales} scales, accumulated`,
        out: dx,
        count: M * 128,
        run: () => {
          ctx.write(dx, start);
          nf4_int8_backward(ctx, dx, dy.q, dy.s, W, M, { accumulate: true, alpha: -1.5 });
        },
      });
    }
    const outputs = async (kernel: Int8Kernel): Promise<Float32Array[]> => {
      ctx.int8Kernel = kernel;
      const got: Float32Array[] = [];
      for (const p of products) {
        ctx.clear(p.out);
        p.run();
        got.push(await ctx.readF32(p.out, 0, p.count));
      }
      return got;
    };
    const reference = await outputs('dp4a');
    const other = await outputs(candidate);
    return products.map((p, i) => compareBits(p.product, reference[i], other[i]));
  } finally {
    ctx.int8Kernel = before;
    for (const W of weights) nf4_destroy(ctx, W);
    for (const b of made) ctx.destroy(b);
  }
}

/** The comparisons that failed, in words for an error message; empty when the kernels agree. */
export function int8KernelDisagreements(results: readonly Int8KernelComparison[]): string {
  return results
    .filter((r) => r.differing > 0)
    .map((r) => `${r.product}: ${r.differing} of ${r.outputs} outputs differ (largest difference ${r.maxAbsDiff})`)
    .join('; ');
}

/**
 * Throws a `mismatch` error naming every product that differs when the context's subgroup-matrix int8 kernel does
 * not give the DP4A kernel's bits on this device; the context keeps its kernel when they agree.
 */
export async function verifyInt8Kernel(ctx: GpuContext): Promise<Int8KernelComparison[]> {
  const results = await compareInt8Kernels(ctx, 'subgroup-matrix');
  const bad = int8KernelDisagreements(results);
  if (bad) {
    throw new FinetuneError('mismatch', `the subgroup-matrix int8 kernel does not give the dp4a kernel's numbers on this GPU (${bad}); it is not used (the dp4a kernel runs everywhere)`, {
      comparisons: results.length,
    });
  }
  return results;
}
