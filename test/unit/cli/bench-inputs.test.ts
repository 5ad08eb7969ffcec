// `bench padding | validation | head` read a real model and dataset, by default the project's demo model and sample
// dataset. Those defaults were paths relative to the working directory, so from any other folder the bench failed
// ("--data: "public/datasets/sample.jsonl" does not exist"), and a wrong --model was reported as the --data error.
// The defaults are now the project's own files wherever the command runs (as the default tokenizer is), and the model
// is checked with the data: each wrong one is named.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchRealInputs } from '../../../src/cli/commands/bench.ts';

describe('the real model and dataset of bench padding, validation and head', () => {
  it('defaults to the project\'s demo model and sample dataset, as absolute paths', () => {
    const r = benchRealInputs({});
    expect(isAbsolute(r.modelDir) && isAbsolute(r.dataPath)).toBe(true);
    expect(r.modelDir).toBe(resolve('public/models/mistral-nano-demo'));
    expect(r.dataPath).toBe(resolve('public/datasets/sample.jsonl'));
    expect(existsSync(r.dataPath)).toBe(true);
    expect(r.model.kind).toBe('directory');
  });

  it('takes the paths given as given (relative to the working directory)', () => {
    const r = benchRealInputs({ model: 'test/fixtures/tiny-mistral', data: 'public/datasets/sample.jsonl' });
    expect(r.modelDir).toBe('test/fixtures/tiny-mistral');
    expect(r.dataPath).toBe('public/datasets/sample.jsonl');
  });

  it('names a wrong --model, and a wrong --data beside it', () => {
    expect(() => benchRealInputs({ model: 'nope' })).toThrow(/^--model "nope": no such directory, and not a Hugging Face id/);
    expect(() => benchRealInputs({ model: 'nope' })).not.toThrow(/--data/);
    expect(() => benchRealInputs({ data: 'nope.jsonl' })).toThrow(/^--data: "nope\.jsonl" does not exist$/);
    expect(() => benchRealInputs({ model: 'nope', data: 'nope.jsonl' })).toThrow(/^--model "nope": no such directory.*; --data: "nope\.jsonl" does not exist$/);
  });

  describe('from another folder', () => {
    let elsewhere = '';
    beforeAll(() => {
      elsewhere = mkdtempSync(join(tmpdir(), 'bench-elsewhere-'));
    });
    afterAll(() => rmSync(elsewhere, { recursive: true, force: true }));
    // Each fails on its wrong path before a GPU is asked for: no GPU run here.
    const bench = (...args: string[]) => spawnSync(process.execPath, [resolve('bin/finetune.mjs'), 'bench', ...args], { cwd: elsewhere, encoding: 'utf8', timeout: 60_000 });

    it('bench padding --model nope names the model, not the default dataset', () => {
      const r = bench('padding', '--model', 'nope');
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^finetune bench: bad-input: --model "nope": no such directory/m);
      expect(r.stderr).not.toMatch(/--data/);
    });

    it('bench validation --data nope.jsonl names the data, not the default model', () => {
      const r = bench('validation', '--data', 'nope.jsonl');
      expect(r.status).toBe(2);
      expect(r.stderr.trim()).toBe('finetune bench: bad-input: --data: "nope.jsonl" does not exist');
    });
  });
});
