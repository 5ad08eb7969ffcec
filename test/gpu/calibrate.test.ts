// The run-time estimate the page shows before Train: one measured training pass on the loaded model, scaled by the
// plan's tokens; it leaves nothing behind on the GPU and does not touch the session's adapter.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { configOf, randomMistral } from '../../src/bench/model.ts';
import type { Dims } from '../../src/engine/mistral/dims.ts';
import { forwardPassUploads, trainingPassUploads } from '../../src/engine/mistral/layer-stream.ts';
import { destroyMistralWeights, moveLayersToHost } from '../../src/engine/mistral/weights.ts';
import { anyBatch, calibrate, CALIBRATION_TOKENS, calibrateValidation, countedShare, estimateRun, evaluationCount, forwardShare, validationBatchShape, type Calibration } from '../../src/run/calibrate.ts';
import { SAMPLE_MAX_TOKENS } from '../../src/data/layout.ts';
import { FORWARD_SHARE } from '../../src/run/eta.ts';
import { parseHyperparams } from '../../src/config/index.ts';
import { TrainingData } from '../../src/data/batches.ts';
import { FinetuneSession } from '../../src/run/session.ts';
import { gpuContext } from './context.ts';

const JSONL = ['def add(a, b):\n    return a + b', 'x = [1, 2, 3]', 'print("hi")', 'y = 4'].map((text) => JSON.stringify({ text })).join('\n');
const HP = { num_train_epochs: 2, train_batch_size: 1, micro_batch_size: 1, num_validation_samples: 1, lora_rank: 2, lora_alpha: 4, max_seq_len: 24 };

