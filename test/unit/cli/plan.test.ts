// `finetune plan` reads config.json (and a folder's safetensors headers, never the weights) and prints the planner's
// JSON; it accepts a folder, a Hub id or a URL.
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { modelSpec, nodeDirectory } from '../../../src/cli/node-source.ts';
import { openBaseCheckpoint } from '../../../src/model/checkpoint.ts';
import { writeSafetensors, type TensorToWrite } from '../../../src/model/safetensors.ts';
import { loadTokenizer } from '../../../src/data/tokenizer.ts';
import { samplePromptIds } from '../../../src/data/layout.ts';
import { keepOfflineCopy } from '../../../src/model/offline-copy.ts';
import { readJson } from '../../../src/model/source.ts';
import { startRangeServer } from '../../helpers/range-server.ts';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

describe('finetune plan', () => {
  let server: Server;
  let base = '';
  const requested: string[] = [];
  beforeAll(async () => {
    const config = readFileSync('test/fixtures/mistral-7b-instruct-v0.2/config.json');
    server = createServer((req, res) => {
      requested.push(req.url ?? '');
      if (req.url !== '/m7b/config.json') {
        res.writeHead(404).end();
        return;
      }
      // Range-capable like the Hub: the probe asks for bytes=0-0.
      const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
      if (m) {
        const [a, b] = [Number(m[1]), Math.min(Number(m[2]), config.length - 1)];
        res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${config.length}`, 'content-length': b - a + 1 }).end(config.subarray(a, b + 1));
      } else res.writeHead(200, { 'content-length': config.length }).end(config);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("plans a --validation_prompt's sample: its KV cache by the prompt's tokens, from the tokenizer, or bounded when none is read", async () => {
    const args = ['plan', '--model', 'test/fixtures/mistral-7b-instruct-v0.2', '--peft_method', 'qlora', '--no-gpu', '--validation_prompt', 'Write a haiku about the sea'];
    const c = capture();
    expect(await main(args, c.io)).toBe(0);
    expect(c.err).toEqual([]);
    const plan = JSON.parse(c.out.join('\n'));
    expect(plan.run.sample).toMatchObject({ promptTokensFrom: 'tokenizer' });
    expect(plan.bytes.kvCache).toBe(2 * 32 * plan.run.sample.positions * 1024 * 4);
    const missing = capture();
    expect(await main([...args, '--tokenizer', 'test/fixtures/no-such-tokenizer'], missing.io)).toBe(0);
    expect(missing.err).toEqual([expect.stringMatching(/^note: the validation_prompt's tokens are bounded from its bytes \(--tokenizer: "test\/fixtures\/no-such-tokenizer" does not exist\)$/)]);
    const bounded = JSON.parse(missing.out.join('\n'));
    expect(bounded.run.sample.promptTokensFrom).toBe('bound');
    expect(bounded.run.sample.promptTokens).toBeGreaterThanOrEqual(plan.run.sample.promptTokens);
  });

  it("counts a v0.3-shaped model's validation_prompt with its own tokenizer.model, never with the project's (another vocabulary)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-plan-v03-'));
    try {
      const config = JSON.parse(readFileSync('test/fixtures/mistral-7b-instruct-v0.2/config.json', 'utf8'));
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, vocab_size: 32768 }));
      const prompt = 'Write a haiku about the sea';
      const args = ['plan', '--model', dir, '--peft_method', 'qlora', '--no-gpu', '--validation_prompt', prompt];
      // No tokenizer of its own: bounded, saying why (the project's tokenizer has 32,000 pieces), not counted with it.
      const none = capture();
      expect(await main(args, none.io)).toBe(0);
      expect(none.err).toEqual([expect.stringMatching(/^note: the validation_prompt's tokens are bounded from its bytes \(the model's vocabulary has 32768 tokens, the project's tokenizer \(public\/tokenizer\) 32000, and the model's files hold no tokenizer\.model of its own/)]);
      expect(JSON.parse(none.out.join('\n')).run.sample.promptTokensFrom).toBe('bound');
      // With its own beside config.json: counted with it, as train reads the model, and said.
      writeFileSync(join(dir, 'tokenizer.model'), readFileSync('test/fixtures/mistral-tokenizer-v3/tokenizer.model'));
      const own = capture();
      expect(await main(args, own.io)).toBe(0);
      expect(own.err).toEqual([expect.stringMatching(/^note: the model's vocabulary has 32,768 tokens, not the project's tokenizer's 32,000: reading it with the model's own tokenizer/)]);
      const v3 = await loadTokenizer(new Uint8Array(readFileSync('test/fixtures/mistral-tokenizer-v3/tokenizer.model')));
      const plan = JSON.parse(own.out.join('\n'));
      expect(plan.run.sample).toMatchObject({ promptTokensFrom: 'tokenizer', promptTokens: samplePromptIds(v3, prompt, 'replicate').length });
      v3.dispose();
      // --tokenizer naming one of another vocabulary: bounded, saying so.
      const other = capture();
      expect(await main([...args, '--tokenizer', 'test/fixtures/mistral-tokenizer'], other.io)).toBe(0);
      expect(other.err).toEqual([expect.stringMatching(/^note: the validation_prompt's tokens are bounded from its bytes \(the model's vocabulary has 32768 tokens; the tokenizer \(test\/fixtures\/mistral-tokenizer\) has 32000/)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("plans a URL model loaded before from its offline copy in --cache-dir when its server is gone, and says so", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'finetune-plan-offline-'));
    const server = await startRangeServer('test/fixtures/mistral-7b-instruct-v0.2');
    try {
      const args = ['plan', '--model', server.base, '--cache-dir', cacheDir, '--peft_method', 'qlora', '--no-gpu'];
      const online = capture();
      expect(await main(args, online.io)).toBe(0);
      expect(online.err).toEqual([]);
      // plan writes nothing there: a load (train, generate) keeps the copy, as here.
      expect(readdirSync(cacheDir)).toEqual([]);
      const spec = modelSpec(server.base, { cacheDir });
      await readJson(await spec.files.open('config.json'));
      expect(await keepOfflineCopy(spec.files)).toEqual([]);
      await server.close();
      const offline = capture();
      expect(await main(args, offline.io)).toBe(0);
      // (A keep-alive connection the closed server dropped may be tried again first, said in a note of its own.)
      expect(offline.err.filter((l) => !/ Trying again in \d+ s \(retry \d of 5\)\.$/.test(l))).toEqual([expect.stringMatching(/^note: offline: the server could not be reached \(config\.json: .*\); config\.json read from the offline copy of /)]);
      expect(JSON.parse(offline.out.join('\n'))).toEqual(JSON.parse(online.out.join('\n')));
      // Another cache folder holds no copy: the server's failure, as before.
      const elsewhere = mkdtempSync(join(tmpdir(), 'finetune-plan-offline-'));
      const none = capture();
      expect(await main([...args.slice(0, 3), '--cache-dir', elsewhere, '--no-gpu'], none.io)).not.toBe(0);
      expect(none.err.join('\n')).toMatch(/config\.json: .*ECONNREFUSED/);
      rmSync(elsewhere, { recursive: true, force: true });
    } finally {
      await server.close().catch(() => undefined);
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  it('prints the 7B plan from a folder: NF4 double-quant base ≈ 4.1 GB, a verdict against the given memory', async () => {
    const c = capture();
    const code = await main(['plan', '--model', 'test/fixtures/mistral-7b-instruct-v0.2', '--peft_method', 'qlora', '--max_seq_len', '2048', '--micro_batch_size', '1', '--train_batch_size', '1', '--gpu-memory', '24', '--no-gpu'], c.io);
    expect(c.err).toEqual([]);
    expect(code).toBe(0);
    const plan = JSON.parse(c.out.join('\n'));
    expect(plan.type).toBe('plan');
    expect(plan.source).toEqual({ kind: 'directory', name: 'mistral-7b-instruct-v0.2' });
    expect(plan.weights.total).toBeGreaterThan(3.9e9);
    expect(plan.weights.total).toBeLessThan(4.4e9);
    expect(plan.verdict).toBe('fits');
    expect(plan.gpu.memoryBytes).toBe(24 * 1024 ** 3);
  });

  it('reads only config.json over http(s): nothing else is fetched', async () => {
    const c = capture();
    requested.length = 0;
    expect(await main(['plan', '--model', `${base}/m7b/`, '--gpu-memory', '2', '--no-gpu'], c.io)).toBe(0);
    const plan = JSON.parse(c.out.join('\n'));
    expect(plan.source.kind).toBe('url');
    expect(plan.verdict).toBe('does-not-fit');
    expect(requested.every((u) => u === '/m7b/config.json')).toBe(true);
    expect(requested.length).toBeGreaterThan(0);
  });

  it('refuses a model that is neither a folder, a Hub id nor a URL, and a bad --gpu-memory', async () => {
    const c = capture();
    expect(await main(['plan', '--model', 'no such thing', '--no-gpu'], c.io)).toBe(2);
    expect(c.err.join('\n')).toMatch(/not a Hugging Face id \(owner\/name\) or an http\(s\) URL/);
    const d = capture();
    expect(await main(['plan', '--model', 'test/fixtures/tiny-mistral', '--gpu-memory', 'lots', '--no-gpu'], d.io)).toBe(2);
    expect(d.err.join('\n')).toMatch(/--gpu-memory must be a positive number/);
    const huge = capture();
    expect(await main(['plan', '--model', 'test/fixtures/tiny-mistral', '--gpu-memory', '1e308', '--no-gpu'], huge.io)).toBe(2);
    expect(huge.err.join('\n')).toContain('--gpu-memory is in GB: "1e308" is more than any GPU has');
  });

  it('says when --seq-len is longer than any sequence of the settings, and plans at that bound', async () => {
    const c = capture();
    expect(await main(['plan', '--model', 'test/fixtures/tiny-mistral', '--seq-len', '8192', '--max_seq_len', '512', '--no-gpu'], c.io)).toBe(0);
    expect(c.err).toEqual(['note: --seq-len 8192 is longer than any sequence of these settings (max_seq_len: 512 tokens): planned for 512 (give --max_seq_len 8192 to plan longer ones)']);
    expect(JSON.parse(c.out.join('\n')).run.seqLen).toBe(512);
    // Past what max_seq_len allows at all, the advice names the most it allows instead of a value it refuses.
    const far = capture();
    expect(await main(['plan', '--model', 'test/fixtures/tiny-mistral', '--seq-len', '100000', '--no-gpu'], far.io)).toBe(0);
    expect(far.err).toEqual(['note: --seq-len 100000 is longer than any sequence of these settings (max_seq_len: 4096 tokens): planned for 4096 (max_seq_len allows at most 32768: give --max_seq_len 32768 to plan the longest)']);
  });

  it('plans a folder from the dtype its safetensors store, saying when config.json says otherwise', async () => {
    // tiny-mistral stored in float32 under a config.json that says bfloat16: planned from config.json, the stored
    // weights counted half their size (a run that does not fit a GPU was said to fit it).
    const dir = mkdtempSync(join(tmpdir(), 'finetune-plan-f32-'));
    try {
      const ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
      const tensors: TensorToWrite[] = [];
      for (const name of ckpt.tensorNames) tensors.push({ name, dtype: 'F32', shape: ckpt.info(name).shape, data: await ckpt.readFloat32(name) });
      writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(tensors, { format: 'pt' }));
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...ckpt.configJson, dtype: undefined, torch_dtype: 'bfloat16' }));
      const args = ['--peft_method', 'lora', '--max_seq_len', '64', '--no-gpu'];
      const f32 = capture();
      expect(await main(['plan', '--model', dir, ...args], f32.io)).toBe(0);
      const plan = JSON.parse(f32.out.join('\n'));
      expect(plan.model.dtype).toBe('float32');
      expect(plan.model.dtypeFrom).toBe('the safetensors headers (config.json says bfloat16)');
      expect(plan.warnings).toContain('config.json says the weights are bfloat16; the safetensors store the weight matrices as float32: planned as stored');
      // The same files as stored in bf16 plan half the embeddings.
      const bf16 = capture();
      expect(await main(['plan', '--model', 'test/fixtures/tiny-mistral', ...args], bf16.io)).toBe(0);
      const asConfig = JSON.parse(bf16.out.join('\n'));
      expect(asConfig.model.dtypeFrom).toBe('the safetensors headers');
      expect(plan.weights.embeddings).toBeGreaterThan(1.9 * asConfig.weights.embeddings);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says that a plan from config.json alone (a folder without weights, a URL, the Hub) has not read the safetensors', async () => {
    for (const model of ['test/fixtures/mistral-7b-instruct-v0.2', `${base}/m7b/`]) {
      const c = capture();
      expect(await main(['plan', '--model', model, '--no-gpu'], c.io)).toBe(0);
      expect(JSON.parse(c.out.join('\n')).model.dtypeFrom).toMatch(/^config\.json's torch_dtype \(safetensors headers not read: (there is no \.safetensors file beside config\.json|only config\.json is downloaded before a load); a load plans from the dtype they store, and says when it differs\)$/);
    }
  });

  it('tells the three forms of --model apart', () => {
    expect(modelSpec('test/fixtures/tiny-mistral').kind).toBe('directory');
    expect(modelSpec('mistralai/Mistral-7B-Instruct-v0.2')).toMatchObject({ kind: 'hub', label: 'mistralai/Mistral-7B-Instruct-v0.2' });
    expect(modelSpec('https://example.com/models/tiny/?sig=secret')).toMatchObject({ kind: 'url', label: 'tiny' });
    expect(() => modelSpec('test/fixtures/tiny-mistral/config.json')).toThrow(/is a file/);
  });
});
