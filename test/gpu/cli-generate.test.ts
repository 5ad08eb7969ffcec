// `finetune generate` as a user runs it: the text it streams to stdout is the greedy continuation the library makes
// (tiny-mistral + tiny-adapter), the summary on stderr says how it ended, and bad flags are usage errors (exit 2).
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { destroyLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { adapterZip } from '../../src/export/bundle.ts';
import { destroyMistralWeights, loadMistralWeights } from '../../src/engine/mistral/weights.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { readAdapter } from '../../src/model/lora-adapter.ts';
import { generate } from '../../src/run/generate.ts';
import { wideVocabModel } from '../helpers/wide-vocab-model.ts';
import { gpuContext } from './context.ts';

const run = promisify(execFile);
const PROMPT = 'def add(';
// Generate reads and fills the weight cache in ~/.cache/finetune by default: not the home of whoever runs the tests.
process.env.XDG_CACHE_HOME = mkdtempSync(join(tmpdir(), 'finetune-generate-cache-'));

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

  it('reads the weights from the weight cache the second time, and writes the same text', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'finetune-generate-own-cache-'));
    const once = async () => {
      const { stdout, stderr } = await run('node', ['bin/finetune.mjs', 'generate', '--model', 'test/fixtures/tiny-mistral', '--prompt', PROMPT, '--max-tokens', '3', '--quant', 'nf4', '--cache-dir', cacheDir], { timeout: 300_000 });
      return { stdout, stderr, summary: JSON.parse(stderr.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!) as { fromCache: boolean } };
    };
    const first = await once();
    expect(first.summary.fromCache).toBe(false);
    // The load's progress on stderr, as train prints it: reading the folder, then writing the cache.
    expect(first.stderr).toMatch(/^loading tiny-mistral: reading · \d+ \/ \d+ tensors · /m);
    expect(first.stderr).toMatch(/^loading tiny-mistral: caching · /m);
    expect(readdirSync(cacheDir).filter((n) => /^weights-[0-9a-f]{40}\.bin$/.test(n))).toHaveLength(1);
    const second = await once();
    expect(second.summary.fromCache).toBe(true);
    expect(second.stderr).toMatch(/^loading tiny-mistral: loading from cache · /m);
    expect(second.stdout).toBe(first.stdout);
  });

  it("reports the reading of a long prompt on stderr", async () => {
    const { stderr } = await run(
      'node',
      ['bin/finetune.mjs', 'generate', '--model', 'test/fixtures/tiny-mistral', '--prompt', 'x = 1\n'.repeat(40), '--max-tokens', '1'],
      { timeout: 300_000 },
    );
    const summary = JSON.parse(stderr.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!);
    expect(summary.promptTokens).toBeGreaterThan(128); // more than a part on any adapter (8 rows on a software one, 128 on a GPU)
    expect(stderr).toMatch(new RegExp(`^reading the prompt: \\d+ of ${summary.promptTokens} tokens$`, 'm'));
  });

  it("takes the adapter as the page downloads it (one zip with the PEFT pair, adapter.gguf and a README): the same text as from the folder", async () => {
    const ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
    const adapter = await readAdapter(nodeDirectory('test/fixtures/tiny-adapter'), { base: ckpt.config });
    const zip = adapterZip(adapter, ckpt.config, { name: 'tiny-mistral', step: 3 });
    const path = join(mkdtempSync(join(tmpdir(), 'finetune-generate-zip-')), zip.fileName);
    writeFileSync(path, zip.bytes);
    const generated = async (from: string) => {
      const args = ['bin/finetune.mjs', 'generate', '--model', 'test/fixtures/tiny-mistral', '--adapter', from, '--prompt', PROMPT, '--max-tokens', '3'];
      const { stdout, stderr } = await run('node', args, { timeout: 300_000 });
      return { stdout, summary: JSON.parse(stderr.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!) };
    };
    const fromZip = await generated(path);
    expect(fromZip.summary).toMatchObject({ tokens: 3, adapter: true });
    expect(fromZip.stdout).toBe((await generated('test/fixtures/tiny-adapter')).stdout);
  });

  it('stops on Ctrl-C while it reads a long prompt, says so, and exits 130 (it exited 0, as if the answer were whole)', async () => {
    const child = spawn('node', ['bin/finetune.mjs', 'generate', '--model', 'test/fixtures/tiny-mistral', '--prompt', 'def add(a, b): return a + b\n'.repeat(700), '--max-tokens', '3', '--no-cache']);
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      // The first part of the prompt has been read (the note comes after each part, the first at once).
      if (!sent && /^reading the prompt: /m.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(sent).toBe(true);
    expect(code).toBe(130);
    expect(JSON.parse(stderr.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!)).toMatchObject({ tokens: 0, stopReason: 'stopped' });
  }, 300_000);

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

  // Mistral-7B-Instruct-v0.3's way: its tokenizer.model beside the weights is read without --tokenizer, and --layout
  // instruct lays the prompt out between its [INST] and [/INST] control ids, as a run lays out its rows' prompts.
  it("reads a model of another vocabulary with its own tokenizer.model, and lays the prompt out with --layout", async () => {
    const dir = await wideVocabModel(32768);
    copyFileSync('test/fixtures/mistral-tokenizer-v3/tokenizer.model', join(dir, 'tokenizer.model'));
    try {
      const v3 = await loadTokenizer(new Uint8Array(readFileSync(join(dir, 'tokenizer.model'))));
      const { stderr } = await run('node', ['bin/finetune.mjs', 'generate', '--model', dir, '--prompt', PROMPT, '--max-tokens', '1', '--layout', 'instruct', '--no-cache'], { timeout: 300_000 });
      expect(stderr).toContain("note: the model's vocabulary has 32,768 tokens, not the project's tokenizer's 32,000: reading it with the model's own tokenizer");
      const summary = JSON.parse(stderr.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!);
      expect(summary.promptTokens).toBe(1 + 1 + v3.encode(PROMPT).length + 1);
      // Written out, the tags cannot be this tokenizer's control ids: refused before the GPU (no SwiftShader note).
      const refused = await run('node', ['bin/finetune.mjs', 'generate', '--model', dir, '--prompt', `[INST] ${PROMPT} [/INST]`, '--layout', 'instruct', '--no-cache'], { timeout: 120_000 }).then(
        () => null,
        (e: { code: number; stderr: string }) => e,
      );
      expect(refused?.code).toBe(2);
      expect(refused?.stderr).toMatch(/--prompt holds "\[INST\]" written out: with this tokenizer \[INST\] and \[\/INST\] are control tokens \(ids 3 and 4/);
      expect(refused?.stderr).not.toMatch(/SwiftShader/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a model whose vocabulary is not the tokenizer's before the GPU or the weights, saying to give --tokenizer", async () => {
    const dir = await wideVocabModel(32768);
    const failed = await run('node', ['bin/finetune.mjs', 'generate', '--model', dir, '--prompt', PROMPT, '--max-tokens', '1', '--no-cache'], { timeout: 300_000 })
      .then(
        () => null,
        (e: { code: number; stderr: string }) => e,
      )
      .finally(() => rmSync(dir, { recursive: true, force: true }));
    expect(failed?.code).toBe(2); // bad input
    // One line: the GPU was not asked for (on a software adapter its note would come first).
    expect(failed?.stderr.trim().split('\n')).toHaveLength(1);
    expect(failed?.stderr).toMatch(/^finetune generate: bad-input: the model's vocabulary has 32768 tokens, the project's tokenizer \(public\/tokenizer\) 32000, and the model's files hold no tokenizer\.model of its own: .* or give the command line --tokenizer DIR, a folder with it\n$/);
  });
});
