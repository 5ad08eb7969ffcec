// The skinny GEMM (shaders/matmul_skinny.wgsl) against float64: a small side of 1–16 on M or N, long sides and
// reductions that divide nothing, every transpose on both sides (both thread layouts), alpha, beta 0 over NaN and 1,
// padded batches, K = 0, the four LoRA products, the fused dropout, a sliced operand, and bit-for-bit repeatability;
// the aligned path (the long operand read in 16-byte quads) on each of its layouts, and when it is taken.
// Few pipeline variants on purpose: each costs seconds to compile on SwiftShader.
import { beforeAll, describe, expect, it } from 'vitest';
import { findNodeAdapter } from '../../src/cli/node-gpu.ts';
import { tensorSlice, type TensorSlice } from '../../src/engine/buffer-slice.ts';
import { GpuContext } from '../../src/engine/gpu.ts';
import type { GemmArgs } from '../../src/engine/kernels/gemm_args.ts';
import { loraGemmDropout } from '../../src/engine/kernels/lora.ts';
import { gemmSkinny, skinnyCovers, skinnyFits, skinnyVariant, SKINNY_MAX, SKINNY_MIN_K, type SkinnyOptions } from '../../src/engine/kernels/matmul_skinny.ts';
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
  /** Pads of A, B and C apart (instead of `pad`), to misalign one operand's batch entries. */
  pads?: [number, number, number];
  /** At least this many floats in each operand's buffer (a vec4 binding needs 16 bytes, even when K = 0). */
  floats?: number;
  /** The path the kernel must choose by itself (or as `force` says): the aligned one (true) or the scalar one. */
  aligned?: boolean;
  /** Path choices forced on the kernel (gemmSkinny's options). */
  force?: SkinnyOptions;
}

const label = (c: Case): string =>
  `M=${c.M} N=${c.N} K=${c.K}${c.transA ? ' Aᵀ' : ''}${c.transB ? ' Bᵀ' : ''}` +
  `${c.alpha !== undefined ? ` alpha=${c.alpha}` : ''}${c.beta ? ` beta=${c.beta}` : ''}${c.batch ? ` batch ${c.batch} pad ${c.pads?.join('/') ?? c.pad ?? 0}` : ''}`;

