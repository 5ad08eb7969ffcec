// A load and a run on one session, asked for together (the worker takes both requests; the page disables one while
// the other goes, a script or a second page does not): one of them is refused with a message, and the other finishes
// on the model it started with. Before, a load that finished under a run freed the weights the run was using.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { FinetuneSession } from '../../src/run/session.ts';
import { gpuContext } from './context.ts';

const JSONL = ['def add(a, b): return a + b', 'x = [1, 2, 3]', 'print("hi")'].map((text) => JSON.stringify({ text })).join('\n');
const HP = { num_train_epochs: 1, train_batch_size: 1, micro_batch_size: 1, num_validation_samples: 1, run_validation: false, lora_rank: 2, lora_alpha: 4, max_seq_len: 16, peft_method: 'lora' };
const MODEL = 'test/fixtures/tiny-mistral';

describe('a load and a run asked for together', () => {
  let ctx: GpuContext;
  let session: FinetuneSession;
  beforeAll(async () => {
    ctx = await gpuContext();
    session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    await session.loadModel(nodeDirectory(MODEL), 'tiny-mistral', 'none');
  });

  const files = () => ({ train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null });

  it('a run asked for while a model loads is refused; the load finishes', async () => {
    const load = session.loadModel(nodeDirectory(MODEL), 'tiny-mistral again', 'none');
    await expect(session.train(HP, files(), () => {})).rejects.toThrow('a model is loading: start the run once it has loaded');
    await load;
    expect(session.modelName).toBe('tiny-mistral again');
  });

  it('a load asked for as a run starts is refused, and the run trains to its end on its model', async () => {
    const model = session.model;
    const steps: number[] = [];
    const run = session.train(HP, files(), (e) => {
      if (e.type === 'step') steps.push(e.step);
    });
    const load = session.loadModel(nodeDirectory(MODEL), 'a third', 'none');
    await expect(load).rejects.toThrow(/a training run started while the model loaded|stop the training run before loading another model/);
    expect(await run).toMatchObject({ steps: 3, stopped: false });
    expect(steps).toEqual([1, 2, 3]);
    expect(session.model).toBe(model);
    expect(session.modelName).toBe('tiny-mistral again');
    // And nothing of the refused load stayed on the GPU: a second load of the same model takes what the first took.
    const before = ctx.ledger.snapshot().byCategory.weights.currentBytes;
    await session.loadModel(nodeDirectory(MODEL), 'a fourth', 'none');
    expect(ctx.ledger.snapshot().byCategory.weights.currentBytes).toBe(before);
  });
});
