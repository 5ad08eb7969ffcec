// The runner's dS scratch for the tiled attention backward (sizing.ts: attentionSpillFloats): whole groups of query
// heads, within three of the layer's N × I intermediates and one buffer the device binds, held in the MLP's gradient
// buffer and counted by the plan.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { attentionSpillGroupFloats } from '../../../src/engine/kernels/attention_flash.ts';
import { dimsOf } from '../../../src/engine/mistral/dims.ts';
import { attentionSpillFloats, MLP_GRADIENT_LABEL, runnerBytes, runnerLayout } from '../../../src/engine/mistral/sizing.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';

const mistral = dimsOf(parseMistralConfig(JSON.parse(readFileSync('test/fixtures/mistral-7b-instruct-v0.2/config.json', 'utf8'))));
const GiB4 = 4 * 1024 ** 3 - 4;

describe('the attention backward dS scratch', () => {
  it('holds every KV head of Mistral-7B at 2048 tokens (273 MB), whole groups beyond, none when one group does not fit', () => {
    const group2048 = attentionSpillGroupFloats(1, 2048, 32, 8);
    expect(attentionSpillFloats(mistral, 1, 2048, GiB4)).toBe(8 * group2048);
    expect(4 * attentionSpillFloats(mistral, 1, 2048, GiB4)).toBe(272_629_760);
    // Up to 2,656 tokens all 8 groups fit in 3·N·I floats (exactly, there); at 4096 five groups do (two passes: five KV heads, then three).
    expect(attentionSpillFloats(mistral, 1, 2656, GiB4)).toBe(8 * attentionSpillGroupFloats(1, 2656, 32, 8));
    expect(attentionSpillFloats(mistral, 1, 2688, GiB4)).toBe(7 * attentionSpillGroupFloats(1, 2688, 32, 8));
    expect(attentionSpillFloats(mistral, 1, 4096, GiB4)).toBe(5 * attentionSpillGroupFloats(1, 4096, 32, 8));
    // An adapter binding only WebGPU's minimum 128 MiB: three groups at 2048.
    expect(attentionSpillFloats(mistral, 1, 2048, 128 * 1024 ** 2)).toBe(3 * group2048);
    // One group larger than the room: no scratch, dS is recomputed.
    expect(attentionSpillFloats(mistral, 1, 2048, 4 * group2048 - 4)).toBe(0);
    expect(attentionSpillFloats(mistral, 1, 30_000, GiB4)).toBe(0);
  });

  it('lives in the MLP\'s gradient buffer (dead during the attention backward) when the runner has an adapter, and is none without', () => {
    const shape = { B: 1, T: 2048, r: 8, targets: [...PROJECTIONS], loraChunkBytes: GiB4 };
    const lay = runnerLayout(mistral, shape);
    expect(lay.attnSpill).toBe(attentionSpillFloats(mistral, 1, 2048, GiB4));
    // No buffer of its own: d swiglu (which takes d gate in place) is made large enough to hold it, 273 MB instead of
    // 117, where the runner used to have d swiglu, d gate and dS apart (117 + 117 + 273 MB).
    expect(lay.grads.da).toBe(Math.max(2048 * 14336, lay.attnSpill));
    expect(lay.grads.da).toBe(lay.attnSpill);
    expect(Object.keys(lay.grads)).not.toContain('dg');
    const b = runnerBytes(lay);
    expect(b.largestBuffer).toEqual({ label: MLP_GRADIENT_LABEL, bytes: 272_629_760 });
    const withoutSpill = runnerBytes({ ...lay, attnSpill: 0, grads: { ...lay.grads, da: 2048 * 14336 } });
    expect(b.scratch).toBe(withoutSpill.scratch);
    expect(b.activations - withoutSpill.activations).toBe(4 * (lay.attnSpill - 2048 * 14336));
    // The device's binding limit reaches it through the adapter's chunk limit.
    expect(runnerLayout(mistral, { ...shape, loraChunkBytes: 128 * 1024 ** 2 }).attnSpill).toBe(3 * attentionSpillGroupFloats(1, 2048, 32, 8));
    expect(runnerLayout(mistral, { B: 1, T: 2048, r: 0, targets: [] }).attnSpill).toBe(0);
  });
});
