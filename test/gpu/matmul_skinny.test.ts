// The skinny GEMM (shaders/matmul_skinny.wgsl) against float64: a small side of 1–16 on M or N, long sides and
// reductions that divide nothing, every transpose on both sides (both thread layouts), alpha, beta 0 over NaN and 1,
// padded batches, K = 0, the four LoRA products, the fused dropout, a sliced operand, and bit-for-bit repeatability.
// Few pipeline variants on purpose: each costs seconds to compile on SwiftShader.
import { beforeAll, describe, expect, it } from 'vitest';
import { findNodeAdapter } from '../../src/cli/node-gpu.ts';
import { tensorSlice } from '../../src/engine/buffer-slice.ts';
import { GpuContext } from '../../src/engine/gpu.ts';
import type { GemmArgs } from '../../src/engine/kernels/gemm_args.ts';
import { loraGemmDropout } from '../../src/engine/kernels/lora.ts';
import { gemmSkinny, skinnyCovers, skinnyFits, skinnyVariant, SKINNY_MAX, SKINNY_MIN_K } from '../../src/engine/kernels/matmul_skinny.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { gemmRef } from '../../src/engine/reference/matmul.ts';
import { shaderSources } from '../../src/engine/shaders.ts';
import { gpuContext } from './context.ts';
import { DROP_KEY, dropLabel, gemmDropoutError, type DropCase } from './gemm-dropout.ts';

const TOL = 1e-5; // as the other GEMM tests (docs/testing.md)

interface Case {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  batch?: number;
  /** Elements between batch entries beyond the matrix (never written). */
  pad?: number;
}

const label = (c: Case): string =>
  `M=${c.M} N=${c.N} K=${c.K}${c.transA ? ' Aᵀ' : ''}${c.transB ? ' Bᵀ' : ''}` +
  `${c.alpha !== undefined ? ` alpha=${c.alpha}` : ''}${c.beta ? ` beta=${c.beta}` : ''}${c.batch ? ` batch ${c.batch} pad ${c.pad ?? 0}` : ''}`;

/** Runs one product on the skinny kernel and returns its error against float64 (and checks padding is untouched). */
async function run(ctx: GpuContext, c: Case): Promise<number> {
  const { M, N, K } = c;
  const batch = c.batch ?? 1;
  const pad = c.pad ?? 0;
  const [sA, sB, sC] = [M * K + pad, K * N + pad, M * N + pad];
  const seed = M * 7 + N * 11 + K * 13;
  const A = randomArray(Math.max(1, sA * batch), seed);
  const B = randomArray(Math.max(1, sB * batch), seed + 1);
  const alpha = c.alpha ?? 1;
  const beta = c.beta ?? 0;
  // With beta = 0 the kernel must not read C: NaN there would show.
  const C0 = beta === 0 ? new Float32Array(sC * batch).fill(NaN) : randomArray(sC * batch, seed + 2);
  const bA = ctx.upload('A', A, 'scratch');
  const bB = ctx.upload('B', B, 'scratch');
  const bC = ctx.upload('C', C0, 'scratch');
  gemmSkinny(ctx, { C: bC, A: bA, B: bB, M, N, K, transA: c.transA, transB: c.transB, alpha, beta, batch, strideA: sA, strideB: sB, strideC: sC });
  const got = await ctx.readF32(bC);
  let err = 0;
  for (let b = 0; b < batch; b++) {
    const ref = gemmRef(A.subarray(b * sA), B.subarray(b * sB), M, N, K, c.transA, c.transB);
    const want = ref.map((v, i) => alpha * v + (beta === 0 ? 0 : beta * C0[b * sC + i]));
    err = Math.max(err, maxRelError(got.subarray(b * sC, b * sC + M * N), want));
    const gap = got.subarray(b * sC + M * N, (b + 1) * sC);
    expect(gap.every((v, i) => Object.is(v, C0[b * sC + M * N + i])), `${label(c)}: padding of entry ${b} written`).toBe(true);
  }
  for (const buf of [bA, bB, bC]) ctx.destroy(buf);
  return err;
}