/** Runs one product on the skinny kernel and returns its error against float64 (and checks padding is untouched). */
async function run(ctx: GpuContext, c: Case): Promise<number> {
  const { M, N, K } = c;
  const batch = c.batch ?? 1;
  const pad = c.pad ?? 0;
  const [pA, pB, pC] = c.pads ?? [pad, pad, pad];
  const [sA, sB, sC] = [M * K + pA, K * N + pB, M * N + pC];
  const seed = M * 7 + N * 11 + K * 13;
  const A = randomArray(Math.max(c.floats ?? 1, sA * batch), seed);
  const B = randomArray(Math.max(c.floats ?? 1, sB * batch), seed + 1);
  const alpha = c.alpha ?? 1;
  const beta = c.beta ?? 0;
  // With beta = 0 the kernel must not read C: NaN there would show.
  const C0 = beta === 0 ? new Float32Array(sC * batch).fill(NaN) : randomArray(sC * batch, seed + 2);
  const bA = ctx.upload('A', A, 'scratch');
  const bB = ctx.upload('B', B, 'scratch');
  const bC = ctx.upload('C', C0, 'scratch');
  const args: GemmArgs = { C: bC, A: bA, B: bB, M, N, K, transA: c.transA, transB: c.transB, alpha, beta, batch, strideA: sA, strideB: sB, strideC: sC };
  if (c.aligned !== undefined) expect(skinnyVariant(args, c.force).aligned, `${label(c)}: aligned`).toBe(c.aligned);
  gemmSkinny(ctx, args, c.force);
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

// Bindings the path choice reads only for their offset and size (a whole 1 GiB buffer); nothing is dispatched on them.
const STUB: TensorSlice = { buffer: null!, offset: 0, size: 2 ** 30 };
const nullArgs = (M: number, N: number, K: number, extra: Partial<GemmArgs> = {}): GemmArgs => ({ A: STUB, B: STUB, C: STUB, M, N, K, ...extra });
/** The path fields of a SkinnyVariant: both operands in quads, or one float at a time. */
const quads = { aligned: true, smallVec4: true };
const scalar = { aligned: false, smallVec4: false };
/** The scalar path with the small operand (stored along the small side) read in quads along s. */
const scalarQuads = { aligned: false, smallVec4: true };

// The aligned path (lanes on K, K % 4 == 0; a thread takes 4 quads of k per step of 128 quads a warp): small side 1, 3,
// 8, 16; long sides 1, 37, 257 (not multiples of the 8 a workgroup takes); K = 4 and 64 (fewer quads than lanes),
// 132 and 1028 (quads left over past the 4-quad step), 1024 (none left over); alpha, beta 0 over NaN and 1, batches
// with pads that keep every entry on a 16-byte boundary.
const ALIGNED_N: Case[] = [
  { M: 37, N: 8, K: 1024 },
  { M: 257, N: 16, K: 132, beta: 1 },
  { M: 1, N: 1, K: 4 },
  { M: 37, N: 3, K: 1028, alpha: -1.5 },
  { M: 257, N: 1, K: 64, alpha: 0.5, beta: 1 },
  { M: 37, N: 16, K: 1028, batch: 2, pad: 4, alpha: 2, beta: 1 },
  { M: 257, N: 3, K: 132, batch: 3, pad: 8 },
].map((c) => ({ ...c, aligned: true }));
const ALIGNED_M: Case[] = [
  { M: 8, N: 37, K: 1024 },
  { M: 16, N: 257, K: 132, beta: 1 },
  { M: 1, N: 37, K: 4 },
  { M: 3, N: 37, K: 1028, alpha: -1.5 },
  { M: 1, N: 257, K: 64, alpha: 0.5, beta: 1 },
  { M: 16, N: 37, K: 1028, batch: 2, pad: 4, alpha: 2, beta: 1 },
  { M: 3, N: 257, K: 132, batch: 3, pad: 8 },
].map((c) => ({ ...c, aligned: true }));

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
      // With 16-byte buffers the aligned path takes K = 0 too (its loops never run).
      { M: 37, N: 8, K: 0, transB: true, alpha: 2, beta: 1, floats: 4, aligned: true },
      { M: 37, N: 8, K: 0, floats: 4, aligned: true, force: { aligned: true } },
      { M: 3, N: 130, K: 0, transB: true, floats: 4, aligned: true },
    ] as Case[]) {
      expect(await run(ctx, c), label(c)).toBeLessThan(TOL);
    }
  });

  // Small N: A [M, K] is the long operand; B is stored along K (Bᵀ: quads along k per s) or along N (quads along s per
  // k where N % 4 == 0, else one float at a time). Small M with Bᵀ: B [N, K] is the long operand; A likewise. The
  // kernel takes the aligned path by itself only with the small operand stored along K; stored along the small side
  // (B without Bᵀ, Aᵀ), it is forced here.
  for (const [side, cases, trans] of [
    ['N', ALIGNED_N, [[false, false], [false, true]]],
    ['M', ALIGNED_M, [[false, true], [true, true]]],
  ] as const) {
    for (const [transA, transB] of trans) {
      it(`aligned, small ${side}${transA ? ', Aᵀ' : ''}${transB ? ', Bᵀ' : ''}: small sides 1–16, odd long sides, K with and without quads left over, padded batches`, async () => {
        const alongS = side === 'N' ? !transB : transA;
        for (const base of cases) {
          const c: Case = { ...base, transA, transB, force: alongS ? { aligned: true } : undefined };
          expect(await run(ctx, c), label(c)).toBeLessThan(TOL);
        }
      });
    }
  }

  it('aligned with the small operand stored along K but its batch entries off 16 bytes (read a float at a time)', async () => {
    for (const c of [
      { M: 37, N: 8, K: 132, transB: true, batch: 2, pads: [4, 1, 0], alpha: 2, beta: 1, aligned: true },
      { M: 8, N: 37, K: 1028, transB: true, batch: 2, pads: [3, 4, 0], aligned: true },
    ] as Case[]) {
      const a = nullArgs(c.M, c.N, c.K, { transB: true, batch: 2, strideA: c.M * c.K + c.pads![0], strideB: c.K * c.N + c.pads![1] });
      expect(skinnyVariant(a), label(c)).toMatchObject({ aligned: true, smallVec4: false });
      expect(await run(ctx, c), label(c)).toBeLessThan(TOL);
    }
  });

  it('K % 4 != 0 and long operands off 16 bytes take the scalar path, and still pass', async () => {
    for (const c of [
      { M: 37, N: 8, K: 1030, transB: true, aligned: false },
      { M: 37, N: 8, K: 1027, aligned: false },
      { M: 8, N: 37, K: 130, transB: true, aligned: false },
      { M: 37, N: 8, K: 132, transB: true, batch: 2, pads: [1, 4, 0], beta: 1, aligned: false },
      { M: 8, N: 37, K: 132, transB: true, batch: 2, pads: [4, 2, 0], aligned: false },
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
    // The small operand read in quads along s, masked element by element.
    { M: 130, N: R, K: 301, on: 'B', p: 0.5 },
    { M: 130, N: 13, K: 64, on: 'out', p: 0.3, beta: 1, alpha: 2 },
    { M: 3, N: 37, K: 301, on: 'out', p: 0.3, transB: true },
    { M: 37, N: 8, K: 17, on: 'out', p: 0.2, batch: 3 },
  ];
  for (const c of DROPS) {
    it(dropLabel(c), async () => {
      expect(await gemmDropoutError(ctx, c, (a) => gemmSkinny(ctx, a))).toBeLessThan(TOL);
    });
  }

  // The same masks on the aligned path, element by element of each quad: on the long operand (A for t = drop(x)·Aᵀ, B
  // for a small M), on the small operand read in quads along k and along s, and on the output (beta 0 and 1, a batch).
  // A on the small operand would add a pipeline and no code: opA4 masks as opB4 does, at smallAlongK's indices.
  const ALIGNED_DROPS: DropCase[] = [
    { M: BT, N: R, K: 132, on: 'A', p: 0.1, transB: true },
    { M: R, N: 257, K: 1028, on: 'B', p: 0.5, transA: true, transB: true, alpha: -1.5 },
    { M: 257, N: 16, K: 132, on: 'B', p: 0.3, transB: true },
    { M: BT, N: R, K: 1028, on: 'B', p: 0.1, beta: 1 },
    { M: BT, N: R, K: 132, on: 'out', p: 0.3, beta: 1, alpha: 2 },
    { M: BT, N: R, K: 64, on: 'out', p: 0.2, batch: 3 },
  ];
  for (const c of ALIGNED_DROPS) {
    it(`aligned, ${dropLabel(c)}`, async () => {
      const product = (a: GemmArgs): void => {
        expect(skinnyVariant(a, { aligned: true })).toMatchObject({ aligned: true, smallVec4: true });
        gemmSkinny(ctx, a, { aligned: true });
      };
      expect(await gemmDropoutError(ctx, c, product)).toBeLessThan(TOL);
    });
  }

  it('reads and writes operands that are slices at a nonzero offset (scalar, scalar with the small operand in quads, aligned)', async () => {
    await slices(301, { smallVec4: false }, scalar);
    await slices(301, {}, scalarQuads);
    await slices(300, { aligned: true }, quads);
  });
  const slices = async (K: number, force: SkinnyOptions, path: typeof quads): Promise<void> => {
    const [M, N] = [37, 8];
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
    const args: GemmArgs = { C: sC, A: sA, B: sB, M, N, K, alpha: 0.5, beta: 1 };
    expect(skinnyVariant(args, force)).toMatchObject(path);
    gemmSkinny(ctx, args, force);
    const got = await ctx.readF32(bufs[2]);
    const want = gemmRef(A, B, M, N, K).map((v, i) => 0.5 * v + C0[i]);
    expect(maxRelError(got.subarray(align / 4, align / 4 + M * N), want)).toBeLessThan(TOL);
    expect(got.subarray(0, align / 4).every((v) => v === -7)).toBe(true);
    expect(got.subarray(align / 4 + M * N).every((v) => v === -7)).toBe(true);
    for (const b of bufs) ctx.destroy(b);
  };

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

  it('takes sixteen k (aligned: four quads) at a time with the same bits as one at a time, and the small operand in quads with the same bits as a float at a time (both layouts, with and without a remainder, dropout)', async () => {
    // The products at odd lengths: lanes on K (kStep 32) and groups on K (kStep 8), loops of 0–7 steps of sixteen per
    // thread with 0–15 k left over; aligned (the small operand in quads along k), steps of four quads per thread with
    // 0–3 left over; the scalar path with the small operand read in quads along s, on both layouts.
    const cases: GemmArgs[] = [
      { M: 37, N: 8, K: 301, transB: true },
      { M: 130, N: 13, K: 1001 },
      { M: 8, N: 257, K: 1000, transA: true, beta: 1 },
      { M: 37, N: 8, K: 64, transA: true },
      { M: 3, N: 37, K: 17, transB: true, alpha: 2 },
      { M: 257, N: 8, K: 301, transB: true, dropout: loraGemmDropout({ p: 0.1, key: DROP_KEY }, 'A') },
      { M: 37, N: 8, K: 1028, transB: true },
      { M: 37, N: 8, K: 1284, alpha: 2, dropout: loraGemmDropout({ p: 0.1, key: DROP_KEY }, 'B') },
      { M: 130, N: 16, K: 1000, transA: true, beta: 1 },
      { M: 8, N: 130, K: 517, transA: true, dropout: loraGemmDropout({ p: 0.1, key: DROP_KEY }, 'A') },
    ].map((c) => ({ ...c, A: STUB, B: STUB, C: STUB }));
    expect(cases.map((a) => skinnyVariant(a).aligned)).toEqual([false, false, false, false, false, false, true, false, false, false]);
    // The small operand in quads along s: on the lanes-on-K layout (dt's) and on the lanes-along-the-long-side one
    // (dA's, dB's), dropout on it included.
    const smallQuads = cases.map((a) => skinnyVariant(a).smallVec4);
    expect(smallQuads).toEqual([false, false, true, true, false, false, true, true, true, true]);
    const bits = async (c: GpuContext, o: SkinnyOptions = {}): Promise<Uint32Array[]> => {
      const out: Uint32Array[] = [];
      for (const [n, a] of cases.entries()) {
        const [sA, sB] = [a.M * a.K, a.K * a.N];
        const bA = c.upload('A', randomArray(sA, 90 + n), 'scratch');
        const bB = c.upload('B', randomArray(sB, 95 + n), 'scratch');
        const bC = c.upload('C', randomArray(a.M * a.N, 99 + n), 'scratch');
        gemmSkinny(c, { ...a, A: bA, B: bB, C: bC }, o);
        out.push(new Uint32Array((await c.readF32(bC)).buffer));
        for (const b of [bA, bB, bC]) c.destroy(b);
      }
      return out;
    };
    const unrolled = await bits(ctx);
    // A float at a time from the small operand: the same bits.
    expect(await bits(ctx, { smallVec4: false })).toEqual(unrolled);
    const sources = shaderSources as Record<string, string>;
    const real = sources.matmul_skinny;
    // The same shader with its sixteen- and four-at-a-time loops never entered: the remainder loops take every k
    // (every quad), one at a time.
    const scalarOnly = real.replace('k + 15u * kStep < p.K', 'false');
    const oneAtATime = scalarOnly.replace('j + 3u * WARP < K4', 'false');
    expect(scalarOnly).not.toBe(real);
    expect(oneAtATime).not.toBe(scalarOnly);
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
    expect(skinnyVariant(nullArgs(2048, 8, 4096, { transB: true }))).toEqual({ smallM: false, lanesOnK: true, longPerGroup: 8, ...quads });
    expect(skinnyVariant(nullArgs(4096, 8, 2048, { transA: true }))).toEqual({ smallM: false, lanesOnK: false, longPerGroup: 32, ...scalarQuads });
    expect(skinnyVariant(nullArgs(8, 4096, 2048, { transA: true }))).toEqual({ smallM: true, lanesOnK: false, longPerGroup: 32, ...scalarQuads });
    expect(skinnyVariant(nullArgs(8, 4096, 2048, { transB: true }))).toEqual({ smallM: true, lanesOnK: true, longPerGroup: 8, ...quads });
  });

  it('reads the long operand in quads exactly when lanes run on K, K % 4 == 0, its binding and entries are 16-byte aligned and the small operand is stored along K', () => {
    const v = (M: number, N: number, K: number, extra: Partial<GemmArgs> = {}) => skinnyVariant(nullArgs(M, N, K, extra));
    // LoRA's products at Mistral-7B's shapes, 2048 tokens, r = 8 and 16. t = x·Aᵀ (K = the input width): aligned, its
    // small operand A [r, in] in quads along k. dt = dy·B with B [out, r] (K = the output width): lanes on K, but the
    // small operand is stored along r, so the scalar path, reading B's rows in quads.
    for (const r of [8, 16]) {
      for (const K of [4096, 14336]) {
        expect(v(2048, r, K, { transB: true }), `t r=${r} K=${K}`).toMatchObject({ lanesOnK: true, ...quads });
        expect(v(2048, r, K), `dt r=${r} K=${K}`).toMatchObject({ lanesOnK: true, ...scalarQuads });
      }
    }
    // dB = dyᵀ·t and dA = dtᵀ·x have their lanes along the long side: never aligned; their small operand (t [2048, r],
    // dt [2048, r]) in quads along r.
    expect(v(14336, 8, 2048, { transA: true, beta: 1 })).toMatchObject(scalarQuads);
    expect(v(8, 4096, 2048, { transA: true, beta: 1 })).toMatchObject(scalarQuads);
    // K % 4 != 0: quads would straddle rows.
    for (const K of [4097, 4098, 4099]) {
      expect(v(2048, 8, K, { transB: true }).aligned, `K=${K}`).toBe(false);
      expect(v(8, 2048, K, { transB: true }).aligned, `small M, K=${K}`).toBe(false);
    }
    // Rank 3: quads of the small operand along k (Bᵀ) but not along a 3-wide row (B [out, 3]), on either path.
    expect(v(2048, 3, 4096, { transB: true })).toMatchObject({ aligned: true, smallVec4: true });
    expect(v(2048, 3, 4096)).toMatchObject(scalar);
    expect(skinnyVariant(nullArgs(2048, 3, 4096), { aligned: true })).toMatchObject({ aligned: true, smallVec4: false });
    expect(v(3, 2048, 4096, { transA: true, transB: true })).toMatchObject({ smallM: true, ...scalar });
    expect(v(4, 2048, 4096, { transA: true, transB: true })).toMatchObject({ smallM: true, ...scalarQuads });
    expect(skinnyVariant(nullArgs(4, 2048, 4096, { transA: true, transB: true }), { aligned: true })).toMatchObject({ smallM: true, ...quads });
    // The small operand stored along K never comes in quads on the scalar path (a row k is not contiguous there).
    expect(v(2048, 8, 4098, { transB: true })).toMatchObject(scalar);
    expect(v(8, 2048, 4096, { transA: false, transB: false })).toMatchObject({ smallM: true, lanesOnK: false, ...scalar });
    // ... nor one off 16 bytes, nor its batch entries: rows along s of S % 4 == 0 floats start on 16 bytes only then.
    expect(v(2048, 8, 4096, { B: { buffer: null!, offset: 4, size: 2 ** 30 } })).toMatchObject(scalar);
    expect(v(8, 4096, 2048, { transA: true, batch: 2, strideA: 8 * 2048 + 2, strideB: 4096 * 2048 })).toMatchObject(scalar);
    expect(v(8, 4096, 2048, { transA: true, batch: 2, strideA: 8 * 2048 + 4, strideB: 4096 * 2048 })).toMatchObject(scalarQuads);
    // An empty small side reads none of it.
    expect(v(0, 4096, 2048, { transA: true })).toMatchObject({ smallM: true, ...scalar });
    // Forced off (tests): one float at a time.
    expect(skinnyVariant(nullArgs(8, 4096, 2048, { transA: true }), { smallVec4: false })).toMatchObject(scalar);
    // Batch strides count only with more than one entry; the long operand's decides, the small one's only its quads.
    const [sA, sB] = [2048 * 4096, 8 * 4096];
    expect(v(2048, 8, 4096, { transB: true, strideA: 3 }).aligned).toBe(true);
    expect(v(2048, 8, 4096, { transB: true, batch: 2, strideA: sA + 4, strideB: sB }).aligned).toBe(true);
    expect(v(2048, 8, 4096, { transB: true, batch: 2, strideA: sA + 2, strideB: sB }).aligned).toBe(false);
    expect(v(2048, 8, 4096, { transB: true, batch: 2, strideA: sA, strideB: sB + 1 })).toMatchObject({ aligned: true, smallVec4: false });
    expect(v(8, 2048, 4096, { transB: true, batch: 2, strideA: sB, strideB: sA + 1 }).aligned).toBe(false);
    // The binding: a slice must start on 16 bytes and hold at least one vec4.
    const at = (offset: number, size = 2 ** 30): TensorSlice => ({ buffer: null!, offset, size });
    expect(v(2048, 8, 4096, { transB: true, A: at(256) }).aligned).toBe(true);
    expect(v(2048, 8, 4096, { transB: true, A: at(4) }).aligned).toBe(false);
    expect(v(2048, 8, 4096, { transB: true, A: at(8) }).aligned).toBe(false);
    expect(v(2048, 8, 4096, { transB: true, B: at(4) })).toMatchObject({ aligned: true, smallVec4: false });
    expect(v(37, 8, 0, { transB: true, A: at(0, 4) }).aligned).toBe(false);
    expect(v(37, 8, 0, { transB: true, A: at(0, 16) }).aligned).toBe(true);
    // Forcing: the scalar path anywhere; the aligned one only where it can run.
    expect(skinnyVariant(nullArgs(2048, 8, 4096, { transB: true }), { aligned: false })).toMatchObject(scalar);
    expect(skinnyVariant(nullArgs(2048, 8, 4096, { transB: true }), { aligned: true })).toMatchObject(quads);
    expect(() => skinnyVariant(nullArgs(2048, 8, 4098, { transB: true }), { aligned: true })).toThrow(/16-byte quads/);
    expect(() => skinnyVariant(nullArgs(4096, 8, 2048, { transA: true }), { aligned: true })).toThrow(/16-byte quads/);
  });

  it('refuses what it does not cover: a small side over 16, non-f32 B, u32 overflow, an oversized grid, bad dropout', () => {
    const b = ctx.createBuffer('b', 64, 'scratch');
    const args = (M: number, N: number, K: number, extra: Partial<GemmArgs> = {}): GemmArgs => ({ C: b, A: b, B: b, M, N, K, ...extra });
    expect(() => gemmSkinny(ctx, args(17, 17, 64))).toThrow(/min\(M, N\) ≤ 16/);
    expect(() => gemmSkinny(ctx, args(64, 8, 64, { bStorage: 'bf16' }))).toThrow(/f32 B/);
    expect(() => gemmSkinny(ctx, args(2 ** 20, 8, 2 ** 12))).toThrow(/2³²/);
    expect(() => gemmSkinny(ctx, args(8, 8, 8, { batch: 2, strideA: 2 ** 32, strideC: 64 }))).toThrow(/2³²/);
    const maxWg = ctx.device.limits.maxComputeWorkgroupsPerDimension;
    expect(() => gemmSkinny(ctx, args(8 * maxWg + 1, 8, 1))).toThrow(/workgroups/);
    expect(() => gemmSkinny(ctx, args(64, 8, 64, { batch: maxWg + 1, strideC: 512 }))).toThrow(/workgroups/);
    const dropout = (on: 'A' | 'B' | 'out') => loraGemmDropout({ p: 0.1, key: DROP_KEY }, on);
    expect(() => gemmSkinny(ctx, args(64, 8, 64, { beta: 0.5, dropout: dropout('out') }))).toThrow(/beta/);
    ctx.destroy(b);
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
