// `finetune train` over a lost GPU device (src/cli/commands/train.ts, --recover): each attempt gets a new device, loads
// the model again and continues from the run's last checkpoint, or starts the run again when it had none yet; the
// adapter it writes is the one a run that was never interrupted writes, byte for byte. Past --recover attempts it
// stops and says how to resume. The devices are real (Dawn over SwiftShader); the test loses them with destroy(), as
// a driver reset loses them, at the events it names.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createNodeContext } from '../../src/cli/node-gpu.ts';
import { makeTrainCommand } from '../../src/cli/commands/train.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';

const ROWS = ['def add(a, b):\n    return a + b', 'def sub(a, b):\n    return a - b', 'x = [1, 2, 3]'];
const HP = { num_train_epochs: 1, train_batch_size: 1, micro_batch_size: 1, lora_rank: 2, lora_alpha: 4, learning_rate: 1e-3, max_seq_len: 8, save_steps: 1, run_validation: false, peft_method: 'qlora' };

interface Event {
  type: string;
  step?: number;
  attempt?: number;
  resumeAt?: number | null;
  resumedAt?: number;
  steps?: number;
}

/** Runs `finetune train` in this process; `loseAt(event, attempt)` says when to lose the current attempt's device. */
async function train(out: string, extra: string[], loseAt: (e: Event, attempt: number) => boolean = () => false): Promise<{ events: Event[]; err: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'finetune-recover-'));
  writeFileSync(join(dir, 'rows.jsonl'), ROWS.map((text) => JSON.stringify({ text })).join('\n'));
  const contexts: GpuContext[] = [];
  const command = makeTrainCommand(async (o) => {
    const made = await createNodeContext(o);
    contexts.push(made.ctx);
    return made;
  });
  const events: Event[] = [];
  const err: string[] = [];
  const args = ['--model', 'test/fixtures/tiny-mistral', '--data', join(dir, 'rows.jsonl'), '--out', out, '--no-cache', ...extra];
  for (const [k, v] of Object.entries(HP)) args.push(`--${k}`, String(v));
  const io = {
    out: (line: string) => {
      const e = JSON.parse(line) as Event;
      events.push(e);
      const attempt = contexts.length - 1;
      if (loseAt(e, attempt)) contexts[attempt].device.destroy();
    },
    err: (line: string) => void err.push(line),
  };
  try {
    await command.run(args, io);
  } finally {
    for (const c of contexts) c.destroyDevice();
  }
  return { events, err };
}

describe('finetune train --recover', () => {
  it('starts again when lost before a checkpoint, resumes from the checkpoint when lost after one, and writes the uninterrupted adapter', async () => {
    const root = mkdtempSync(join(tmpdir(), 'finetune-recover-out-'));
    // Attempt 0 loses its device as the run starts (no checkpoint yet); attempt 1 after its checkpoint at step 1.
    const recovered = await train(join(root, 'recovered'), [], (e, attempt) => (attempt === 0 && e.type === 'plan') || (attempt === 1 && e.type === 'checkpoint' && e.step === 1));
    const lost = recovered.events.filter((e) => e.type === 'device-lost');
    expect(lost).toMatchObject([
      { attempt: 1, resumeAt: null },
      { attempt: 2, resumeAt: 1 },
    ]);
    expect(recovered.err.some((l) => /getting a new GPU device and starting the run again \(it had no checkpoint yet\) \(attempt 1 of 2\)/.test(l))).toBe(true);
    expect(recovered.err.some((l) => /getting a new GPU device and continuing from the checkpoint at step 1 \(attempt 2 of 2\)/.test(l))).toBe(true);
    expect(recovered.events.filter((e) => e.type === 'plan').map((e) => e.resumedAt)).toEqual([0, 0, 1]);
    expect(recovered.events.at(-1)).toMatchObject({ type: 'done', steps: 3, stopped: false });

    const whole = await train(join(root, 'whole'), []);
    expect(whole.events.some((e) => e.type === 'device-lost')).toBe(false);
    const adapter = (run: string): Buffer => readFileSync(join(root, run, 'adapter', 'adapter_model.safetensors'));
    expect(adapter('recovered').equals(adapter('whole'))).toBe(true);
  }, 1_200_000);

  it('past --recover attempts, stops with the checkpoint kept and says how to resume', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'finetune-recover-out-')), 'run');
    await expect(train(out, ['--recover', '0'], (e) => e.type === 'checkpoint' && e.step === 1)).rejects.toMatchObject({
      kind: 'device-lost',
      message: expect.stringMatching(/The last checkpoint in .* is kept: run finetune train again with --model and --out as before and --resume to continue$/),
    });
  }, 600_000);

  it('refuses a --recover that is not a whole number ≥ 0, before touching the GPU', async () => {
    const command = makeTrainCommand(() => Promise.reject(new Error('no GPU should be asked for')));
    for (const bad of ['2.5', 'two', '=-1']) {
      const args = ['--model', 'test/fixtures/tiny-mistral', '--data', 'public/datasets/sample.jsonl', bad.startsWith('=') ? `--recover${bad}` : '--recover', ...(bad.startsWith('=') ? [] : [bad])];
      await expect(command.run(args, { out: () => undefined, err: () => undefined })).rejects.toMatchObject({
        kind: 'bad-input',
        message: `--recover must be a whole number ≥ 0, got "${bad.replace(/^=/, '')}"`,
      });
    }
  });
});
