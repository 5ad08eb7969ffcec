// The memory planner against the ledger: what planMemory predicts from config.json and the hyperparameters alone
// must be what the engine then allocates — loading, and during a training step (forward, backward with per-layer
// recomputation, AdamW) — on tiny-mistral, the demo model and a synthetic Mistral-shaped stack.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { parseHyperparams, targetModules } from '../../src/config/index.ts';
import type { Hyperparams } from '../../src/config/hyperparams.ts';
import { uniformSource } from '../../src/core/prng.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { destroyLora, downloadLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { destroyMistralWeights, loadMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { randomMistral } from '../../src/bench/model.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { createAdapter } from '../../src/model/lora-adapter.ts';
import type { MistralConfig } from '../../src/model/config.ts';
import { planMemory, type MemoryPlan } from '../../src/run/planner.ts';
import { FinetuneSession } from '../../src/run/session.ts';
import { samplePromptIds } from '../../src/data/layout.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { gpuContext } from './context.ts';

/** One training step as the trainer runs it; returns the ledger's peak by category over the step. */
async function measureStep(ctx: GpuContext, config: MistralConfig, weights: MistralWeights, hp: Hyperparams) {
  ctx.ledger.resetPeaks();
  const adapter = createAdapter(config, { r: hp.lora_rank, alpha: hp.lora_alpha, dropout: hp.lora_dropout, targetModules: targetModules(hp), random: uniformSource(1, 1) });
  const lora = uploadLora(ctx, weights.dims, adapter);
  const B = hp.micro_batch_size;
  const T = hp.max_seq_len;
  const runner = new MistralRunner(ctx, weights, lora, { B, T, seed: 3 });
  try {
    const ids = Array.from({ length: B * T }, (_, i) => (i * 7919 + 13) % config.vocabSize);
    runner.setBatch({
      B,
      T,
      inputIds: ids,
      targets: ids.map((_, i) => ((i + 1) % T === 0 ? -100 : ids[i + 1])),
      segmentIds: new Uint32Array(B * T).fill(1),
      positionIds: Uint32Array.from({ length: B * T }, (_, i) => i % T),
    });
    runner.zeroGrads();
    runner.resetLoss();
    runner.forwardBackward(1 / (B * T), 1 / (B * T), 'train');
    runner.optimizerStep({ lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
    expect(Number.isFinite(await runner.readLoss())).toBe(true);
    // A checkpoint reads the adapter back tensor by tensor (the plan's io counts its staging buffer).
    await downloadLora(ctx, lora, adapter);
    return ctx.ledger.snapshot();
  } finally {
    runner.destroy();
    destroyLora(ctx, lora);
  }
}

function expectStepMatches(plan: MemoryPlan, peak: ReturnType<GpuContext['ledger']['snapshot']>, baseline: number): void {
  const c = peak.byCategory;
  // The categories the planner computes from the same sizing as the allocation agree exactly.
  expect(c.weights.peakBytes).toBe(plan.bytes.weights);
  expect(c.lora.peakBytes).toBe(plan.bytes.lora);
  expect(c.optimizer.peakBytes).toBe(plan.bytes.optimizer);
  expect(c.activations.peakBytes).toBe(plan.bytes.activations);
  expect(c.io.peakBytes).toBe(plan.bytes.io);
  // The step, with a checkpoint's readback after it, peaks where the plan says, to the byte.
  expect(peak.peakBytes - baseline + plan.bytes.context).toBe(plan.trainPeakBytes);
}

describe('memory planner vs the ledger', () => {
  for (const [name, dir, quantization, extra] of [
    ['tiny-mistral', 'test/fixtures/tiny-mistral', 'nf4', { lora_target_modules: 'all-linear', lora_dropout: 0.1 }],
    ['the demo model', 'public/models/mistral-nano-demo', 'nf4-double', { lora_rank: 16, lora_dropout: 0 }],
  ] as const) {
    it(`${name} (${quantization}): load and training-step peaks to the byte`, async () => {
      const ctx = await gpuContext();
      const hp = parseHyperparams({ peft_method: 'qlora', quantization, micro_batch_size: 2, train_batch_size: 2, max_seq_len: 6, validation_batch_size: 1, ...extra });
      const ckpt = await openBaseCheckpoint(nodeDirectory(dir));
      const plan = planMemory(ckpt.config, hp);
      const before = ctx.ledger.snapshot().currentBytes;
      ctx.ledger.resetPeaks();
      const weights = await loadMistralWeights(ctx, ckpt, { quantization });
      try {
        const load = ctx.ledger.snapshot();
        expect(load.currentBytes - before).toBe(plan.weights.total);
        expect(load.peakBytes - before + plan.bytes.context).toBe(plan.loadPeakBytes);
        expectStepMatches(plan, await measureStep(ctx, ckpt.config, weights, hp), before);
      } finally {
        destroyMistralWeights(ctx, weights);
      }
    });
  }

  it('with the NF4 base products in int8 (all, or the MLP only; docs/int8.md), the step adds exactly the quantisation scratch the plan adds', async () => {
    const ctx = await gpuContext();
    const hp = parseHyperparams({ peft_method: 'qlora', quantization: 'nf4', micro_batch_size: 2, train_batch_size: 2, max_seq_len: 6, lora_target_modules: 'all-linear' });
    const ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
    const weights = await loadMistralWeights(ctx, ckpt, { quantization: 'nf4' });
    try {
      const fp32 = (await measureStep(ctx, ckpt.config, weights, hp)).byCategory.scratch.peakBytes;
      for (const choice of ['int8', 'int8-mlp'] as const) {
        const extra = planMemory(ckpt.config, hp, { baseMatmul: choice }).bytes.scratch - planMemory(ckpt.config, hp).bytes.scratch;
        expect(extra, choice).toBeGreaterThan(0);
        ctx.baseMatmul = choice;
        try {
          const int8 = (await measureStep(ctx, ckpt.config, weights, hp)).byCategory.scratch.peakBytes;
          expect(int8 - fp32, choice).toBe(extra);
        } finally {
          ctx.baseMatmul = 'fp32';
          ctx.releaseScratch();
        }
      }
    } finally {
      destroyMistralWeights(ctx, weights);
    }
  });

  it('the demo model loaded with streamed layers (nf4-double): two layer slots on the GPU, load and step peaks to the byte', async () => {
    const ctx = await gpuContext();
    const hp = parseHyperparams({ peft_method: 'qlora', quantization: 'nf4-double', micro_batch_size: 2, train_batch_size: 2, max_seq_len: 6, validation_batch_size: 1, lora_rank: 16, lora_dropout: 0 });
    const ckpt = await openBaseCheckpoint(nodeDirectory('public/models/mistral-nano-demo'));
    const plan = planMemory(ckpt.config, hp);
    const s = plan.streaming;
    expect(s.savedBytes).toBeGreaterThan(0);
    const before = ctx.ledger.snapshot().currentBytes;
    ctx.ledger.resetPeaks();
    const weights = await loadMistralWeights(ctx, ckpt, { quantization: 'nf4-double', streamLayers: true });
    try {
      const load = ctx.ledger.snapshot();
      expect(load.currentBytes - before).toBe(s.gpuWeightBytes);
      expect(weights.stream?.layerBytes).toBe(s.layerBytes);
      expect(weights.stream?.hostBytes).toBe(s.hostBytes);
      expect(load.peakBytes - before + plan.bytes.context).toBe(s.loadPeakBytes);
      const peak = await measureStep(ctx, ckpt.config, weights, hp);
      expect(peak.byCategory.weights.peakBytes).toBe(s.gpuWeightBytes);
      expectStepMatches({ ...plan, bytes: { ...plan.bytes, weights: s.gpuWeightBytes }, trainPeakBytes: s.trainPeakBytes }, peak, before);
    } finally {
      destroyMistralWeights(ctx, weights);
    }
  });

  it('a synthetic Mistral-shaped stack (GQA, 3 layers, all projections): training-step peak to the byte', async () => {
    const ctx = await gpuContext();
    const d = { V: 1000, C: 256, I: 704, L: 3, nH: 4, nKV: 2, hd: 64, theta: 1e6, eps: 1e-5 };
    const config: MistralConfig = {
      vocabSize: d.V, hidden: d.C, intermediate: d.I, layers: d.L, heads: d.nH, kvHeads: d.nKV, headDim: d.hd, ropeTheta: d.theta,
      rmsNormEps: d.eps, maxPositions: 4096, tieWordEmbeddings: false, slidingWindow: null, dtype: 'bfloat16', bosTokenId: 1, eosTokenId: 2, warnings: [],
    };
    const hp = parseHyperparams({ peft_method: 'qlora', micro_batch_size: 3, train_batch_size: 3, max_seq_len: 5, lora_target_modules: 'all-linear', lora_rank: 4 });
    const plan = planMemory(config, hp);
    const before = ctx.ledger.snapshot().currentBytes;
    const weights = await randomMistral(ctx, d, true);
    try {
      expect(ctx.ledger.snapshot().currentBytes - before).toBe(plan.weights.total);
      expectStepMatches(plan, await measureStep(ctx, config, weights, hp), before);
    } finally {
      destroyMistralWeights(ctx, weights);
    }
  });
});

describe('a run that writes validation_prompt samples vs its plan', () => {
  // The sample's decoder is made after each validation with the runner's buffers still held: the plan counts it
  // (bytes.kvCache and its share of activations, scratch and io), or a run on a budget the plan passed goes over it.
  const rows = [
    'def add(a, b):\n    return a + b  # adds two numbers and returns their sum',
    'for i in range(10):\n    print(i, i * i, "squares and their roots")',
    'class Stack:\n    def __init__(self):\n        self.items = []',
    'import os\nprint(os.path.join("a", "b"), os.getcwd(), os.sep)',
  ];
  for (const [name, dir, peft, quantization] of [
    ['tiny-mistral (bf16 base)', 'test/fixtures/tiny-mistral', 'lora', 'none'],
    ['the demo model (NF4, double quantisation)', 'public/models/mistral-nano-demo', 'qlora', 'nf4-double'],
  ] as const) {
    it(`${name}: the ledger's peak over the run is the plan's, KV cache included`, async () => {
      const ctx = await gpuContext();
      const tokenizer = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
      const session = new FinetuneSession(ctx, tokenizer, null);
      const baseline = ctx.ledger.snapshot().currentBytes;
      const hpIn = { peft_method: peft, num_train_epochs: 1, train_batch_size: 1, micro_batch_size: 1, num_validation_samples: 1, lora_rank: 4, max_seq_len: 12, eval_steps: 2, validation_prompt: 'def multiply(a, b):' };
      const hp = parseHyperparams(hpIn);
      const ckpt = await openBaseCheckpoint(nodeDirectory(dir));
      const promptTokens = samplePromptIds(tokenizer, hp.validation_prompt!, hp.layout).length;
      const plan = planMemory(ckpt.config, hp, { gpu: { software: ctx.report.software }, samplePromptTokens: promptTokens, sampleMaxTokens: 3 });
      expect(plan.run.sample).toEqual({ promptTokens, promptTokensFrom: 'tokenizer', positions: promptTokens + 2 });
      expect(plan.bytes.kvCache).toBeGreaterThan(0);
      await session.loadModel(nodeDirectory(dir), name, quantization);
      try {
        ctx.ledger.resetPeaks();
        const samples: string[] = [];
        const r = await session.train(hpIn, { train: new Blob([rows.map((text) => JSON.stringify({ text })).join('\n')]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
          if (e.type === 'sample') samples.push(e.text);
        }, { sampleMaxTokens: 3 });
        expect(r.stopped).toBe(false);
        expect(samples.length).toBeGreaterThan(0);
        const peak = ctx.ledger.snapshot();
        expect(peak.byCategory['kv-cache'].peakBytes).toBe(plan.bytes.kvCache);
        expect(peak.byCategory.activations.peakBytes).toBe(plan.bytes.activations);
        expect(peak.byCategory.weights.peakBytes).toBe(plan.bytes.weights);
        expect(peak.peakBytes - baseline + plan.bytes.context).toBe(plan.trainPeakBytes);
      } finally {
        session.unloadModel();
      }
    });
  }
});
