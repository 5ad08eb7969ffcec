import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { GemmKernel, GpuContext, LoraKernel } from '../../src/engine/gpu.ts';
import {
  dropoutHash,
  dropoutKeyState,
  lora_backward,
  lora_dropout,
  lora_forward,
  lora_intermediate,
  loraModuleId,
  loraScratchBytes,
  type DropoutKey,
  type LoraDropout,
} from '../../src/engine/kernels/lora.ts';
import type { GemmArgs } from '../../src/engine/kernels/gemm_args.ts';
import { gemm } from '../../src/engine/kernels/matmul.ts';
import { gemmSkinny, skinnyFits } from '../../src/engine/kernels/matmul_skinny.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { dropoutMaskRef, dropoutRef, loraBackwardRef, loraForwardRef, murmur3x86_32 } from '../../src/engine/reference/lora.ts';
import { gpuContext } from './context.ts';

const TOL = 1e-5;
const KEY: DropoutKey = { seed: 42, step: 7, layer: 3, module: loraModuleId('v_proj') };

describe('LoRA dropout (counter-based RNG) and LoRA forward/backward', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  async function dropOnGpu(x: Float32Array, p: number, key: DropoutKey): Promise<Float32Array> {
    const bx = ctx.upload('x', x, 'scratch');
    const bo = ctx.createBuffer('out', x.length * 4, 'scratch');
    lora_dropout(ctx, bo, bx, x.length, p, key);
    const out = await ctx.readF32(bo);
    ctx.destroy(bx);
    ctx.destroy(bo);
    return out;
  }

  it('the reference hash is MurmurHash3_x86_32 (published test vectors), and the word-wise copy agrees with it', () => {
    const enc = new TextEncoder();
    expect(murmur3x86_32(enc.encode(''))).toBe(0);
    expect(murmur3x86_32(enc.encode(''), 1)).toBe(0x514e28b7);
    expect(murmur3x86_32(enc.encode('The quick brown fox jumps over the lazy dog'))).toBe(0x2e4ff723);
    expect(murmur3x86_32(enc.encode('Hello, world!'), 1234)).toBe(0xfaf6cdb3);
    const state = dropoutKeyState(KEY);
    for (const i of [0, 1, 2, 1000, 2 ** 31 + 5, 0xffffffff]) {
      const bytes = new Uint8Array(new Uint32Array([KEY.seed, KEY.step, KEY.layer, KEY.module, i]).buffer);
      expect(dropoutHash(state, i)).toBe(murmur3x86_32(bytes));
    }
  });

  it('the GPU mask is bit-exact with the CPU reference, identical across calls, and differs across keys', async () => {
    const n = 3 * 256 + 11;
    const x = randomArray(n, 1);
    const p = 0.3;
    const a = await dropOnGpu(x, p, KEY);
    const b = await dropOnGpu(x, p, { ...KEY });
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).toEqual(Array.from(dropoutRef(x, p, KEY)));
    const keepOf = (v: Float32Array): string => Array.from(v, (e) => (e === 0 ? '0' : '1')).join('');
    const base = keepOf(a);
    for (const other of [
      { ...KEY, seed: 43 },
      { ...KEY, step: 8 },
      { ...KEY, layer: 4 },
      { ...KEY, module: loraModuleId('q_proj') },
    ]) {
      const c = await dropOnGpu(x, p, other);
      expect(Array.from(c)).toEqual(Array.from(dropoutRef(x, p, other)));
      expect(keepOf(c)).not.toBe(base);
    }
  });

  for (const p of [0.05, 0.5]) {
    it(`keeps a fraction 1 − p of elements, independently of their neighbours (p = ${p})`, async () => {
      const n = 1 << 18;
      const out = await dropOnGpu(new Float32Array(n).fill(1), p, { seed: 1, step: 2, layer: 0, module: 0 });
      let kept = 0;
      let pairs = 0;
      let wrongValue = 0;
      const scaled = Math.fround(1 / (1 - p));
      for (let i = 0; i < n; i++) {
        if (out[i] !== 0) {
          kept++;
          if (out[i] !== scaled) wrongValue++;
          if (i + 1 < n && out[i + 1] !== 0) pairs++;
        }
      }
      expect(wrongValue).toBe(0);
      const q = 1 - p;
      const sigma = Math.sqrt((p * q) / n);
      expect(Math.abs(kept / n - q)).toBeLessThan(5 * sigma);
      const sigma2 = Math.sqrt((q * q * (1 - q * q)) / n);
      expect(Math.abs(pairs / (n - 1) - q * q)).toBeLessThan(6 * sigma2);
    });
  }

  it('p = 0 is an exact copy (also in place), p = 1 drops everything, accumulate adds', async () => {
    const n = 777;
    const x = randomArray(n, 3, 1e3);
    x[5] = -0;
    x[6] = 1e-40; // a subnormal: p = 0 must keep even this bit for bit
    x[7] = Number.NaN;
    const same = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
    expect(same(await dropOnGpu(x, 0, KEY), x)).toBe(true);
    const bx = ctx.upload('x', x, 'scratch');
    lora_dropout(ctx, bx, bx, n, 0, KEY);
    expect(same(await ctx.readF32(bx), x)).toBe(true);
    // (GPUs may flush subnormals in arithmetic, and NaN dropped is 0 here: compare p > 0 on ordinary values.)
    x[6] = 0.5;
    x[7] = 0.25;
    ctx.write(bx, x);
    lora_dropout(ctx, bx, bx, n, 0.25, KEY);
    expect(Array.from(await ctx.readF32(bx))).toEqual(Array.from(dropoutRef(x, 0.25, KEY)));
    expect((await dropOnGpu(x, 1, KEY)).every((v) => v === 0)).toBe(true);
    const prior = randomArray(n, 4);
    const bo = ctx.upload('out', prior, 'scratch');
    const bx2 = ctx.upload('x2', x, 'scratch');
    lora_dropout(ctx, bo, bx2, n, 0.25, KEY, { accumulate: true });
    const want = dropoutRef(x, 0.25, KEY).map((v, i) => v + prior[i]);
    expect(Array.from(await ctx.readF32(bo))).toEqual(Array.from(want));
    expect(() => lora_dropout(ctx, bo, bo, n, 0.25, KEY, { accumulate: true })).toThrow(/differ/);
    for (const b of [bx, bo, bx2]) ctx.destroy(b);
  });

  /** The shaders `f` dispatches, in order. */
  function shadersOf(f: () => void): string[] {
    const spy = vi.spyOn(ctx, 'dispatch');
    try {
      f();
      return spy.mock.calls.map((c) => c[0].shader);
    } finally {
      spy.mockRestore();
    }
  }

  // [BT, inF, outF, r, LoRA-product kernel]: odd shapes, the tiny model's gate_proj (128 → 448, r 4), and a shape
  // whose four rank-r products all have reductions long enough for the skinny kernel, on each kernel.
  for (const [BT, inF, outF, r, lora] of [
    [13, 37, 29, 3, 'general'],
    [24, 128, 448, 4, 'general'],
    [70, 96, 80, 5, 'general'],
    [70, 96, 80, 5, 'skinny'],
  ] as const satisfies readonly (readonly [number, number, number, number, LoraKernel])[]) {
    for (const p of [0, 0.2]) {
      it(`forward and backward vs float64 at BT=${BT} in=${inF} out=${outF} r=${r}, dropout ${p}, ${lora} rank-r products`, async () => {
        ctx.loraKernel = lora;
        const scale = 8 / r;
        const x = randomArray(BT * inF, 11 + BT);
        const A = randomArray(r * inF, 12 + r, 1 / Math.sqrt(inF));
        const B = randomArray(outF * r, 13 + outF, 0.1);
        const y0 = randomArray(BT * outF, 14);
        const dy = randomArray(BT * outF, 15);
        const dx0 = randomArray(BT * inF, 16);
        const dA0 = randomArray(r * inF, 17, 0.01);
        const dB0 = randomArray(outF * r, 18, 0.01);
        const dropout: LoraDropout | null = p > 0 ? { p, key: KEY } : null;
        const sizes = loraScratchBytes(BT, r);
        const bufs = {
          x: ctx.upload('x', x, 'scratch'),
          A: ctx.upload('A', A, 'lora'),
          B: ctx.upload('B', B, 'lora'),
          y: ctx.upload('y', y0, 'scratch'),
          t: ctx.createBuffer('t', BT * r * 4, 'scratch'),
          dy: ctx.upload('dy', dy, 'scratch'),
          dx: ctx.upload('dx', dx0, 'scratch'),
          dA: ctx.upload('dA', dA0, 'scratch'),
          dB: ctx.upload('dB', dB0, 'scratch'),
          dt: ctx.createBuffer('scratch dt', sizes.dt, 'scratch'),
        };
        const scratch = { dt: bufs.dt };
        const shaders = shadersOf(() => {
          lora_forward(ctx, bufs.y, bufs.t, bufs.x, bufs.A, bufs.B, BT, inF, outF, r, scale, dropout);
          lora_backward(ctx, bufs.dx, bufs.dA, bufs.dB, bufs.dy, bufs.x, bufs.t, bufs.A, bufs.B, BT, inF, outF, r, scale, dropout, scratch);
        });
        ctx.loraKernel = 'general';
        // t, dB, dt and dA on the skinny kernel when chosen (y and dx, K = r, never): a test of the routing too.
        expect(shaders.filter((n) => n === 'matmul_skinny')).toHaveLength(lora === 'skinny' ? 4 : 0);
        const xd = p > 0 ? dropoutRef(x, p, KEY) : x;
        const keep = p > 0 ? dropoutMaskRef(BT * inF, p, KEY) : null;
        const fwd = loraForwardRef(y0, xd, A, B, BT, inF, outF, r, scale);
        const bwd = loraBackwardRef(dy, xd, fwd.t, A, B, BT, inF, outF, r, scale, keep, 1 / (1 - p));
        expect(maxRelError(await ctx.readF32(bufs.t), fwd.t)).toBeLessThan(TOL);
        // y, dx, dA, dB are checked on their increments so the priors cannot hide an error.
        const inc = (got: Float32Array, prior: Float32Array): Float64Array => Float64Array.from(got, (v, i) => v - prior[i]);
        const yRef = fwd.y.map((v, i) => v - y0[i]);
        expect(maxRelError(inc(await ctx.readF32(bufs.y), y0), yRef)).toBeLessThan(1e-4);
        expect(maxRelError(await ctx.readF32(bufs.y), fwd.y)).toBeLessThan(TOL);
        expect(maxRelError(inc(await ctx.readF32(bufs.dA), dA0), bwd.dA)).toBeLessThan(1e-4);
        expect(maxRelError(inc(await ctx.readF32(bufs.dB), dB0), bwd.dB)).toBeLessThan(1e-4);
        expect(maxRelError(inc(await ctx.readF32(bufs.dx), dx0), bwd.dx)).toBeLessThan(1e-4);
        expect(maxRelError(await ctx.readF32(bufs.dA), bwd.dA.map((v, i) => v + dA0[i]))).toBeLessThan(TOL);
        expect(maxRelError(await ctx.readF32(bufs.dB), bwd.dB.map((v, i) => v + dB0[i]))).toBeLessThan(TOL);
        expect(maxRelError(await ctx.readF32(bufs.dx), bwd.dx.map((v, i) => v + dx0[i]))).toBeLessThan(TOL);
        if (p > 0) {
          // dx carries the mask: dropped inputs get exactly the prior back.
          const dx = await ctx.readF32(bufs.dx);
          for (let i = 0; i < keep!.length; i++) if (!keep![i]) expect(dx[i]).toBe(dx0[i]);
        }
        for (const b of Object.values(bufs)) ctx.destroy(b);
      });
    }
  }

  it('dx may be skipped (also with dropout), and the backward without scratch.dt is refused', async () => {
    const [BT, inF, outF, r] = [5, 9, 7, 2];
    const mk = (n: number, s: number): GPUBuffer => ctx.upload(`b${s}`, randomArray(n, s), 'scratch');
    const x = mk(BT * inF, 1);
    const A = mk(r * inF, 2);
    const B = mk(outF * r, 3);
    const y = mk(BT * outF, 4);
    const t = mk(BT * r, 5);
    const dy = mk(BT * outF, 6);
    const dA = ctx.upload('dA', new Float32Array(r * inF), 'scratch');
    const dB = ctx.upload('dB', new Float32Array(outF * r), 'scratch');
    const dt = ctx.createBuffer('dt', BT * r * 4, 'scratch');
    expect(() => lora_backward(ctx, null, dA, dB, dy, x, t, A, B, BT, inF, outF, r, 2, null, { dt: null })).toThrow(/scratch\.dt/);
    lora_backward(ctx, null, dA, dB, dy, x, t, A, B, BT, inF, outF, r, 2, null, { dt });
    const xs = await ctx.readF32(x);
    const ref = loraBackwardRef(await ctx.readF32(dy), xs, await ctx.readF32(t), await ctx.readF32(A), await ctx.readF32(B), BT, inF, outF, r, 2, null, 1);
    expect(maxRelError(await ctx.readF32(dA), ref.dA)).toBeLessThan(TOL);
    expect(maxRelError(await ctx.readF32(dB), ref.dB)).toBeLessThan(TOL);
    // With dropout and no dx: dA (and dB) still follow the mask, nothing else is written.
    const p = 0.4;
    ctx.write(dA, new Float32Array(r * inF));
    ctx.write(dB, new Float32Array(outF * r));
    lora_forward(ctx, y, t, x, A, B, BT, inF, outF, r, 2, { p, key: KEY });
    lora_backward(ctx, null, dA, dB, dy, x, t, A, B, BT, inF, outF, r, 2, { p, key: KEY }, { dt });
    const refD = loraBackwardRef(await ctx.readF32(dy), dropoutRef(xs, p, KEY), await ctx.readF32(t), await ctx.readF32(A), await ctx.readF32(B), BT, inF, outF, r, 2, null, 1);
    expect(maxRelError(await ctx.readF32(dA), refD.dA)).toBeLessThan(TOL);
    expect(maxRelError(await ctx.readF32(dB), refD.dB)).toBeLessThan(TOL);
    for (const b of [x, A, B, y, t, dy, dA, dB, dt]) ctx.destroy(b);
  });

  // The fused products (the mask applied inside the GEMM) against the explicit two-step path they replaced:
  // lora_dropout into a buffer, then the plain GEMM (and for dx, the GEMM into a buffer, then lora_dropout's
  // accumulate). Same kernel choice on both sides, compared bit for bit.
  async function twoStepVsFused(kernel: GemmKernel, p: number, lora: LoraKernel = 'general'): Promise<number> {
    const before = ctx.gemmKernel;
    ctx.gemmKernel = kernel;
    ctx.loraKernel = lora;
    // The two-step side runs each product on the kernel lora.ts routes it to.
    const ref = (a: GemmArgs): void => (lora === 'skinny' && skinnyFits(a) ? gemmSkinny(ctx, a) : gemm(ctx, a));
    let cases = 0;
    try {
      const outF = 29;
      for (const BT of [1, 37, 130]) {
        for (const inF of [64, 200]) {
          for (const r of [1, 4, 8]) {
            const what = `${kernel}/${lora} p=${p} BT=${BT} in=${inF} r=${r}`;
            const scale = 16 / r;
            const key: DropoutKey = { seed: 5, step: BT, layer: r, module: inF % 7 };
            const dropout: LoraDropout = { p, key };
            const s = BT * 1000 + inF * 10 + r;
            const up = (label: string, n: number, seed: number, amp = 1): GPUBuffer => ctx.upload(label, randomArray(n, s + seed, amp), 'scratch');
            const b = {
              x: up('x', BT * inF, 1),
              A: up('A', r * inF, 2, 1 / Math.sqrt(inF)),
              B: up('B', outF * r, 3, 0.1),
              dy: up('dy', BT * outF, 4),
              y: up('y', BT * outF, 5),
              yRef: up('y ref', BT * outF, 5),
              dx: up('dx', BT * inF, 6),
              dxRef: up('dx ref', BT * inF, 6),
              dA: up('dA', r * inF, 7, 0.01),
              dARef: up('dA ref', r * inF, 7, 0.01),
              dB: up('dB', outF * r, 8, 0.01),
              dBRef: up('dB ref', outF * r, 8, 0.01),
              t: ctx.createBuffer('t', BT * r * 4, 'scratch'),
              tRef: ctx.createBuffer('t ref', BT * r * 4, 'scratch'),
              t2: ctx.createBuffer('t intermediate', BT * r * 4, 'scratch'),
              dt: ctx.createBuffer('dt', BT * r * 4, 'scratch'),
              dtRef: ctx.createBuffer('dt ref', BT * r * 4, 'scratch'),
              drop: ctx.createBuffer('drop', BT * inF * 4, 'scratch'),
            };
            // Fused.
            lora_forward(ctx, b.y, b.t, b.x, b.A, b.B, BT, inF, outF, r, scale, dropout);
            lora_intermediate(ctx, b.t2, b.x, b.A, BT, inF, r, dropout);
            lora_backward(ctx, b.dx, b.dA, b.dB, b.dy, b.x, b.t, b.A, b.B, BT, inF, outF, r, scale, dropout, { dt: b.dt });
            // Two steps, as lora.ts did before the mask moved into the GEMM.
            lora_dropout(ctx, b.drop, b.x, BT * inF, p, key);
            ref({ C: b.tRef, A: b.drop, B: b.A, M: BT, N: r, K: inF, transB: true });
            gemm(ctx, { C: b.yRef, A: b.tRef, B: b.B, M: BT, N: outF, K: r, transB: true, alpha: scale, beta: 1 });
            ref({ C: b.dBRef, A: b.dy, B: b.tRef, M: outF, N: r, K: BT, transA: true, alpha: scale, beta: 1 });
            ref({ C: b.dtRef, A: b.dy, B: b.B, M: BT, N: r, K: outF, alpha: scale });
            ref({ C: b.dARef, A: b.dtRef, B: b.drop, M: r, N: inF, K: BT, transA: true, beta: 1 });
            gemm(ctx, { C: b.drop, A: b.dtRef, B: b.A, M: BT, N: inF, K: r });
            lora_dropout(ctx, b.dxRef, b.drop, BT * inF, p, key, { accumulate: true });
            const bits = async (buf: GPUBuffer): Promise<number[]> => Array.from(new Uint32Array((await ctx.readF32(buf)).buffer));
            for (const [name, got, want] of [
              ['t', b.t, b.tRef],
              ['t (lora_intermediate)', b.t2, b.tRef],
              ['y', b.y, b.yRef],
              ['dB', b.dB, b.dBRef],
              ['dA', b.dA, b.dARef],
              ['dx', b.dx, b.dxRef],
            ] as const) {
              expect(await bits(got), `${what}: ${name}`).toEqual(await bits(want));
            }
            // The mask did something: some x dropped, some kept (1·64 elements at p = 0.1 drop ≈ 6).
            const keep = dropoutMaskRef(BT * inF, p, key);
            const kept = keep.reduce((a, k) => a + k, 0);
            expect(kept > 0 && kept < keep.length, `${what}: keeps ${kept} of ${keep.length}`).toBe(true);
            for (const buf of Object.values(b)) ctx.destroy(buf);
            cases++;
          }
        }
      }
    } finally {
      ctx.gemmKernel = before;
      ctx.loraKernel = 'general';
    }
    return cases;
  }

  for (const kernel of ['basic', 'tiled'] as const) {
    for (const p of [0.1, 0.5]) {
      it(`fused dropout gives the two-step path's bits (t, y, dA, dB, dx): ${kernel} GEMM, p = ${p}, odd shapes`, async () => {
        expect(await twoStepVsFused(kernel, p)).toBe(18);
      });
    }
  }
  it("fused dropout gives the two-step path's bits on the skinny rank-r products too (dropout on A for t, on B for dA)", async () => {
    expect(await twoStepVsFused('basic', 0.1, 'skinny')).toBe(18);
  });

  it('each LoRA product is one dispatch with dropout as without: forward 2, t alone 1, backward 4 (3 without dx)', () => {
    const [BT, inF, outF, r] = [6, 10, 7, 2];
    const bufs = ['x', 'A', 'B', 'y', 't', 'dy', 'dx', 'dA', 'dB', 'dt'].map((l) => ctx.createBuffer(l, 4 * BT * inF * outF, 'scratch'));
    const [x, A, B, y, t, dy, dx, dA, dB, dt] = bufs;
    for (const dropout of [null, { p: 0.25, key: KEY }]) {
      const count = (f: () => void): number => {
        const n0 = ctx.dispatchCount;
        f();
        return ctx.dispatchCount - n0;
      };
      expect(count(() => lora_forward(ctx, y, t, x, A, B, BT, inF, outF, r, 2, dropout))).toBe(2);
      expect(count(() => lora_intermediate(ctx, t, x, A, BT, inF, r, dropout))).toBe(1);
      expect(count(() => lora_backward(ctx, dx, dA, dB, dy, x, t, A, B, BT, inF, outF, r, 2, dropout, { dt }))).toBe(4);
      expect(count(() => lora_backward(ctx, null, dA, dB, dy, x, t, A, B, BT, inF, outF, r, 2, dropout, { dt }))).toBe(3);
    }
    ctx.flush();
    for (const b of bufs) ctx.destroy(b);
  });

  it('leaves no buffers behind in the ledger', () => {
    expect(ctx.ledger.liveBuffers().map((b) => b.label).sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
