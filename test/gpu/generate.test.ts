// Generation with the KV cache (src/run/generate.ts) on tiny-mistral + tiny-adapter with a short prompt: greedy output
// equals the full-recompute output, a seed makes sampling reproducible, </s> and shouldStop end it, and the streamed
// text pieces add up to the decoded output.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { FinetuneError } from '../../src/core/errors.ts';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { destroyLora, uploadLora, type GpuLora } from '../../src/engine/mistral/lora.ts';
import { destroyMistralWeights, loadMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { readAdapter } from '../../src/model/lora-adapter.ts';
import { generate, generateFullRecompute, type StreamedToken } from '../../src/run/generate.ts';
import { gpuContext } from './context.ts';

const NEW = 6;

describe('generate (KV cache)', () => {
  let ctx: GpuContext;
  let weights: MistralWeights;
  let lora: GpuLora;
  let tok: Tokenizer;
  let prompt: number[];
  let greedy: number[];
  beforeAll(async () => {
    ctx = await gpuContext();
    const ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
    weights = await loadMistralWeights(ctx, ckpt, { quantization: 'none' });
    lora = uploadLora(ctx, weights.dims, await readAdapter(nodeDirectory('test/fixtures/tiny-adapter'), { base: ckpt.config }));
    tok = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    prompt = [tok.bosId, ...tok.encode('Hello')];
    greedy = (await generate(ctx, weights, lora, prompt, { maxNewTokens: NEW })).ids;
  });
  afterAll(() => {
    destroyLora(ctx, lora);
    destroyMistralWeights(ctx, weights);
  });

  it('greedy output equals the full-recompute greedy output', async () => {
    expect(greedy).toHaveLength(NEW);
    // 3 of them: the recompute costs a whole forward pass per token (that is why the cache exists).
    expect(await generateFullRecompute(ctx, weights, lora, prompt, { maxNewTokens: 3 })).toEqual(greedy.slice(0, 3));
  });

  it('streams every token with its text; the pieces join to the decoded output; reports tokens/s', async () => {
    const seen: StreamedToken[] = [];
    const r = await generate(ctx, weights, lora, prompt, { maxNewTokens: NEW, decode: (ids) => tok.decode(ids), onToken: (t) => seen.push(t) });
    expect(r.ids).toEqual(greedy);
    expect(seen.map((t) => t.id)).toEqual(greedy);
    expect(seen.map((t) => t.index)).toEqual([...greedy.keys()]);
    // The text continues the prompt: decoded after the prompt's last token, so a first word keeps its leading space.
    const after = (ids: number[]): string => tok.decode([prompt.at(-1)!, ...ids]).slice(tok.decode([prompt.at(-1)!]).length);
    expect(seen.map((t) => t.text).join('')).toBe(after(greedy));
    expect(r.text).toBe(after(greedy));
    expect(r.stopReason).toBe('max-tokens');
    expect(r.promptTokens).toBe(prompt.length);
    expect(r.tokensPerSecond).toBeGreaterThan(0);
    // The text is made without a listener too.
    const quiet = await generate(ctx, weights, lora, prompt, { maxNewTokens: 2, decode: (ids) => tok.decode(ids) });
    expect(quiet.text).toBe(after(greedy.slice(0, 2)));
  });

  it('sampling with a seed is reproducible', async () => {
    const o = { maxNewTokens: 4, temperature: 1.5, topP: 0.95, seed: 11 };
    const a = await generate(ctx, weights, lora, prompt, o);
    const b = await generate(ctx, weights, lora, prompt, o);
    expect(a.ids).toHaveLength(4);
    expect(b.ids).toEqual(a.ids);
  });

  it('stops at </s> (not part of the output) and when asked between tokens', async () => {
    const eos = await generate(ctx, weights, lora, prompt, { maxNewTokens: NEW, eosId: greedy[2] });
    expect(eos.ids).toEqual(greedy.slice(0, 2));
    expect(eos.stopReason).toBe('eos');
    let asked = 0;
    const stopped = await generate(ctx, weights, lora, prompt, { maxNewTokens: NEW, shouldStop: () => ++asked > 3 });
    expect(stopped.ids).toEqual(greedy.slice(0, 3));
    expect(stopped.stopReason).toBe('stopped');
  });

  it('reads a long prompt in parts, reporting each, with the same output; a stop between parts ends it there', async () => {
    const long = [tok.bosId, ...tok.encode('The quick brown fox jumps over the lazy dog, and then it runs far away into the woods.')];
    expect(long.length).toBeGreaterThan(20); // several parts of 8 rows
    const reads: number[] = [];
    const r = await generate(ctx, weights, lora, long, { maxNewTokens: 2, chunk: 8, onPrompt: (read, total) => (expect(total).toBe(long.length), reads.push(read)) });
    expect(reads.length).toBeGreaterThan(2);
    expect(reads.at(-1)).toBe(long.length);
    for (let i = 1; i < reads.length; i++) expect(reads[i]).toBeGreaterThan(reads[i - 1]);
    expect(r.ids).toEqual(await generateFullRecompute(ctx, weights, lora, long, { maxNewTokens: 2 }));
    // Stop asked after the first part: nothing more of the prompt is read, no token is made.
    const seen: number[] = [];
    let stop = false;
    const stopped = await generate(ctx, weights, lora, long, { maxNewTokens: 2, chunk: 8, shouldStop: () => stop, onPrompt: (read) => ((stop = true), seen.push(read)) });
    expect(stopped.stopReason).toBe('stopped');
    expect(stopped.ids).toEqual([]);
    expect(seen).toEqual([reads[0]]);
  });

  it('without the adapter it generates from the base model, and refuses bad settings', async () => {
    const base = await generate(ctx, weights, null, prompt, { maxNewTokens: 2 });
    expect(base.ids).toEqual(await generateFullRecompute(ctx, weights, null, prompt, { maxNewTokens: 2 }));
    await expect(generate(ctx, weights, lora, prompt, { maxNewTokens: 2, topP: 0 })).rejects.toThrow(/top_p/);
    await expect(generate(ctx, weights, lora, prompt, { maxNewTokens: 0 })).rejects.toThrow(FinetuneError);
    await expect(generate(ctx, weights, lora, [], { maxNewTokens: 2 })).rejects.toThrow(/at least one prompt token/);
    // Past the model's positions: said as such (1e9 new tokens used to fail as a GPU buffer too large for the cache).
    const n = prompt.length;
    await expect(generate(ctx, weights, lora, prompt, { maxNewTokens: 1e9, maxPositions: 64 })).rejects.toThrow(
      new RegExp(`the prompt's ${n} tokens leave room for at most ${64 - n + 1} new tokens in this model's 64 positions \\(max_position_embeddings\\), not 1,000,000,000`),
    );
    await expect(generate(ctx, weights, lora, prompt, { maxNewTokens: 1, maxPositions: n - 1 })).rejects.toThrow(/are more than this model's/);
    expect((await generate(ctx, weights, lora, prompt, { maxNewTokens: 2, maxPositions: n + 1 })).ids).toHaveLength(2);
  });
});
