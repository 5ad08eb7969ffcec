// What the trainer's own tests start from: tiny-mistral with NF4 weights on the test adapter, a fresh seeded adapter of
// the hyperparameters' shape, and a JSONL of six short code rows (a few tokens each: SwiftShader is slow).
import { readFileSync } from 'node:fs';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { targetModules } from '../../src/config/index.ts';
import type { Hyperparams } from '../../src/config/hyperparams.ts';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { loadMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { mulberry32 } from '../../src/engine/reference/common.ts';
import { openBaseCheckpoint, type BaseCheckpoint } from '../../src/model/checkpoint.ts';
import { createAdapter, type LoraAdapter } from '../../src/model/lora-adapter.ts';
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
export const CODE_JSONL = ROWS.map(([prompt, completion]) => JSON.stringify({ prompt, completion })).join('\n');

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
