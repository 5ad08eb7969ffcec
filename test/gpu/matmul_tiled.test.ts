// The register-tiled GEMM (shaders/matmul_tiled.wgsl) against float64, variant by variant: both blocks, every
// transpose, edge tests on and off, 128-bit and scalar access, bf16 and f16 B, accumulation, batches, sizes compiled in.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { bf16ArrayToF32, f16ArrayToF32, f32ToF16Bits } from '../../src/core/dtypes.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { gemm, matmul_backward, matmul_forward } from '../../src/engine/kernels/matmul.ts';
import { gemmTiled, tiledVariant, type TiledBlock, type TiledOptions, type TiledVariant } from '../../src/engine/kernels/matmul_tiled.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { gemmRef } from '../../src/engine/reference/matmul.ts';
import { gpuContext } from './context.ts';
import { dropLabel, gemmDropoutError, type DropCase } from './gemm-dropout.ts';
import { TRANSPOSES } from './tiled-products.ts';

const TOL = 1e-5; // as the basic kernel's test (docs/testing.md)
const BLOCKS: TiledBlock[] = ['wide', 'narrow'];

interface Case {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** B stored as 16-bit values, two per u32. */
  half?: 'bf16' | 'f16';
  alpha?: number;
  beta?: number;
  batch?: number;
  /** Batch strides; default: the matrices packed back to back. */
  pad?: number;
  options?: TiledOptions;
}

const label = (c: Case): string =>
  `M=${c.M} N=${c.N} K=${c.K}${c.transA ? ' Aᵀ' : ''}${c.transB ? ' Bᵀ' : ''}${c.half ? ` ${c.half}` : ''}${c.batch ? ` batch ${c.batch}` : ''}`;

/** Random bf16 values (truncated f32 bits) as the kernel reads them (packed two per u32) and as float values. */
function bf16Operand(n: number, seed: number): { packed: Uint16Array; values: Float32Array } {
  const u = new Uint32Array(randomArray(n, seed).buffer);
  const packed = new Uint16Array(n);
  for (let i = 0; i < n; i++) packed[i] = u[i] >>> 16;
  return { packed, values: bf16ArrayToF32(packed) };
}

/**
 * Random values rounded to f16 as the kernel reads them and as float values: every 5th scaled into f16's subnormal
 * range (which the decoder must not flush), every 11th a large normal.
 */
function f16Operand(n: number, seed: number): { packed: Uint16Array; values: Float32Array } {
  const x = randomArray(n, seed);
  const packed = Uint16Array.from(x, (v, i) => f32ToF16Bits(i % 5 === 0 ? v * 2 ** -16 : i % 11 === 0 ? v * 3e4 : v));
  return { packed, values: f16ArrayToF32(packed) };
}

const halfOperand = (kind: 'bf16' | 'f16', n: number, seed: number): { packed: Uint16Array; values: Float32Array } =>
  kind === 'bf16' ? bf16Operand(n, seed) : f16Operand(n, seed);

/** Runs one product on the tiled kernel and returns its error against float64 and the variant it ran. */
async function run(ctx: GpuContext, c: Case): Promise<{ err: number; variant: TiledVariant }> {
  const { M, N, K } = c;
  const batch = c.batch ?? 1;
  const pad = c.pad ?? 0;
  const [sA, sB, sC] = [M * K + pad, K * N + pad, M * N + pad];
  const seed = M * 7 + N * 11 + K * 13;
  const A = randomArray(sA * batch, seed);
  const Bf = c.half ? halfOperand(c.half, sB * batch, seed + 1) : { packed: null, values: randomArray(sB * batch, seed + 1) };
  const alpha = c.alpha ?? 1;
  const beta = c.beta ?? 0;
  // With beta = 0 the kernel must not read C: NaN there would show.
  const C0 = beta === 0 ? new Float32Array(sC * batch).fill(NaN) : randomArray(sC * batch, seed + 2);
  const bA = ctx.upload('A', A, 'scratch');
  const bB = ctx.upload('B', Bf.packed ?? Bf.values, 'scratch');
  const bC = ctx.upload('C', C0, 'scratch');
  const args = {
    C: bC, A: bA, B: bB, M, N, K, transA: c.transA, transB: c.transB, alpha, beta,
    batch, strideA: sA, strideB: sB, strideC: sC, bStorage: c.half ?? ('f32' as const),
  };
  const variant = tiledVariant(args, c.options);
  gemmTiled(ctx, args, c.options);
  const got = await ctx.readF32(bC);
  let err = 0;
  for (let b = 0; b < batch; b++) {
    const ref = gemmRef(A.subarray(b * sA), Bf.values.subarray(b * sB), M, N, K, c.transA, c.transB);
    const want = ref.map((v, i) => alpha * v + (beta === 0 ? 0 : beta * C0[b * sC + i]));
    err = Math.max(err, maxRelError(got.subarray(b * sC, b * sC + M * N), want));
    // Padding between batch entries is never written.
    if (pad > 0 && beta === 0) expect(got.subarray(b * sC + M * N, (b + 1) * sC).every(Number.isNaN)).toBe(true);
  }
  for (const buf of [bA, bB, bC]) ctx.destroy(buf);
  return { err, variant };
}