// Small side S ∈ {1, 3, 8, 13, 16}, long side L ∈ {1, 37, 130, 257}, K ∈ {0, 1, 17, 64, 301, 1000}: a spread, not the
// cross product. Each group runs all four transposes, which on each side are both thread layouts.
const SMALL_N: Case[] = [
  { M: 37, N: 8, K: 301 },
  { M: 130, N: 3, K: 1000, alpha: -1.5 },
  { M: 257, N: 16, K: 64, beta: 1 },
  { M: 1, N: 1, K: 17 },
  { M: 130, N: 13, K: 1, alpha: 0.5, beta: 1 },
  { M: 257, N: 8, K: 17, batch: 2, pad: 5 },
];
const SMALL_M: Case[] = [
  { M: 8, N: 37, K: 301 },
  { M: 3, N: 130, K: 1000, alpha: -1.5 },
  { M: 16, N: 257, K: 64, beta: 1 },
  { M: 1, N: 37, K: 17 },
  { M: 13, N: 130, K: 1, alpha: 0.5, beta: 1 },
  { M: 8, N: 257, K: 17, batch: 2, pad: 5, alpha: 2, beta: 1 },
];
const TRANSPOSES: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

// The LoRA products (kernels/lora.ts) at BT = 37 tokens, in = 64, out = 48, r = 8, LoRA scale 2.
const [BT, IN, OUT, R, SCALE] = [37, 64, 48, 8, 2];
const LORA: [string, Case][] = [
  ['t = x·Aᵀ', { M: BT, N: R, K: IN, transB: true }],
  ['dB += scale·dyᵀ·t', { M: OUT, N: R, K: BT, transA: true, alpha: SCALE, beta: 1 }],
  ['dt = scale·dy·B', { M: BT, N: R, K: OUT, alpha: SCALE }],
  ['dA += dtᵀ·x', { M: R, N: IN, K: BT, transA: true, beta: 1 }],
];

const nullArgs = (M: number, N: number, K: number, extra: Partial<GemmArgs> = {}): GemmArgs => ({ A: null!, B: null!, C: null!, M, N, K, ...extra });

