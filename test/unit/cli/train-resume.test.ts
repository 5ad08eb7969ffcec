// What `finetune train --resume` checks in OUT/run before it touches a GPU: a run saved with a checkpoint (fake, no GPU
// needed) is resumed with other inputs, and each is refused with a message naming both sides. The GPU is never reached:
// the context factory given to the command throws if it is, so a check that lets the resume through shows as that.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTrainCommand } from '../../../src/cli/commands/train.ts';
import { folderRunStore } from '../../../src/cli/node-store.ts';
import { checkpointFiles, type SavedRun } from '../../../src/run/saved-run.ts';
import { stateChecksum } from '../../../src/run/saved-run-check.ts';
import { fakeRun, fakeState } from '../../helpers/fake-checkpoint.ts';

const DEFAULT_TOKENIZER = 'public/tokenizer/tokenizer.model';
const REACHED_GPU = 'the resume went on to make a GPU context';

const command = makeTrainCommand(async () => {
  throw new Error(REACHED_GPU);
});

async function train(...args: string[]): Promise<{ code: number | Error; err: string[] }> {
  const err: string[] = [];
  const code = await command.run(args, { out: () => {}, err: (l) => err.push(l) }).catch((e: unknown) => e as Error);
  return { code, err };
}

/** OUT with a run saved at step 2 on tiny-mistral, its record changed by `over`. */
async function savedRunFolder(over: Partial<SavedRun>): Promise<string> {
  const out = mkdtempSync(join(tmpdir(), 'finetune-resume-'));
  const run = { ...fakeRun(2), ...over };
  await folderRunStore(join(out, 'run')).commit(checkpointFiles(run, fakeState(2, 4), { train: new TextEncoder().encode('{"text":"a"}\n'), validation: null }));
  return out;
}

/** A SentencePiece model other than the default: the same pieces with one unknown protobuf field appended. */
function otherTokenizerDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'finetune-tok-'));
  writeFileSync(join(dir, 'tokenizer.model'), Buffer.concat([readFileSync(DEFAULT_TOKENIZER), Buffer.from([0x98, 0x06, 0x01])]));
  return dir;
}

