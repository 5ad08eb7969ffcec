// A model with a sliding attention window (Mistral-7B v0.1 and the models fine-tuned from it: sliding_window 4096 in
// a 32,768-position config) is trained and sampled exactly while no sequence is longer than its window, and refused
// past it, naming the window: tiny-mistral with a window of 16 against the same weights without one.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { FinetuneSession, type TrainEvent } from '../../src/run/session.ts';
import { gpuContext } from './context.ts';

const WINDOW = 16;
const ROWS = ['def add(a, b):\n    return a + b', 'def sub(a, b):\n    return a - b', 'x = [1, 2, 3]', 'print("hi")'];
const JSONL = ROWS.map((text) => JSON.stringify({ text })).join('\n');
const HP = { num_train_epochs: 1, train_batch_size: 2, micro_batch_size: 1, num_validation_samples: 1, lora_rank: 2, lora_alpha: 4, learning_rate: 1e-3, max_seq_len: WINDOW, save_steps: 0, peft_method: 'qlora', eval_on_start: true };
const files = { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null };

describe('a model with a sliding attention window', () => {
  let ctx: GpuContext;
  let windowed: string;
  beforeAll(async () => {
    ctx = await gpuContext();
    windowed = mkdtempSync(join(tmpdir(), 'windowed-'));
    cpSync('test/fixtures/tiny-mistral', windowed, { recursive: true });
    const config = JSON.parse(readFileSync(join(windowed, 'config.json'), 'utf8'));
    writeFileSync(join(windowed, 'config.json'), JSON.stringify({ ...config, sliding_window: WINDOW }));
  });
  afterAll(() => rmSync(windowed, { recursive: true, force: true }));

  const tokenizer = async () => loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
  const trainLosses = async (session: FinetuneSession, hp: Record<string, unknown>): Promise<number[]> => {
    const events: TrainEvent[] = [];
    await session.train(hp, files, (e) => events.push(e));
    return events.flatMap((e) => (e.type === 'step' ? [e.loss] : e.type === 'eval' ? [e.valLoss] : []));
  };

  it('trains the same numbers as the model without a window while every sequence fits in it', async () => {
    const plain = new FinetuneSession(ctx, await tokenizer(), null);
    await plain.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    const expected = await trainLosses(plain, HP);
    plain.unloadModel();

    const session = new FinetuneSession(ctx, await tokenizer(), null);
    await session.loadModel(nodeDirectory(windowed), 'windowed', 'nf4-double');
    const losses = await trainLosses(session, HP);
    expect(losses.length).toBeGreaterThanOrEqual(3); // the validation before training, the steps, the last validation
    expect(losses).toEqual(expected);
    session.unloadModel();
  });

  it('refuses a max_seq_len longer than the window before any step, and samples only inside it', async () => {
    const session = new FinetuneSession(ctx, await tokenizer(), null);
    await session.loadModel(nodeDirectory(windowed), 'windowed', 'nf4-double');
    const events: TrainEvent[] = [];
    await expect(session.train({ ...HP, max_seq_len: WINDOW + 1 }, files, (e) => events.push(e))).rejects.toThrow(
      `max_seq_len ${WINDOW + 1} is longer than this model's attention window of ${WINDOW} tokens (sliding_window in its config.json): a token attends to at most the ${WINDOW} tokens ending at it there, and this engine computes attention over whole sequences, the same numbers only while no sequence is longer than the window: set max_seq_len to ${WINDOW} or less`,
    );
    expect(events.filter((e) => e.type === 'step')).toEqual([]);
    await expect(session.estimate({ ...HP, max_seq_len: WINDOW + 1 }, files.train, null)).rejects.toThrow(/^max_seq_len 17 is longer than this model's attention window/);
    // The prompt "<s> def" is 2 tokens: 15 new ones fill the window's 16 positions (the last is never fed back), 16 do not.
    expect((await session.generateStream('def', { maxNewTokens: WINDOW - 1 }, () => {})).ids.length).toBeGreaterThan(0);
    await expect(session.generateStream('def', { maxNewTokens: WINDOW }, () => {})).rejects.toThrow(
      `the prompt's 2 tokens leave room for at most ${WINDOW - 1} new tokens in this model's attention window of ${WINDOW} positions (sliding_window), not ${WINDOW}`,
    );
    // A validation_prompt whose sample (48 new tokens) cannot fit in the window would end the run at its first
    // validation: refused before the run, with the prompt's tokens counted as the run lays it out.
    await expect(session.train({ ...HP, validation_prompt: 'def' }, files, (e) => events.push(e))).rejects.toThrow(
      `validation_prompt is 2 tokens as the run lays it out: with its sample's 48 new tokens it needs 49 positions, more than this model's attention window of ${WINDOW} positions (sliding_window). Shorten it`,
    );
    expect(events.filter((e) => e.type === 'step')).toEqual([]);
    // The session is still usable: the same run inside the window trains.
    expect((await trainLosses(session, HP)).length).toBeGreaterThan(0);
    session.unloadModel();
  });
});
