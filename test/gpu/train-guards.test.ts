// Non-finite guards of the training loop on tiny-mistral. A NaN reaches the activations through a poisoned input (an
// embedding row set to NaN, used by one token): a step whose loss is not finite is skipped and reported, its update
// never applied (the checkpoint after it equals the one before, moments included); so is a step whose loss is finite
// but whose gradient norm is not (the poison where no loss is counted).
// Five bad steps in a row stop the run with a clear error and leave the last checkpoint finite and intact; a
// checkpoint of a non-finite adapter is refused (exports: test/unit/model/lora-adapter.test.ts).
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { parseHyperparams, targetModules } from '../../src/config/index.ts';
import { FinetuneError } from '../../src/core/errors.ts';
import type { TrainingData, TrainStep } from '../../src/data/batches.ts';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.ts';
import { loadRunData } from '../../src/data/training-data.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { dimsOf } from '../../src/engine/mistral/dims.ts';
import { destroyLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { destroyMistralWeights, loadMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { mulberry32 } from '../../src/engine/reference/common.ts';
import { openBaseCheckpoint, type BaseCheckpoint } from '../../src/model/checkpoint.ts';
import { createAdapter } from '../../src/model/lora-adapter.ts';
import { openSafetensors } from '../../src/model/safetensors.ts';
import { bytesSource } from '../../src/model/source.ts';
import { FinetuneSession, memoryRunStore, type TrainEvent } from '../../src/run/session.ts';
import { MAX_CONSECUTIVE_SKIPPED_STEPS, runnerShape, saveTrainState, train, type SkipReport } from '../../src/run/trainer.ts';
import { gpuContext } from './context.ts';

const ROWS = ['def add(a, b): return a + b', 'def sub(a, b): return a - b', 'x = [1, 2, 3]', 'print("hi")', 'y = x * 2', 'import os'];
const JSONL = ROWS.map((text) => JSON.stringify({ text })).join('\n');
const HP = {
  num_train_epochs: 1,
  train_batch_size: 1,
  micro_batch_size: 1,
  num_validation_samples: 1,
  run_validation: false,
  lora_rank: 2,
  lora_alpha: 4,
  lora_dropout: 0,
  learning_rate: 1e-3,
  max_seq_len: 8,
  save_steps: 1,
  peft_method: 'lora',
};
/** A token no row uses: its embedding row is the poison. */
const POISON = 31999;

/** Sets one embedding row of the loaded base to NaN (the base is frozen: nothing else changes it). */
function poisonEmbedding(ctx: GpuContext, w: MistralWeights, token: number): void {
  const C = w.dims.C;
  const { storage, buffer } = w.embed;
  if (storage === 'bf16') ctx.write(buffer, new Uint16Array(C).fill(0x7fc0), token * C * 2);
  else if (storage === 'f32') ctx.write(buffer, new Float32Array(C).fill(NaN), token * C * 4);
  else throw new Error(`embedding storage ${storage} not handled by this test`);
}

/** Every value of a weight buffer's bytes multiplied by `factor`, in the buffer's storage (bf16 or f32). */
function scaled(bytes: Uint8Array, storage: string, factor: number): Uint8Array {
  if (storage === 'f32') return new Uint8Array(Float32Array.from(new Float32Array(bytes.slice().buffer), (x) => x * factor).buffer);
  if (storage !== 'bf16') throw new Error(`weight storage ${storage} not handled by this test`);
  const u16 = new Uint16Array(bytes.slice().buffer);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  return new Uint8Array(
    Uint16Array.from(u16, (h) => {
      u[0] = h << 16;
      f[0] *= factor;
      return u[0] >>> 16;
    }).buffer,
  );
}

/** Every tensor of a training state (adapter and moments) as bytes, by name. */
async function stateTensors(state: Uint8Array): Promise<Map<string, Uint8Array>> {
  const f = await openSafetensors(bytesSource(state, 'state'));
  const out = new Map<string, Uint8Array>();
  for (const name of f.names()) out.set(name, await f.read(name));
  return out;
}

async function sameTensors(a: Uint8Array, b: Uint8Array): Promise<boolean> {
  const [x, y] = [await stateTensors(a), await stateTensors(b)];
  return x.size === y.size && [...x].every(([n, v]) => Buffer.from(v).equals(Buffer.from(y.get(n)!)));
}

describe('non-finite guards', () => {
  let ctx: GpuContext;
  let ckpt: BaseCheckpoint;
  let tok: Tokenizer;
  beforeAll(async () => {
    ctx = await gpuContext();
    ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
    tok = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
  });

  /**
   * The plan of the first `rows` rows (no validation: every row trains), its steps at `poisonedAt` (0-based) given the
   * poison token at a position whose prediction counts (their loss becomes NaN), on unquantised weights whose embedding
   * of the poison is NaN, with a fresh adapter and a runner for it.
   */
  async function poisonedRun(rows: number, poisonedAt: (index: number) => boolean) {
    const hp = parseHyperparams(HP);
    const data = (await loadRunData({ train: new Blob([ROWS.slice(0, rows).map((text) => JSON.stringify({ text })).join('\n')]).stream() }, tok, hp)).data;
    const poisoned: TrainingData = Object.create(data);
    poisoned.step = (index: number): TrainStep => {
      const s = data.step(index);
      const m = s.microBatches[0];
      const ids = m.inputIds.slice();
      if (poisonedAt(index)) {
        expect(m.targets[1]).not.toBe(-100);
        ids[1] = POISON;
      }
      return { ...s, microBatches: [{ ...m, inputIds: ids }] };
    };
    const weights = await loadMistralWeights(ctx, ckpt, { quantization: 'none' });
    poisonEmbedding(ctx, weights, POISON);
    const adapter = createAdapter(ckpt.config, { r: 2, alpha: 4, dropout: 0, targetModules: targetModules(hp), random: mulberry32(5) });
    const lora = uploadLora(ctx, weights.dims, adapter);
    const runner = new MistralRunner(ctx, weights, lora, { ...runnerShape(data), seed: hp.seed });
    return { hp, data, poisoned, weights, lora, runner };
  }

  it('skips steps whose loss is NaN (two in a row), never applying their update; the next good step applies its own', async () => {
    // Steps 2 and 3 poisoned, of four.
    const { hp, data, poisoned, weights, lora, runner } = await poisonedRun(4, (index) => index === 1 || index === 2);
    expect(data.stats.totalSteps).toBe(4);
    const steps: number[] = [];
    const skips: SkipReport[] = [];
    const states = new Map<number, Uint8Array>();
    try {
      const result = await train(ctx, runner, poisoned, hp, {
        onStep: (r) => steps.push(r.step),
        onSkip: (r) => skips.push(r),
        onCheckpoint: (step, state) => void states.set(step, state),
      });
      expect(steps).toEqual([1, 4]);
      expect(skips.map((s) => [s.step, s.consecutive])).toEqual([[2, 1], [3, 2]]);
      expect(skips.map((s) => s.reason)).toEqual(['the loss is NaN', 'the loss is NaN']);
      expect(result).toMatchObject({ steps: 4, skipped: 2, stopped: false });
      // The states after a skipped step equal those before it (A, B and both AdamW moments); an applied step moves them.
      expect(await sameTensors(states.get(2)!, states.get(1)!)).toBe(true);
      expect(await sameTensors(states.get(3)!, states.get(2)!)).toBe(true);
      expect(await sameTensors(states.get(4)!, states.get(3)!)).toBe(false);
    } finally {
      runner.destroy();
      destroyLora(ctx, lora);
      destroyMistralWeights(ctx, weights);
    }
  });

  it('fails a run whose every step was skipped (fewer than the stop after five in a row): it trained nothing', async () => {
    const { hp, data, poisoned, weights, lora, runner } = await poisonedRun(2, () => true);
    expect(data.stats.totalSteps).toBe(2);
    const skips: SkipReport[] = [];
    try {
      const error = await train(ctx, runner, poisoned, hp, { onSkip: (r) => skips.push(r) }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(skips.map((s) => s.step)).toEqual([1, 2]);
      expect(error).toBeInstanceOf(FinetuneError);
      expect((error as FinetuneError).kind).toBe('mismatch');
      expect((error as FinetuneError).message).toBe(
        "every step of the run (2) was skipped, so nothing was trained: the base model's weights, the adapter or the data hold non-finite values, or the learning rate is too high",
      );
    } finally {
      runner.destroy();
      destroyLora(ctx, lora);
      destroyMistralWeights(ctx, weights);
    }
  });

  it('skips a step whose loss is finite but whose gradient norm is not (lm_head scaled by 1e20 for that step)', async () => {
    const hp = parseHyperparams(HP);
    const plan = await loadRunData({ train: new Blob([ROWS.slice(0, 3).map((text) => JSON.stringify({ text })).join('\n')]).stream() }, tok, hp);
    const data = plan.data;
    expect(data.stats.totalSteps).toBe(3);
    const weights = await loadMistralWeights(ctx, ckpt, { quantization: 'none' });
    const adapter = createAdapter(ckpt.config, { r: 2, alpha: 4, dropout: 0, targetModules: targetModules(hp), random: mulberry32(5) });
    const lora = uploadLora(ctx, weights.dims, adapter);
    const runner = new MistralRunner(ctx, weights, lora, { ...runnerShape(data), seed: hp.seed });
    const original = new Uint8Array(await ctx.read(weights.lmHead.buffer));
    const steps: number[] = [];
    const losses: number[] = [];
    const skips: SkipReport[] = [];
    const states = new Map<number, Uint8Array>();
    try {
      // For step 2 only, logits 1e20 times larger: the loss (≈ 1e21) is still a finite f32, but the gradients flowing
      // back through lm_head are ≈ 1e20 and their squared sum overflows: the gradient norm is infinite.
      const result = await train(ctx, runner, data, hp, {
        onStep: (r) => {
          steps.push(r.step);
          losses.push(r.loss);
          if (r.step === 1) ctx.write(weights.lmHead.buffer, scaled(original, weights.lmHead.storage, 1e20));
        },
        onSkip: (r) => {
          skips.push(r);
          ctx.write(weights.lmHead.buffer, original);
        },
        onCheckpoint: (step, state) => void states.set(step, state),
      });
      expect(steps).toEqual([1, 3]);
      // The loss is checked first: this reason means the loss was finite and only the gradient norm was not.
      expect(skips.map((s) => [s.step, s.reason])).toEqual([[2, 'the gradient norm is Infinity']]);
      expect(result).toMatchObject({ steps: 3, skipped: 1, stopped: false });
      expect(losses.every(Number.isFinite)).toBe(true);
      // Nothing of step 2 was applied (A, B and both moments as step 1 left them); step 3 applied its own update.
      expect(await sameTensors(states.get(2)!, states.get(1)!)).toBe(true);
      expect(await sameTensors(states.get(3)!, states.get(2)!)).toBe(false);
    } finally {
      runner.destroy();
      destroyLora(ctx, lora);
      destroyMistralWeights(ctx, weights);
    }
  });

  it(`stops after ${MAX_CONSECUTIVE_SKIPPED_STEPS} bad steps in a row with a clear error, keeping the last checkpoint finite`, async () => {
    const store = memoryRunStore();
    const session = new FinetuneSession(ctx, tok, store);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'none');
    const events: TrainEvent[] = [];
    // After step 1, every row's first token (BOS) reads a NaN embedding: every later loss is NaN.
    const run = session.train(HP, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      events.push(e);
      if (e.type === 'step' && e.step === 1) poisonEmbedding(ctx, session.model!, tok.bosId);
    });
    const error = await run.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FinetuneError);
    expect((error as FinetuneError).kind).toBe('mismatch');
    expect((error as FinetuneError).message).toMatch(/training stopped at step 6: 5 steps in a row were skipped \(the loss is NaN\)/);
    expect(events.filter((e) => e.type === 'step').map((e) => (e as { step: number }).step)).toEqual([1]);
    expect(events.filter((e) => e.type === 'skipped').map((e) => (e as { step: number }).step)).toEqual([2, 3, 4, 5, 6]);
    // The store's checkpoint holds finite values only, the adapter as step 1 left it (the skipped steps changed nothing).
    const state = (await store.load('state.safetensors'))!;
    const tensors = await openSafetensors(bytesSource(state, 'state'));
    const now = await session.adapterNow();
    for (const name of tensors.names()) {
      const v = new Float32Array((await tensors.read(name)).slice().buffer);
      expect(v.every(Number.isFinite), name).toBe(true);
    }
    const q = now.tensors[0].q_proj!;
    expect(Buffer.from((await tensors.read('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')).slice()).equals(Buffer.from(q.B.buffer))).toBe(true);
    session.unloadModel();
  });

  it('refuses to write a checkpoint of an adapter holding a NaN', async () => {
    const adapter = createAdapter(ckpt.config, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'], random: mulberry32(5) });
    const lora = uploadLora(ctx, dimsOf(ckpt.config), adapter);
    try {
      ctx.write(lora.modules[1].v_proj!.B, new Float32Array([NaN]), 3 * 4);
      await expect(saveTrainState(ctx, lora, 3)).rejects.toThrow(/not saving the checkpoint at step 3: base_model\.model\.model\.layers\.1\.self_attn\.v_proj\.lora_B\.weight holds NaN at index 3/);
    } finally {
      destroyLora(ctx, lora);
    }
  });
});