describe('train --resume and the tokenizer the run was trained with', () => {
  it('refuses a resume without --tokenizer when the run was trained with another one, naming both', async () => {
    const other = otherTokenizerDir();
    const checksum = await stateChecksum(new Uint8Array(readFileSync(join(other, 'tokenizer.model'))));
    const out = await savedRunFolder({ tokenizer: { checksum, name: other } });
    const { code } = await train('--model', 'test/fixtures/tiny-mistral', '--out', out, '--resume');
    expect(code).toBeInstanceOf(Error);
    const message = (code as Error).message;
    expect(message).not.toBe(REACHED_GPU);
    const defaultChecksum = await stateChecksum(new Uint8Array(readFileSync(DEFAULT_TOKENIZER)));
    expect(message).toContain(`the saved run was trained with the tokenizer ${other} (${checksum}), and this resume has the default tokenizer (`);
    expect(message).toContain(`(${defaultChecksum}): another tokenizer gives the run's data other token ids, so the run cannot continue with it. Resume with --tokenizer`);
  });

  it('refuses --tokenizer naming another model than the run’s, and lets the run’s own through', async () => {
    const other = otherTokenizerDir();
    const defaultChecksum = await stateChecksum(new Uint8Array(readFileSync(DEFAULT_TOKENIZER)));
    const out = await savedRunFolder({ tokenizer: { checksum: defaultChecksum, name: 'the default tokenizer' } });
    const refused = await train('--model', 'test/fixtures/tiny-mistral', '--out', out, '--resume', '--tokenizer', other);
    expect((refused.code as Error).message).toMatch(/^the saved run was trained with the tokenizer the default tokenizer \(sha256:[0-9a-f]{64}\), and this resume has \/.*finetune-tok-/);
    // The same model file under another path is the same tokenizer.
    const copy = mkdtempSync(join(tmpdir(), 'finetune-tok-'));
    copyFileSync(DEFAULT_TOKENIZER, join(copy, 'tokenizer.model'));
    const same = await train('--model', 'test/fixtures/tiny-mistral', '--out', out, '--resume', '--tokenizer', copy);
    expect((same.code as Error).message).toBe(REACHED_GPU);
    expect(same.err.join('\n')).not.toMatch(/tokenizer/);
  });

  it('resumes a record from before runs recorded their tokenizer, with a note saying which one it continues with', async () => {
    const out = await savedRunFolder({});
    mkdirSync(join(out, 'adapter'), { recursive: true });
    const { code, err } = await train('--model', 'test/fixtures/tiny-mistral', '--out', out, '--resume');
    expect((code as Error).message).toBe(REACHED_GPU);
    expect(err.join('\n')).toMatch(/note: the saved run's record does not say which tokenizer it was trained with \(it was saved before runs recorded it\): it continues with the default tokenizer \(.*tokenizer\.model\), which must be the one it started with/);
  });
});

describe('train --resume and the model the run was trained on', () => {
  it("quotes the run's model name, which comes from its record on disk, as names are quoted elsewhere", async () => {
    const out = await savedRunFolder({ modelSource: 'tiny"; --model is "x\u202e' });
    const { code } = await train('--model', 'test/fixtures/tiny-mistral', '--out', out, '--resume');
    expect((code as Error).message).toBe(
      `the run saved in "${join(out, 'run')}" was trained on the model "tiny\\"; --model is \\"x\\u202e"; --model "test/fixtures/tiny-mistral" is "tiny-mistral": give the run's model to resume it`,
    );
  });
});

describe('train --resume with other data or hyperparameters than the run’s', () => {
  // The names in the refusal come from the command line and from the run's record on disk: quoted, as names are
  // elsewhere, so that a line break in one cannot start a line and a bidi control cannot reorder the sentence.
  it('quotes the data file, the record’s file name, the run folder and a text hyperparameter', async () => {
    const out = await savedRunFolder({ trainName: 'rows\u202e.jsonl\nfinetune train: done' });
    const data = join(mkdtempSync(join(tmpdir(), 'finetune-data-')), 'other\n.jsonl');
    writeFileSync(data, '{"text":"b"}\n');
    const { code } = await train('--model', 'test/fixtures/tiny-mistral', '--out', out, '--resume', '--data', data, '--validation_prompt', 'hi\u2066', '--learning_rate', '0.05');
    expect((code as Error).message).toBe(
      `--resume continues the saved run with its own data and hyperparameters, and these differ: --data ${JSON.stringify(data)} (the run trains on "rows\\u202e.jsonl\\nfinetune train: done" as stored in "${join(out, 'run')}"); --validation_prompt "hi\\u2066" (the run's: none); --learning_rate 0.05 (the run's: 0.0001). Drop them to resume it, or start a new run over it with --overwrite`,
    );
  });
});

describe('train --resume of a run whose stored data is damaged', () => {
  // The copy in OUT/run damaged, the --data given (the run's own file) was said to differ: dropping it as told led to a
  // second refusal that still did not say which copy was wrong.
  it('names the damaged copy in OUT/run, not the --data given, and says it once that it cannot be resumed', async () => {
    const train0 = new TextEncoder().encode('{"text":"a"}\n');
    const out = mkdtempSync(join(tmpdir(), 'finetune-resume-damaged-'));
    await folderRunStore(join(out, 'run')).commit(checkpointFiles({ ...fakeRun(2), trainChecksum: await stateChecksum(train0) }, fakeState(2, 4), { train: train0, validation: null }));
    const stored = readdirSync(join(out, 'run')).find((f) => f.endsWith('-train.jsonl'))!;
    writeFileSync(join(out, 'run', stored), '{"text":"A"}\n');
    const data = join(out, 'rows.jsonl');
    writeFileSync(data, train0);
    for (const withData of [true, false]) {
      const { code } = await train('--model', 'test/fixtures/tiny-mistral', '--out', out, '--resume', ...(withData ? ['--data', data] : []));
      const message = (code as Error).message;
      expect(message).toMatch(new RegExp(`^"${join(out, 'run').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}": the saved run cannot be resumed: its training data \\(rows\\.jsonl\\) is not the data it was trained on \\(checksum sha256:[0-9a-f]{64}, saved with the run sha256:[0-9a-f]{64}\\); start a new run over it with --overwrite, or give --out another folder$`));
      expect(message).not.toMatch(/--data .* \(the run trains on/);
    }
  });
});

describe('train --resume and the base model name the run was given', () => {
  // train --base-model NAME records NAME with the run: a resume without the flag names the base by it, so a model folder
  // whose name a typed --base-model is refused for is not refused for its name (it once was, as if never named).
  it('a resume without --base-model of a run given one is not refused for the model folder’s name', async () => {
    const model = join(mkdtempSync(join(tmpdir(), 'finetune-model-')), 'tiny\u202eledom');
    mkdirSync(model);
    for (const f of readdirSync('test/fixtures/tiny-mistral')) copyFileSync(join('test/fixtures/tiny-mistral', f), join(model, f));
    const named = await savedRunFolder({ modelSource: 'tiny\u202eledom', baseModelName: 'my-org/tiny-mistral' });
    expect(((await train('--model', model, '--out', named, '--resume')).code as Error).message).toBe(REACHED_GPU);
    // A run given none names the folder: refused for its name, as a new run is.
    const unnamed = await savedRunFolder({ modelSource: 'tiny\u202eledom' });
    expect(((await train('--model', model, '--out', unnamed, '--resume')).code as Error).message).toMatch(/its folder's name "tiny\\u202eledom" is the base model's name the adapter gives/);
  });
});

describe('train and a damaged OUT/run', () => {
  const runFiles = (out: string): Record<string, string> => Object.fromEntries(readdirSync(join(out, 'run')).map((f) => [f, readFileSync(join(out, 'run', f), 'latin1')]));

  it('--resume says an unreadable run.json is unreadable (it said there was no saved run)', async () => {
    const out = await savedRunFolder({});
    writeFileSync(join(out, 'run', '000001-run.json'), '{"modelSource": "tiny-mis');
    const { code } = await train('--model', 'test/fixtures/tiny-mistral', '--out', out, '--resume');
    expect((code as Error).message).toMatch(new RegExp(`^the saved run in "${join(out, 'run')}" is unreadable \\(run\\.json: .*JSON.*\\): it cannot be resumed; start a new run over it with --overwrite, or give --out another folder$`));
  });

  it('a new run without --overwrite is refused over a damaged run (run.json {}, or a lost current.json) and the files stay; with --overwrite it goes on, saying so', async () => {
    for (const damage of ['empty record', 'no pointer'] as const) {
      const out = await savedRunFolder({});
      // A second checkpoint: files of generation 2, which only a commit made (a first one cut short has only 1's).
      await folderRunStore(join(out, 'run')).commit(checkpointFiles(fakeRun(2), fakeState(2, 4), { train: new TextEncoder().encode('{"text":"a"}\n'), validation: null }));
      if (damage === 'empty record') writeFileSync(join(out, 'run', '000002-run.json'), '{}');
      else rmSync(join(out, 'run', 'current.json'));
      const before = runFiles(out);
      const { code } = await train('--model', 'test/fixtures/tiny-mistral', '--data', 'test/fixtures/data/prompt_completion.jsonl', '--out', out);
      const message = (code as Error).message;
      expect(message, damage).toMatch(new RegExp(`^the saved run in "${join(out, 'run')}" is unreadable \\(.*\\): a new run there would replace it at its first checkpoint; give --out another folder to keep it, or --overwrite to replace it$`));
      if (damage === 'empty record') expect(message).toContain('(run.json: its record holds no hyperparameters)');
      else expect(message).toContain('(the run store has numbered files ("000002-run.json", "000002-state.safetensors", "000002-train.jsonl") but no current.json');
      expect(runFiles(out)).toEqual(before);
      const over = await train('--model', 'test/fixtures/tiny-mistral', '--data', 'test/fixtures/data/prompt_completion.jsonl', '--out', out, '--overwrite');
      expect((over.code as Error).message).toBe(REACHED_GPU);
      expect(over.err.join('\n')).toMatch(/note: the saved run in .* is unreadable \(.*\); --overwrite: this run replaces it at its first checkpoint/);
    }
  });

  // A kill during a new run's first checkpoint left its files and no pointer: refused as a damaged run "to keep", though
  // nothing was ever saved there.
  it('a first checkpoint cut short before its commit is no run: a new run goes on over it, saying so; --resume says there is none', async () => {
    const out = await savedRunFolder({});
    rmSync(join(out, 'run', 'current.json'));
    const fresh = await train('--model', 'test/fixtures/tiny-mistral', '--data', 'test/fixtures/data/prompt_completion.jsonl', '--out', out);
    expect((fresh.code as Error).message).toBe(REACHED_GPU);
    expect(fresh.err).toContainEqual(expect.stringMatching(/^note: the saved run in ".*" is unreadable \(the run store holds the files of a first checkpoint \("000001-run\.json", .*\) but no current\.json: that checkpoint was cut short before it was committed, so no run was saved there\); this run replaces it at its first checkpoint$/));
    const resumed = await train('--model', 'test/fixtures/tiny-mistral', '--out', out, '--resume');
    expect((resumed.code as Error).message).toMatch(/so no run was saved there\): there is no run to resume; drop --resume to start one$/);
  });
});
