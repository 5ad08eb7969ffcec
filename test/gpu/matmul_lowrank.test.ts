// The tiled kernel's low-rank epilogue (shaders/matmul_tiled.wgsl, LOW_RANK): C = alpha · op(A)·op(B) (+ C) +
// drop(scale · U·op(V)) in one pass, which is how LoRA's up-projection and input gradient ride on the frozen base's
// products. Each case runs on odd shapes, with U and V as slices at an offset, against two things:
// - the same product followed by the rank-r term as a GEMM of its own (the path it replaces): the same bits;
// - float64: the product, the prior C, and the term with the CPU's dropout mask (reference/lora.ts).
import { beforeAll, describe, expect, it } from 'vitest';
import { tensorSlice, type TensorSlice } from '../../src/engine/buffer-slice.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import type { LowRankAdd } from '../../src/engine/kernels/gemm_args.ts';
import { loraGemmDropout } from '../../src/engine/kernels/lora.ts';
import { gemmBasic } from '../../src/engine/kernels/matmul.ts';
import { gemmTiled, nf4MatmulBackwardTiled, nf4MatmulForwardTiled, tiledWorkgroupBytes, type TiledOptions } from '../../src/engine/kernels/matmul_tiled.ts';
import { nf4_destroy, nf4_upload } from '../../src/engine/kernels/nf4.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { dropoutMaskRef } from '../../src/engine/reference/lora.ts';
import { gemmRef } from '../../src/engine/reference/matmul.ts';
import { nf4MatmulBackwardRef, nf4MatmulForwardRef, quantizeRef } from '../../src/engine/reference/nf4.ts';
import { nf4TestWeights } from '../helpers/nf4-inputs.ts';
import { DROP_KEY } from './gemm-dropout.ts';
import { gpuContext } from './context.ts';

const TOL = 1e-5;
/** U and V start this far into their buffers: bound as slices, as the LoRA arenas are. */
const OFFSET = 256;

interface Case {
  name: string;
  /** The base product: a dense f32 GEMM (transB: X·Wᵀ, else dY·W) or an NF4 forward / input gradient. */
  base: 'dense' | 'nf4-forward' | 'nf4-gradient';
  M: number;
  N: number;
  K: number;
  transB?: boolean;
  doubleQuant?: boolean;
  r: number;
  transV: boolean;
  scale: number;
  /** Dropout on the term (its output index r · N + c). */
  p?: number;
  alpha?: number;
  beta?: 0 | 1;
  tiled?: TiledOptions;
}

const CASES: Case[] = [
  { name: 'dense X·Wᵀ, ragged and unaligned, r 3, V (N, r)', base: 'dense', M: 37, N: 70, K: 41, transB: true, r: 3, transV: true, scale: 2 },
  { name: 'dense dY·W, aligned, narrow, r 8, V (r, N), dropout, accumulate', base: 'dense', M: 130, N: 64, K: 48, r: 8, transV: false, scale: 1, p: 0.3, alpha: -0.5, beta: 1, tiled: { block: 'narrow' } },
  { name: 'dense, divisible, wide, no edge tests, rank 1', base: 'dense', M: 128, N: 128, K: 64, transB: true, r: 1, transV: true, scale: 0.25, tiled: { block: 'wide', check: false } },
  { name: 'dense, sizes compiled in', base: 'dense', M: 33, N: 36, K: 20, transB: true, r: 5, transV: true, scale: 1.5, beta: 1, tiled: { fixedShape: true } },
  { name: 'NF4 forward, narrow, r 8, accumulate (o_proj / down_proj)', base: 'nf4-forward', M: 37, N: 192, K: 128, r: 8, transV: true, scale: 2, beta: 1, tiled: { block: 'narrow' } },
  { name: 'NF4 forward, double-quantised, wide, r 5', base: 'nf4-forward', M: 130, N: 256, K: 192, doubleQuant: true, r: 5, transV: true, scale: 0.5 },
  { name: 'NF4 input gradient, r 8, dropout, accumulate (k_proj / v_proj)', base: 'nf4-gradient', M: 37, N: 128, K: 200, r: 8, transV: false, scale: 1, p: 0.1, beta: 1 },
  { name: 'NF4 input gradient, double-quantised, divisible, r 4', base: 'nf4-gradient', M: 128, N: 256, K: 256, doubleQuant: true, r: 4, transV: false, scale: 1, p: 0.05 },
  { name: 'NF4 forward, two stages of tiles where they fit, r 8', base: 'nf4-forward', M: 70, N: 128, K: 192, doubleQuant: true, r: 8, transV: true, scale: 2, beta: 1, tiled: { block: 'narrow', stages: 2 } },
];

