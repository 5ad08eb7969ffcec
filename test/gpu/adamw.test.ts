import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { adamw_step, clip_scale, createGradNormPartials, grad_norm_sq, NORM_CHUNK, type GradSlice } from '../../src/engine/kernels/adamw.ts';
import { adamwStepRef, clipScaleRef, type AdamWRefOptions } from '../../src/engine/reference/adamw.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { toFloat64 } from '../../src/model/safetensors.ts';
import { readSafetensorsFile } from '../helpers/safetensors-file.ts';
import { gpuContext } from './context.ts';

/** Each float tensor of a safetensors file as float64 values. */
function readSafetensors(path: string): Map<string, { data: Float64Array }> {
  const out = new Map<string, { data: Float64Array }>();
  for (const [name, t] of readSafetensorsFile(path)) if (t.dtype === 'F32' || t.dtype === 'F64') out.set(name, { data: toFloat64(t.bytes, t.dtype) });
  return out;
}

describe('gradient clipping and AdamW against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('grad_norm_sq + clip_scale: global norm over several gradients (and slices of one arena)', async () => {
    const sizes = [1, NORM_CHUNK - 1, NORM_CHUNK + 1, 3 * NORM_CHUNK, 1000];
    const grads = sizes.map((n, i) => randomArray(n, 100 + i, 0.01 * (i + 1)));
    const bufs = grads.map((g, i) => ctx.upload(`grad ${i}`, g, 'scratch'));
    // The same gradients packed in one arena with a gap before each slice: offsets must be honoured.
    const arenaData = new Float32Array(sizes.reduce((s, n) => s + n + 3, 0)).fill(1e3);
    const slices: Omit<GradSlice, 'buffer'>[] = [];
    let off = 0;
    grads.forEach((g) => {
      off += 3;
      arenaData.set(g, off);
      slices.push({ n: g.length, offset: off });
      off += g.length;
    });
    const arena = ctx.upload('arena', arenaData, 'scratch');
    const list: GradSlice[] = bufs.map((b, i) => ({ buffer: b, n: sizes[i] }));
    const arenaList: GradSlice[] = slices.map((s) => ({ ...s, buffer: arena }));
    const partials = createGradNormPartials(ctx, list);
    expect(partials.slots).toBe(1 + 1 + 2 + 3 + 1);
    const clip = ctx.createBuffer('clip', 8, 'scratch');
    const { norm } = clipScaleRef(grads, 0);
    for (const maxNorm of [0, -1, norm * 2, norm / 3]) {
      for (const l of [list, arenaList]) {
        grad_norm_sq(ctx, partials, l);
        clip_scale(ctx, clip, partials, maxNorm);
        const [scale, gotNorm] = await ctx.readF32(clip);
        const ref = clipScaleRef(grads, maxNorm);
        expect(Math.abs(gotNorm - ref.norm) / ref.norm).toBeLessThan(1e-6);
        expect(Math.abs(scale - ref.scale) / ref.scale).toBeLessThan(1e-6);
      }
    }
    expect(clipScaleRef(grads, norm / 3).scale).toBeCloseTo(1 / 3, 5);
    expect(() => grad_norm_sq(ctx, partials, list.slice(1))).toThrow(/slots/);
    for (const b of [...bufs, arena, partials.buffer, clip]) ctx.destroy(b);
  });

  it('several AdamW steps with weight decay and clipping match float64', async () => {
    const n = 2 * 256 + 37;
    const opts: Omit<AdamWRefOptions, 'step'> = { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 };
    const p0 = randomArray(n, 1, 0.5);
    const bp = ctx.upload('param', p0, 'scratch');
    const bm = ctx.upload('m', new Float32Array(n), 'scratch');
    const bv = ctx.upload('v', new Float32Array(n), 'scratch');
    const bg = ctx.createBuffer('grad', n * 4, 'scratch');
    const clip = ctx.createBuffer('clip', 8, 'scratch');
    const partials = createGradNormPartials(ctx, [{ buffer: bg, n }]);
    const rp = Float64Array.from(p0);
    const rm = new Float64Array(n);
    const rv = new Float64Array(n);
    const maxNorm = 1;
    for (let step = 1; step <= 6; step++) {
      const g = randomArray(n, 10 + step, step % 2 ? 0.02 : 0.2); // odd steps under maxNorm, even steps clipped
      ctx.write(bg, g);
      grad_norm_sq(ctx, partials, [{ buffer: bg, n }]);
      clip_scale(ctx, clip, partials, maxNorm);
      adamw_step(ctx, bp, bg, bm, bv, clip, n, { ...opts, step });
      const { scale } = clipScaleRef([g], maxNorm);
      expect(scale < 1).toBe(step % 2 === 0);
      adamwStepRef(rp, g, rm, rv, { ...opts, step }, scale);
      // ctx.write goes straight to the queue: sync so the next step's gradient is not written under this one.
      await ctx.sync();
    }
    expect(maxRelError(await ctx.readF32(bp), rp)).toBeLessThan(2e-6);
    expect(maxRelError(await ctx.readF32(bm), rm)).toBeLessThan(2e-6);
    expect(maxRelError(await ctx.readF32(bv), rv)).toBeLessThan(2e-6);
    // Sanity of the reference itself: the parameters moved by about lr per step, not by nothing.
    expect(maxRelError(rp, p0)).toBeGreaterThan(1e-3);
    for (const b of [bp, bm, bv, bg, clip, partials.buffer]) ctx.destroy(b);
  });

  it('one step from the golden (PyTorch AdamW, lr 1e-3, no clipping) matches adamw_step1', async () => {
    const golden = readSafetensors(new URL('../fixtures/golden_lora.safetensors', import.meta.url).pathname);
    const keys = [...golden.keys()].filter((k) => k.startsWith('lora/')).map((k) => k.slice('lora/'.length));
    expect(keys.length).toBe(28);
    const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 };
    let worst = 0;
    for (const key of keys) {
      const p = golden.get(`lora/${key}`)!;
      const g = golden.get(`grad/${key}`)!;
      const want = golden.get(`adamw_step1/${key}`)!;
      const n = p.data.length;
      expect(g.data.length).toBe(n);
      const bp = ctx.upload('param', Float32Array.from(p.data), 'scratch');
      const bg = ctx.upload('grad', Float32Array.from(g.data), 'scratch');
      const bm = ctx.upload('m', new Float32Array(n), 'scratch');
      const bv = ctx.upload('v', new Float32Array(n), 'scratch');
      adamw_step(ctx, bp, bg, bm, bv, null, n, opts);
      const err = maxRelError(await ctx.readF32(bp), want.data);
      worst = Math.max(worst, err);
      expect(err, key).toBeLessThanOrEqual(1e-6);
      // and the step did something: the result is not the starting value
      expect(maxRelError(p.data, want.data), key).toBeGreaterThan(1e-5);
      for (const b of [bp, bg, bm, bv]) ctx.destroy(b);
    }
    console.log(`AdamW step 1 vs PyTorch golden: worst max-abs-relative error ${worst.toExponential(2)}`);
  });

  it('refuses step 0 and aliased buffers', () => {
    const a = ctx.createBuffer('a', 16, 'scratch');
    const b = ctx.createBuffer('b', 16, 'scratch');
    const c = ctx.createBuffer('c', 16, 'scratch');
    const d = ctx.createBuffer('d', 16, 'scratch');
    const opts = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };
    expect(() => adamw_step(ctx, a, b, c, a, null, 4, { ...opts, step: 1 })).toThrow(/distinct/);
    expect(() => adamw_step(ctx, a, b, c, d, null, 4, { ...opts, step: 0 })).toThrow(/step/);
    for (const buf of [a, b, c, d]) ctx.destroy(buf);
  });

  it('leaves no buffers behind in the ledger', () => {
    expect(ctx.ledger.liveBuffers().map((b) => b.label).sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
