import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import {
  dropoutHash,
  dropoutKeyState,
  lora_backward,
  lora_dropout,
  lora_forward,
  loraModuleId,
  loraScratchBytes,
  type DropoutKey,
  type LoraDropout,
} from '../../src/engine/kernels/lora.ts';
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

  // [BT, inF, outF, r]: odd shapes, then the tiny model's gate_proj (128 → 448, r 4).
  for (const [BT, inF, outF, r] of [
    [13, 37, 29, 3],
    [24, 128, 448, 4],
  ] as const) {
    for (const p of [0, 0.2]) {
      it(`forward and backward vs float64 at BT=${BT} in=${inF} out=${outF} r=${r}, dropout ${p}`, async () => {
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
        const sizes = loraScratchBytes(BT, inF, r);
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
          drop: ctx.createBuffer('scratch drop', sizes.drop, 'scratch'),
        };
        const scratch = { dt: bufs.dt, drop: p > 0 ? bufs.drop : null };
        lora_forward(ctx, bufs.y, bufs.t, bufs.x, bufs.A, bufs.B, BT, inF, outF, r, scale, dropout, scratch);
        lora_backward(ctx, bufs.dx, bufs.dA, bufs.dB, bufs.dy, bufs.x, bufs.t, bufs.A, bufs.B, BT, inF, outF, r, scale, dropout, scratch);
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

  it('dx may be skipped, and dropout without scratch is refused', async () => {
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
    const drop: LoraDropout = { p: 0.1, key: KEY };
    expect(() => lora_forward(ctx, y, t, x, A, B, BT, inF, outF, r, 2, drop, { dt, drop: null })).toThrow(/scratch\.drop/);
    expect(() => lora_backward(ctx, null, dA, dB, dy, x, t, A, B, BT, inF, outF, r, 2, null, { dt: null, drop: null })).toThrow(/scratch\.dt/);
    lora_backward(ctx, null, dA, dB, dy, x, t, A, B, BT, inF, outF, r, 2, null, { dt, drop: null });
    const xs = await ctx.readF32(x);
    const ref = loraBackwardRef(await ctx.readF32(dy), xs, await ctx.readF32(t), await ctx.readF32(A), await ctx.readF32(B), BT, inF, outF, r, 2, null, 1);
    expect(maxRelError(await ctx.readF32(dA), ref.dA)).toBeLessThan(TOL);
    expect(maxRelError(await ctx.readF32(dB), ref.dB)).toBeLessThan(TOL);
    for (const b of [x, A, B, y, t, dy, dA, dB, dt]) ctx.destroy(b);
  });

  it('leaves no buffers behind in the ledger', () => {
    expect(ctx.ledger.liveBuffers().map((b) => b.label).sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