/** An f32 array uploaded OFFSET bytes into a buffer of its own (NaN before it), bound as a slice. */
function sliced(ctx: GpuContext, label: string, data: Float32Array): TensorSlice {
  const lead = new Float32Array(OFFSET / 4).fill(NaN);
  const all = new Float32Array(lead.length + data.length);
  all.set(lead);
  all.set(data, lead.length);
  return tensorSlice(ctx.upload(label, all, 'scratch'), OFFSET, data.byteLength);
}

interface Run {
  /** The fused pass's output bits, and those of the product followed by the term's own GEMM. */
  fused: Uint32Array;
  twoPass: Uint32Array;
  expected: Float64Array;
  /** Elements of C the term's mask dropped (p > 0). */
  dropped: number;
}

async function runCase(ctx: GpuContext, c: Case): Promise<Run> {
  const { M, N, K, r } = c;
  const seed = M * 3 + N * 5 + K * 7 + r;
  const alpha = c.alpha ?? 1;
  const beta = c.beta ?? 0;
  const U = randomArray(M * r, seed + 1);
  const V = randomArray(N * r, seed + 2);
  const C0 = beta === 0 ? new Float32Array(M * N).fill(NaN) : randomArray(M * N, seed + 3);
  const u = sliced(ctx, 'U', U);
  const v = sliced(ctx, 'V', V);
  const dropout = c.p ? loraGemmDropout({ p: c.p, key: DROP_KEY }, 'out') : undefined;
  const lowRank: LowRankAdd = { u, v, r, transV: c.transV, scale: c.scale, dropout };

  // The base product, on the GPU (with or without the term) and in float64.
  let product: (C: GPUBuffer, add: LowRankAdd | undefined) => void;
  let baseRef: Float64Array;
  const cleanup: (() => void)[] = [];
  if (c.base === 'dense') {
    const A = randomArray(M * K, seed + 4);
    const B = randomArray(K * N, seed + 5);
    const bA = ctx.upload('A', A, 'scratch');
    const bB = ctx.upload('B', B, 'scratch');
    cleanup.push(() => ctx.destroy(bA), () => ctx.destroy(bB));
    product = (C, add) => gemmTiled(ctx, { C, A: bA, B: bB, M, N, K, transB: c.transB, alpha, beta, lowRank: add }, c.tiled);
    baseRef = gemmRef(A, B, M, N, K, false, c.transB);
  } else {
    const forward = c.base === 'nf4-forward';
    // Forward: W [N, K], C = X·deq(W)ᵀ. Input gradient: W [K, N] (the layer's [out, in]), C = dY·deq(W).
    const [rows, cols] = forward ? [N, K] : [K, N];
    const q = quantizeRef(nf4TestWeights(rows, cols, rows + cols), rows, cols, c.doubleQuant ?? false);
    const W = nf4_upload(ctx, q, 'W');
    const X = randomArray(M * K, seed + 4);
    const bX = ctx.upload('X', X, 'scratch');
    cleanup.push(() => nf4_destroy(ctx, W), () => ctx.destroy(bX));
    const f = forward ? nf4MatmulForwardTiled : nf4MatmulBackwardTiled;
    product = (C, add) => f(ctx, C, bX, W, M, { accumulate: beta === 1, alpha, lowRank: add }, c.tiled);
    baseRef = forward ? nf4MatmulForwardRef(X, q, M) : nf4MatmulBackwardRef(X, q, M);
  }

  const fusedOut = ctx.upload('C fused', C0, 'scratch');
  product(fusedOut, lowRank);
  const twoOut = ctx.upload('C two-pass', C0, 'scratch');
  product(twoOut, undefined);
  gemmTiled(ctx, { C: twoOut, A: u, B: v, M, N, K: r, transB: c.transV, alpha: c.scale, beta: 1, dropout });
  const fused = new Uint32Array((await ctx.readF32(fusedOut)).buffer);
  const twoPass = new Uint32Array((await ctx.readF32(twoOut)).buffer);
  for (const b of [fusedOut, twoOut, u.buffer, v.buffer]) ctx.destroy(b);
  for (const f of cleanup) f();

  const term = gemmRef(U, V, M, N, r, false, c.transV);
  const keep = c.p ? dropoutMaskRef(M * N, c.p, DROP_KEY) : null;
  const keepScale = c.p ? 1 / (1 - c.p) : 1;
  const expected = new Float64Array(M * N);
  let dropped = 0;
  for (let i = 0; i < M * N; i++) {
    const kept = keep ? keep[i] === 1 : true;
    if (!kept) dropped++;
    expected[i] = alpha * baseRef[i] + (beta === 1 ? C0[i] : 0) + (kept ? c.scale * term[i] * keepScale : 0);
  }
  return { fused, twoPass, expected, dropped };
}