describe('run estimate', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });
  /** A session with tiny-mistral loaded. */
  const tinyMistralSession = async (quantization: 'none' | 'nf4-double'): Promise<FinetuneSession> => {
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', quantization);
    return session;
  };

  it('measures one training pass on the loaded model and scales the plan by it, leaving no GPU memory behind', async () => {
    const session = await tinyMistralSession('none');
    const before = ctx.ledger.snapshot().currentBytes;
    const train = new Blob([JSONL]);
    const e = await session.estimate(HP, train, null);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
    expect(e.measuredTokens).toBe(CALIBRATION_TOKENS);
    expect(e.secondsPerToken).toBeGreaterThan(0);
    expect(e.secondsPerToken).toBe(e.measuredSeconds / CALIBRATION_TOKENS);
    expect(e.softwareAdapter).toBe(ctx.report.software);
    const stats = await session.plan(HP, train, null);
    // The same numbers as the pure formula on the same plan: 2 epochs of 3 rows, validation once per epoch.
    expect(e).toEqual(estimateRun(stats, { run_validation: true, eval_steps: 0 }, e, ctx.report.software));
    expect(e.trainTokens).toBe(2 * stats.tokensPerEpoch); // micro-batches of one row: no padding
    expect(e.evaluations).toBe(2);
    expect(e.method).toBe('model'); // a software adapter: one whole short pass
    // The run validates, so one of its validation batches (the inference-mode forward) was timed too, at the shape
    // its batches have, and prices the two passes.
    expect(e.forward).toMatchObject({ ...validationBatchShape(stats), method: 'model' });
    expect(e.forward!.seconds).toBeGreaterThan(0);
    expect(e.validationSeconds).toBeCloseTo((e.forward!.seconds / (e.forward!.B * e.forward!.T)) * 2 * stats.validation.paddedTokens, 12);
    // The estimate trains nothing: the session still has no adapter to export.
    await expect(session.adapterNow()).rejects.toThrow(/no trained adapter/);
    // Kept: asked again, the same measurement answers. Forgotten (another tab's run shared the GPU while it was taken):
    // measured again.
    expect((await session.estimate(HP, train, null)).measuredSeconds).toBe(e.measuredSeconds);
    session.forgetEstimate();
    const again = await session.estimate(HP, train, null);
    expect(again.measuredSeconds).not.toBe(e.measuredSeconds);
    expect(again.forward!.seconds).not.toBe(e.forward!.seconds);
    // The plan says when a run would learn nothing (one step, its warmup at rate 0), and not otherwise.
    expect(stats.notices ?? []).not.toContainEqual(expect.stringMatching(/learns nothing/));
    expect((await session.plan({ ...HP, max_steps: 1 }, train, null)).notices).toContainEqual(expect.stringMatching(/^every step of this run \(1\) trains at learning rate 0/));
    session.unloadModel();
  });

  it("with a validation_prompt, times the sample the run writes after each validation on that prompt, and prices every one", async () => {
    const session = await tinyMistralSession('none');
    const train = new Blob([JSONL]);
    const before = ctx.ledger.snapshot().currentBytes;
    const plain = await session.estimate(HP, train, null);
    expect(plain.sample).toBeUndefined();
    expect(plain.samples).toBe(0);
    expect(plain.sampleSeconds).toBe(0);
    const prompt = 'def add(a, b):';
    const e = await session.estimate({ ...HP, validation_prompt: prompt }, train, null);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
    // The prompt as the run's sample reads it: <s> and its tokens; both of the decoder's costs measured.
    const tokenizer = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    expect(e.sample?.promptTokens).toBe(1 + tokenizer.encode(prompt).length);
    expect(e.sample!.prefillSecondsPerToken).toBeGreaterThan(0);
    expect(e.sample!.decodeSecondsPerToken).toBeGreaterThan(0);
    // One sample after each of the two validations, added to the run's time; the rest of the estimate unchanged.
    expect(e.samples).toBe(2);
    expect(e.sampleSeconds).toBeGreaterThan(0);
    expect(e.seconds).toBeCloseTo(plain.seconds + e.sampleSeconds, 9);
    expect(e.measuredSeconds).toBe(plain.measuredSeconds);
    const stats = await session.plan({ ...HP, validation_prompt: prompt }, train, null);
    expect(e).toEqual(estimateRun(stats, { run_validation: true, eval_steps: 0, validation_prompt: prompt }, e, ctx.report.software));
    // Kept for that prompt; another prompt is timed on its own.
    expect((await session.estimate({ ...HP, validation_prompt: prompt }, train, null)).sample).toEqual(e.sample);
    const other = await session.estimate({ ...HP, validation_prompt: 'x = [1, 2, 3, 4, 5, 6, 7, 8]' }, train, null);
    expect(other.sample!.promptTokens).toBe(1 + tokenizer.encode('x = [1, 2, 3, 4, 5, 6, 7, 8]').length);
    session.unloadModel();
  });

  it('on a GPU, times one layer of each kind and the head at the run\'s shape, and adds them up into a step', async () => {
    const session = await tinyMistralSession('nf4-double');
    const hp = parseHyperparams({ ...HP, lora_target_modules: 'all-linear' });
    const before = ctx.ledger.snapshot().currentBytes;
    const shape = { B: 2, T: 11 };
    const L = session.model!.dims.L;
    for (const keptLayers of [0, 1, L]) {
      const c = await calibrate(ctx, session.model!, session.baseConfig, hp, { shape, keptLayers, keptAttention: keptLayers === 0, method: 'layers' });
      expect(c).toMatchObject({ method: 'layers', measuredTokens: 22 });
      const p = c.parts!;
      expect(p).toMatchObject({ layers: L, keptLayers });
      expect(p.head).toBeGreaterThan(0);
      expect(p.recomputedLayer === null).toBe(keptLayers === L);
      expect(p.keptLayer === null).toBe(keptLayers === 0);
      expect(c.measuredSeconds).toBe((L - keptLayers) * (p.recomputedLayer ?? 0) + keptLayers * (p.keptLayer ?? 0) + p.head);
      expect(c.secondsPerToken).toBe(c.measuredSeconds / 22);
      expect(ctx.ledger.snapshot().currentBytes).toBe(before);
    }
    // A validation batch, of its own shape: L layer forwards and the head's forward.
    const v = await calibrateValidation(ctx, session.model!, session.baseConfig, hp, { B: 1, T: 9 }, { method: 'layers' });
    expect(v).toMatchObject({ B: 1, T: 9, method: 'layers', parts: { layers: L } });
    expect(v.parts!.layer).toBeGreaterThan(0);
    expect(v.parts!.head).toBeGreaterThan(0);
    expect(v.seconds).toBe(L * v.parts!.layer + v.parts!.head);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
    session.unloadModel();
  });

  it('estimates asked for together measure one after the other: two measurements never share the GPU', async () => {
    const session = await tinyMistralSession('none');
    const train = new Blob([JSONL]);
    // Two adapter shapes, so each is measured (the page asks again as the form changes, before the last answer came).
    const shapes = [HP, { ...HP, lora_rank: 4, lora_alpha: 8 }];
    const alone: number[] = [];
    for (const hp of shapes) {
      session.forgetEstimate();
      ctx.ledger.resetPeaks();
      await session.estimate(hp, train, null);
      alone.push(ctx.ledger.snapshot().peakBytes);
    }
    session.forgetEstimate();
    ctx.ledger.resetPeaks();
    const together = await Promise.all(shapes.map((hp) => session.estimate(hp, train, null)));
    // Measured together, each timed the other's work too, and the slower figure was kept for that shape.
    expect(ctx.ledger.snapshot().peakBytes).toBe(Math.max(...alone));
    expect(together.every((e) => e.secondsPerToken > 0)).toBe(true);
    session.unloadModel();
  });

  it('an estimate and a generation asked for together run one after the other, in either order', async () => {
    const session = await tinyMistralSession('none');
    const train = new Blob([JSONL]);
    const generation = (): Promise<unknown> => session.generateStream('def', { maxNewTokens: 12 });
    const estimate = (): Promise<unknown> => session.estimate(HP, train, null);
    const peakOf = async (...work: (() => Promise<unknown>)[]): Promise<number> => {
      session.forgetEstimate();
      ctx.ledger.resetPeaks();
      await Promise.all(work.map((w) => w()));
      return ctx.ledger.snapshot().peakBytes;
    };
    const alone = Math.max(await peakOf(generation), await peakOf(estimate));
    // Opening the page measures the estimate while its user tries the model: a generation beside the measurement was
    // timed with it, and the slower rate was kept for the session.
    expect(await peakOf(estimate, generation)).toBe(alone);
    expect(await peakOf(generation, estimate)).toBe(alone);
    // While it waits, nothing is read: onPrompt's first word, (0, prompt tokens), comes after the measurement (the page
    // says "waiting for the GPU" until then, and times the prompt from there).
    session.forgetEstimate();
    let measured = false;
    const heard: [number, number, boolean][] = [];
    const measurement = estimate().then(() => (measured = true));
    await session.generateStream('def', { maxNewTokens: 2 }, undefined, (read, total) => heard.push([read, total, measured]));
    await measurement;
    expect(heard[0]).toEqual([0, heard.at(-1)![1], true]);
    expect(heard.at(-1)![0]).toBe(heard.at(-1)![1]); // and the whole prompt read before the first token
    // A Stop reaches a generation that waits for the measurement: it ends before its second token.
    session.forgetEstimate();
    const measuring = estimate();
    const waiting = session.generateStream('def', { maxNewTokens: 50 });
    session.stopGeneration();
    const stopped = await waiting;
    expect(stopped.stopReason).toBe('stopped');
    expect(stopped.ids.length).toBeLessThanOrEqual(1);
    await measuring;
    expect((await session.generateStream('def', { maxNewTokens: 3 })).ids).toHaveLength(3);
    session.unloadModel();
  });

  // Five layers in two slots, so every pass really uploads layers (tiny-mistral's two stay in the slots).
  const dims: Dims = { V: 512, C: 128, I: 256, L: 5, nH: 4, nKV: 2, hd: 32, theta: 1e6, eps: 1e-5 };
  it('with streamed layers, prices the uploads of each pass apart from the per-token rate (both methods)', async () => {
    const hp = parseHyperparams({ ...HP, lora_target_modules: 'all-linear' });
    const config = configOf(dims);
    let w = await randomMistral(ctx, dims, true);
    try {
      const resident = await calibrate(ctx, w, config, hp, { method: 'model' });
      expect(resident.uploads).toBeUndefined();
      w = await moveLayersToHost(ctx, w);
      const stream = w.stream!;
      const before = ctx.ledger.snapshot().currentBytes;
      for (const method of ['model', 'layers'] as const) {
        const uploads0 = stream.uploads;
        const c = await calibrate(ctx, w, config, hp, { method, shape: { B: 1, T: 7 }, keptLayers: 0 });
        // The counts of a pass (the 5-layer test in layer-stream.test.ts checks a real pass makes them).
        expect(c.uploads).toMatchObject({ perTrainingPass: trainingPassUploads(5), perValidationPass: forwardPassUploads(5) });
        expect(c.uploads!.perTrainingPass).toBe(6);
        expect(c.uploads!.seconds).toBeGreaterThanOrEqual(0);
        expect(Number.isFinite(c.uploads!.seconds)).toBe(true);
        // The uploads were measured, not assumed: the calibration really moved layers.
        expect(stream.uploads - uploads0).toBeGreaterThan(method === 'model' ? 2 * 6 : 3); // 'layers': two per rep, warm-up included
        expect(c.secondsPerToken).toBeGreaterThan(0);
        if (method === 'model') {
          // The pass's compute is what is left of it after its six uploads (a tenth of it at least).
          expect(c.secondsPerToken * c.measuredTokens).toBeCloseTo(Math.max(c.measuredSeconds - 6 * c.uploads!.seconds, c.measuredSeconds / 10), 9);
          // A validation batch on streamed layers: its uploads taken out, as they are priced per batch apart.
          const uploads1 = stream.uploads;
          const v = await calibrateValidation(ctx, w, config, hp, { B: 1, T: 7 }, { method, uploadSeconds: c.uploads!.seconds });
          expect(stream.uploads - uploads1).toBeGreaterThan(5); // two forward passes of up to 5
          expect(v.seconds).toBeGreaterThan(0);
        } else {
          expect(c.measuredSeconds).toBe(5 * c.parts!.recomputedLayer! + c.parts!.head);
        }
        expect(ctx.ledger.snapshot().currentBytes).toBe(before);
      }
    } finally {
      destroyMistralWeights(ctx, w);
    }
  });
});

