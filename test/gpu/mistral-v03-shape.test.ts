// Mistral-7B-Instruct-v0.3's setting, on tiny-mistral's weights: a 32,768-token vocabulary (wideVocabModel) with its
// own tokenizer.model beside the weights (mistral-common's v3 model, test/fixtures/mistral-tokenizer-v3), loaded by a
// session made with the app's v1 tokenizer, as the page's is; and the instruct layout, whose [INST] and [/INST] are
// that tokenizer's control ids 3 and 4 (test/unit/data/layout-mistral-common.test.ts checks the ids against
// mistral-common's). The run trains on those ids, validates, and writes its sample after the tags.
import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { layoutIds } from '../../src/data/layout.ts';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { FinetuneSession, type TrainEvent } from '../../src/run/session.ts';
import { wideVocabModel } from '../helpers/wide-vocab-model.ts';
import { gpuContext } from './context.ts';

const ROWS = [
  { prompt: 'What is 2 + 2?', completion: '4' },
  { prompt: 'Name a colour.', completion: 'Blue.' },
  { prompt: 'Say hi.', completion: 'Hi!' },
  { prompt: 'Count to three.', completion: '1, 2, 3' },
];
const JSONL = ROWS.map((r) => JSON.stringify(r)).join('\n');

describe("a model of Mistral-7B-Instruct-v0.3's vocabulary with its own tokenizer", () => {
  let ctx: GpuContext;
  let model: string;
  let appTokenizer: Tokenizer;
  beforeAll(async () => {
    ctx = await gpuContext();
    model = await wideVocabModel(32768);
    copyFileSync('test/fixtures/mistral-tokenizer-v3/tokenizer.model', join(model, 'tokenizer.model'));
    appTokenizer = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')), "the app's tokenizer");
  });
  afterAll(() => rmSync(model, { recursive: true, force: true }));

  it('reads with the tokenizer.model beside the weights, trains the instruct layout on the control tags and samples after them', async () => {
    const session = new FinetuneSession(ctx, appTokenizer, null);
    const info = await session.loadModel(nodeDirectory(model), 'v03-shaped', 'nf4-double');
    expect(info.vocab).toBe(32768);
    expect(info.tokenizer).toMatchObject({ own: true, vocab: 32768, name: expect.stringContaining('tokenizer.model') });
    const tokenizer = session.tokenizer;
    expect(tokenizer.vocabSize).toBe(32768);
    const events: TrainEvent[] = [];
    const hp = { num_train_epochs: 1, train_batch_size: 1, micro_batch_size: 1, num_validation_samples: 1, lora_rank: 2, lora_alpha: 4, learning_rate: 1e-3, max_seq_len: 32, layout: 'instruct', validation_prompt: 'Say hi.', save_steps: 0, peft_method: 'qlora' };
    const result = await session.train(hp, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => events.push(e));
    expect(result.steps).toBe(3);
    // The plan counts the rows' tokens as laid out with the tags' ids: 3 training rows, the last one held out.
    const plan = events.find((e) => e.type === 'plan') as Extract<TrainEvent, { type: 'plan' }>;
    const laidOut = ROWS.slice(0, 3).map((r) => layoutIds(tokenizer, { line: 1, shape: 'prompt_completion', ...r }, 'instruct'));
    for (const l of laidOut) expect(l.ids.slice(0, 2)).toEqual([1, 3]);
    expect(plan.stats.tokensPerEpoch).toBe(laidOut.reduce((n, l) => n + l.ids.length, 0));
    const steps = events.filter((e) => e.type === 'step') as Extract<TrainEvent, { type: 'step' }>[];
    expect(steps.map((s) => Number.isFinite(s.loss))).toEqual([true, true, true]);
    // A model that has not learnt the new rows (zero embeddings, zero head rows) starts near ln(32768) = 10.4.
    expect(steps[0].loss).toBeGreaterThan(9);
    expect(steps[0].loss).toBeLessThan(12);
    expect(events.some((e) => e.type === 'eval')).toBe(true);
    expect(events.some((e) => e.type === 'sample')).toBe(true);
    // Another model of the app's vocabulary reads with the app's tokenizer again.
    const back = await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    expect(back.tokenizer).toMatchObject({ own: false, vocab: 32000 });
    expect(session.tokenizer).toBe(appTokenizer);
    session.unloadModel();
  });
});
