// Command-line mistakes end in one clear line (and the command's usage for a malformed command line), exit code 2,
// and never reach the GPU: node-gpu is replaced by a stub that fails the test if any command asks for an adapter.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

vi.mock('../../../src/cli/node-gpu.ts', () => ({
  createNodeContext: () => {
    throw new Error('the GPU was asked for before the arguments were checked');
  },
  findNodeAdapter: () => {
    throw new Error('the GPU was asked for before the arguments were checked');
  },
}));

const { main } = await import('../../../src/cli/main.ts');
const { commands } = await import('../../../src/cli/commands/index.ts');
const { folderRunStore } = await import('../../../src/cli/node-store.ts');
const { RUN_FILE } = await import('../../../src/run/saved-run.ts');
const { nodeDirectory } = await import('../../../src/cli/node-source.ts');
const { adapterZip } = await import('../../../src/export/bundle.ts');
const { parseMistralConfig } = await import('../../../src/model/config.ts');
const { readAdapter } = await import('../../../src/model/lora-adapter.ts');
const { zipSync } = await import('fflate');

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err, all: () => [...out, ...err].join('\n') };
}

const dir = mkdtempSync(join(tmpdir(), 'finetune-args-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const MODEL = 'test/fixtures/tiny-mistral';
const GOOD = 'test/fixtures/data/prompt_completion.jsonl';
const PNG = join(dir, 'photo.png');
// A PNG's signature and IHDR chunk, then bytes that are not UTF-8: what a mistaken file pick delivers.
writeFileSync(PNG, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, ...Array.from({ length: 3000 }, (_, i) => (i * 37 + 0x80) & 0xff)]));

describe('help and version', () => {
  for (const c of commands) {
    for (const flag of ['--help', '-h']) {
      it(`finetune ${c.name} ${flag} prints its usage and exits 0`, async () => {
        const io = capture();
        expect(await main([c.name, flag], io.io)).toBe(0);
        expect(io.out.join('\n')).toBe(c.usage);
        expect(io.err).toEqual([]);
      });
    }
  }

  it('--help after other flags still wins (and a value after -- is not a flag)', async () => {
    const io = capture();
    expect(await main(['train', '--model', MODEL, '--help'], io.io)).toBe(0);
    expect(io.out.join('\n')).toContain('--data FILE');
  });

  it('validate takes its file after --, as every other command takes its words (it said "unknown option --")', async () => {
    const io = capture();
    expect(await main(['validate', '--max_seq_len', '64', '--', GOOD], io.io)).toBe(0);
    expect(JSON.parse(io.out.join('\n'))).toMatchObject({ file: GOOD, max_seq_len: 64 });
    // After --, a word that looks like a flag is a file name, not a flag.
    const dashed = capture();
    expect(await main(['validate', '--', '--max-problems'], dashed.io)).toBe(2);
    expect(dashed.err).toEqual(['finetune validate: bad-input: "--max-problems" does not exist']);
  });

  it("a free-text value that starts with a dash is the value: generate --prompt -h, train --validation_prompt -h (they printed the usage)", async () => {
    const { parseCommandArgs } = await import('../../../src/cli/command.ts');
    const generate = commands.find((c) => c.name === 'generate')!;
    for (const prompt of ['-h', '--help', '- a list item', '-v means?']) {
      expect(parseCommandArgs(['--prompt', prompt, '--model', MODEL], { prompt: { type: 'string' }, model: { type: 'string' } }, false, { valueFlags: generate.valueFlags }).values.prompt).toBe(prompt);
      const io = capture();
      // Past the arguments and the model's files, to the GPU (a stub that refuses here): the prompt was taken.
      expect(await main(['generate', '--model', MODEL, '--prompt', prompt, '--max-tokens', '2'], io.io)).toBe(1);
      expect(io.out).toEqual([]);
      expect(io.err.join('\n')).toMatch(/the GPU was asked for before the arguments were checked/);
    }
    const train = capture();
    expect(await main(['train', '--model', MODEL, '--data', GOOD, '--out', join(dir, 'dash-prompt'), '--validation_prompt', '-h'], train.io)).toBe(1);
    expect(train.out).toEqual([]);
    expect(train.err.join('\n')).toMatch(/the GPU was asked for before the arguments were checked/);
    // Help is still help everywhere else, and --prompt=-h was always the prompt.
    const help = capture();
    expect(await main(['generate', '--model', MODEL, '-h'], help.io)).toBe(0);
    expect(help.out.join('\n')).toBe(generate.usage);
    // Other flags keep parseArgs' rule: a dashed word after --model is the mistake it looks like.
    const other = capture();
    expect(await main(['generate', '--model', '-x', '--prompt', 'hi'], other.io)).toBe(2);
    expect(other.err[0]).toMatch(/^finetune generate: Option '--model' argument is ambiguous/);
  });

  it("plan's usage lists no data-file hyperparameter (it reads no data; --train_data was listed as a flag)", () => {
    const plan = commands.find((c) => c.name === 'plan')!;
    expect(plan.usage).not.toMatch(/--train_data|--validation_data/);
    expect(plan.usage).toMatch(/--learning_rate /);
  });

  it('finetune --version prints the package version', async () => {
    const io = capture();
    expect(await main(['--version'], io.io)).toBe(0);
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(io.out).toEqual([pkg.version]);
  });
});

