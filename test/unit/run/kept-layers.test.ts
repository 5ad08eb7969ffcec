// chooseKeptLayers (src/run/kept-layers.ts): at the start of a run, how many layers keep their intermediates, from the
// bytes the ledger already holds and the runner's own layout, under 85 % of the GPU memory the user gave.
import { describe, expect, it } from 'vitest';
import { chooseKeptLayers } from '../../../src/run/kept-layers.ts';
import { runnerBytes, runnerLayout } from '../../../src/engine/mistral/sizing.ts';
import { MISTRAL_7B } from '../../../src/bench/model.ts';
import type { Projection } from '../../../src/core/mistral.ts';

const shape = { B: 1, T: 2048, r: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as Projection[] };
const total = (k: number, keptAttention = false): number => {
  const b = runnerBytes(runnerLayout(MISTRAL_7B, { ...shape, keptLayers: k, keptAttention }));
  return b.activations + b.scratch + b.io + b.optimizer;
};
const GiB = 1024 ** 3;

describe('chooseKeptLayers', () => {
  it('keeps none and says nothing when the memory is unknown', () => {
    expect(chooseKeptLayers(MISTRAL_7B, shape, { memoryBytes: null, inUseBytes: 5 * GiB })).toEqual({ kept: 0, keptAttention: false, runnerBytes: total(0), notice: null });
  });

  it('takes a count asked for, checked against the model', () => {
    const d = chooseKeptLayers(MISTRAL_7B, shape, { asked: 5, memoryBytes: null, inUseBytes: 0 });
    expect(d.kept).toBe(5);
    expect(d.keptAttention).toBe(false);
    expect(d.runnerBytes).toBe(total(5));
    expect(d.notice).toMatch(/the last 5 of 32 layers keep their intermediates/);
    expect(() => chooseKeptLayers(MISTRAL_7B, shape, { asked: 33, memoryBytes: null, inUseBytes: 0 })).toThrow(/from 0 to 32 .*got 33/);
    expect(() => chooseKeptLayers(MISTRAL_7B, shape, { asked: -1, memoryBytes: null, inUseBytes: 0 })).toThrow(/got -1/);
  });

  it('keeps the most layers whose runner still fits under 85 % of the memory beside what is already on the GPU', () => {
    const inUse = 4.5 * GiB;
    const memory = 16 * GiB;
    const d = chooseKeptLayers(MISTRAL_7B, shape, { memoryBytes: memory, inUseBytes: inUse });
    expect(d.kept).toBeGreaterThan(0);
    expect(d.kept).toBeLessThan(32);
    expect(d.keptAttention).toBe(true);
    expect(d.runnerBytes).toBe(total(d.kept, true));
    expect(inUse + total(d.kept, true)).toBeLessThanOrEqual(0.85 * memory);
    expect(inUse + total(d.kept + 1, true)).toBeGreaterThan(0.85 * memory);
    expect(d.notice).toMatch(/the recomputed layers keep their attention output.*chosen for the GPU's 16\.0 GiB/);
    expect(chooseKeptLayers(MISTRAL_7B, shape, { memoryBytes: 141e9, inUseBytes: inUse }).kept).toBe(32);
  });

  it('leaves room for what the run makes beside the runner later (a validation_prompt sample\'s decoder)', () => {
    const inUse = 4.5 * GiB;
    const memory = 16 * GiB;
    const alone = chooseKeptLayers(MISTRAL_7B, shape, { memoryBytes: memory, inUseBytes: inUse });
    // A sample's decoder of a whole layer's worth: one layer fewer is kept, and what is kept fits beside it.
    const beside = total(alone.kept, true) - total(alone.kept - 1, true);
    const d = chooseKeptLayers(MISTRAL_7B, shape, { memoryBytes: memory, inUseBytes: inUse, besideBytes: beside });
    expect(d.kept).toBe(alone.kept - 1);
    expect(inUse + beside + total(d.kept, true)).toBeLessThanOrEqual(0.85 * memory);
  });

  it('keeps the recomputed layers\' attention outputs first: 34 MB a layer where a whole layer is 353 MB', () => {
    // Mistral-7B at 2048 tokens: (nH·hd + nH) floats per token and layer, for the 31 recomputed layers below the last.
    expect(total(0, true) - total(0)).toBe(31 * (2048 * 4096 * 4 + 2048 * 32 * 4));
    expect(total(32, true)).toBe(total(32));
    const inUse = 4.5 * GiB;
    const memory = (inUse + total(0, true) + 0.1 * GiB) / 0.85; // room for the attention outputs, not for one more layer
    const d = chooseKeptLayers(MISTRAL_7B, shape, { memoryBytes: memory, inUseBytes: inUse });
    expect(d).toMatchObject({ kept: 0, keptAttention: true, runnerBytes: total(0, true) });
    expect(d.notice).toMatch(/^recomputation: per-layer activation checkpointing.*; the recomputed layers keep their attention output, so the recomputation skips attention — chosen for/);
    // Asked outright, with or without the memory.
    expect(chooseKeptLayers(MISTRAL_7B, shape, { askedAttention: true, memoryBytes: null, inUseBytes: 0 })).toMatchObject({ kept: 0, keptAttention: true, runnerBytes: total(0, true) });
    expect(chooseKeptLayers(MISTRAL_7B, shape, { askedAttention: false, memoryBytes: 141e9, inUseBytes: inUse })).toMatchObject({ keptAttention: false, kept: 32 });
  });

  it('keeps none, and says why, when even one more layer would pass the budget', () => {
    const d = chooseKeptLayers(MISTRAL_7B, shape, { memoryBytes: 8 * GiB, inUseBytes: 4.5 * GiB });
    expect(d.kept).toBe(0);
    expect(d.notice).toMatch(/every layer is recomputed .*85 % of the GPU's 8\.0 GiB/);
  });
});
