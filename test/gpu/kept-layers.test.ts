// Kept layers (engine/mistral/model.ts `keptLayers`): layers whose forward intermediates stay on the GPU until their
// backward skip the recomputation. Same kernels on the same inputs, so a run must give what full recomputation gives,
// bit for bit — losses with dropout, the trained LoRA weights, a validation loss — while recording fewer dispatches
// (the recomputation really is skipped) and holding exactly the activation bytes the layout (and so the planner) says:
// without the n1, n2 and SwiGLU output, which a kept layer rebuilds before its backward.
import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import type { Dims } from '../../src/engine/mistral/dims.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { runnerBytes, runnerLayout } from '../../src/engine/mistral/sizing.ts';
import { destroyMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { configOf, randomMistral } from '../../src/bench/model.ts';
import { gpuContext } from './context.ts';
import { ALL_PROJECTIONS, trainSteps, type TrainStepsResult } from '../helpers/train-steps.ts';
import { uniformSource } from '../../src/core/prng.ts';
import { destroyLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { createAdapter } from '../../src/model/lora-adapter.ts';

// Odd enough: 3 layers, GQA 2, two rows of different segments.
const DIMS: Dims = { V: 97, C: 64, I: 128, L: 3, nH: 4, nKV: 2, hd: 16, theta: 10000, eps: 1e-5 };
const B = 2;
const T = 7;
const STEPS = 3;

// Two packed segments in the first row: the attention mask matters.
const LAYOUT = {
  segmentIds: Uint32Array.of(1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1),
  positionIds: Uint32Array.of(0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6),
};

function run(ctx: GpuContext, w: MistralWeights, keptLayers: number, keptAttention = false): Promise<TrainStepsResult> {
  return trainSteps(ctx, configOf(DIMS), w, { B, T, steps: STEPS, layout: LAYOUT, keptLayers, keptAttention });
}

describe('kept layers: no recomputation where memory allows, the same numbers', () => {
  it('keeping 0, 1 or every layer gives identical losses and LoRA weights, with the recomputation skipped per kept layer', async () => {
    const ctx = await gpuContext();
    const w = await randomMistral(ctx, DIMS, true);
    try {
      const none = await run(ctx, w, 0);
      const one = await run(ctx, w, 1);
      const all = await run(ctx, w, DIMS.L);
      expect(none.losses.every((b) => Number.isFinite(new Float32Array(Uint32Array.of(b).buffer)[0]))).toBe(true);
      for (const r of [one, all]) {
        expect(r.losses).toEqual(none.losses);
        expect(Buffer.from(r.lora.buffer).equals(Buffer.from(none.lora.buffer))).toBe(true);
      }
      // Each kept layer saves the same recomputation, in every step.
      const saved = none.passDispatches - one.passDispatches;
      expect(saved).toBeGreaterThan(0);
      expect(none.passDispatches - all.passDispatches).toBe(DIMS.L * saved);
      // The ledger holds what the layout (and so the planner) counts: one more set of layer buffers per kept layer
      // beyond the shared one, none shared when every layer is kept.
      const shape = { B, T, r: 4, targets: ALL_PROJECTIONS };
      for (const [k, r] of [[0, none], [1, one], [DIMS.L, all]] as const) {
        expect(r.activationBytes).toBe(runnerBytes(runnerLayout(DIMS, { ...shape, keptLayers: k })).activations);
      }
      const set = one.activationBytes - none.activationBytes;
      // A kept layer holds what its backward cannot rebuild in one cheap pass: rstd1, q, k, v, att, lse, h, rstd2, g, u.
      // Its n1, n2 and SwiGLU output are rebuilt into the runner's one copy; its LoRA intermediates t, like every
      // layer's, are its own whether it is kept or not.
      const { C, I, nH, nKV, hd } = DIMS;
      expect(set).toBe(B * T * 4 * (1 + nH * hd + 2 * nKV * hd + nH * hd + nH + C + 1 + 2 * I));
      expect(all.activationBytes - none.activationBytes).toBe((DIMS.L - 1) * set);
    } finally {
      destroyMistralWeights(ctx, w);
    }
  });

  it('keeping the recomputed layers\' attention outputs gives identical numbers, skips attention in each recomputation, and holds what the layout says', async () => {
    const ctx = await gpuContext();
    const w = await randomMistral(ctx, DIMS, true);
    try {
      const none = await run(ctx, w, 0);
      const attention = await run(ctx, w, 0, true);
      const oneAndAttention = await run(ctx, w, 1, true);
      const oneOnly = await run(ctx, w, 1);
      for (const r of [attention, oneAndAttention]) {
        expect(r.losses).toEqual(none.losses); // step losses with dropout, then the validation loss
        expect(Buffer.from(r.lora.buffer).equals(Buffer.from(none.lora.buffer))).toBe(true);
      }
      // Each recomputed layer's recomputation loses its attention forward's dispatches, in every step (the same count
      // whichever attention kernel runs).
      const perLayer = (none.passDispatches - attention.passDispatches) / DIMS.L;
      expect(Number.isInteger(perLayer) && perLayer >= 1).toBe(true);
      expect(oneOnly.passDispatches - oneAndAttention.passDispatches).toBe((DIMS.L - 1) * perLayer);
      const shape = { B, T, r: 4, targets: ALL_PROJECTIONS };
      expect(attention.activationBytes).toBe(runnerBytes(runnerLayout(DIMS, { ...shape, keptAttention: true })).activations);
      expect(oneAndAttention.activationBytes).toBe(runnerBytes(runnerLayout(DIMS, { ...shape, keptLayers: 1, keptAttention: true })).activations);
      // L − 1 recomputed layers below the last keep an attention output (B·T·nH·hd) and its logsumexp (B·T·nH).
      expect(attention.activationBytes - none.activationBytes).toBe((DIMS.L - 1) * B * T * (DIMS.nH * DIMS.hd + DIMS.nH) * 4);
    } finally {
      destroyMistralWeights(ctx, w);
    }
  });

  it('a recomputed layer reuses its forward\'s LoRA intermediates t: each module draws its dropout on x once per training pass, not twice', async () => {
    const ctx = await gpuContext();
    const w = await randomMistral(ctx, DIMS, true);
    const adapter = createAdapter(configOf(DIMS), { r: 4, alpha: 8, dropout: 0.1, targetModules: ALL_PROJECTIONS, random: uniformSource(7) });
    const lora = uploadLora(ctx, DIMS, adapter);
    const runner = new MistralRunner(ctx, w, lora, { B, T, seed: 5 });
    try {
      const ids = Array.from({ length: B * T }, (_, i) => 3 + ((5 * i) % (DIMS.V - 3)));
      runner.setBatch({ B, T, inputIds: ids, targets: ids.map((_, i) => ((i + 1) % T === 0 ? -100 : ids[i + 1])), ...LAYOUT });
      // One recomputed layer's training work (forward, recomputation, backward), each dispatch with its kernel. t =
      // drop(x)·Aᵀ is the one product that masks its A operand on load (dA masks B, the input gradient the output).
      const layer = await ctx.profileDispatches(() => runner.layerTrainingWork(1));
      const tProducts = layer.filter((d) => d.spec.defines?.DROP_A === true);
      expect(tProducts).toHaveLength(ALL_PROJECTIONS.length);
      expect(layer.filter((d) => d.spec.defines?.DROP_B === true)).toHaveLength(ALL_PROJECTIONS.length); // the dA products
      // Every layer has its t of its own (N·r floats per adapted module): the recomputation only reads them.
      const shape = { B, T, r: 4, targets: ALL_PROJECTIONS };
      const lay = runnerLayout(DIMS, shape);
      expect(lay.loraT.q_proj).toBe(B * T * 4);
      const withoutT = runnerBytes({ ...lay, loraT: {} }).activations;
      expect(runnerBytes(lay).activations - withoutT).toBe(DIMS.L * ALL_PROJECTIONS.length * B * T * 4 * 4);
    } finally {
      runner.destroy();
      destroyLora(ctx, lora);
      destroyMistralWeights(ctx, w);
    }
  });

  it('refuses a kept-layer count the model does not have', async () => {
    const ctx = await gpuContext();
    const w = await randomMistral(ctx, DIMS, 'dense');
    try {
      expect(() => new MistralRunner(ctx, w, null, { B: 1, T: 4, keptLayers: DIMS.L + 1 })).toThrow(/keptLayers must be an integer in \[0, 3\]/);
      expect(() => new MistralRunner(ctx, w, null, { B: 1, T: 4, keptLayers: 1.5 })).toThrow(/keptLayers/);
    } finally {
      destroyMistralWeights(ctx, w);
    }
  });
});
