// The GEMM's fused LoRA dropout variants (GemmDropout: on operand A, on operand B, on the output) against float64 with
// the CPU mask, shared by test/gpu/matmul.test.ts (basic kernel) and test/gpu/matmul_tiled.test.ts (register-tiled).
// The mask comes from reference/lora.ts's byte-wise murmur3 (dropoutMaskRef), independent of the word-wise copies in
// kernels/lora.ts and in the three shaders.
import { expect } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import type { GemmArgs } from '../../src/engine/kernels/gemm_args.ts';
import { loraGemmDropout, type DropoutKey } from '../../src/engine/kernels/lora.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { dropoutMaskRef } from '../../src/engine/reference/lora.ts';
import { gemmRef } from '../../src/engine/reference/matmul.ts';

export const DROP_KEY: DropoutKey = { seed: 9, step: 31, layer: 2, module: 5 };

export interface DropCase {
  M: number;
  N: number;
  K: number;
  on: 'A' | 'B' | 'out';
  p: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  /** Batch entries packed back to back: each entry gets the same mask (indices are per entry). */
  batch?: number;
}

export const dropLabel = (c: DropCase): string =>
  `drop ${c.on} p=${c.p} M=${c.M} N=${c.N} K=${c.K}${c.transA ? ' Aᵀ' : ''}${c.transB ? ' Bᵀ' : ''}` +
  `${c.alpha !== undefined ? ` alpha=${c.alpha}` : ''}${c.beta ? ` beta=${c.beta}` : ''}${c.batch ? ` batch ${c.batch}` : ''}`;

/**
 * Runs one dropout product through `product` (the kernel under test) and returns its error against float64. For the
 * output variant it also checks that every dropped output is exactly its prior (beta 1) or +0 (beta 0), and that the
 * mask did drop and keep something.
 */
export async function gemmDropoutError(ctx: GpuContext, c: DropCase, product: (a: GemmArgs) => void): Promise<number> {
  const { M, N, K, p } = c;
  const batch = c.batch ?? 1;
  const alpha = c.alpha ?? 1;
  const beta = c.beta ?? 0;
  const [sA, sB, sC] = [M * K, K * N, M * N];
  const seed = M * 5 + N * 7 + K * 11;
  const A = randomArray(sA * batch, seed);
  const B = randomArray(sB * batch, seed + 1);
  const C0 = beta === 0 ? new Float32Array(sC * batch).fill(NaN) : randomArray(sC * batch, seed + 2);
  const n = c.on === 'A' ? sA : c.on === 'B' ? sB : sC;
  const keep = dropoutMaskRef(n, p, DROP_KEY);
  const kept = keep.reduce((a, k) => a + k, 0);
  if (n >= 64) expect(kept > 0 && kept < n, `${dropLabel(c)}: the mask keeps ${kept} of ${n}`).toBe(true);
  const scale = Math.fround(1 / (1 - p));
  const dropEntry = (v: Float32Array): Float32Array => Float32Array.from(v, (x, i) => (keep[i] ? x * scale : 0));
  const bA = ctx.upload('A', A, 'scratch');
  const bB = ctx.upload('B', B, 'scratch');
  const bC = ctx.upload('C', C0, 'scratch');
  product({
    C: bC, A: bA, B: bB, M, N, K, transA: c.transA, transB: c.transB, alpha, beta,
    batch, strideA: sA, strideB: sB, strideC: sC, dropout: loraGemmDropout({ p, key: DROP_KEY }, c.on),
  });
  const got = await ctx.readF32(bC);
  let err = 0;
  for (let b = 0; b < batch; b++) {
    const Ab = A.subarray(b * sA, (b + 1) * sA);
    const Bb = B.subarray(b * sB, (b + 1) * sB);
    const ref = gemmRef(c.on === 'A' ? dropEntry(Ab) : Ab, c.on === 'B' ? dropEntry(Bb) : Bb, M, N, K, c.transA, c.transB);
    const prior = (i: number): number => (beta === 0 ? 0 : C0[b * sC + i]);
    const want =
      c.on === 'out' ? ref.map((v, i) => prior(i) + (keep[i] ? alpha * v * scale : 0)) : ref.map((v, i) => alpha * v + beta * prior(i));
    const g = got.subarray(b * sC, (b + 1) * sC);
    err = Math.max(err, maxRelError(g, want));
    if (c.on === 'out') {
      for (let i = 0; i < sC; i++) {
        if (!keep[i] && !Object.is(g[i], beta === 0 ? 0 : C0[b * sC + i])) {
          throw new Error(`${dropLabel(c)}: dropped output ${i} of entry ${b} is ${g[i]}, not its prior`);
        }
      }
    }
  }
  for (const buf of [bA, bB, bC]) ctx.destroy(buf);
  return err;
}