describe('malformed command lines: usage and exit 2, no stack trace', () => {
  const cases: [string, string[], RegExp][] = [
    ['an unknown flag (train)', ['train', '--bogus'], /Unknown option '--bogus'/],
    ['an unknown flag (gpu-info)', ['gpu-info', '--bogus'], /Unknown option '--bogus'/],
    ['an unknown flag (check)', ['check', '--bogus'], /Unknown option '--bogus'/],
    ['an unknown flag (bench)', ['bench', 'matmul', '--bogus'], /Unknown option '--bogus'/],
    ['an unknown flag (tokenize)', ['tokenize', '--bogus'], /Unknown option '--bogus'/],
    ['an unknown flag (validate)', ['validate', GOOD, '--bogus'], /unknown option --bogus/],
    // A flag a letter or two off, or in another spelling, is named: usage texts list dozens of flags.
    ['a mistyped hyperparameter (train)', ['train', '--model', MODEL, '--data', GOOD, '--lerning-rate', '1e-4'], /^finetune train: Unknown option '--lerning-rate'\. Did you mean --learning_rate\?$/m],
    ['a mistyped flag of the command (train)', ['train', '--modle', MODEL, '--data', GOOD], /Unknown option '--modle'\. Did you mean --model\?/],
    ['a mistyped hyperparameter (plan)', ['plan', '--model', MODEL, '--lora_rnk', '8'], /Unknown option '--lora_rnk'\. Did you mean --lora_rank\?/],
    ['a mistyped hyperparameter (remote train)', ['remote', 'train', '--data', GOOD, '--destination', 'me/model', '--num_train_epoch', '2'], /Did you mean --num_train_epochs\?/],
    ['a mistyped flag (export)', ['export', '--formt', 'gguf'], /Unknown option '--formt'\. Did you mean --format\?/],
    ['a flag in the wrong case (gpu-info)', ['gpu-info', '--No-Check'], /Unknown option '--No-Check'\. Did you mean --no-check\?/],
    ['a mistyped flag (validate)', ['validate', GOOD, '--max-problem', '3'], /unknown option --max-problem\. Did you mean --max-problems\?/],
    ['no flag near an unknown one: no guess', ['train', '--model', MODEL, '--data', GOOD, '--zzz'], /^finetune train: Unknown option '--zzz'$/m],
    ['a command\'s own flag is not offered to another (export has no --learning_rate)', ['export', '--learning-rate', '1'], /^finetune export: Unknown option '--learning-rate'$/m],
    ['--data with no value', ['train', '--model', MODEL, '--data'], /--data <value>' argument missing/],
    ['--data followed by another flag', ['train', '--model', MODEL, '--data', '--validation', GOOD], /argument is ambiguous/],
    ['a hyperparameter with no value', ['train', '--model', MODEL, '--data', GOOD, '--learning_rate'], /--learning_rate needs a value/],
    ['a missing --model', ['train', '--data', GOOD], /--model is required/],
    // The data files are flags of their own (--data, --validation): their hyperparameter names were taken and ignored,
    // so a run given --validation_data held its validation rows out of the training data without a word.
    ['--validation_data (train)', ['train', '--model', MODEL, '--data', GOOD, '--validation_data', GOOD], /--validation_data is not a flag: give the file as --validation FILE/],
    ['--train_data (train)', ['train', '--model', MODEL, '--data', GOOD, '--train_data=other.jsonl'], /--train_data is not a flag: give the file as --data FILE/],
    ['--validation_data (remote train)', ['remote', 'train', '--data', GOOD, '--destination', 'me/model', '--validation-data', GOOD], /--validation_data is not a flag: give the file as --validation FILE/],
    // plan reads no data (it took --data for advice, which plan refuses as an unknown option).
    ['--train_data (plan)', ['plan', '--model', MODEL, '--no-gpu', '--train_data', GOOD], /^finetune plan: --train_data is not a flag: plan reads no data \(the memory a run needs comes from the model and the hyperparameters\); leave it out$/m],
    ['--validation_data (plan)', ['plan', '--model', MODEL, '--no-gpu', '--validation-data=v.jsonl'], /^finetune plan: --validation_data is not a flag: plan reads no data \(the memory a run needs comes from the model and the hyperparameters\); leave it out$/m],
    ['a stray positional', ['gpu-info', 'extra'], /Unexpected argument 'extra'/],
    ['an unknown benchmark', ['bench', 'nothing'], /unknown benchmark "nothing"/],
    ['no benchmark named (it said unknown benchmark "")', ['bench'], /finetune bench: name a benchmark: one of \w+, /],
    ['an unknown GEMM kernel (train: auto among the choices, as its help says)', ['train', '--model', MODEL, '--data', GOOD, '--gemm', 'fast'], /--gemm must be one of auto, basic, tiled, tiled-fixed, tiled-warp, tiled-k32, tiled-warp-k32, got "fast"/],
    ['an unknown LoRA-product kernel (train)', ['train', '--model', MODEL, '--data', GOOD, '--lora-kernel', 'thin'], /--lora-kernel must be one of auto, general, skinny, got "thin"/],
    ['an unknown GEMM kernel (bench)', ['bench', 'matmul', '--gemm', 'fast'], /--gemm must be one of basic, tiled, tiled-fixed, tiled-warp, tiled-k32, tiled-warp-k32, got "fast"/],
    ['an unknown GEMM kernel (bench --kernels)', ['bench', 'matmul', '--kernels', 'basic,fast'], /--kernels must be one of basic, tiled, tiled-fixed, tiled-warp, tiled-k32, tiled-warp-k32, got "fast"/],
    ['an unknown attention kernel (bench)', ['bench', 'layer', '--attention', 'flash'], /--attention must be one of rows, tiled, got "flash"/],
    ['an unknown LoRA-product kernel (bench)', ['bench', 'layer', '--lora-kernel', 'auto'], /--lora-kernel must be one of general, skinny, got "auto"/],
    ['an unknown LoRA-product kernel (check)', ['check', '--model', MODEL, '--adapter', MODEL, '--golden', GOOD, '--lora-kernel', 'thin'], /--lora-kernel must be one of general, skinny, got "thin"/],
    ['a matmul shape that is not MxNxK', ['bench', 'matmul', '--shapes', '64x32'], /--shapes: "64x32" is not MxNxK/],
    ['an unknown GEMM kernel (check)', ['check', '--model', MODEL, '--adapter', MODEL, '--golden', GOOD, '--gemm', 'fast'], /--gemm must be one of/],
    ['an unknown attention kernel (check)', ['check', '--model', MODEL, '--adapter', MODEL, '--golden', GOOD, '--attention', 'flash'], /--attention must be one of rows, tiled, got "flash"/],
    ['an unknown base-product choice (train)', ['train', '--model', MODEL, '--data', GOOD, '--base-matmul', 'int4'], /--base-matmul must be one of fp32, int8, int8-mlp, got "int4"/],
    ['an unknown base-product choice (plan)', ['plan', '--model', MODEL, '--base-matmul', 'bf16'], /--base-matmul must be one of fp32, int8, int8-mlp, got "bf16"/],
    ['an unknown base-product choice (check)', ['check', '--model', MODEL, '--adapter', MODEL, '--golden', GOOD, '--base-matmul', 'x'], /--base-matmul must be one of/],
    ['an unknown int8 kernel (bench)', ['bench', 'int8', '--int8-kernel', 'wmma'], /--int8-kernel must be one of dp4a, subgroup-matrix, got "wmma"/],
    ['an unknown int8 kernel (train)', ['train', '--model', MODEL, '--data', GOOD, '--int8-kernel', 'tensor'], /--int8-kernel must be one of dp4a, subgroup-matrix, got "tensor"/],
    ['an int8 kernel without the int8 path (train)', ['train', '--model', MODEL, '--data', GOOD, '--int8-kernel', 'subgroup-matrix'], /--int8-kernel picks the kernel of the int8 path: give --base-matmul int8 or int8-mlp too/],
    ['an int8 kernel without the int8 path (check)', ['check', '--model', MODEL, '--adapter', MODEL, '--golden', GOOD, '--int8-kernel', 'subgroup-matrix'], /give --base-matmul int8 or int8-mlp, or --int8-gates, too/],
    ['an unknown int8 kernel (check)', ['check', '--model', MODEL, '--adapter', MODEL, '--golden', GOOD, '--int8-kernel', 'x'], /--int8-kernel must be one of dp4a, subgroup-matrix/],
    ['an unknown int8 gate choice', ['check', '--model', MODEL, '--adapter', MODEL, '--golden', GOOD, '--int8-gates', 'int4'], /--int8-gates must be one of int8, int8-mlp, all, got "int4"/],
    ['int8 gates on an int8 run', ['check', '--model', MODEL, '--adapter', MODEL, '--golden', GOOD, '--int8-gates', 'all', '--base-matmul', 'int8'], /--int8-gates compares int8 with fp32: leave --base-matmul at fp32/],
    ['a --gpu-memory that is not a size', ['train', '--model', MODEL, '--data', GOOD, '--gpu-memory', 'lots'], /--gpu-memory must be a positive number, got "lots"/],
    ['--stream-layers with --gpu-memory', ['train', '--model', MODEL, '--data', GOOD, '--stream-layers', '--gpu-memory', '8'], /--stream-layers streams the layers whatever the plan says; --gpu-memory lets the plan decide/],
    // A negative number after a flag is its value, so that the flag's own check says what it accepts (parseArgs alone
    // calls it "ambiguous"); a flag after a flag still is the mistake above.
    ['a negative --recover', ['train', '--model', MODEL, '--data', GOOD, '--recover', '-1'], /--recover must be a whole number ≥ 0, got "-1"/],
    ['a negative --gpu-memory', ['train', '--model', MODEL, '--data', GOOD, '--gpu-memory', '-.5'], /--gpu-memory must be a positive number, got "-.5"/],
    ['a negative --temperature', ['generate', '--model', MODEL, '--prompt', 'a', '--temperature', '-1'], /^finetune generate: --temperature must be a number from 0 \(greedy\) to 2, got "-1"$/m],
    // The generation settings as the page's Try it reads them (src/config/generation.ts).
    ['a temperature above 2', ['generate', '--model', MODEL, '--prompt', 'a', '--temperature', '5'], /--temperature must be a number from 0 \(greedy\) to 2, got "5"/],
    ['new tokens in hex', ['generate', '--model', MODEL, '--prompt', 'a', '--max-tokens', '0x10'], /--max-tokens must be a whole number from 1 to 4,096, got "0x10"/],
    ['new tokens with an exponent', ['generate', '--model', MODEL, '--prompt', 'a', '--max-tokens', '1e2'], /--max-tokens must be a whole number from 1 to 4,096, got "1e2"/],
    ['a seed that is not whole', ['generate', '--model', MODEL, '--prompt', 'a', '--seed', '1.5'], /--seed must be a whole number/],
    // generate's --gpu-memory is train's and plan's: the same parsing and the same words (src/cli/gpu-memory.ts).
    ['a --gpu-memory that is not a size (generate)', ['generate', '--model', MODEL, '--prompt', 'a', '--gpu-memory', 'lots'], /^finetune generate: --gpu-memory must be a positive number, got "lots"$/m],
    ['a negative --gpu-memory (generate)', ['generate', '--model', MODEL, '--prompt', 'a', '--gpu-memory', '-.5'], /^finetune generate: --gpu-memory must be a positive number, got "-.5"$/m],
    ['a zero --gpu-memory (generate)', ['generate', '--model', MODEL, '--prompt', 'a', '--gpu-memory', '0'], /^finetune generate: --gpu-memory must be a positive number, got "0"$/m],
    ['a --gpu-memory past any GPU (generate)', ['generate', '--model', MODEL, '--prompt', 'a', '--gpu-memory', '1e308'], /^finetune generate: --gpu-memory is in GB: "1e308" is more than any GPU has$/m],
    ['an empty --gpu-memory (generate)', ['generate', '--model', MODEL, '--prompt', 'a', '--gpu-memory='], /^finetune generate: --gpu-memory has an empty value: give it one, or leave the flag out$/m],
    // train planned against 1e308 GB ("Infinity" bytes: everything fits) where plan said the typo.
    ['a --gpu-memory past any GPU (train)', ['train', '--model', MODEL, '--data', GOOD, '--gpu-memory', '1e308'], /^finetune train: --gpu-memory is in GB: "1e308" is more than any GPU has$/m],
    // bench's --gpu-memory had a parser of its own that took Infinity and 1e308 (and planned a layer's kept
    // intermediates against them). --tiled-stages 7, refused after --gpu-memory is read, keeps a bench that took the
    // value from the GPU.
    ['an infinite --gpu-memory (bench)', ['bench', 'layer', '--gpu-memory', 'Infinity', '--tiled-stages', '7'], /^finetune bench: --gpu-memory must be a positive number, got "Infinity"$/m],
    ['a --gpu-memory past any GPU (bench)', ['bench', 'layer', '--gpu-memory', '1e308', '--tiled-stages', '7'], /^finetune bench: --gpu-memory is in GB: "1e308" is more than any GPU has$/m],
    ['a negative --gpu-memory (bench)', ['bench', 'layer', '--gpu-memory', '-1', '--tiled-stages', '7'], /^finetune bench: --gpu-memory must be a positive number, got "-1"$/m],
    ['a --gpu-memory that is not a size (bench)', ['bench', 'layer', '--gpu-memory', 'abc', '--tiled-stages', '7'], /^finetune bench: --gpu-memory must be a positive number, got "abc"$/m],
    // An infinite --min-ms timed each kernel for ever.
    ['an infinite --min-ms (bench)', ['bench', 'matmul', '--min-ms', 'Infinity', '--tiled-stages', '7'], /^finetune bench: --min-ms must be a positive number, got "Infinity"$/m],
    // An empty value was read as the flag left out: --min-ms= timed 300 ms, --validation= trained without validation.
    ['an empty --min-ms (it ran with 300)', ['bench', 'matmul', '--min-ms='], /^finetune bench: --min-ms has an empty value: give it one, or leave the flag out$/m],
    ['an empty --sizes (bench)', ['bench', 'matmul', '--sizes', ''], /^finetune bench: --sizes has an empty value: give it one, or leave the flag out$/m],
    ['an empty --validation (train)', ['train', '--model', MODEL, '--data', GOOD, '--validation='], /^finetune train: --validation has an empty value: give it one, or leave the flag out$/m],
    ['an empty --adapter (generate)', ['generate', '--model', MODEL, '--prompt', 'a', '--adapter', ''], /^finetune generate: --adapter has an empty value: give it one, or leave the flag out$/m],
  ];
  for (const c of commands) {
    it(`finetune ${c.name} --bogus: exit 2 with the usage, whatever the command`, async () => {
      const io = capture();
      expect(await main([c.name, '--bogus'], io.io)).toBe(2);
      const err = io.err.join('\n');
      expect(err).toContain(c.usage);
      expect(err).not.toMatch(/internal error|\n\s+at /);
    });
  }
  for (const [what, argv, reason] of cases) {
    it(what, async () => {
      const io = capture();
      expect(await main(argv, io.io)).toBe(2);
      const err = io.err.join('\n');
      expect(err).toMatch(reason);
      expect(err).toContain(`finetune ${argv[0]} `); // the usage follows the reason
      expect(err).not.toMatch(/internal error|\n\s+at /);
    });
  }
});

describe('files named on the command line are checked before any GPU or model work', () => {
  const run = async (argv: string[]) => {
    const io = capture();
    const code = await main(argv, io.io);
    return { code, err: io.err };
  };

  it('refuses a device such as /dev/zero in one line', async () => {
    const r = await run(['train', '--model', MODEL, '--data', '/dev/zero']);
    expect(r).toEqual({ code: 2, err: ['finetune train: bad-input: --data: "/dev/zero" is not a regular file (a device, pipe or socket is not accepted)'] });
  });

  it('refuses learning_rate 0 and prints a warning for one above 0.1 on stderr', async () => {
    expect(await run(['train', '--model', MODEL, '--data', GOOD, '--learning_rate', '0'])).toEqual({
      code: 2,
      err: ['finetune train: bad-input: learning_rate must be a number greater than 0, got 0'],
    });
    const r = await run(['train', '--model', MODEL, '--data', '/dev/zero', '--learning_rate', '0.5']);
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/^warning: learning_rate 0\.5 is above 0\.1/);
  });

  it('refuses a directory, a missing file and a missing model directory', async () => {
    expect(await run(['train', '--model', MODEL, '--data', dir])).toEqual({ code: 2, err: [`finetune train: bad-input: --data: "${dir}" is a directory, not a file`] });
    expect(await run(['train', '--model', MODEL, '--data', GOOD, '--validation', join(dir, 'nope.jsonl')])).toEqual({
      code: 2,
      err: [`finetune train: bad-input: --validation: "${join(dir, 'nope.jsonl')}" does not exist`],
    });
    expect(await run(['train', '--model', join(dir, 'no-model'), '--data', GOOD])).toEqual({ code: 2, err: [`finetune train: bad-input: --model: "${join(dir, 'no-model')}" does not exist`] });
  });

  it('refuses a new run over a finished one (its adapter would be replaced) unless --overwrite is given', async () => {
    const out = join(dir, 'finished');
    const record = { modelSource: 'tiny-mistral', quantization: 'none', hp: {}, trainName: 'rows.jsonl', validationName: null, step: 3, totalSteps: 3, history: [], savedAt: '2026-01-01T00:00:00Z' };
    await folderRunStore(join(out, 'run')).commit({ [RUN_FILE]: new TextEncoder().encode(JSON.stringify(record)) });
    mkdirSync(join(out, 'adapter'));
    writeFileSync(join(out, 'adapter', 'adapter_config.json'), '{}');
    const refused = await run(['train', '--model', MODEL, '--data', GOOD, '--out', out]);
    expect(refused).toEqual({
      code: 2,
      err: [`finetune train: bad-input: "${out}" holds a finished run ("rows.jsonl", 3 steps) and its adapter ("${join(out, 'adapter')}"): give --out another folder to keep it, or --overwrite to replace it`],
    });
    expect(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')).toBe('{}');
    // --overwrite gets past the refusal, says what it replaces, and goes on to the GPU (here a stub that refuses).
    const replaced = await run(['train', '--model', MODEL, '--data', GOOD, '--out', out, '--overwrite']);
    expect(replaced.err[0]).toBe(`note: "${out}" holds a finished run ("rows.jsonl", 3 steps) and its adapter ("${join(out, 'adapter')}"); --overwrite: this run replaces it (the run with its first checkpoint, the adapter at its end)`);
    expect(replaced.err.join('\n')).toMatch(/the GPU was asked for before the arguments were checked/);
  });

  it('refuses a new run into an OUT whose adapter folder holds an adapter while OUT/run holds no run, unless --overwrite is given', async () => {
    // An adapter exported here, or OUT/run removed after a run: the new run's adapter would replace it at its end.
    const out = join(dir, 'adapter-only');
    mkdirSync(join(out, 'adapter'), { recursive: true });
    writeFileSync(join(out, 'adapter', 'adapter_model.safetensors'), 'weights');
    writeFileSync(join(out, 'adapter', 'adapter.gguf'), 'gguf');
    const adapterDir = join(out, 'adapter');
    const refused = await run(['train', '--model', MODEL, '--data', GOOD, '--out', out]);
    expect(refused).toEqual({
      code: 2,
      err: [`finetune train: bad-input: "${adapterDir}" holds an adapter (adapter_model.safetensors, adapter.gguf) that this run would replace at its end: give --out another folder to keep it, or --overwrite to replace it`],
    });
    expect(readFileSync(join(adapterDir, 'adapter_model.safetensors'), 'utf8')).toBe('weights');
    const replaced = await run(['train', '--model', MODEL, '--data', GOOD, '--out', out, '--overwrite']);
    expect(replaced.err[0]).toBe(`note: "${adapterDir}" holds an adapter (adapter_model.safetensors, adapter.gguf); --overwrite: this run replaces it at its end`);
    expect(replaced.err.join('\n')).toMatch(/the GPU was asked for before the arguments were checked/);
    // An empty adapter folder (or one with other files) holds no adapter: nothing to refuse.
    const empty = join(dir, 'empty-adapter');
    mkdirSync(join(empty, 'adapter'), { recursive: true });
    writeFileSync(join(empty, 'adapter', 'notes.txt'), 'mine');
    const fresh = await run(['train', '--model', MODEL, '--data', GOOD, '--out', empty]);
    expect(fresh.err.join('\n')).not.toMatch(/holds an adapter/);
    expect(fresh.err.join('\n')).toMatch(/the GPU was asked for before the arguments were checked/);
  });

  it('calls a PNG "not a JSONL text file" once', async () => {
    const r = await run(['train', '--model', MODEL, '--data', PNG]);
    expect(r).toEqual({ code: 2, err: [`finetune train: bad-input: --data: "${PNG}" is not a JSONL text file (it holds binary data)`] });
  });

  it('tokenize reads a --texts file that starts with a byte-order mark (Notepad\'s), as validate and train do', async () => {
    const plain = join(dir, 'plain.json');
    const bom = join(dir, 'bom.json');
    writeFileSync(plain, '["Hello world"]');
    writeFileSync(bom, '\uFEFF["Hello world"]');
    const a = capture();
    const b = capture();
    expect(await main(['tokenize', '--texts', plain], a.io)).toBe(0);
    expect(await main(['tokenize', '--texts', bom], b.io)).toBe(0);
    expect(b.err).toEqual([]);
    expect(b.out).toEqual(a.out);
    expect(JSON.parse(b.out[0])[0].length).toBeGreaterThan(1);
  });

  it('checks the other commands\' files too (validate, tokenize, check)', async () => {
    expect(await run(['validate', '/dev/zero'])).toEqual({ code: 2, err: ['finetune validate: bad-input: "/dev/zero" is not a regular file (a device, pipe or socket is not accepted)'] });
    expect((await run(['tokenize', '--texts', dir])).err).toEqual([`finetune tokenize: bad-input: --texts: "${dir}" is a directory, not a file`]);
    const texts = join(dir, 'texts.json');
    writeFileSync(texts, '["hello"]');
    expect((await run(['tokenize', '--texts', texts, '--tokenizer', '/dev/zero'])).err).toEqual([
      'finetune tokenize: bad-input: --tokenizer: "/dev/zero" is not a regular file (a device, pipe or socket is not accepted)',
    ]);
    expect((await run(['check', '--model', MODEL, '--adapter', dir, '--golden', join(dir, 'none.safetensors')])).err).toEqual([
      `finetune check: bad-input: --golden: "${join(dir, 'none.safetensors')}" does not exist`,
    ]);
  });
});

describe('train and generate check --cache-dir before any loading', () => {
  const run = async (argv: string[]) => {
    const io = capture();
    const code = await main(argv, io.io);
    return { code, err: io.err };
  };
  const file = join(dir, 'cache-is-a-file');
  writeFileSync(file, 'not a folder');
  const train = (cacheDir: string, ...more: string[]) => ['train', '--model', MODEL, '--data', GOOD, '--out', join(dir, 'cache-dir-out'), '--cache-dir', cacheDir, ...more];
  const generate = (cacheDir: string, ...more: string[]) => ['generate', '--model', MODEL, '--prompt', 'a', '--cache-dir', cacheDir, ...more];

  // The store's list and open read a file there as an empty cache: the load went on (minutes for Mistral-7B) and its
  // write failed at the end, a note that the weights were not cached.
  it.each([
    ['train', train],
    ['generate', generate],
  ])('finetune %s refuses a file as --cache-dir, and a path under a file, in one line', async (name, argv) => {
    expect(await run(argv(file))).toEqual({ code: 2, err: [`finetune ${name}: bad-input: --cache-dir: "${file}" is a file, not a folder: give the cache's folder, or --no-cache`] });
    expect(await run(argv(join(file, 'sub')))).toEqual({
      code: 2,
      err: [`finetune ${name}: bad-input: --cache-dir: "${join(file, 'sub')}" cannot be a folder: part of its path is a file: give the cache's folder, or --no-cache`],
    });
  });

  it.each([
    ['train', train],
    ['generate', generate],
  ])('finetune %s takes a --cache-dir that does not exist yet (made at the first write), and --no-cache ignores it', async (_name, argv) => {
    for (const args of [argv(join(dir, 'new-cache', 'sub')), argv(file, '--no-cache')]) {
      const r = await run(args);
      expect(r.code).toBe(1);
      expect(r.err.join('\n')).toMatch(/the GPU was asked for before the arguments were checked/);
    }
  });
});

describe('finetune generate --adapter: a folder or a zip, read before the GPU is asked for', () => {
  const run = async (argv: string[]) => {
    const io = capture();
    const code = await main(argv, io.io);
    return { code, err: io.err.join('\n') };
  };
  // Past every check on the command line and the files, generate asks for the GPU: here the stub, which refuses.
  const REACHED_GPU = /the GPU was asked for before the arguments were checked/;

  it("takes the page's download (the PEFT pair with adapter.gguf and a README in one zip) as it takes the folder", async () => {
    const base = parseMistralConfig(JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')));
    const adapter = await readAdapter(nodeDirectory('test/fixtures/tiny-adapter'), { base });
    const zip = adapterZip(adapter, base, { name: 'tiny-mistral', step: 3 });
    const path = join(dir, zip.fileName);
    writeFileSync(path, zip.bytes);
    for (const a of [path, 'test/fixtures/tiny-adapter']) {
      const r = await run(['generate', '--model', MODEL, '--adapter', a, '--prompt', 'def add(']);
      expect(r.err).toMatch(REACHED_GPU);
    }
  });

  it('refuses a zip that holds no adapter, or a file that is no zip, in one line before the GPU', async () => {
    const path = join(dir, 'notes.zip');
    writeFileSync(path, zipSync({ 'notes.txt': new TextEncoder().encode('hello') }));
    expect(await run(['generate', '--model', MODEL, '--adapter', path, '--prompt', 'a'])).toEqual({
      code: 2,
      err: `finetune generate: bad-input: ${path}: holds no adapter_config.json: not a PEFT adapter (files: "notes.txt")`,
    });
    const r = await run(['generate', '--model', MODEL, '--adapter', GOOD, '--prompt', 'a']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/is not a zip archive/);
  });

  it('train and generate take --revision for a Hub model (read at that revision), and refuse it for a folder', async () => {
    const asked: string[] = [];
    vi.stubGlobal('fetch', async (input: string | URL | Request) => {
      asked.push(String(input));
      return new Response('not here', { status: 404 });
    });
    try {
      const gen = await run(['generate', '--model', 'someone/model', '--revision', 'v1.0', '--prompt', 'a']);
      expect(gen.code).toBe(2);
      // Which model, at which revision, has no config.json (the message named the model without its revision).
      expect(gen.err).toBe('finetune generate: bad-input: someone/model@v1.0: no config.json');
      expect(asked[0]).toBe('https://huggingface.co/someone/model/resolve/v1.0/config.json');
      // train reads the model's config.json before the data and the GPU, at that revision too.
      asked.length = 0;
      const tr = await run(['train', '--model', 'someone/model', '--revision', 'v1.0', '--data', GOOD, '--out', join(dir, 'rev')]);
      expect(tr).toEqual({ code: 2, err: 'finetune train: bad-input: someone/model@v1.0: no config.json' });
      expect(asked[0]).toBe('https://huggingface.co/someone/model/resolve/v1.0/config.json');
    } finally {
      vi.unstubAllGlobals();
    }
    for (const cmd of [['train', '--data', GOOD, '--out', join(dir, 'rev')], ['generate', '--prompt', 'a']]) {
      const r = await run([cmd[0], '--model', MODEL, '--revision', 'v1.0', ...cmd.slice(1)]);
      expect(r).toEqual({ code: 2, err: `finetune ${cmd[0]}: bad-input: --revision "v1.0" is for a Hugging Face id (owner/name); --model "${MODEL}" is a folder` });
    }
  });

  it('says that --top-p and --seed do nothing at temperature 0 (greedy), and goes on', async () => {
    // They were taken without a word and the text came out greedy: a user comparing seeds saw the same text for each.
    const note = (flags: string) => `note: ${flags} only change${flags.includes(' and ') ? '' : 's'} sampled text: at --temperature 0 (the default) each token is the most likely one, so ${flags === '--top-p and --seed' ? 'they are' : 'it is'} not used; give --temperature above 0 to sample`;
    const both = await run(['generate', '--model', MODEL, '--prompt', 'a', '--top-p', '0.5', '--seed', '3']);
    expect(both.err.split('\n')).toContain(note('--top-p and --seed'));
    expect(both.err).toMatch(REACHED_GPU);
    expect((await run(['generate', '--model', MODEL, '--prompt', 'a', '--temperature', '0', '--seed', '3'])).err.split('\n')).toContain(note('--seed'));
    expect((await run(['generate', '--model', MODEL, '--prompt', 'a', '--top-p', '0.9'])).err.split('\n')).toContain(note('--top-p'));
    // Sampling uses them; greedy without them has nothing to say.
    for (const argv of [['--temperature', '0.7', '--top-p', '0.5', '--seed', '3'], []]) {
      const r = await run(['generate', '--model', MODEL, '--prompt', 'a', ...argv]);
      expect(r.err).not.toMatch(/^note: --(top-p|seed)/m);
      expect(r.err).toMatch(REACHED_GPU);
    }
  });

  it('takes --gpu-memory GB as train and plan do (with --stream-layers too), goes on to the GPU, and its usage names it', async () => {
    for (const argv of [['--gpu-memory', '24'], ['--gpu-memory=0.5'], ['--gpu-memory', '80', '--stream-layers']]) {
      const r = await run(['generate', '--model', MODEL, '--prompt', 'a', ...argv]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(REACHED_GPU);
    }
    const generate = commands.find((c) => c.name === 'generate')!;
    expect(generate.usage).toMatch(/\[--gpu-memory GB\]/);
    expect(generate.usage).toMatch(/^  --gpu-memory GB /m);
  });

  it('takes an empty prompt (generate from <s> alone) and a negative seed, as the page does', async () => {
    expect((await run(['generate', '--model', MODEL, '--prompt', '', '--seed', '-1', '--temperature', '0.7'])).err).toMatch(REACHED_GPU);
  });
});

describe('finetune as a user runs it (a child process)', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/finetune.mjs', ...args], { encoding: 'utf8', timeout: 60_000 });

  it('--version and an unknown flag', () => {
    const v = cli('--version');
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const bad = cli('train', '--bogus');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^finetune train: Unknown option '--bogus'/);
    expect(bad.stderr).toContain('finetune train --model DIR');
    expect(bad.stderr).not.toMatch(/internal error|\n\s+at /);
  }, 120_000);
});