describe('estimate arithmetic', () => {
  const stats = {
    epochs: 2,
    tokensPerEpoch: 900,
    paddingFraction: 0.1,
    sequencesPerEpoch: 7,
    microBatchSize: 2,
    totalSteps: 4,
    stepsByEpoch: [2, 2],
    validation: { tokens: 50, paddedTokens: 60, lossTokens: 40, batches: 5, passes: 3, rows: 3 },
    run: { tokens: 1800, paddedTokens: 2000, microBatches: 8 }, // 2 epochs × ⌈7 / 2⌉ micro-batches, 10 % padding
  } as Parameters<typeof estimateRun>[0];
  const hp = { run_validation: true, eval_steps: 0 };
  const c: Calibration = { secondsPerToken: 0.01, measuredTokens: 16, measuredSeconds: 0.16, method: 'model' };

  it('prices the steps the run makes: a max_steps run by its own steps, not by its whole epochs', () => {
    // 40 rows, 4 an optimizer step in micro-batches of 2: 10 steps an epoch, of which max_steps trains 3.
    const rows = Array.from({ length: 40 }, (_, k) => ({ line: k + 1, ids: Uint32Array.from({ length: 3 + (k % 5) }, (_, t) => t + 1), lossStart: 0, truncated: 0 }));
    const options = { num_train_epochs: 2, train_batch_size: 4, micro_batch_size: 2, validation_batch_size: 1, pack_sequences: false, wrap_packed_sequences: false, chunk_size: 2048, seed: 7, max_steps: 3, run_validation: false, num_validation_samples: 0 };
    const data = new TrainingData(rows, [], options);
    const padded = [...data.steps()].flatMap((st) => st.microBatches).reduce((a, m) => a + m.B * m.T, 0);
    const real = [...data.steps()].reduce((a, st) => a + st.tokens, 0);
    const e = estimateRun(data.stats, { run_validation: false, eval_steps: 0 }, c, true);
    expect(e.paddedTokens).toBe(padded);
    expect(e.trainTokens).toBe(real);
    expect(real).toBeLessThan(padded);
    expect(e.seconds).toBeCloseTo(0.01 * padded, 9);
    // Streamed: one training pass's uploads per micro-batch the run makes (3 steps × 2).
    const streamed = estimateRun(data.stats, { run_validation: false, eval_steps: 0 }, { ...c, uploads: { perTrainingPass: 6, perValidationPass: 5, seconds: 0.5 } }, false);
    expect(streamed.uploadSeconds).toBeCloseTo(3 * 2 * 6 * 0.5, 9);
  });

  it('resident layers: padded training tokens and validation forwards at the measured rate; the rate counts real tokens', () => {
    const e = estimateRun(stats, hp, c, false);
    expect(e.paddedTokens).toBe(2000);
    expect(e.trainTokens).toBe(1800); // 10 % padding
    expect(e.evaluations).toBe(2);
    expect(e.uploadSeconds).toBe(0);
    // Each pass computes its 60 padded tokens, at FORWARD_SHARE of a training token when no forward was measured.
    expect(e.validationSeconds).toBeCloseTo(0.01 * 0.3 * 2 * 60, 9);
    expect(e.seconds).toBeCloseTo(0.01 * 2000 + e.validationSeconds, 9);
    // As a step reports it: its real tokens over its time (padding computed, not counted), not 100 tokens/s.
    expect(e.tokensPerSecond).toBeCloseTo(1800 / 20, 9);
  });

  it('a measured forward prices the validation passes instead of FORWARD_SHARE; the training rate is unchanged', () => {
    // A validation batch of 1 × 20 tokens timed at 0.132 s: 0.0066 s a token, 0.66 of a training token.
    const forward = { B: 1, T: 20, seconds: 0.132, method: 'model' as const };
    const measured = estimateRun(stats, hp, { ...c, forward }, true);
    expect(forwardShare({ ...c, forward })).toBeCloseTo(0.66, 12);
    expect(forwardShare(c)).toBe(FORWARD_SHARE);
    expect(measured.validationSeconds).toBeCloseTo(0.0066 * 2 * 60, 9);
    expect(measured.seconds).toBeCloseTo(0.01 * 2000 + 0.0066 * 2 * 60, 9);
    expect(measured.tokensPerSecond).toBe(estimateRun(stats, hp, c, true).tokensPerSecond);
  });

  it('a run that will measure its kernels first adds that many passes of a layer at its shape; the rate is unchanged', () => {
    const layers: Calibration = { ...c, method: 'layers', parts: { recomputedLayer: 0.25, keptLayer: null, head: 0.1, layers: 2, keptLayers: 0 } };
    const plain = estimateRun(stats, hp, layers, false);
    const tuned = estimateRun(stats, hp, layers, false, 11);
    expect(plain.tuningSeconds).toBe(0);
    expect(tuned.tuningSeconds).toBeCloseTo(11 * 0.25, 12);
    expect(tuned.seconds).toBeCloseTo(plain.seconds + 11 * 0.25, 9);
    expect(tuned.tokensPerSecond).toBe(plain.tokensPerSecond);
    // A whole-model calibration (a software adapter, which never measures kernels) has no layer part to price it by.
    expect(estimateRun(stats, hp, c, true, 11).tuningSeconds).toBe(0);
  });

  it('streamed layers: each micro-batch and validation pass adds its uploads, and the rate counts the training ones', () => {
    const e = estimateRun(stats, hp, { ...c, uploads: { perTrainingPass: 6, perValidationPass: 5, seconds: 0.5 } }, false);
    // 2 epochs × ⌈7 / 2⌉ micro-batches × 6 uploads, and 2 evaluations × 3 passes × 5 uploads, at 0.5 s each.
    const train = 2 * 4 * 6 * 0.5;
    const validation = 2 * 3 * 5 * 0.5;
    expect(e.uploadSeconds).toBeCloseTo(train + validation, 9);
    expect(e.validationSeconds).toBeCloseTo(0.01 * 0.3 * 2 * 60 + validation, 9);
    expect(e.seconds).toBeCloseTo(0.01 * (2000 + 0.3 * 2 * 60) + train + validation, 9);
    expect(e.tokensPerSecond).toBeCloseTo(1800 / (20 + train), 9);
  });

  it('a validation_prompt adds a sample after each validation, or one at the end of a run that never validates', () => {
    const sample = { promptTokens: 12, prefillSecondsPerToken: 0.01, decodeSecondsPerToken: 0.2 };
    // Its prompt's pass, then the tokens after the first at the loop's rate: a ceiling (</s> may end it sooner).
    const each = 12 * 0.01 + (SAMPLE_MAX_TOKENS - 1) * 0.2;
    const e = estimateRun(stats, { ...hp, validation_prompt: '# add two numbers' }, { ...c, sample }, true);
    expect(e.samples).toBe(2);
    expect(e.sampleSeconds).toBeCloseTo(2 * each, 9);
    expect(e.seconds).toBeCloseTo(estimateRun(stats, hp, c, true).seconds + 2 * each, 9);
    expect(e.tokensPerSecond).toBe(estimateRun(stats, hp, c, true).tokensPerSecond);
    const once = estimateRun(stats, { run_validation: false, eval_steps: 0, validation_prompt: '# add two numbers' }, { ...c, sample }, true);
    expect(once.evaluations).toBe(0);
    expect(once.samples).toBe(1);
    expect(once.sampleSeconds).toBeCloseTo(each, 9);
    // No prompt, no sample, whatever was measured before.
    expect(estimateRun(stats, hp, { ...c, sample }, true)).toMatchObject({ samples: 0, sampleSeconds: 0 });
  });
});

