// What the trainer's own tests start from: tiny-mistral with NF4 weights on the test adapter, a fresh seeded adapter of
// the hyperparameters' shape, and a JSONL of six short code rows (a few tokens each: SwiftShader is slow); withRun
// makes one run's data, adapter and runner from them and frees them after.
import { readFileSync } from 'node:fs';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { targetModules } from '../../src/config/index.ts';
import type { Hyperparams } from '../../src/config/hyperparams.ts';
import type { TrainingData } from '../../src/data/batches.ts';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.ts';
import { loadRunData } from '../../src/data/training-data.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { destroyLora, uploadLora, type GpuLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { loadMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { mulberry32 } from '../../src/engine/reference/common.ts';
import { openBaseCheckpoint, type BaseCheckpoint } from '../../src/model/checkpoint.ts';
import { createAdapter, type LoraAdapter } from '../../src/model/lora-adapter.ts';
import { runnerShape } from '../../src/run/trainer.ts';
import { gpuContext } from '../gpu/context.ts';

const ROWS = [
  ['def add(a, b):', '    return a + b'],
  ['def sub(a, b):', '    return a - b'],
  ['class Stack:', '    def __init__(self):\n        self.items = []'],
  ['def is_even(n):', '    return n % 2 == 0'],
  ['# reverse a list', 'xs[::-1]'],
  ['def first(xs):', '    return xs[0]'],
];

/** Six prompt/completion rows, one JSON object per line. */
const CODE_JSONL = ROWS.map(([prompt, completion]) => JSON.stringify({ prompt, completion })).join('\n');

export interface TinyTrainer {
  ctx: GpuContext;
  ckpt: BaseCheckpoint;
  weights: MistralWeights;
  tokenizer: Tokenizer;
  /** A new adapter as a run of `hp` starts one (seeded by hp.seed). */
  start: LoraAdapter;
}

export async function tinyTrainer(hp: Hyperparams): Promise<TinyTrainer> {
  const ctx = await gpuContext();
  const ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
  const weights = await loadMistralWeights(ctx, ckpt, { quantization: 'nf4' });
  const tokenizer = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
  const start = createAdapter(ckpt.config, { r: hp.lora_rank, alpha: hp.lora_alpha, dropout: hp.lora_dropout, targetModules: targetModules(hp), random: mulberry32(hp.seed) });
  return { ctx, ckpt, weights, tokenizer, start };
}

/**
 * One run's pieces for `fn`: the plan of CODE_JSONL under `hp`, `t.start` uploaded afresh, and a runner sized for the
 * plan; the adapter's and the runner's GPU buffers are freed whatever happens.
 */
export async function withRun<T>(t: TinyTrainer, hp: Hyperparams, fn: (r: { data: TrainingData; lora: GpuLora; runner: MistralRunner }) => Promise<T>): Promise<T> {
  const { data } = await loadRunData({ train: new Blob([CODE_JSONL]).stream() }, t.tokenizer, hp);
  const lora = uploadLora(t.ctx, t.weights.dims, t.start);
  const runner = new MistralRunner(t.ctx, t.weights, lora, { ...runnerShape(data), seed: hp.seed });
  try {
    return await fn({ data, lora, runner });
  } finally {
    runner.destroy();
    destroyLora(t.ctx, lora);
  }
}
