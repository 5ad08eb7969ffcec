// `finetune bench matmul`: GFLOP/s of every matmul variant, each next to the plain tiled fp32 product (no
// transposes) measured in the same run on the same adapter.

import type { GpuContext } from '../engine/gpu.ts';
import { gemm, type WeightStorage } from '../engine/kernels/matmul.ts';
import { randomArray } from '../engine/reference/common.ts';
import { timeGpu } from './timing.ts';

export interface MatmulBenchResult {
  bench: 'matmul';
  variant: string;
  M: number;
  N: number;
  K: number;
  ms: number;
  gflops: number;
  /** GFLOP/s relative to the plain fp32 product at the same size. */
  vsPlain: number;
  reps: number;
}

interface Variant {
  name: string;
  transA: boolean;
  transB: boolean;
  storage: WeightStorage;
}

export function matmulVariants(ctx: GpuContext): Variant[] {
  const v: Variant[] = [
    { name: 'plain fp32 (C = A·B)', transA: false, transB: false, storage: 'f32' },
    { name: 'forward Y = X·Wᵀ', transA: false, transB: true, storage: 'f32' },
    { name: 'backward dW = dYᵀ·X', transA: true, transB: false, storage: 'f32' },
    { name: 'forward Y = X·Wᵀ, W bf16', transA: false, transB: true, storage: 'bf16' },
  ];
  if (ctx.hasF16) v.push({ name: 'forward Y = X·Wᵀ, W f16', transA: false, transB: true, storage: 'f16' });
  return v;
}

export async function* benchMatmul(ctx: GpuContext, sizes: number[], minMs = 300): AsyncGenerator<MatmulBenchResult> {
  for (const n of sizes) {
    const [M, N, K] = [n, n, n];
    const A = ctx.upload('bench A', randomArray(M * K, 1), 'scratch');
    const B = ctx.upload('bench B', randomArray(N * K, 2), 'scratch');
    const C = ctx.createBuffer('bench C', M * N * 4, 'scratch');
    let plain = 0;
    try {
      for (const v of matmulVariants(ctx)) {
        const t = await timeGpu(ctx, () => gemm(ctx, { C, A, B, M, N, K, transA: v.transA, transB: v.transB, bStorage: v.storage }), { minMs });
        const gflops = (2 * M * N * K) / (t.ms * 1e6);
        if (plain === 0) plain = gflops;
        yield { bench: 'matmul', variant: v.name, M, N, K, ms: t.ms, gflops, vsPlain: gflops / plain, reps: t.reps };
      }
    } finally {
      for (const b of [A, B, C]) ctx.destroy(b);
    }
  }
}
