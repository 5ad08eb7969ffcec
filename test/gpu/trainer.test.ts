// The training loop end to end on tiny-mistral: real data through the data pipeline, gradient accumulation, the LR
// schedule, validation and checkpoints at epoch ends, and a run stopped and resumed from its checkpoint that continues
// bit for bit like the uninterrupted run.
import { beforeAll, describe, expect, it } from 'vitest';
import { parseHyperparams } from '../../src/config/index.ts';
import { downloadLora } from '../../src/engine/mistral/lora.ts';
import { learningRate } from '../../src/run/schedule.ts';
import { loadTrainState, train, TrainControl, type EvalReport, type StepReport } from '../../src/run/trainer.ts';
import { tinyTrainer, withRun, type TinyTrainer } from '../helpers/tiny-trainer.ts';

const HP = parseHyperparams({
  num_train_epochs: 2,
  train_batch_size: 2,
  micro_batch_size: 1,
  num_validation_samples: 2,
  learning_rate: 3e-3,
  lora_rank: 4,
  lora_alpha: 8,
  lora_dropout: 0.1,
  lora_target_modules: 'q_proj,v_proj,down_proj',
  warmup_ratio: 0.2,
  max_seq_len: 16,
});

describe('trainer', () => {
  let t: TinyTrainer;
  beforeAll(async () => {
    t = await tinyTrainer(HP);
  });

  async function run(opts: { stopAfter?: number; resumeFrom?: { step: number; state: Uint8Array } } = {}) {
    return withRun(t, HP, async ({ data, lora, runner }) => {
      const steps: StepReport[] = [];
      const evals: EvalReport[] = [];
      const saved: { step: number; state: Uint8Array }[] = [];
      const control = new TrainControl();
      const from = opts.resumeFrom ? await loadTrainState(t.ctx, lora, opts.resumeFrom.state) : 0;
      const result = await train(
        t.ctx,
        runner,
        data,
        HP,
        {
          onStep: (r) => {
            steps.push(r);
            if (r.step === opts.stopAfter) control.stop();
          },
          onEval: (r) => evals.push(r),
          onCheckpoint: (step, state) => {
            saved.push({ step, state });
          },
        },
        control,
        from,
      );
      const final = await downloadLora(t.ctx, lora, t.start);
      return { data, steps, evals, saved, result, final };
    });
  }

  // The uninterrupted run, shared by both tests (SwiftShader is slow).
  let whole: Awaited<ReturnType<typeof run>>;

  it('trains through the plan with accumulation, the LR schedule, validation and checkpoints at epoch ends', async () => {
    whole = await run();
    const { data, steps, evals, saved, result } = whole;
    const total = data.stats.totalSteps;
    expect(data.stats.gradientAccumulationSteps).toBe(2);
    expect(total).toBe(4); // 4 training rows (2 held out for validation), 2 per step, 2 epochs
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    steps.forEach((s, i) => expect(s.lr).toBeCloseTo(learningRate(HP.learning_rate, i, total, HP.warmup_ratio, 'linear'), 12));
    expect(steps[0].lr).toBe(0); // HF warmup starts at 0
    for (const s of steps) {
      expect(Number.isFinite(s.loss)).toBe(true);
      expect(s.gradNorm).toBeGreaterThan(0);
      expect(s.tokensPerSecond).toBeGreaterThan(0);
    }
    // The same two steps' rows again in epoch 2 (reshuffled): training lowered their loss.
    expect(steps[2].loss + steps[3].loss).toBeLessThan(steps[0].loss + steps[1].loss);
    expect(evals.map((e) => e.step)).toEqual([2, 4]);
    expect(evals[1].valLoss).toBeLessThan(evals[0].valLoss + 0.5);
    expect(saved.map((c) => c.step)).toEqual([2, 4]);
    expect(result).toMatchObject({ steps: 4, stopped: false });
  });

  it('resumes from a checkpoint exactly: the same losses and the same final adapter as an uninterrupted run', async () => {
    const first = await run({ stopAfter: 2 });
    expect(first.steps.map((s) => s.loss)).toEqual(whole.steps.slice(0, 2).map((s) => s.loss));
    expect(first.result.stopped).toBe(true);
    const cp = first.saved.find((c) => c.step === 2)!;
    const rest = await run({ resumeFrom: cp });
    expect(rest.steps.map((s) => s.step)).toEqual([3, 4]);
    expect(rest.steps.map((s) => s.loss)).toEqual(whole.steps.slice(2).map((s) => s.loss));
    for (let l = 0; l < whole.final.layers; l++) {
      for (const m of ['q_proj', 'v_proj', 'down_proj'] as const) {
        expect(rest.final.tensors[l][m]!.A).toEqual(whole.final.tensors[l][m]!.A);
        expect(rest.final.tensors[l][m]!.B).toEqual(whole.final.tensors[l][m]!.B);
      }
    }
  });
});
