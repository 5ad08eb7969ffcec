// `finetune generate` as a user runs it: the text it streams to stdout is the greedy continuation the library makes
// (tiny-mistral + tiny-adapter), the summary on stderr says how it ended, and bad flags are usage errors (exit 2).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { destroyLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { destroyMistralWeights, loadMistralWeights } from '../../src/engine/mistral/weights.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { readAdapter } from '../../src/model/lora-adapter.ts';
import { generate } from '../../src/run/generate.ts';
import { gpuContext } from './context.ts';

const run = promisify(execFile);
const PROMPT = 'def add(';

describe('finetune generate', () => {
  it('streams the greedy continuation to stdout and a summary to stderr', async () => {
    const { stdout, stderr } = await run(
      'node',
      ['bin/finetune.mjs', 'generate', '--model', 'test/fixtures/tiny-mistral', '--adapter', 'test/fixtures/tiny-adapter', '--prompt', PROMPT, '--max-tokens', '3'],
      { timeout: 300_000 },
    );
    const summary = JSON.parse(stderr.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!);
    expect(summary).toMatchObject({ tokens: 3, stopReason: 'max-tokens', adapter: true });

    const ctx = await gpuContext();
    const ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
    const weights = await loadMistralWeights(ctx, ckpt, { quantization: 'none' });
    const lora = uploadLora(ctx, weights.dims, await readAdapter(nodeDirectory('test/fixtures/tiny-adapter'), { base: ckpt.config }));
    const tok = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    try {
      const r = await generate(ctx, weights, lora, [tok.bosId, ...tok.encode(PROMPT)], { maxNewTokens: 3, eosId: tok.eosId, decode: (ids) => tok.decode(ids) });
      expect(stdout).toBe(`${r.text}\n`);
    } finally {
      destroyLora(ctx, lora);
      destroyMistralWeights(ctx, weights);
    }
  });

  it('answers a missing prompt or a bad number with its usage and exit code 2', async () => {
    for (const args of [['--model', 'test/fixtures/tiny-mistral'], ['--model', 'test/fixtures/tiny-mistral', '--prompt', 'a', '--top-p', 'much']]) {
      const e = await run('node', ['bin/finetune.mjs', 'generate', ...args], { timeout: 60_000 }).then(
        () => null,
        (err: { code: number; stderr: string }) => err,
      );
      expect(e?.code).toBe(2);
      expect(e?.stderr).toMatch(/--prompt is required|--top-p must be a number/);
      expect(e?.stderr).toContain('finetune generate --model');
    }
  });
});
