// The runner's dS scratch for the tiled attention backward (sizing.ts: attentionSpillFloats): whole groups of query
// heads, within three of the layer's N × I intermediates and one buffer the device binds, and counted by the plan.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { attentionSpillGroupFloats } from '../../../src/engine/kernels/attention_flash.ts';
import { dimsOf } from '../../../src/engine/mistral/dims.ts';
import { attentionSpillFloats, runnerBytes, runnerLayout } from '../../../src/engine/mistral/sizing.ts';
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

  it('is a scratch buffer of the runner when it has an adapter, and none without (no backward)', () => {
    const shape = { B: 1, T: 2048, r: 8, targets: [...PROJECTIONS], loraChunkBytes: GiB4 };
    const lay = runnerLayout(mistral, shape);
    expect(lay.attnSpill).toBe(attentionSpillFloats(mistral, 1, 2048, GiB4));
    const without = runnerBytes({ ...lay, attnSpill: 0 });
    expect(runnerBytes(lay).scratch - without.scratch).toBe(4 * lay.attnSpill);
    // The device's binding limit reaches it through the adapter's chunk limit.
    expect(runnerLayout(mistral, { ...shape, loraChunkBytes: 128 * 1024 ** 2 }).attnSpill).toBe(3 * attentionSpillGroupFloats(1, 2048, 32, 8));
    expect(runnerLayout(mistral, { B: 1, T: 2048, r: 0, targets: [] }).attnSpill).toBe(0);
  });
});
