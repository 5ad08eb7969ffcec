// The LoRA arenas on the GPU (src/engine/mistral/lora.ts, lora-layout.ts): an optimizer step is a fixed number of
// dispatches per arena chunk whatever the number of adapted modules (issue #9), AdamW over the whole arena equals the
// float64 reference tensor by tensor (odd sizes, one chunk and several), and the padding between tensors stays zero.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECTIONS, type Projection } from '../../src/core/mistral.ts';
import { uniformSource } from '../../src/core/prng.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import type { Dims } from '../../src/engine/mistral/dims.ts';
import { arenaBytes } from '../../src/engine/mistral/lora-layout.ts';
import { destroyLora, loraModules, uploadLora, type GpuLora, type UploadLoraOptions } from '../../src/engine/mistral/lora.ts';
import { MistralRunner, type OptimizerSettings } from '../../src/engine/mistral/model.ts';
import { destroyMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { adamwStepRef, clipScaleRef } from '../../src/engine/reference/adamw.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { configOf, randomMistral } from '../../src/bench/model.ts';
import { createAdapter, peftKey } from '../../src/model/lora-adapter.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.ts';
import { loadTrainState, saveTrainState } from '../../src/run/trainer.ts';
import { gpuContext } from './context.ts';

// r·in and out·r are not multiples of 64 floats (256 bytes): every tensor is followed by padding.
const d: Dims = { V: 64, C: 24, I: 40, L: 3, nH: 3, nKV: 1, hd: 8, theta: 1e4, eps: 1e-5 };
const R = 5;
const SETTINGS: OptimizerSettings = { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1 };

describe('LoRA arenas: one optimizer dispatch per phase and chunk', () => {
  let ctx: GpuContext;
  let weights: MistralWeights;
  beforeAll(async () => {
    ctx = await gpuContext();
    weights = await randomMistral(ctx, d, 'dense');
  });
  afterAll(() => destroyMistralWeights(ctx, weights));

  /** An adapter with random A and B (B is zero at init; random here so weight decay and the update both show). */
  function upload(targets: Projection[], o: UploadLoraOptions = {}): GpuLora {
    const adapter = createAdapter(configOf(d), { r: R, alpha: 2 * R, targetModules: targets, random: uniformSource(7) });
    adapter.tensors.forEach((layer, l) => {
      for (const name of targets) layer[name]!.B = randomArray(layer[name]!.B.length, 100 * l + PROJECTIONS.indexOf(name), 0.3);
    });
    return uploadLora(ctx, d, adapter, o);
  }

  /** Dispatches of one measureGradients + applyUpdate. */
  function optimizerDispatches(lora: GpuLora): number {
    const runner = new MistralRunner(ctx, weights, lora, { B: 1, T: 4 });
    try {
      runner.zeroGrads();
      const before = ctx.dispatchCount;
      runner.measureGradients(SETTINGS.maxGradNorm);
      runner.applyUpdate(SETTINGS);
      return ctx.dispatchCount - before;
    } finally {
      runner.destroy();
    }
  }

  it('dispatches per optimizer step do not grow with the modules: 1 + 2 per chunk (3 modules or 21)', () => {
    const few = upload(['q_proj']);
    const all = upload([...PROJECTIONS]);
    const bytes = arenaBytes(all.arenas.layout);
    const split = upload([...PROJECTIONS], { maxChunkBytes: Math.ceil(bytes / 3 / 4) * 4 });
    try {
      expect([...loraModules(few)]).toHaveLength(3);
      expect([...loraModules(all)]).toHaveLength(21);
      expect(all.arenas.params).toHaveLength(1);
      expect(optimizerDispatches(few)).toBe(3);
      expect(optimizerDispatches(all)).toBe(3);
      const chunks = split.arenas.params.length;
      expect(chunks).toBeGreaterThanOrEqual(3);
      // grad_norm_sq per chunk, one clip_scale, adamw_step per chunk.
      expect(optimizerDispatches(split)).toBe(1 + 2 * chunks);
    } finally {
      for (const l of [few, all, split]) destroyLora(ctx, l);
    }
  });

  for (const [name, split] of [['one chunk', false], ['several chunks', true]] as const) {
    it(`${name}: clipped AdamW steps over the arena equal float64 per tensor, and the padding stays zero`, async () => {
      const probe = upload([...PROJECTIONS]);
      const bytes = arenaBytes(probe.arenas.layout);
      destroyLora(ctx, probe);
      const lora = upload([...PROJECTIONS], split ? { maxChunkBytes: Math.ceil(bytes / 2 / 4) * 4 } : {});
      const runner = new MistralRunner(ctx, weights, lora, { B: 1, T: 4 });
      try {
        expect(lora.arenas.params.length).toBe(split ? 2 : 1);
        const modules = [...loraModules(lora)];
        const slices = modules.flatMap((m) => [
          { p: m.A, g: m.dA, m: m.mA, v: m.vA },
          { p: m.B, g: m.dB, m: m.mB, v: m.vB },
        ]);
        const ref = await Promise.all(
          slices.map(async (s) => {
            const p = Float64Array.from(await ctx.readF32(s.p));
            return { p0: Float64Array.from(p), p, m: new Float64Array(p.length), v: new Float64Array(p.length) };
          }),
        );
        let clipped = 0;
        for (let step = 1; step <= 4; step++) {
          runner.zeroGrads();
          // Odd steps under the max norm, even steps clipped.
          const grads = slices.map((s, i) => randomArray(s.g.size / 4, 1000 * step + i, step % 2 ? 0.005 : 0.2));
          slices.forEach((s, i) => ctx.write(s.g, grads[i]));
          runner.measureGradients(SETTINGS.maxGradNorm);
          runner.applyUpdate(SETTINGS);
          const want = clipScaleRef(grads, SETTINGS.maxGradNorm);
          const got = await runner.readClip();
          expect(Math.abs(got.norm - want.norm) / want.norm).toBeLessThan(1e-5);
          if (want.scale < 1) clipped++;
          ref.forEach((r, i) => adamwStepRef(r.p, grads[i], r.m, r.v, { ...SETTINGS, step }, want.scale));
          await ctx.sync();
        }
        expect(clipped).toBe(2);
        let worst = 0;
        for (let i = 0; i < slices.length; i++) {
          const s = slices[i];
          for (const [buf, want] of [[s.p, ref[i].p], [s.m, ref[i].m], [s.v, ref[i].v]] as const) {
            worst = Math.max(worst, maxRelError(await ctx.readF32(buf), want));
          }
        }
        expect(worst).toBeLessThan(2e-6);
        // The parameters did move, in every tensor (the comparison is not of two unchanged copies).
        for (const r of ref) expect(maxRelError(r.p, r.p0)).toBeGreaterThan(1e-4);

        // Every byte outside a tensor is zero in all four arenas: uploads, gradient writes and AdamW stayed inside.
        const a = lora.arenas;
        for (const [what, buffers] of [['params', a.params], ['grads', a.grads], ['exp_avg', a.expAvg], ['exp_avg_sq', a.expAvgSq]] as const) {
          for (let c = 0; c < buffers.length; c++) {
            const data = await ctx.readF32(buffers[c]);
            const inside = new Uint8Array(data.length);
            for (const t of a.layout.tensors.filter((t) => t.chunk === c)) inside.fill(1, t.offset / 4, t.offset / 4 + t.floats);
            const padding = data.filter((_, i) => !inside[i]);
            expect(padding.length, `${what}[${c}] has padding`).toBeGreaterThan(0);
            expect(padding.every((x) => x === 0), `${what}[${c}] padding`).toBe(true);
            if (what !== 'grads') expect(data.some((x, i) => inside[i] && x !== 0), `${what}[${c}] was written`).toBe(true);
          }
        }
        runner.zeroGrads();
        for (const g of a.grads) expect((await ctx.readF32(g)).every((x) => x === 0)).toBe(true);
      } finally {
        runner.destroy();
        destroyLora(ctx, lora);
      }
    });
  }

  it('a checkpoint in the per-tensor format (as written before the arenas) loads into a chunked arena and saves back byte for byte', async () => {
    const targets: Projection[] = ['q_proj', 'k_proj', 'down_proj'];
    const probe = upload(targets);
    const bytes = arenaBytes(probe.arenas.layout);
    destroyLora(ctx, probe);
    const lora = upload(targets, { maxChunkBytes: Math.ceil(bytes / 3 / 4) * 4 });
    try {
      expect(lora.arenas.params.length).toBeGreaterThanOrEqual(3);
      // The file format, written out by hand: per module A, its moments, then B, its moments; metadata format/step/rank.
      const tensors: TensorToWrite[] = [];
      let seed = 1;
      for (let l = 0; l < d.L; l++) {
        for (const name of PROJECTIONS.filter((p) => targets.includes(p))) {
          const m = lora.modules[l][name]!;
          for (const [factor, shape] of [['A', [R, m.in]], ['B', [m.out, R]]] as const) {
            const n = shape[0] * shape[1];
            const key = peftKey(l, name, factor);
            tensors.push({ name: key, dtype: 'F32', shape: [...shape], data: randomArray(n, seed++, 0.5) });
            tensors.push({ name: `${key}.exp_avg`, dtype: 'F32', shape: [...shape], data: randomArray(n, seed++, 0.01) });
            tensors.push({ name: `${key}.exp_avg_sq`, dtype: 'F32', shape: [...shape], data: randomArray(n, seed++, 1e-4).map(Math.abs) });
          }
        }
      }
      const file = writeSafetensors(tensors, { format: 'finetune-state', step: '7', rank: String(R) });
      expect(await loadTrainState(ctx, lora, file)).toBe(7);
      const m = lora.modules[2].down_proj!;
      expect(await ctx.readF32(m.vB)).toEqual(tensors.find((t) => t.name === `${peftKey(2, 'down_proj', 'B')}.exp_avg_sq`)!.data);
      expect(await saveTrainState(ctx, lora, 7)).toEqual(file);
    } finally {
      destroyLora(ctx, lora);
    }
  });
});
