// Validation inside a run (src/run/trainer.ts, src/run/eta.ts) on tiny-mistral: a validation reports its forward passes
// as they finish on the GPU, pauses and stops between them (a paused pass gives the same loss, bit for bit), and the ETA of
// every step and every progress report counts the validation passes still to come and leaves pauses out.
import { beforeAll, describe, expect, it } from 'vitest';
import { parseHyperparams } from '../../src/config/index.ts';
import type { MistralRunner } from '../../src/engine/mistral/model.ts';
import { tinyTrainer, withRun, type TinyTrainer } from '../helpers/tiny-trainer.ts';
import { evaluate, loadTrainState, train, TrainControl, type EvalReport, type StepReport, type TrainerCallbacks, type ValidationProgress } from '../../src/run/trainer.ts';

const HP = parseHyperparams({
  num_train_epochs: 2,
  train_batch_size: 2,
  micro_batch_size: 1,
  // Three held-out rows, one per batch, too long for two to share a row of one micro-batch: three forward passes; three
  // rows left to train on (SwiftShader is slow).
  num_validation_samples: 3,
  validation_batch_size: 1,
  learning_rate: 3e-3,
  lora_rank: 4,
  lora_alpha: 8,
  lora_dropout: 0.1,
  lora_target_modules: 'q_proj,v_proj',
  max_seq_len: 16,
});

type Progress = ValidationProgress & { etaSeconds: number | null };