describe('register-tiled matmul against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('chooses variants from the shape', () => {
    const v = (M: number, N: number, K: number, extra: Partial<Parameters<typeof tiledVariant>[0]> = {}, o?: TiledOptions) =>
      tiledVariant({ A: null!, B: null!, C: null!, M, N, K, ...extra }, o);
    // Mistral at 2048 tokens: q/o/up/down projections fill the GPU with 128×128 blocks; k/v (N = 1024) get 128×64.
    expect(v(2048, 4096, 4096)).toEqual({ block: 'wide', check: false, kStep: 16, aligned: true, fixedShape: false });
    expect(v(2048, 14336, 4096).block).toBe('wide');
    expect(v(2048, 1024, 4096)).toMatchObject({ block: 'narrow', check: false });
    // LoRA's rank-8 side, and a ragged token count.
    expect(v(2048, 8, 4096)).toMatchObject({ block: 'narrow', check: true, aligned: true });
    expect(v(2000, 4096, 4096)).toMatchObject({ block: 'wide', check: true, aligned: true });
    // Alignment looks at the contiguous dimension of each operand and, for batches, at the strides.
    expect(v(130, 8, 8).aligned).toBe(true);
    expect(v(130, 8, 8, { transA: true }).aligned).toBe(false);
    expect(v(8, 8, 130, { transB: true }).aligned).toBe(false);
    expect(v(8, 8, 8, { batch: 2, strideA: 66, strideB: 64, strideC: 64 }).aligned).toBe(false);
    expect(v(8, 8, 8, { batch: 1, strideA: 66 }).aligned).toBe(true);
    // Forcing: edge tests and scalar access may always be added, never removed where needed.
    expect(v(128, 128, 16, {}, { check: true, aligned: false })).toMatchObject({ check: true, aligned: false });
    expect(() => v(129, 128, 16, {}, { check: false })).toThrow(/edge tests/);
    expect(() => v(128, 128, 16, {}, { block: 'wide', check: false })).not.toThrow();
    expect(() => v(128, 64, 16, {}, { block: 'wide', check: false })).toThrow(/edge tests/);
    expect(() => v(3, 8, 8, { transA: true }, { aligned: true })).toThrow(/multiple of 4/);
  });

  // Nothing here divides the 128×{128,64}×16 tile: edge tests on, mostly scalar access; one row (T = 1); long K.
  const ODD: [number, number, number][] = [
    [1, 1, 1],
    [3, 17, 5],
    [1, 129, 1031],
    [17, 3, 1031],
    [129, 257, 17],
    [257, 65, 3],
    [132, 68, 36], // every dimension a multiple of 4: 128-bit access with edge tests
  ];
  for (const block of BLOCKS) {
    for (const [M, N, K] of ODD) {
      it(`${block} block, odd shape M=${M} N=${N} K=${K}, every transpose`, async () => {
        for (const [transA, transB] of TRANSPOSES) {
          const c: Case = { M, N, K, transA, transB, options: { block } };
          const { err, variant } = await run(ctx, c);
          expect(variant.check, label(c)).toBe(true);
          expect(err, label(c)).toBeLessThan(TOL);
        }
      });
    }
  }

  // Shapes that divide the block: the edge tests compiled out (the default), and in again (forced), same result.
  const EXACT: [TiledBlock, number, number, number][] = [
    ['wide', 128, 128, 32],
    ['wide', 256, 128, 48],
    ['narrow', 128, 64, 16],
    ['narrow', 128, 192, 64],
  ];
  for (const [block, M, N, K] of EXACT) {
    it(`${block} block, divisible shape M=${M} N=${N} K=${K}: without and with edge tests, every transpose`, async () => {
      for (const [transA, transB] of TRANSPOSES) {
        for (const check of [undefined, true]) {
          const c: Case = { M, N, K, transA, transB, options: { block, check } };
          const { err, variant } = await run(ctx, c);
          expect(variant, label(c)).toMatchObject({ block, check: check ?? false, aligned: true });
          expect(err, `${label(c)} check=${check}`).toBeLessThan(TOL);
        }
      }
    });
  }

  it('scalar access on an aligned shape gives the same products (both blocks, every transpose)', async () => {
    for (const block of BLOCKS) {
      for (const [transA, transB] of TRANSPOSES) {
        const c: Case = { M: 128, N: 128, K: 32, transA, transB, options: { block, aligned: false } };
        const { err, variant } = await run(ctx, c);
        expect(variant).toMatchObject({ aligned: false, check: false });
        expect(err, `${block} ${label(c)}`).toBeLessThan(TOL);
      }
    }
  });

  it('accumulates with beta and scales with alpha (aligned and scalar, checked and not)', async () => {
    const shapes: [number, number, number][] = [
      [19, 23, 41],
      [132, 68, 36],
      [128, 128, 16],
    ];
    for (const [M, N, K] of shapes) {
      for (const [transA, transB] of TRANSPOSES) {
        const c: Case = { M, N, K, transA, transB, alpha: 2, beta: 1 };
        expect((await run(ctx, c)).err, label(c)).toBeLessThan(TOL);
      }
      const c: Case = { M, N, K, alpha: -0.5, beta: 0.25 };
      expect((await run(ctx, c)).err, label(c)).toBeLessThan(TOL);
    }
  });

  it('reads bf16- and f16-packed B exactly as their float values (vec2<u32> and scalar reads, both blocks)', async () => {
    const shapes: [number, number, number][] = [
      [33, 17, 45], // scalar
      [33, 72, 40], // aligned, checked
      [128, 128, 32], // aligned, no edge tests
    ];
    // Every read of B (block × path × transpose) on one 16-bit kind, the kinds alternating: each kind is read on each
    // path and transpose (on one block or the other) and on both blocks. The kinds differ only in halfToF32
    // (shaders/half.wgsl), which every read calls alike; each combination is a pipeline to compile (slow on
    // SwiftShader), and the full cross product was twice these.
    const seen = new Set<string>();
    for (const [b, block] of BLOCKS.entries()) {
      for (const [s, [M, N, K]] of shapes.entries()) {
        for (const transB of [false, true]) {
          const half = (['bf16', 'f16'] as const)[(b + s + Number(transB)) % 2];
          const c: Case = { M, N, K, transB, half, options: { block } };
          const { err, variant } = await run(ctx, c);
          expect(err, `${block} ${label(c)}`).toBeLessThan(TOL);
          for (const key of [`${half} ${variant.aligned} ${variant.check} ${transB}`, `${half} ${block}`]) seen.add(key);
        }
      }
    }
    // Each kind on the scalar, aligned-with-edge-tests and aligned reads, both transposes, and both blocks.
    expect(seen.size).toBe(2 * 3 * 2 + 2 * 2);
    // The lm_head's product: logits = h · Wᵀ with W 16-bit, accumulating.
    for (const half of ['bf16', 'f16'] as const) {
      const c: Case = { M: 5, N: 300, K: 64, transB: true, half, beta: 1 };
      expect((await run(ctx, c)).err, label(c)).toBeLessThan(TOL);
    }
  });

  it('runs batched products with strides (packed, padded, odd)', async () => {
    for (const [transA, transB] of TRANSPOSES) {
      for (const c of [
        { M: 9, N: 13, K: 21, batch: 3 },
        { M: 20, N: 24, K: 28, batch: 2, pad: 4 }, // aligned strides
        { M: 20, N: 24, K: 28, batch: 2, pad: 3 }, // odd strides: scalar access
        { M: 128, N: 128, K: 16, batch: 2, pad: 8 }, // no edge tests
      ] as Case[]) {
        const cc: Case = { ...c, transA, transB };
        expect((await run(ctx, cc)).err, label(cc)).toBeLessThan(TOL);
      }
    }
    for (const half of ['bf16', 'f16'] as const) {
      const c: Case = { M: 20, N: 24, K: 28, batch: 2, pad: 4, half, transB: true };
      expect((await run(ctx, c)).err, label(c)).toBeLessThan(TOL);
    }
  });

  it('compiles sizes into the pipeline on request (checked and not)', async () => {
    for (const [M, N, K, transA, transB] of [
      [129, 257, 17, false, true],
      [132, 68, 36, true, false],
      [128, 128, 32, false, false],
      [256, 64, 48, true, true],
    ] as [number, number, number, boolean, boolean][]) {
      const c: Case = { M, N, K, transA, transB, options: { fixedShape: true } };
      const { err, variant } = await run(ctx, c);
      expect(variant.fixedShape).toBe(true);
      expect(err, label(c)).toBeLessThan(TOL);
    }
  });

  // The LoRA dropout variants (GemmDropout): the vec4 loaders mask per component, the aligned and scalar epilogues.
  for (const on of ['A', 'B', 'out'] as const) {
    it(`dropout on ${on === 'out' ? 'the output' : `operand ${on}`} vs float64 with the CPU mask: both blocks, aligned and scalar, checked and not`, async () => {
      // Every transpose on a scalar checked shape and an aligned unchecked one; LoRA's own transposes (t: Bᵀ; dA: Aᵀ;
      // dx: none) on the others (each variant is a pipeline to compile, slow on SwiftShader).
      const lora: [boolean, boolean] = on === 'A' ? [false, true] : on === 'B' ? [true, false] : [false, false];
      const cases: [number, number, number, TiledOptions, readonly [boolean, boolean][]][] = [
        [37, 8, 200, {}, TRANSPOSES], // LoRA's t = drop(x)·Aᵀ shape (scalar, checked)
        [128, 128, 32, { block: 'wide' }, TRANSPOSES], // no edge tests, aligned
        [8, 200, 37, {}, [lora]],
        [130, 64, 4, {}, [lora]], // aligned, checked
        [1, 65, 17, { block: 'wide' }, [lora]],
        [128, 64, 16, { block: 'narrow', aligned: false }, [lora]], // no edge tests, scalar
      ];
      for (const [M, N, K, options, transposes] of cases) {
        for (const [transA, transB] of transposes) {
          for (const p of [0.1, 0.5]) {
            const c: DropCase = { M, N, K, on, p, transA, transB, beta: on === 'out' ? 1 : 0 };
            expect(await gemmDropoutError(ctx, c, (a) => gemmTiled(ctx, a, options)), `${dropLabel(c)} ${JSON.stringify(options)}`).toBeLessThan(TOL);
          }
        }
      }
      for (const c of [
        { M: 19, N: 23, K: 41, on, p: 0.3, alpha: -1.5 },
        { M: 20, N: 24, K: 28, on, p: 0.3, alpha: 2, beta: 1 },
        { M: 20, N: 24, K: 28, on, p: 0.2, batch: 2 },
      ] as DropCase[]) {
        expect(await gemmDropoutError(ctx, c, (a) => gemmTiled(ctx, a)), dropLabel(c)).toBeLessThan(TOL);
      }
    });
  }

  it('gives products zero K and zero rows their meaning', async () => {
    // K = 0: C = beta · C (here 0); M = 0: nothing to do.
    const bA = ctx.createBuffer('A', 16, 'scratch');
    const bB = ctx.createBuffer('B', 16, 'scratch');
    const bC = ctx.upload('C', new Float32Array(6).fill(3), 'scratch');
    gemmTiled(ctx, { C: bC, A: bA, B: bB, M: 2, N: 3, K: 0 });
    expect([...(await ctx.readF32(bC))]).toEqual([0, 0, 0, 0, 0, 0]);
    gemmTiled(ctx, { C: bC, A: bA, B: bB, M: 0, N: 3, K: 4 });
    for (const b of [bA, bB, bC]) ctx.destroy(b);
  });

  it('is what gemm and matmul_forward/backward run when the context asks for it', async () => {
    const before = ctx.gemmKernel;
    const spy = vi.spyOn(ctx, 'dispatch');
    try {
      for (const kernel of ['tiled', 'tiled-fixed'] as const) {
        ctx.gemmKernel = kernel;
        const [M, N, K] = [37, 70, 45];
        const X = randomArray(M * K, 1);
        const W = randomArray(N * K, 2);
        const dY = randomArray(M * N, 3);
        const [bX, bW, bdY] = [ctx.upload('X', X, 'scratch'), ctx.upload('W', W, 'scratch'), ctx.upload('dY', dY, 'scratch')];
        const [bY, bdX, bdW] = [ctx.createBuffer('Y', M * N * 4, 'scratch'), ctx.createBuffer('dX', M * K * 4, 'scratch'), ctx.createBuffer('dW', N * K * 4, 'scratch')];
        matmul_forward(ctx, bY, bX, bW, M, N, K);
        matmul_backward(ctx, bdX, bdW, bdY, bX, bW, M, N, K);
        expect(maxRelError(await ctx.readF32(bY), gemmRef(X, W, M, N, K, false, true))).toBeLessThan(TOL);
        expect(maxRelError(await ctx.readF32(bdX), gemmRef(dY, W, M, K, N))).toBeLessThan(TOL);
        expect(maxRelError(await ctx.readF32(bdW), gemmRef(dY, X, N, K, M, true))).toBeLessThan(TOL);
        for (const b of [bX, bW, bdY, bY, bdX, bdW]) ctx.destroy(b);
      }
      const specs = spy.mock.calls.map(([spec]) => spec);
      expect(specs.map((s) => s.shader)).toEqual(Array(6).fill('matmul_tiled'));
      expect(specs.map((s) => s.constants?.FIXED_M)).toEqual([undefined, undefined, undefined, 37, 37, 70]);
    } finally {
      ctx.gemmKernel = before;
      spy.mockRestore();
    }
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