describe('skinny matmul against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  for (const [side, cases] of [['N', SMALL_N], ['M', SMALL_M]] as const) {
    for (const [transA, transB] of TRANSPOSES) {
      it(`small ${side}${transA ? ', Aᵀ' : ''}${transB ? ', Bᵀ' : ''}: odd shapes, alpha, beta, a padded batch`, async () => {
        for (const base of cases) {
          const c = { ...base, transA, transB };
          expect(await run(ctx, c), label(c)).toBeLessThan(TOL);
        }
      });
    }
  }

  it('K = 0 leaves alpha · 0 + beta · C (beta 0 over NaN: zeros), both sides, both layouts', async () => {
    for (const c of [
      { M: 37, N: 13, K: 0 },
      { M: 37, N: 13, K: 0, transA: true, alpha: 2, beta: 1 },
      { M: 3, N: 130, K: 0, beta: 1 },
      { M: 3, N: 130, K: 0, transB: true },
    ] as Case[]) {
      expect(await run(ctx, c), label(c)).toBeLessThan(TOL);
    }
  });

  it('a 16 × 16 output (the small side is either: N is taken)', async () => {
    expect(skinnyVariant(nullArgs(16, 16, 301)).smallM).toBe(false);
    expect(await run(ctx, { M: 16, N: 16, K: 301, transB: true, alpha: 0.25 })).toBeLessThan(TOL);
  });

  for (const [name, c] of LORA) {
    it(`LoRA product ${name} (${label(c)})`, async () => {
      expect(await run(ctx, c)).toBeLessThan(TOL);
    });
  }

  // Dropout as kernels/lora.ts fuses it (t: on A, the long operand; dA: on B, the long operand), on the small operand
  // too, and in the epilogue, beta 0 and 1, a batch.
  const DROPS: DropCase[] = [
    { M: BT, N: R, K: IN, on: 'A', p: 0.1, transB: true },
    { M: R, N: 130, K: 301, on: 'A', p: 0.5, transB: true, alpha: -1.5 },
    { M: R, N: IN, K: BT, on: 'B', p: 0.1, transA: true, beta: 1 },
    { M: 130, N: R, K: 301, on: 'B', p: 0.5, transB: true },
    { M: 130, N: 13, K: 64, on: 'out', p: 0.3, beta: 1, alpha: 2 },
    { M: 3, N: 37, K: 301, on: 'out', p: 0.3, transB: true },
    { M: 37, N: 8, K: 17, on: 'out', p: 0.2, batch: 3 },
  ];
  for (const c of DROPS) {
    it(dropLabel(c), async () => {
      expect(await gemmDropoutError(ctx, c, (a) => gemmSkinny(ctx, a))).toBeLessThan(TOL);
    });
  }

  it('reads and writes operands that are slices at a nonzero offset', async () => {
    const [M, N, K] = [37, 8, 301];
    const align = ctx.device.limits.minStorageBufferOffsetAlignment;
    const A = randomArray(M * K, 71);
    const B = randomArray(K * N, 72);
    const C0 = randomArray(M * N, 73);
    // Each operand after `align` bytes of sentinels, with sentinels behind it too.
    const embed = (v: Float32Array): Float32Array => {
      const out = new Float32Array(align / 4 + v.length + 64).fill(-7);
      out.set(v, align / 4);
      return out;
    };
    const bufs = [A, B, C0].map((v, i) => ctx.upload(`sliced ${i}`, embed(v), 'scratch'));
    const [sA, sB, sC] = [A, B, C0].map((v, i) => tensorSlice(bufs[i], align, v.length * 4));
    gemmSkinny(ctx, { C: sC, A: sA, B: sB, M, N, K, alpha: 0.5, beta: 1 });
    const got = await ctx.readF32(bufs[2]);
    const want = gemmRef(A, B, M, N, K).map((v, i) => 0.5 * v + C0[i]);
    expect(maxRelError(got.subarray(align / 4, align / 4 + M * N), want)).toBeLessThan(TOL);
    expect(got.subarray(0, align / 4).every((v) => v === -7)).toBe(true);
    expect(got.subarray(align / 4 + M * N).every((v) => v === -7)).toBe(true);
    for (const b of bufs) ctx.destroy(b);
  });

  it('gives the same bits twice (no atomics, fixed summation order)', async () => {
    const [M, N, K] = [13, 257, 1000];
    const bA = ctx.upload('A', randomArray(M * K, 81), 'scratch');
    const bB = ctx.upload('B', randomArray(N * K, 82), 'scratch');
    const bC = ctx.createBuffer('C', M * N * 4, 'scratch');
    const once = async (): Promise<Uint32Array> => {
      gemmSkinny(ctx, { C: bC, A: bA, B: bB, M, N, K, transB: true });
      return new Uint32Array((await ctx.readF32(bC)).buffer);
    };
    const first = await once();
    const second = await once();
    expect(second).toEqual(first);
    for (const b of [bA, bB, bC]) ctx.destroy(b);
  });

  it('takes four k at a time with the same bits as one at a time (both layouts, with and without a remainder, dropout)', async () => {
    // The products at odd lengths: lanes on K (kStep 32) and groups on K (kStep 8), loops of 1–125 steps per thread.
    const cases: GemmArgs[] = [
      { M: 37, N: 8, K: 301, transB: true },
      { M: 130, N: 13, K: 1000 },
      { M: 8, N: 257, K: 1000, transA: true, beta: 1 },
      { M: 37, N: 8, K: 64, transA: true },
      { M: 3, N: 37, K: 17, transB: true, alpha: 2 },
      { M: 257, N: 8, K: 301, transB: true, dropout: loraGemmDropout({ p: 0.1, key: DROP_KEY }, 'A') },
    ].map((c) => ({ ...c, A: null!, B: null!, C: null! }));
    const bits = async (c: GpuContext): Promise<Uint32Array[]> => {
      const out: Uint32Array[] = [];
      for (const [n, a] of cases.entries()) {
        const [sA, sB] = [a.M * a.K, a.K * a.N];
        const bA = c.upload('A', randomArray(sA, 90 + n), 'scratch');
        const bB = c.upload('B', randomArray(sB, 95 + n), 'scratch');
        const bC = c.upload('C', randomArray(a.M * a.N, 99 + n), 'scratch');
        gemmSkinny(c, { ...a, A: bA, B: bB, C: bC });
        out.push(new Uint32Array((await c.readF32(bC)).buffer));
        for (const b of [bA, bB, bC]) c.destroy(b);
      }
      return out;
    };
    const unrolled = await bits(ctx);
    const sources = shaderSources as Record<string, string>;
    const real = sources.matmul_skinny;
    // The same shader with its four-at-a-time loop never entered: the remainder loop takes every k, one at a time.
    const oneAtATime = real.replace('k + 3u * kStep < p.K', 'false');
    expect(oneAtATime).not.toBe(real);
    sources.matmul_skinny = oneAtATime;
    const fresh = await GpuContext.fromAdapter((await findNodeAdapter()).adapter, {});
    try {
      expect(await bits(fresh)).toEqual(unrolled);
    } finally {
      fresh.destroyDevice();
      sources.matmul_skinny = real;
    }
  });

  it('routes only small-sided, long-reduction, f32-B products (skinnyFits) and picks the coalesced layout', () => {
    expect(SKINNY_MAX).toBe(16);
    // The four LoRA products at Mistral's sizes (2048 tokens, 4096 → 14336 features, r = 8).
    expect(skinnyFits(nullArgs(2048, 8, 4096, { transB: true }))).toBe(true);
    expect(skinnyFits(nullArgs(14336, 8, 2048, { transA: true, beta: 1 }))).toBe(true);
    expect(skinnyFits(nullArgs(2048, 8, 14336))).toBe(true);
    expect(skinnyFits(nullArgs(8, 4096, 2048, { transA: true, beta: 1 }))).toBe(true);
    // Edges of each condition.
    expect(skinnyFits(nullArgs(2048, 16, SKINNY_MIN_K))).toBe(true);
    expect(skinnyFits(nullArgs(2048, 17, 4096))).toBe(false);
    expect(skinnyFits(nullArgs(17, 2048, 4096))).toBe(false);
    expect(skinnyFits(nullArgs(2048, 8, SKINNY_MIN_K - 1))).toBe(false);
    expect(skinnyFits(nullArgs(2048, 8, 16))).toBe(false);
    expect(skinnyFits(nullArgs(0, 0, 4096))).toBe(false);
    expect(skinnyFits(nullArgs(2048, 8, 4096, { bStorage: 'bf16' }))).toBe(false);
    expect(skinnyFits(nullArgs(2048, 8, 4096, { bStorage: 'f32' }))).toBe(true);
    // LoRA's second forward product and dx (K = r) are not skinny; the kernel would still compute a short K.
    expect(skinnyFits(nullArgs(2048, 4096, 8, { transB: true }))).toBe(false);
    expect(skinnyCovers(nullArgs(2048, 8, 1))).toBe(true);
    expect(skinnyCovers(nullArgs(2048, 8, 4096, { bStorage: 'f16' }))).toBe(false);
    // Layouts: lanes along K exactly when the long operand (A, or B for a small M) is stored along K.
    expect(skinnyVariant(nullArgs(2048, 8, 4096, { transB: true }))).toEqual({ smallM: false, lanesOnK: true, longPerGroup: 8 });
    expect(skinnyVariant(nullArgs(4096, 8, 2048, { transA: true }))).toEqual({ smallM: false, lanesOnK: false, longPerGroup: 32 });
    expect(skinnyVariant(nullArgs(8, 4096, 2048, { transA: true }))).toEqual({ smallM: true, lanesOnK: false, longPerGroup: 32 });
    expect(skinnyVariant(nullArgs(8, 4096, 2048, { transB: true }))).toEqual({ smallM: true, lanesOnK: true, longPerGroup: 8 });
  });

  it('refuses what it does not cover: a small side over 16, non-f32 B, u32 overflow, an oversized grid, bad dropout', () => {
    const b = ctx.createBuffer('b', 64, 'scratch');
    const args = (M: number, N: number, K: number, extra: Partial<GemmArgs> = {}): GemmArgs => ({ C: b, A: b, B: b, M, N, K, ...extra });
    expect(() => gemmSkinny(ctx, args(17, 17, 64))).toThrow(/min\(M, N\) ≤ 16/);
    expect(() => gemmSkinny(ctx, args(64, 8, 64, { bStorage: 'bf16' }))).toThrow(/f32 B/);
    expect(() => gemmSkinny(ctx, args(2 ** 20, 8, 2 ** 12))).toThrow(/2³²/);
    expect(() => gemmSkinny(ctx, args(8, 8, 8, { batch: 2, strideA: 2 ** 32 }))).toThrow(/2³²/);
    const maxWg = ctx.device.limits.maxComputeWorkgroupsPerDimension;
    expect(() => gemmSkinny(ctx, args(8 * maxWg + 1, 8, 1))).toThrow(/workgroups/);
    expect(() => gemmSkinny(ctx, args(64, 8, 64, { batch: maxWg + 1 }))).toThrow(/workgroups/);
    const dropout = (on: 'A' | 'B' | 'out') => loraGemmDropout({ p: 0.1, key: DROP_KEY }, on);
    expect(() => gemmSkinny(ctx, args(64, 8, 64, { beta: 0.5, dropout: dropout('out') }))).toThrow(/beta/);
    ctx.destroy(b);
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