describe('validation in a run', () => {
  let t: TinyTrainer;
  beforeAll(async () => {
    t = await tinyTrainer(HP);
  });

  /**
   * One run from the same start (or resumed from a checkpoint's state); `hook` may wrap the runner (to drive a fake
   * clock) and adds callbacks; `o` holds train()'s options.
   */
  async function run(
    control: TrainControl,
    hook: (runner: MistralRunner, progress: readonly Progress[]) => TrainerCallbacks = () => ({}),
    o: { state?: Uint8Array; validateFirst?: boolean; validationShare?: number; elapsedBefore?: number; evalOnStart?: boolean } = {},
  ) {
    return withRun(t, HP, async ({ data, lora, runner }) => {
      const steps: StepReport[] = [];
      const evals: EvalReport[] = [];
      const progress: Progress[] = [];
      const saved: { step: number; state: Uint8Array }[] = [];
      const from = o.state ? await loadTrainState(t.ctx, lora, o.state) : 0;
      const extra = hook(runner, progress);
      const result = await train(t.ctx, runner, data, { ...HP, eval_on_start: o.evalOnStart === true }, {
        ...extra,
        onStep: (r) => {
          steps.push(r);
          extra.onStep?.(r);
        },
        onValidating: (p) => {
          progress.push(p);
          extra.onValidating?.(p);
        },
        onEval: async (r) => {
          evals.push(r);
          await extra.onEval?.(r);
        },
        onCheckpoint: (step, state) => void saved.push({ step, state }),
      }, control, from, { validateFirst: o.validateFirst, validationShare: o.validationShare, elapsedBefore: o.elapsedBefore });
      return { data, steps, evals, progress, saved, result };
    });
  }

  let whole: Awaited<ReturnType<typeof run>>;

  it('reports each validation pass by pass as the GPU finishes them', async () => {
    whole = await run(new TrainControl());
    const { data, evals, progress } = whole;
    const passes = data.stats.validation.passes;
    expect(passes).toBe(3);
    expect(evals.map((e) => e.step)).toEqual([data.stats.stepsByEpoch[0], data.stats.totalSteps]);
    for (const e of evals) {
      const own = progress.filter((p) => p.step === e.step);
      expect(own.map((p) => p.done)).toEqual([0, 1, 2, 3]);
      expect(own.every((p) => p.passes === passes)).toBe(true);
      expect(own.at(-1)!.seconds).toBeCloseTo(e.seconds, 9);
    }
  });

  it('pauses between the forward passes of a validation and resumes it to the same loss, bit for bit', async () => {
    const control = new TrainControl();
    const first = whole.evals[0].step;
    let whilePaused: number[] | null = null;
    const paused = await run(control, (_runner, progress) => ({
      onValidating: (p) => {
        if (p.step !== first || p.done !== 1 || control.paused || whilePaused) return;
        control.pause();
        // Once the pass queued behind this one has settled, give the pass time to (wrongly) go on, then look.
        const poll = setInterval(() => {
          if (!progress.some((q) => q.step === first && q.done === 2)) return;
          clearInterval(poll);
          setTimeout(() => {
            whilePaused = progress.filter((q) => q.step === first).map((q) => q.done);
            control.resume();
          }, 500);
        }, 20);
      },
    }));
    // Paused at 1 of 3: it settled the pass queued behind that one (2 of 3) and went no further until resumed.
    expect(whilePaused).toEqual([0, 1, 2]);
    expect(paused.progress.filter((p) => p.step === first).map((p) => p.done)).toEqual([0, 1, 2, 3]);
    expect(paused.evals.map((e) => e.valLoss)).toEqual(whole.evals.map((e) => e.valLoss));
    expect(paused.steps.map((s) => s.loss)).toEqual(whole.steps.map((s) => s.loss));
  });

  it('a pause asked during the last pass of a validation takes effect after its loss is reported (it was held unshown)', async () => {
    const control = new TrainControl();
    const first = whole.evals[0].step;
    const reported: number[] = [];
    let reportedWhilePaused: number[] | null = null;
    const paused = await run(control, (_runner, progress) => ({
      onEval: (r) => void reported.push(r.step),
      onValidating: (p) => {
        if (p.step !== first || p.done !== 2 || control.paused || reportedWhilePaused) return;
        control.pause(); // the third and last pass is queued by now
        const poll = setInterval(() => {
          if (!progress.some((q) => q.step === first && q.done === 3)) return;
          clearInterval(poll);
          // Time for the run to report, then look at what it reported while paused.
          setTimeout(() => {
            reportedWhilePaused = [...reported];
            control.resume();
          }, 500);
        }, 20);
      },
    }));
    expect(reportedWhilePaused).toEqual([first]);
    expect(paused.evals.map((e) => e.valLoss)).toEqual(whole.evals.map((e) => e.valLoss));
    expect(paused.steps.map((s) => s.loss)).toEqual(whole.steps.map((s) => s.loss));
  });

  it('stops between the forward passes of a validation: the validation is left unfinished, and a resume makes it first', async () => {
    const control = new TrainControl();
    const first = whole.evals[0].step;
    const stopped = await run(control, () => ({ onValidating: (p) => void (p.step === first && p.done === 1 && control.stop()) }));
    expect(stopped.result).toMatchObject({ stopped: true, steps: first, finalValLoss: null });
    expect(stopped.evals).toEqual([]);
    expect(stopped.progress.filter((p) => p.step === first).map((p) => p.done)).toEqual([0, 1, 2]);
    // The step's own checkpoint (an epoch end) is still saved.
    expect(stopped.saved.map((c) => c.step)).toEqual([first]);
    expect(stopped.steps.map((s) => s.loss)).toEqual(whole.steps.slice(0, first).map((s) => s.loss));
    // Resumed from it with validateFirst (what the session asks when the saved history has no validation loss at the
    // checkpoint's step), the run validates where the uninterrupted one did, to the same numbers bit for bit.
    const rest = await run(new TrainControl(), undefined, { state: stopped.saved[0].state, validateFirst: true });
    expect(rest.evals.map((e) => [e.step, e.valLoss])).toEqual(whole.evals.map((e) => [e.step, e.valLoss]));
    expect(rest.steps.map((s) => s.loss)).toEqual(whole.steps.slice(first).map((s) => s.loss));
  });

  it('validates before the first step with eval_on_start: the untrained adapter\'s loss, and the same run after it, bit for bit', async () => {
    const r = await run(new TrainControl(), undefined, { evalOnStart: true });
    expect(r.evals.map((e) => e.step)).toEqual([0, ...whole.evals.map((e) => e.step)]);
    // The pass changes nothing a step reads (no dropout, no draw): every later number is the run's without it.
    expect(r.steps.map((s) => s.loss)).toEqual(whole.steps.map((s) => s.loss));
    expect(r.evals.slice(1).map((e) => e.valLoss)).toEqual(whole.evals.map((e) => e.valLoss));
    expect(r.result).toMatchObject({ stopped: false, finalValLoss: whole.result.finalValLoss, baselineValLoss: r.evals[0].valLoss });
    // Before any update: the loss of the adapter as it starts (PEFT's, B zero: the base model's), measured on its own.
    const before = await withRun(t, HP, async ({ data, runner }) => (await evaluate(t.ctx, runner, data)).loss);
    expect(r.evals[0].valLoss).toBe(before);
    // Reported pass by pass as any other, with no ETA before a step has been timed.
    expect(r.progress.filter((p) => p.step === 0).map((p) => [p.done, p.etaSeconds])).toEqual([[0, null], [1, null], [2, null], [3, null]]);
    // Without eval_on_start, a run never makes it (the other tests of this file), nor does a resumed one.
    const rest = await run(new TrainControl(), undefined, { state: r.saved[0].state, evalOnStart: true });
    expect(rest.evals.map((e) => e.step)).toEqual(whole.evals.slice(1).map((e) => e.step));
  });

  it('stops in the validation before the first step: nothing trained, nothing saved', async () => {
    const control = new TrainControl();
    const r = await run(control, () => ({ onValidating: (p) => void (p.step === 0 && p.done === 1 && control.stop()) }), { evalOnStart: true });
    expect(r.result).toMatchObject({ stopped: true, steps: 0, finalValLoss: null, baselineValLoss: null });
    expect(r.evals).toEqual([]);
    expect(r.steps).toEqual([]);
    expect(r.saved).toEqual([]);
  });

  it('gives an ETA and a training time that count the validation passes and leave a pause out', async () => {
    // A fake clock moved only by the GPU work: 1 s per micro-batch's forward and backward, 0.25 s per validation
    // batch; an hour passes during a pause after step 1. Until a pass has run, one is priced at the forward share the
    // estimate measured (given here: 0.4) of the steps' rate, over the tokens a pass computes.
    const share = 0.4;
    let ms = 0;
    const control = new TrainControl(() => ms);
    const r = await run(control, (runner) => {
      const fb = runner.forwardBackward.bind(runner);
      runner.forwardBackward = (...a) => {
        ms += 1000;
        fb(...a);
      };
      const ev = runner.evaluateWeighted.bind(runner);
      runner.evaluateWeighted = (...a) => {
        ms += 250;
        ev(...a);
      };
      return {
        onStep: (s) => {
          if (s.step !== 1) return;
          control.pause();
          setTimeout(() => {
            ms += 3_600_000;
            control.resume();
          }, 10);
        },
      };
    }, { validationShare: share, elapsedBefore: 100 });
    const { data, steps, evals, progress, result } = r;
    const passShares = [...data.validationPasses()].map((m) => m.B * m.T);
    const passTokens = passShares.reduce((n, m) => n + m, 0);
    const total = data.stats.totalSteps;
    const evalAfter = [data.stats.stepsByEpoch[0], total];
    const passSeconds = 0.25 * data.stats.validation.passes;
    expect(evals.map((e) => e.seconds)).toEqual([passSeconds, passSeconds]);
    // What each step cost on the fake clock, and the tokens it computed (padding included).
    let seconds = 0;
    let tokens = 0;
    const rest: number[] = [];
    const expected: number[] = [];
    for (let i = 0; i < total; i++) {
      const st = data.step(i);
      seconds += st.microBatches.filter((m) => m.lossTokens > 0).length;
      tokens += st.microBatches.reduce((n, m) => n + m.B * m.T, 0);
      const step = i + 1;
      const pass = evals.some((e) => e.step < step) ? passSeconds : share * passTokens * (seconds / tokens);
      rest.push((seconds / step) * (total - step));
      expected.push(rest[i] + evalAfter.filter((s) => s >= step).length * pass);
      // The training time: the 100 s of the runs this one resumes, the steps and the passes before this step, and
      // not the pause's hour.
      expect(steps[i].elapsedSeconds).toBeCloseTo(100 + seconds + evalAfter.filter((s) => s < step).length * passSeconds, 9);
    }
    expect(result.seconds).toBeCloseTo(100 + seconds + 2 * passSeconds, 9);
    steps.forEach((s, i) => expect(s.etaSeconds).toBeCloseTo(expected[i], 9));
    // Before any pass ran, the ETA already holds two passes' price: more than the steps left alone would take.
    expect(steps[0].etaSeconds).toBeGreaterThan(rest[0]);
    // The pause's hour is in no figure.
    expect(Math.max(...steps.map((s) => s.etaSeconds), ...progress.map((p) => p.etaSeconds ?? 0))).toBeLessThan(60);
    // During a pass: its rest at its rate so far, then the steps and passes after it (at the finished passes' rate,
    // or this one's while none has finished).
    for (const e of evals) {
      const own = progress.filter((p) => p.step === e.step);
      for (const p of own.slice(1)) {
        const projected = p.seconds / (passShares.slice(0, p.done).reduce((a, b) => a + b, 0) / passTokens);
        const pass = evals.some((x) => x.step < e.step) ? passSeconds : projected;
        expect(p.etaSeconds).toBeCloseTo(projected - p.seconds + rest[e.step - 1] + evalAfter.filter((s) => s > e.step).length * pass, 9);
      }
    }
    expect(progress.at(-1)!.etaSeconds).toBe(0);
  });
});
