// The whole engine against the PyTorch/PEFT goldens (test/fixtures/README.md): loss, logits, logsumexp, hidden states,
// every LoRA gradient, one AdamW step, and exact NF4 dequantisation.
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory, nodeFileSource } from '../../src/cli/node-source.ts';
import { runGoldenCheck, TOLERANCE } from '../../src/run/check.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { gpuContext } from './context.ts';

const MODEL = 'test/fixtures/tiny-mistral';
const ADAPTER = 'test/fixtures/tiny-adapter';

async function check(ctx: GpuContext, golden: string, quantization: 'none' | 'nf4') {
  return runGoldenCheck(ctx, { model: nodeDirectory(MODEL), adapter: nodeDirectory(ADAPTER), golden: await nodeFileSource(golden), quantization });
}

describe('finetune check against the goldens', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('matches golden_lora (bf16 base, LoRA on all seven projections) within tolerance', async () => {
    const r = await check(ctx, 'test/fixtures/golden_lora.safetensors', 'none');
    expect(Object.keys(r.groups).sort()).toEqual(['adamw_step1', 'grad', 'hidden_states', 'logits', 'logsumexp', 'loss']);
    expect(r.groups.grad.count).toBe(28);
    expect(r.groups.adamw_step1.count).toBe(28);
    expect(r.groups.hidden_states.count).toBe(3);
    for (const [name, g] of Object.entries(r.groups)) expect(g.worst, name).toBeLessThanOrEqual(g.tolerance);
    expect(Math.abs(r.loss!.engine - r.loss!.golden) / r.loss!.golden).toBeLessThanOrEqual(TOLERANCE.loss);
    expect(r.ok).toBe(true);
  });

  it('matches golden_qlora (NF4 base) and dequantises every NF4 weight exactly', async () => {
    const r = await check(ctx, 'test/fixtures/golden_qlora.safetensors', 'nf4');
    expect(r.groups.nf4_dequant.count).toBe(14);
    expect(r.groups.nf4_dequant.worst).toBe(0);
    expect(r.groups.grad.count).toBe(28);
    for (const [name, g] of Object.entries(r.groups)) expect(g.worst, name).toBeLessThanOrEqual(g.tolerance);
    expect(r.ok).toBe(true);
  });

  it('fails when the engine computes something else (full-precision base against the NF4 golden)', async () => {
    const r = await check(ctx, 'test/fixtures/golden_qlora.safetensors', 'none');
    expect(r.ok).toBe(false);
    expect(r.groups.loss.ok).toBe(false);
    expect(r.groups.grad.ok).toBe(false);
  });
});