describe('tiled GEMM: a low-rank term in the epilogue', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  for (const c of CASES) {
    it(`${c.name}: the two-pass bits, and float64`, async () => {
      const { fused, twoPass, expected, dropped } = await runCase(ctx, c);
      let differ = 0;
      for (let i = 0; i < fused.length; i++) if (fused[i] !== twoPass[i]) differ++;
      expect(differ).toBe(0);
      expect(maxRelError(new Float32Array(fused.buffer), expected)).toBeLessThanOrEqual(TOL);
      // The mask both dropped and kept something (so the float64 comparison saw both).
      if (c.p) {
        expect(dropped).toBeGreaterThan(0);
        expect(dropped).toBeLessThan(fused.length);
      }
    });
  }

  it('the pipeline it runs is a LOW_RANK variant with the rank and V layout compiled in', async () => {
    const c = CASES[4];
    await runCase(ctx, c);
    const lowRankKeys = (): string[] => ctx.registry.pipelineKeys.filter((k) => k.startsWith('matmul_tiled|') && k.includes('LOW_RANK=true'));
    const keys = lowRankKeys();
    expect(keys.some((k) => k.includes('NF4=true') && k.includes('LR_R=8') && k.includes('LR_TRANS_V=true'))).toBe(true);
    // The two-stage case ran two stages where the device has the workgroup memory (SwiftShader has).
    await runCase(ctx, CASES[8]);
    const twoStages = tiledWorkgroupBytes('narrow', 2, true) <= ctx.device.limits.maxComputeWorkgroupStorageSize;
    expect(lowRankKeys().some((k) => k.includes('DOUBLE=true'))).toBe(twoStages);
  });

  it('refuses what the epilogue does not cover', () => {
    const b = ctx.createBuffer('lr-refuse', 4096, 'scratch');
    try {
      const lowRank: LowRankAdd = { u: b, v: b, r: 2, transV: true, scale: 1 };
      const args = { C: b, A: b, B: b, M: 4, N: 4, K: 4, lowRank };
      expect(() => gemmBasic(ctx, args)).toThrow(/low-rank term rides only on the tiled kernel/);
      expect(() => gemmTiled(ctx, { ...args, dropout: loraGemmDropout({ p: 0.1, key: DROP_KEY }, 'A') })).toThrow(/its own dropout/);
      expect(() => gemmTiled(ctx, { ...args, batch: 2 })).toThrow(/batch 2/);
      expect(() => gemmTiled(ctx, { ...args, beta: 0.5 })).toThrow(/beta 0.5/);
      expect(() => gemmTiled(ctx, { ...args, lowRank: { ...lowRank, dropout: loraGemmDropout({ p: 0.1, key: DROP_KEY }, 'A') } })).toThrow(/on the output/);
      expect(() => gemmTiled(ctx, { ...args, M: 1000, lowRank: { ...lowRank, u: tensorSlice(b, 0, 64) } })).toThrow(/U holds 64 bytes/);
    } finally {
      ctx.destroy(b);
    }
  });
});