describe('validation pass shape', () => {
  it('is the rows a pass holds and the tokens a row computes, on average; null without validation data', () => {
    const v = (rows: number, passes: number, paddedTokens: number) => ({ validation: { examples: 9, sequences: 9, tokens: 0, paddedTokens, lossTokens: 0, batches: 9, scoredSequences: 9, passes, rows } }) as Parameters<typeof validationBatchShape>[0];
    // 6 rows, one a pass, 253 tokens: passes of 1 × 43.
    expect(validationBatchShape(v(6, 6, 253))).toEqual({ B: 1, T: 43 });
    // 6 rows in passes of 4 (4 and 2), 4 × 40 + 2 × 30 tokens: 3 rows a pass of 37 tokens each.
    expect(validationBatchShape(v(6, 2, 220))).toEqual({ B: 3, T: 37 });
    expect(validationBatchShape(v(0, 0, 0))).toBeNull();
  });
});

describe('counted share (the lm_head computes only tokens with a loss)', () => {
  it("is the plan's tokens with a loss over the tokens it computes, in the steps and in the validation passes", () => {
    // 900 real tokens, 10 % padding: 1,000 computed, 450 with a loss.
    const stats = { tokensPerEpoch: 900, paddingFraction: 0.1, lossTokensPerEpoch: 450, validation: { paddedTokens: 60, lossTokens: 15 } } as Parameters<typeof countedShare>[0];
    expect(countedShare(stats, 'train')).toBeCloseTo(0.45, 12);
    expect(countedShare(stats, 'validation')).toBeCloseTo(0.25, 12);
    expect(countedShare({ ...stats, validation: { ...stats.validation, paddedTokens: 0 } }, 'validation')).toBe(1);
  });

  it('the measured batch has that share of targets, spread over its rows, and never at a row end', () => {
    const count = (b: ReturnType<typeof anyBatch>) => Array.from(b.targets).filter((t) => t !== -100).length;
    const whole = anyBatch({ vocabSize: 32000 }, 4, 100);
    expect(count(whole)).toBe(4 * 99);
    for (const share of [0.25, 0.5, 0.9]) {
      const b = anyBatch({ vocabSize: 32000 }, 4, 100, share);
      expect(Math.abs(count(b) - share * 400)).toBeLessThanOrEqual(4);
      for (let r = 0; r < 4; r++) expect(b.targets[r * 100 + 99]).toBe(-100);
      // Spread: each row has about its share.
      for (let r = 0; r < 4; r++) expect(Math.abs(Array.from(b.targets).slice(r * 100, r * 100 + 100).filter((t) => t !== -100).length - share * 100)).toBeLessThanOrEqual(2);
    }
  });
});

describe('evaluation count', () => {
  const stats = { totalSteps: 10, epochs: 3, stepsByEpoch: [4, 4, 2], validation: { lossTokens: 5 } } as Parameters<typeof evaluationCount>[0];
  it('follows the trainer: per epoch, every eval_steps steps (the last step included), none without validation', () => {
    expect(evaluationCount(stats, { run_validation: true, eval_steps: 0 })).toBe(3);
    expect(evaluationCount(stats, { run_validation: true, eval_steps: 4 })).toBe(3); // steps 4, 8 and 10
    expect(evaluationCount(stats, { run_validation: false, eval_steps: 0 })).toBe(0);
    expect(evaluationCount({ ...stats, validation: { ...stats.validation, lossTokens: 0 } }, { run_validation: true, eval_steps: 2 })).toBe(0);
  });
});
