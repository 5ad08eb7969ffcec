// What `finetune train` says and does before the GPU is touched: the data's progress and a stop signal while it is
// read, the data files named by their flags, a person's README.md in OUT/adapter, --keep-layers against the model's
// layers. The GPU is never reached (the context factory throws if it is).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTrainCommand } from '../../../src/cli/commands/train.ts';
import { folderRunStore } from '../../../src/cli/node-store.ts';
import { checkpointFiles } from '../../../src/run/saved-run.ts';
import { fakeRun, fakeState } from '../../helpers/fake-checkpoint.ts';
import { startRangeServer } from '../../helpers/range-server.ts';

const REACHED_GPU = 'the run went on to make a GPU context';
const command = makeTrainCommand(async () => {
  throw new Error(REACHED_GPU);
});
const MODEL = 'test/fixtures/tiny-mistral';

function folder(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

async function train(args: string[], onErr: (line: string) => void = () => {}): Promise<{ code: number | null; error: Error | null; stderr: string[] }> {
  const stderr: string[] = [];
  const r = await command.run(args, { out: () => {}, err: (l) => (stderr.push(l), onErr(l)) }).then(
    (code) => ({ code, error: null }),
    (e: unknown) => ({ code: null, error: e as Error }),
  );
  return { ...r, stderr };
}

function rows(path: string, text: string): string {
  writeFileSync(path, text);
  return path;
}

describe('finetune train before the GPU', () => {
  it('says how far a large data file is read, and a Ctrl-C then ends the run at once, leaving no folder or lock', async () => {
    // About 24 MB: several seconds of reading and tokenising, past the 2 s a progress line waits for.
    const line = `${JSON.stringify({ prompt: `Question: ${'lorem ipsum dolor sit amet '.repeat(8)}`, completion: 'answer '.repeat(20) })}\n`;
    const data = join(folder('finetune-big-'), 'big.jsonl');
    writeFileSync(data, line.repeat(Math.ceil(24e6 / line.length)));
    const out = join(folder('finetune-out-'), 'run1'); // made by the run, so removed again
    let signalled = false;
    const r = await train(['--model', MODEL, '--data', data, '--out', out, '--max_seq_len', '32'], (l) => {
      if (!signalled && l.startsWith('reading --data')) {
        signalled = true;
        process.emit('SIGINT');
      }
    });
    expect(r.error).toBeNull();
    expect(r.code).toBe(130);
    expect(r.stderr.find((l) => l.startsWith('reading --data'))).toMatch(new RegExp(`^reading --data "${data.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}": [\\d.]+ MiB / [\\d.]+ MiB \\(\\d+ %\\) · [\\d.]+ MB/s · .+ left$`));
    expect(r.stderr).toContain('SIGINT: stopping before the first step (again to abort at once)…');
    expect(r.stderr.at(-1)).toBe('note: stopped before the model was loaded: nothing was trained');
    expect(existsSync(out)).toBe(false);
    // The signal's handlers are gone with the command: a later SIGINT would otherwise be swallowed by a stale one.
    expect(process.listenerCount('SIGINT')).toBe(0);
  }, 120_000);

  it('names a data file by its flag and path, so two files of one name are told apart', async () => {
    const dir = folder('finetune-data-');
    mkdirSync(join(dir, 'val'));
    const good = rows(join(dir, 'train.jsonl'), '{"text": "a"}\n{"text": "b"}\n');
    const bad = rows(join(dir, 'val', 'train.jsonl'), '{"text": "a"}\nnot json\n');
    const r = await train(['--model', MODEL, '--data', good, '--validation', bad, '--out', folder('finetune-out-')]);
    expect(r.error?.message).toMatch(new RegExp(`^--validation "${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}" has 1 error:\\nline 2`));
    // With run_validation false the validation file is not read: said, not silently passed over.
    const off = await train(['--model', MODEL, '--data', good, '--validation', bad, '--run_validation', 'false', '--out', folder('finetune-out-')]);
    expect(off.error?.message).toBe(REACHED_GPU);
    expect(off.stderr).toContain(`note: --validation "${bad}" is not read: run_validation is false`);
    // The training file given as the validation file too: its loss is on rows the run trains on, said.
    const same = await train(['--model', MODEL, '--data', good, '--validation', good, '--out', folder('finetune-out-')]);
    expect(same.error?.message).toBe(REACHED_GPU);
    expect(same.stderr).toContain(`warning: --validation "${good}" is the training file: the validation loss is measured on rows the run trains on; leave --validation out to hold rows out of the training file instead`);
  });

  it('refuses an OUT/adapter holding a README.md of its own (no adapter beside it) without --overwrite', async () => {
    const out = folder('finetune-out-');
    mkdirSync(join(out, 'adapter'));
    writeFileSync(join(out, 'adapter', 'README.md'), 'my notes');
    const data = rows(join(folder('finetune-data-'), 'rows.jsonl'), '{"text": "a"}\n');
    const r = await train(['--model', MODEL, '--data', data, '--out', out]);
    expect(r.error?.message).toBe(`"${join(out, 'adapter')}" holds a README.md and no adapter: this run would replace it with its adapter's at its end; give --out another folder to keep it, or --overwrite to replace it`);
    expect(readFileSync(join(out, 'adapter', 'README.md'), 'utf8')).toBe('my notes');
    const over = await train(['--model', MODEL, '--data', data, '--out', out, '--overwrite']);
    expect(over.error?.message).toBe(REACHED_GPU);
    expect(over.stderr).toContain(`note: "${join(out, 'adapter')}" holds a README.md and no adapter; --overwrite: this run replaces it at its end`);
  });

  it('refuses --keep-layers past the model\'s layers before its load', async () => {
    const data = rows(join(folder('finetune-data-'), 'rows.jsonl'), '{"text": "a"}\n');
    const layers = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')).num_hidden_layers as number;
    const r = await train(['--model', MODEL, '--data', data, '--out', folder('finetune-out-'), '--keep-layers', String(layers + 1)]);
    expect(r.error?.message).toBe(`--keep-layers ${layers + 1}: this model has ${layers} layers: give a number from 0 to ${layers}, or all`);
  });

  it('a saved run whose checkpoint is damaged: --resume says where, that it cannot be resumed, and what to do', async () => {
    const out = folder('finetune-out-');
    const state = fakeState(2, 4);
    await folderRunStore(join(out, 'run')).commit(checkpointFiles(fakeRun(2), state.subarray(0, 100), { train: new TextEncoder().encode('{"text": "a"}\n'), validation: null }));
    const r = await train(['--model', MODEL, '--out', out, '--resume']);
    expect(r.error?.message).toMatch(new RegExp(`^"${join(out, 'run').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}": the saved run's checkpoint \\(step 2\\) cannot be read: header length \\d+ goes beyond the end of the file \\(100 bytes\\).*: it cannot be resumed; start a new run over it with --overwrite, or give --out another folder$`));
  });

  it('an OUT/run that is a file is said so before anything is read (it was Node\'s bare ENOTDIR)', async () => {
    const out = folder('finetune-out-');
    writeFileSync(join(out, 'run'), 'hi');
    const data = rows(join(folder('finetune-data-'), 'rows.jsonl'), '{"text": "a"}\n');
    const r = await train(['--model', MODEL, '--data', data, '--out', out]);
    expect(r.error?.message).toBe(`--out: "${join(out, 'run')}" is a file, where train keeps the run's checkpoints: move it away, or give --out another folder`);
  });

  it('says when the model\'s server failed a request and it is tried again (15 s of retries went unsaid)', async () => {
    const server = await startRangeServer(MODEL);
    try {
      server.failNext('config.json', 2);
      const data = rows(join(folder('finetune-data-'), 'rows.jsonl'), '{"text": "a"}\n');
      const r = await train(['--model', server.base, '--data', data, '--out', folder('finetune-out-'), '--no-cache']);
      expect(r.error?.message).toBe(REACHED_GPU);
      const notes = r.stderr.filter((l) => l.includes('Trying again in'));
      expect(notes).toHaveLength(2);
      expect(notes[0]).toMatch(/^note: .*config\.json.*503.*\. Trying again in 1 s \(retry 1 of 5\)\.$/);
      expect(notes[1]).toMatch(/Trying again in 1 s \(retry 2 of 5\)\.$/);
    } finally {
      await server.close();
    }
  });

  // The refusal says "the dataset's warnings name them": they were printed only after the data was accepted.
  it('prints the data warnings before refusing data whose every completion is cut off', async () => {
    const dir = folder('finetune-noloss-');
    const prompt = 'word '.repeat(100);
    const data = rows(join(dir, 'noloss.jsonl'), Array.from({ length: 6 }, (_, i) => `${JSON.stringify({ prompt: `${prompt}${i}`, completion: 'yes' })}\n`).join(''));
    const r = await train(['--model', MODEL, '--data', data, '--out', join(dir, 'out'), '--max_steps', '1', '--layout', 'instruct', '--max_seq_len', '32']);
    expect(r.error?.message).toMatch(/no row of the training data has a token to learn from: every row's completion is cut off by max_seq_len .*the dataset's warnings name them/);
    expect(r.stderr[0]).toMatch(/^warning: --data ".*noloss\.jsonl" has \d+ warnings:$/);
    expect(r.stderr).toContainEqual(expect.stringMatching(/^  line 1: warning: [\d,]+ tokens, longer than max_seq_len 32: truncated/));
    expect(r.stderr).toContainEqual(expect.stringMatching(/^  line 1: warning: after truncation nothing of the completion is left to learn from/));
  });

  // The command it points to read the file as validate's defaults do (max_seq_len 4096): it found no warning of the 60.
  it('names the validate command that lists every data warning as this run reads the file', async () => {
    const dir = folder('finetune-many-warnings-');
    const data = rows(join(dir, 'long.jsonl'), Array.from({ length: 30 }, (_, i) => `${JSON.stringify({ text: `row ${i}: ${'many words here '.repeat(4)}` })}\n`).join(''));
    const r = await train(['--model', MODEL, '--data', data, '--out', join(dir, 'out'), '--max_seq_len', '8', '--max_steps', '1']);
    const more = r.stderr.find((l) => l.startsWith('  … and '));
    expect(more).toBe(`  … and 20 more (finetune validate "${data}" --layout replicate --max_seq_len 8 lists them)`);
    // That command lists all 30.
    const { main } = await import('../../../src/cli/main.ts');
    const err: string[] = [];
    await main(['validate', data, '--layout', 'replicate', '--max_seq_len', '8'], { out: () => {}, err: (l) => err.push(l) });
    expect(err.filter((l) => /^line \d+: warning: .*truncated/.test(l))).toHaveLength(30);
  });
});
