// `finetune train` without --gpu-memory asks the machine (src/cli/gpu-memory.ts: nvidia-smi on an NVIDIA GPU), says
// what it found, and plans the run against it: here, told of 80 GiB, the tiny model keeps every layer for the backward
// instead of recomputing it, and says so (what is said when the machine cannot tell: test/unit/cli/gpu-memory.test.ts).
// The device is real (Dawn over SwiftShader); what the machine says is handed in, as nvidia-smi would say it.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTrainCommand } from '../../src/cli/commands/train.ts';
import { memoryFromNvidiaSmi, type GpuMemoryDetection } from '../../src/cli/gpu-memory.ts';
import { createNodeContext } from '../../src/cli/node-gpu.ts';
import type { GpuAdapterInfo } from '../../src/engine/gpu-adapter.ts';

const HP = { max_steps: 1, train_batch_size: 1, micro_batch_size: 1, lora_rank: 2, lora_alpha: 4, max_seq_len: 8, run_validation: false, peft_method: 'qlora' };

async function train(detection: GpuMemoryDetection | null): Promise<{ events: { type: string; text?: string }[]; err: string[]; asked: GpuAdapterInfo[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'finetune-gpu-memory-'));
  writeFileSync(join(dir, 'rows.jsonl'), '{"text": "def add(a, b):\\n    return a + b"}\n');
  const asked: GpuAdapterInfo[] = [];
  const command = makeTrainCommand(createNodeContext, async (adapter) => {
    asked.push(adapter);
    return detection;
  });
  const events: { type: string; text?: string }[] = [];
  const err: string[] = [];
  const args = ['--model', 'test/fixtures/tiny-mistral', '--data', join(dir, 'rows.jsonl'), '--out', join(dir, 'out'), '--no-cache'];
  for (const [k, v] of Object.entries(HP)) args.push(`--${k}`, String(v));
  await command.run(args, { out: (line) => void events.push(JSON.parse(line)), err: (line) => void err.push(line) });
  return { events, err, asked };
}

describe('finetune train: the GPU memory from the machine', () => {
  it('plans against the memory nvidia-smi reports and says so: the tiny model keeps every layer', async () => {
    const said = memoryFromNvidiaSmi([{ name: 'NVIDIA A100-SXM4-80GB', totalMiB: 81920, freeMiB: 81920 }]);
    const { events, err, asked } = await train(said);
    // Asked once, about the adapter the run trains on.
    expect(asked).toHaveLength(1);
    expect(asked[0].limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(err).toContain('note: GPU memory from nvidia-smi: 80.0 GiB free of 80.0 GiB (NVIDIA A100-SXM4-80GB); --gpu-memory GB overrides it');
    const status = events.filter((e) => e.type === 'status').map((e) => e.text ?? '');
    expect(status.some((t) => /^recomputation: none: every layer keeps its intermediates .* — chosen for the GPU's 80(\.0)? GiB/.test(t)), status.join('\n')).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: 'done', steps: 1 });
  });
});
