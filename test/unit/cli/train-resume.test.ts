// What `finetune train --resume` checks in OUT/run before it touches a GPU: a run saved with a checkpoint (fake, no GPU
// needed) is resumed with other inputs, and each is refused with a message naming both sides. The GPU is never reached:
// the context factory given to the command throws if it is, so a check that lets the resume through shows as that.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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
