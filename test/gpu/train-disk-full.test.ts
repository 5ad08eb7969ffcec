// `finetune train` when a checkpoint cannot be written (a full disk, injected at the run store's write probe after the
// temporary file holds the bytes): the error names the file, the last complete checkpoint and what to do; the adapter
// trained so far is still written to OUT/adapter; no temporary file is left; the last complete checkpoint resumes.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createNodeContext } from '../../src/cli/node-gpu.ts';
import { makeTrainCommand } from '../../src/cli/commands/train.ts';
import { folderRunStore } from '../../src/cli/node-store.ts';
import { reportCommandError } from '../../src/cli/main.ts';
import { readSavedRun } from '../../src/run/saved-run.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';

const ROWS = ['def add(a, b):\n    return a + b', 'def sub(a, b):\n    return a - b', 'x = [1, 2, 3]'];
const HP = { num_train_epochs: 1, train_batch_size: 1, micro_batch_size: 1, lora_rank: 2, lora_alpha: 4, learning_rate: 1e-3, max_seq_len: 8, save_steps: 1, run_validation: false, peft_method: 'lora' };

describe('finetune train and a full disk at a checkpoint', () => {
  it('at the last step: says which file and which checkpoint is kept, still writes the adapter, leaves no temporary file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-full-'));
    writeFileSync(join(dir, 'rows.jsonl'), ROWS.map((text) => JSON.stringify({ text })).join('\n'));
    const out = join(dir, 'out');
    const contexts: GpuContext[] = [];
    // The third checkpoint (step 3, the last) runs out of space once its state's temporary file is written.
    const full = async (point: string): Promise<void> => {
      if (point === 'fsync 000003-state.safetensors') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    };
    const command = makeTrainCommand(
      async (o) => {
        const made = await createNodeContext(o);
        contexts.push(made.ctx);
        return made;
      },
      undefined,
      full,
    );
    const err: string[] = [];
    const args = ['--model', 'test/fixtures/tiny-mistral', '--data', join(dir, 'rows.jsonl'), '--out', out, '--no-cache'];
    for (const [k, v] of Object.entries(HP)) args.push(`--${k}`, String(v));
    const e = await command
      .run(args, { out: () => {}, err: (l) => void err.push(l) })
      .then(() => null, (x: unknown) => x as Error)
      .finally(() => contexts.forEach((c) => c.destroyDevice()));
    const file = join(out, 'run', '000003-state.safetensors');
    expect(e?.message).toBe(
      `the checkpoint at step 3 could not be saved: could not write "${file}": ENOSPC: no space left on device, write; nothing was written there. The last complete checkpoint, at step 2, is kept: free some space, then resume from it (finetune train with --model and --out as before and --resume)`,
    );
    // The adapter of step 3 is written all the same, and said so.
    expect(existsSync(join(out, 'adapter', 'adapter_model.safetensors'))).toBe(true);
    expect(err.join('\n')).toContain(`note: the adapter trained up to step 3 was written to "${join(out, 'adapter')}" all the same`);
    expect(readdirSync(join(out, 'run')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(await readSavedRun(folderRunStore(join(out, 'run')))).toMatchObject({ step: 2, totalSteps: 3 });
  });

  it('the adapter at the run\'s end: says the run is saved and how to write the adapter, which --resume then does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-full-adapter-'));
    writeFileSync(join(dir, 'rows.jsonl'), ROWS.map((text) => JSON.stringify({ text })).join('\n'));
    const out = join(dir, 'out');
    // A folder where the adapter's README.md goes: its write fails (EISDIR), as a full disk would, after the last
    // checkpoint is saved. The message once was the bare `EISDIR, "…README.md"` (node-error.ts rebuilt it from the
    // code and path), saying neither what was kept nor what to do.
    mkdirSync(join(out, 'adapter', 'README.md'), { recursive: true });
    const contexts: GpuContext[] = [];
    const command = makeTrainCommand(async (o) => {
      const made = await createNodeContext(o);
      contexts.push(made.ctx);
      return made;
    });
    const args = ['--model', 'test/fixtures/tiny-mistral', '--data', join(dir, 'rows.jsonl'), '--out', out, '--no-cache', '--overwrite'];
    for (const [k, v] of Object.entries(HP)) args.push(`--${k}`, String(v));
    const lines: string[] = [];
    const io = { out: () => {}, err: (l: string) => void lines.push(l) };
    const code = await command.run(args, io).then(
      () => 'finished',
      (e: unknown) => reportCommandError('train', 'usage', e, io),
    );
    expect(code).toBe(2);
    expect(lines.at(-1)).toBe(
      `finetune train: bad-input: could not write "${join(out, 'adapter', 'README.md')}": EISDIR: illegal operation on a directory; "${join(out, 'adapter')}" now holds part of the new set without adapter_config.json, so no reader takes it for one: write it again. The run itself is saved in "${join(out, 'run')}" (step 3): once the folder can be written, run the same command with --resume: it writes the adapter again, training nothing`,
    );
    // As it says: the folder out of the way, --resume writes the adapter of step 3 without training a step.
    rmSync(join(out, 'adapter', 'README.md'), { recursive: true });
    const events: { type: string }[] = [];
    const said: string[] = [];
    const resumed = await command
      .run(['--model', 'test/fixtures/tiny-mistral', '--out', out, '--resume', '--no-cache'], { out: (l) => void events.push(JSON.parse(l)), err: (l) => void said.push(l) })
      .finally(() => contexts.forEach((c) => c.destroyDevice()));
    expect(resumed).toBe(0);
    expect(said).toContain(`note: the run saved in "${join(out, 'run')}" had finished (3 steps): --resume trains nothing and writes its adapter again`);
    expect(events.filter((e) => e.type === 'step')).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: 'done', steps: 3 });
    expect(existsSync(join(out, 'adapter', 'adapter_model.safetensors'))).toBe(true);
    expect(existsSync(join(out, 'adapter', 'README.md'))).toBe(true);
  });
});
