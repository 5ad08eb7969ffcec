// The experimental int8 base path measured where training feels it (docs/int8.md): the golden check's accuracy gates
// (loss, LoRA-gradient cosine against the fp32 path) and the loss-curve A/B with its per-product probe, on
// tiny-mistral. What is asserted is that the measurements measure: the int8 path really ran (its numbers differ from
// fp32's), its error is an int8-sized one (not a broken kernel's), and everything is put back afterwards.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeDirectory, nodeFileSource } from '../../src/cli/node-source.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { runGoldenCheck } from '../../src/run/check.ts';
import { int8LossAB } from '../../src/run/int8-ab.ts';
import { FinetuneSession, memoryRunStore } from '../../src/run/session.ts';
import { gpuContext } from './context.ts';

describe('int8 base path: accuracy gates and loss-curve A/B', () => {
  it('check --int8-gates all: the golden check still passes; int8 everywhere misses the gradient gate, int8 on the MLP holds both', async () => {
    const ctx = await gpuContext();
    const report = await runGoldenCheck(ctx, {
      model: nodeDirectory('test/fixtures/tiny-mistral'),
      adapter: nodeDirectory('test/fixtures/tiny-adapter'),
      golden: await nodeFileSource('test/fixtures/golden_qlora.safetensors'),
      quantization: 'nf4',
      int8Gates: ['int8', 'int8-mlp'],
    });
    // The fp32 comparisons, AdamW's included, are untouched by the int8 passes run between them.
    expect(report.ok).toBe(true);
    expect(report.groups.adamw_step1.ok).toBe(true);
    for (const choice of ['int8', 'int8-mlp'] as const) {
      const q = report.int8![choice]!;
      expect(q.loss.fp32).toBe(report.loss!.engine);
      // int8 ran: not the fp32 numbers, and off by an int8-sized amount.
      expect(q.loss.int8).not.toBe(q.loss.fp32);
      expect(q.loss.relError).toBeLessThan(1e-2);
      expect(q.gradCosine.tensors).toBe(28);
      expect(q.gradCosine.all).toBeLessThan(1);
      expect(q.gradCosine.worst).toBeGreaterThan(0.98);
      expect(q.ok).toBe(q.loss.relError <= 1e-3 && q.gradCosine.worst >= 0.999 && q.gradCosine.all >= 0.999);
    }
    // docs/int8.md: the attention projections in int8 cost the LoRA gradients most; without them the gates hold.
    expect(report.int8!['int8-mlp']!.ok).toBe(true);
    expect(report.int8!['int8-mlp']!.gradCosine.worst).toBeGreaterThan(report.int8!.int8!.gradCosine.worst);
    expect(ctx.baseMatmul).toBe('fp32');
  });

  it('the loss-curve A/B trains twice from one seed and probes every NF4 product of the int8 run’s first step', async () => {
    const ctx = await gpuContext();
    const tokenizer = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    const session = new FinetuneSession(ctx, tokenizer, memoryRunStore());
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4');
    const rows = ['def add(a, b):\n    return a + b', 'x = [1, 2, 3]', 'print("hi")'].map((text) => JSON.stringify({ text })).join('\n');
    const hp = { peft_method: 'qlora', quantization: 'nf4', lora_target_modules: 'all-linear', lora_rank: 2, lora_alpha: 4, micro_batch_size: 1, train_batch_size: 1, max_seq_len: 16, max_steps: 2, num_train_epochs: 5, run_validation: false, learning_rate: 1e-3 };
    const scratchBefore = ctx.ledger.liveBuffers().filter((b) => b.label.startsWith('int8 probe')).length;
    const ab = await int8LossAB(ctx, session, hp, { train: new Blob([rows]), trainName: 'rows.jsonl', validation: null, validationName: null }, 'int8');
    expect(ab.steps.map((s) => s.step)).toEqual([1, 2]);
    for (const s of ab.steps) {
      expect(Number.isFinite(s.fp32) && Number.isFinite(s.int8)).toBe(true);
      expect(s.relDiff).toBeLessThan(0.02);
    }
    // The two runs took different arithmetic.
    expect(ab.steps.some((s) => s.int8 !== s.fp32)).toBe(true);
    // Seven projections, forward and input gradient, both layers of the first step; int8-sized errors.
    expect(ab.probe.map((p) => `${p.kind} ${p.projection}`).sort()).toEqual(
      ['forward', 'input-gradient'].flatMap((k) => ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'].map((m) => `${k} ${m}`)).sort(),
    );
    for (const p of ab.probe) {
      expect(p.products).toBeGreaterThanOrEqual(2);
      expect(p.medianRelError).toBeGreaterThan(1e-4);
      expect(p.worstRelError).toBeLessThan(0.05);
    }
    expect(ab.summary).toMatchObject({ steps: 2, choice: 'int8' });
    // Everything put back: the choice, the probe, and the probe's buffers.
    expect(ctx.baseMatmul).toBe('fp32');
    expect(ctx.int8Probe).toBeNull();
    expect(ctx.ledger.liveBuffers().filter((b) => b.label.startsWith('int8 probe')).length).toBe(scratchBefore);
    tokenizer.dispose();
  });
});
