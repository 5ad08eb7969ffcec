// `finetune train` reads the model's config.json and safetensors headers before the dataset and the GPU: a wrong --model
// (a folder without config.json or weights, a model of another vocabulary) is said at once, not after a dataset of any
// size was read and tokenised. Each case gives a dataset with a bad row as well: were the data read first, its error
// would be the one reported. The GPU is never reached (the context factory throws if it is).
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTrainCommand } from '../../../src/cli/commands/train.ts';
import { wideVocabModel } from '../../helpers/wide-vocab-model.ts';

const REACHED_GPU = 'the run went on to make a GPU context';
const command = makeTrainCommand(async () => {
  throw new Error(REACHED_GPU);
});

async function train(...args: string[]): Promise<string> {
  return (await trainWithStderr(...args)).message;
}

async function trainWithStderr(...args: string[]): Promise<{ message: string; stderr: string }> {
  const err: string[] = [];
  const e = await command.run(args, { out: () => {}, err: (l) => err.push(l) }).then(
    () => null,
    (x: unknown) => x as Error,
  );
  if (!e) throw new Error('train succeeded');
  return { message: e.message, stderr: err.join('\n') };
}

function folder(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A dataset whose second row is not JSON: the data's own error, were it read before the model. */
function badData(): string {
  const path = join(folder('finetune-data-'), 'bad.jsonl');
  writeFileSync(path, '{"text": "ok"}\nnot json\n');
  return path;
}

describe('train checks the model before the data', () => {
  it('a folder without config.json', async () => {
    const model = folder('finetune-model-');
    for (const f of readdirSync('test/fixtures/tiny-mistral')) if (f !== 'config.json') copyFileSync(join('test/fixtures/tiny-mistral', f), join(model, f));
    expect(await train('--model', model, '--data', badData(), '--out', folder('finetune-out-'))).toMatch(/no config\.json/);
  });

  it('a folder with config.json and no weights', async () => {
    const model = folder('finetune-model-');
    copyFileSync('test/fixtures/tiny-mistral/config.json', join(model, 'config.json'));
    mkdirSync(join(model, 'sub'));
    expect(await train('--model', model, '--data', badData(), '--out', folder('finetune-out-'))).toMatch(/: no model\.safetensors or model\.safetensors\.index\.json \(files: "config\.json"\)$/);
  });

  it("a model whose vocabulary is not the tokenizer's", async () => {
    const model = await wideVocabModel(32768);
    expect(await train('--model', model, '--data', badData(), '--out', folder('finetune-out-'))).toMatch(/^the model's vocabulary has 32768 tokens, the project's tokenizer \(public\/tokenizer\) 32000, and the model's files hold no tokenizer\.model of its own: /);
  });

  // Without --base-model, the adapter names its base model by the model folder's name: base_model_name_or_path, the
  // README's heading, the GGUF's general.name. A name a typed --base-model is refused for ("evil/\u202Eledom" reads as
  // "evil/model") was written as the folder was named, at the run's end; it is refused before the run, naming where it
  // came from.
  it("a model folder whose name is no base model name, without --base-model: refused as a typed one is, before the data", async () => {
    const model = join(folder('finetune-model-'), 'tiny\u202eledom');
    mkdirSync(model);
    for (const f of readdirSync('test/fixtures/tiny-mistral')) copyFileSync(join('test/fixtures/tiny-mistral', f), join(model, f));
    const out = folder('finetune-out-');
    expect(await train('--model', model, '--data', badData(), '--out', out)).toBe(
      `--model "${model.replace('\u202e', '\\u202e')}": its folder's name "tiny\\u202eledom" is the base model's name the adapter gives (base_model_name_or_path) without --base-model: the base model name holds U+202E (right-to-left override), a bidirectional control, which reorders the text around it so that the name reads as another: rename the folder, or give --base-model NAME to name the base model instead`,
    );
    // Named with --base-model, the folder's name is not written out: the run goes on (here, to the data).
    expect(await train('--model', model, '--data', badData(), '--out', out, '--base-model', 'mistralai/Mistral-7B-v0.1')).toMatch(/line 2/);
  });

  // Mistral-7B-Instruct-v0.3's vocabulary (32768) with its tokenizer.model beside the weights: read with it, said on
  // stderr, without --tokenizer; a tokenizer.model of yet another vocabulary, or one that is no tokenizer, is refused
  // naming the file, before the data.
  it("a model of another vocabulary with its own tokenizer.model: read with it; a wrong or broken one refused, naming it", async () => {
    const model = await wideVocabModel(32768);
    copyFileSync('test/fixtures/mistral-tokenizer-v3/tokenizer.model', join(model, 'tokenizer.model'));
    const own = await trainWithStderr('--model', model, '--data', badData(), '--out', folder('finetune-out-'));
    expect(own.message).toMatch(/line 2/);
    expect(own.stderr).toContain(`note: the model's vocabulary has 32,768 tokens, not the project's tokenizer's 32,000: reading it with the model's own tokenizer (${join(model, 'tokenizer.model')})`);
    copyFileSync('test/fixtures/mistral-tokenizer/tokenizer.model', join(model, 'tokenizer.model'));
    expect(await train('--model', model, '--data', badData(), '--out', folder('finetune-out-'))).toBe(
      `the model's vocabulary has 32768 tokens; its own tokenizer.model (${join(model, 'tokenizer.model')}) has 32000: the two do not belong together`,
    );
    writeFileSync(join(model, 'tokenizer.model'), new Uint8Array(64).fill(0xff));
    expect(await train('--model', model, '--data', badData(), '--out', folder('finetune-out-'))).toMatch(new RegExp(`^${join(model, 'tokenizer.model').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not a SentencePiece model file: `));
  });

  // Mistral-7B v0.1 and its fine-tunes attend over a sliding window: a max_seq_len past it is refused before the data
  // and the load (src/model/attention-span.ts); inside it the run goes on.
  it('a max_seq_len longer than the model\'s sliding window, naming the setting', async () => {
    const model = folder('finetune-model-');
    for (const f of readdirSync('test/fixtures/tiny-mistral')) copyFileSync(join('test/fixtures/tiny-mistral', f), join(model, f));
    const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
    writeFileSync(join(model, 'config.json'), JSON.stringify({ ...config, sliding_window: 4096 }));
    expect(await train('--model', model, '--data', badData(), '--out', folder('finetune-out-'), '--max_seq_len', '4097')).toMatch(
      /^max_seq_len 4097 is longer than this model's attention window of 4096 tokens \(sliding_window in its config\.json\): .*: set max_seq_len to 4096 or less$/,
    );
    expect(await train('--model', model, '--data', badData(), '--out', folder('finetune-out-'))).toMatch(/line 2/);
  });

  it('a good model goes on to the data, whose error is then reported', async () => {
    expect(await train('--model', 'test/fixtures/tiny-mistral', '--data', badData(), '--out', folder('finetune-out-'))).toMatch(/line 2/);
  });

  it("prints the rows' warnings as validate prints them, before the GPU (they were once not printed at all)", async () => {
    const data = join(folder('finetune-data-'), 'warn.jsonl');
    writeFileSync(data, '{"text": "one"}\n{"text": "two", "system": "x"}\n{"text": "three"}\n');
    const r = await trainWithStderr('--model', 'test/fixtures/tiny-mistral', '--data', data, '--out', folder('finetune-out-'));
    expect(r.message).toBe(REACHED_GPU);
    expect(r.stderr).toContain(`warning: --data "${data}" has 1 warning:\n  line 2: warning: unknown field "system" ignored`);
  });
});
