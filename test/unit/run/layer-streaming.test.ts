// Whether a load streams the layers: asked for outright, or chosen from the memory plan for the GPU's memory size —
// only when the layers cannot all be on the GPU, and with a note that says why.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseHyperparams } from '../../../src/config/index.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { chooseLayerStreaming } from '../../../src/run/layer-streaming.ts';

const mistral7b = parseMistralConfig(JSON.parse(readFileSync('test/fixtures/mistral-7b-instruct-v0.2/config.json', 'utf8')));
const hp = parseHyperparams({ peft_method: 'qlora', micro_batch_size: 1, train_batch_size: 1, max_seq_len: 1024 });
const GiB = 1024 ** 3;

describe('choosing layer streaming', () => {
  it('does what it is told when told', () => {
    expect(chooseLayerStreaming(mistral7b, true)).toEqual({ stream: true, notice: null });
    expect(chooseLayerStreaming(mistral7b, false)).toEqual({ stream: false, notice: null });
    expect(chooseLayerStreaming(mistral7b, undefined)).toEqual({ stream: false, notice: null });
  });

  it('keeps the layers on a GPU they fit, streams them on one they do not, and says so', () => {
    expect(chooseLayerStreaming(mistral7b, { hp, gpu: { memoryBytes: 24 * GiB } })).toEqual({ stream: false, notice: null });
    const small = chooseLayerStreaming(mistral7b, { hp, gpu: { memoryBytes: 4 * GiB } });
    expect(small.stream).toBe(true);
    expect(small.notice).toMatch(/over its 4\.0 GiB: the layers are streamed from CPU memory \(.* on the GPU, 3\.4 GiB in CPU memory, .* moved per step; same results, slower\)/);
  });

  it('streams as the better try when even that does not fit by the plan, and says it does not fit', () => {
    const d = chooseLayerStreaming(mistral7b, { hp, gpu: { memoryBytes: 1 * GiB } });
    expect(d.stream).toBe(true);
    expect(d.notice).toMatch(/does not fit the GPU's 1\.0 GiB, even with the layers streamed .*Replicate/);
  });

  it('says what QLoRA would need when an unquantised base is streamed or does not fit, and still chooses only streaming', () => {
    const lora = parseHyperparams({ max_seq_len: 256 });
    const streamed = chooseLayerStreaming(mistral7b, { hp: lora, gpu: { memoryBytes: 8 * GiB } });
    expect(streamed.stream).toBe(true);
    expect(streamed.notice).toMatch(/same results, slower\); with --peft_method qlora \(the base in 4-bit NF4\) it would fit: needs [\d.]+ GiB of 8\.0 GiB \(\d+ %\)$/);
    const two = chooseLayerStreaming(mistral7b, { hp: lora, gpu: { memoryBytes: 2 * GiB } });
    expect(two.notice).toMatch(/; with --peft_method qlora \(the base in 4-bit NF4\) it would need streaming too but needs .* of 2\.0 GiB with every layer on the GPU; streaming the layers from CPU memory needs/);
    // Already QLoRA: nothing more to say.
    expect(chooseLayerStreaming(mistral7b, { hp, gpu: { memoryBytes: 4 * GiB } }).notice).not.toMatch(/peft_method/);
  });
});
