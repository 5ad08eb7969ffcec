// What loadTrainState checks in a training state before any of it reaches the GPU (src/run/trainer.ts). The GPU side
// is a stand-in that records writes: the checks run first, on the CPU. A real save and resume: test/gpu/trainer.test.ts.
import { describe, expect, it } from 'vitest';
import type { TensorSlice } from '../../../src/engine/buffer-slice.ts';
import type { LoraModuleState } from '../../../src/engine/mistral/lora.ts';
import { peftKey } from '../../../src/model/lora-adapter.ts';
import { writeSafetensors, type TensorToWrite } from '../../../src/model/safetensors.ts';
import { loadTrainState } from '../../../src/run/trainer.ts';
import { errorOf } from '../model/helpers.ts';

const R = 2;
const IN = 4;
const OUT = 6;

/** A slice of no buffer: loadTrainState only hands it to the context's write. */
function slice(label: string): TensorSlice {
  return { buffer: { label } as GPUBuffer, offset: 0, size: 0 };
}

/** One adapted module, q_proj of layer 0: A (R, IN) and B (OUT, R). */
function oneModule(): { lora: { r: number; modules: Partial<Record<'q_proj', LoraModuleState>>[] }; writes: string[]; ctx: { write(target: TensorSlice, data: ArrayBufferView): void } } {
  const m: LoraModuleState = {
    layer: 0,
    name: 'q_proj',
    moduleId: 0,
    in: IN,
    out: OUT,
    A: slice('A'),
    B: slice('B'),
    dA: slice('dA'),
    dB: slice('dB'),
    mA: slice('mA'),
    vA: slice('vA'),
    mB: slice('mB'),
    vB: slice('vB'),
  };
  const writes: string[] = [];
  return { lora: { r: R, modules: [{ q_proj: m }] }, writes, ctx: { write: (target) => void writes.push(target.buffer.label) } };
}

/** A state for that module, with the shapes given (a tensor's values: its index + 1, all finite and positive). */
function state(shapeA: number[], shapeB: number[]): Uint8Array {
  const tensors: TensorToWrite[] = [];
  for (const [factor, shape] of [['A', shapeA], ['B', shapeB]] as const) {
    const key = peftKey(0, 'q_proj', factor);
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i + 1);
    for (const name of [key, `${key}.exp_avg`, `${key}.exp_avg_sq`]) tensors.push({ name, dtype: 'F32', shape: [...shape], data });
  }
  return writeSafetensors(tensors, { format: 'finetune-state', step: '3', rank: String(R) });
}

describe('a training state, checked before it is loaded', () => {
  it('is loaded when every tensor has its shape', async () => {
    const { lora, writes, ctx } = oneModule();
    expect(await loadTrainState(ctx, lora, state([R, IN], [OUT, R]))).toBe(3);
    expect(writes).toEqual(['A', 'mA', 'vA', 'B', 'mB', 'vB']);
  });

  it('refuses a transposed tensor of the same size, naming it and both shapes, and writes nothing', async () => {
    // lora_A saved as (in, r): as many values as (r, in), and it was loaded as if it were, its values scrambled.
    const { lora, writes, ctx } = oneModule();
    const e = await errorOf(() => loadTrainState(ctx, lora, state([IN, R], [OUT, R])));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe(`checkpoint tensor ${peftKey(0, 'q_proj', 'A')} has shape [4, 2], expected [2, 4]: it was made for another adapter layout`);
    expect(writes).toEqual([]);
    // One dimension more (1 × r × in), same count: refused too.
    const flat = await errorOf(() => loadTrainState(ctx, lora, state([R, IN], [1, OUT, R])));
    expect(flat.message).toBe(`checkpoint tensor ${peftKey(0, 'q_proj', 'B')} has shape [1, 6, 2], expected [6, 2]: it was made for another adapter layout`);
    expect(writes).toEqual([]);
  });
});
