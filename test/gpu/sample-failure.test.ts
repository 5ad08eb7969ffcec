// A validation_prompt sample that cannot be written (the model's logits not finite, which sampling refuses rather
// than answer <unk>) is said, and the run goes on: a sample is a view of the adapter, not part of its training.
// The logits are poisoned where sampling reads them (the real refusal, src/run/sampling.ts checkLogits), only while
// the test asks, so the training steps and the validation loss are the real ones.
import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { FinetuneSession, type TrainEvent } from '../../src/run/session.ts';
import { gpuContext } from './context.ts';

const poison = { on: false };

vi.mock('../../src/run/sampling.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/run/sampling.ts')>();
  return {
    ...real,
    pickToken: (logits: ArrayLike<number>, ...rest: Parameters<typeof real.pickToken> extends [unknown, ...infer R] ? R : never) => {
      if (!poison.on) return real.pickToken(logits, ...rest);
      const bad = Float32Array.from(logits as ArrayLike<number>);
      bad[7] = NaN;
      return real.pickToken(bad, ...rest);
    },
  };
});

const JSONL = ['def add(a, b): return a + b', 'x = [1, 2, 3]', 'print("hi")', 'y = 2'].map((text) => JSON.stringify({ text })).join('\n');
const HP = { num_train_epochs: 1, train_batch_size: 1, micro_batch_size: 1, num_validation_samples: 1, lora_rank: 2, lora_alpha: 4, max_seq_len: 16, eval_steps: 1, validation_prompt: 'def', peft_method: 'lora' };

describe('a validation_prompt sample that cannot be written', () => {
  it('is said in a status line, writes no sample, and the run trains to its end', async () => {
    const ctx = await gpuContext();
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'none');
    const events: TrainEvent[] = [];
    poison.on = true;
    try {
      const r = await session.train(HP, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => events.push(e), { sampleMaxTokens: 2 });
      expect(r).toMatchObject({ steps: 3, stopped: false });
    } finally {
      poison.on = false;
    }
    expect(events.filter((e) => e.type === 'sample')).toEqual([]);
    const said = events.filter((e) => e.type === 'status' && e.text.startsWith('no sample'));
    expect(said.length).toBeGreaterThan(0);
    expect((said[0] as { text: string }).text).toMatch(/^no sample for the validation prompt after step 1: the model's logits hold NaN at token 7 .*; training goes on$/);
    expect(events.filter((e) => e.type === 'eval').length).toBeGreaterThan(0);
  });
});
