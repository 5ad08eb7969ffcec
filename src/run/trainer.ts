// The training loop, MLX-LM style: a plain function of the data plan, the model runner and callbacks that report
// dicts with fixed keys. Per optimizer step: zero the LoRA gradients, forward+backward each micro-batch (gradients
// accumulate), clip and step AdamW on the GPU, read back one number (the loss). Validation and checkpoints happen
// between steps; pause and stop between steps and between a validation pass's batches; nothing else.

import type { MicroBatch, TrainingData } from '../data/batches.ts';
import { peftKey } from '../model/lora-adapter.ts';
import { openSafetensors, toFloat32, writeSafetensors, type TensorToWrite } from '../model/safetensors.ts';
import { bytesSource } from '../model/source.ts';
import { FinetuneError } from '../core/errors.ts';
import { firstNonFinite } from '../core/finite.ts';
import type { GpuContext } from '../engine/gpu.ts';
import type { TensorSlice } from '../engine/buffer-slice.ts';
import type { GpuLora } from '../engine/mistral/lora.ts';
import { loraModules } from '../engine/mistral/lora.ts';
import type { Projection } from '../core/mistral.ts';
import type { MistralRunner, OptimizerSettings } from '../engine/mistral/model.ts';
import { learningRate, type LrScheduler } from './schedule.ts';
import { SaveTimer, systemClock, type Clock } from './save-timer.ts';
import { epochEndSteps, RunTimer, validationSteps } from './eta.ts';

/** What the loop needs from the hyperparameters (a Hyperparams object from src/config fits). */
export interface TrainerSettings {
  learning_rate: number;
  lr_scheduler: LrScheduler;
  warmup_ratio: number;
  weight_decay: number;
  max_grad_norm: number;
  eval_steps: number;
  /** Validate before the first step too (a new run only): the baseline, reported as the pass "after step 0". */
  eval_on_start?: boolean;
  save_steps: number;
  /** Also checkpoint once this many minutes have passed since the last save; 0 or absent = by steps only. */
  save_every_minutes?: number;
  run_validation: boolean;
}

export interface StepReport {
  /** 1-based: optimizer steps done. */
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokensPerSecond: number;
  /** Training time so far: pauses left out, the runs this one resumes included (train's `elapsedBefore`). */
  elapsedSeconds: number;
  etaSeconds: number;
}

/** A step whose loss or gradient norm was not finite: its update was not applied (adapter and AdamW moments untouched). */
export interface SkipReport {
  /** 1-based, as StepReport.step: the plan step whose batch was used and whose update was dropped. */
  step: number;
  totalSteps: number;
  epoch: number;
  /** What was not finite, e.g. "the loss is NaN". */
  reason: string;
  /** Skipped steps in a row, this one included. */
  consecutive: number;
}

/**
 * Steps skipped in a row (non-finite loss or gradient norm) after which the run stops with an error: one bad batch is
 * skipped and reported, but five in a row mean the adapter or the data is broken, and training on would waste the run.
 * The last checkpoint written stays as it was (only finite, applied updates ever reach one).
 */
export const MAX_CONSECUTIVE_SKIPPED_STEPS = 5;

export interface EvalReport {
  step: number;
  valLoss: number;
  valTokens: number;
  seconds: number;
}

export interface TrainerCallbacks {
  onStep?: (r: StepReport) => void;
  /**
   * The validation pass after a step: once as it begins (done 0), then as its batches finish on the GPU, with the
   * seconds the whole run has left (it can take a while: the page and the command line show it).
   */
  onValidating?: (p: ValidationProgress & { etaSeconds: number | null }) => void;
  /** A promise it returns is awaited before training goes on (the session generates the validation_prompt sample). */
  onEval?: (r: EvalReport) => unknown;
  /** A step skipped because its loss or gradient norm was not finite. */
  onSkip?: (r: SkipReport) => void;
  /** A checkpoint (saveState bytes) to persist; awaited before training continues. */
  onCheckpoint?: (step: number, state: Uint8Array) => void | Promise<void>;
}

/** Pause, resume and stop between steps, and between the batches of a validation pass. */
export class TrainControl {
  private pausedWith: { promise: Promise<void>; resolve: () => void } | null = null;
  stopped = false;
  /** Milliseconds spent waiting at pause points (the clock's): a run's training time leaves them out. */
  pausedMs = 0;
  /** Told each time a pause takes effect (the run waits at a pause point): the page says "Paused" only then. */
  onPaused: (() => void) | null = null;

  /** `clock` (milliseconds) times the steps, the validation passes and the checkpoints by minutes; tests pass a fake one. */
  constructor(readonly clock: Clock = systemClock) {}

  get paused(): boolean {
    return this.pausedWith !== null;
  }

  /** True while a pause point holds the run: none of its work is queued, and its adapter stands still. */
  get holding(): boolean {
    return this.held;
  }

  private held = false;

  pause(): void {
    if (this.pausedWith) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.pausedWith = { promise, resolve };
  }

  resume(): void {
    this.pausedWith?.resolve();
    this.pausedWith = null;
  }

  stop(): void {
    this.stopped = true;
    this.resume();
  }

  /** Why the run cannot go on (lose), or null: every pause point from then on throws it. */
  private lostWith: FinetuneError | null = null;

  /**
   * The run's GPU device is gone under it: the worker dropped it (and forgot this run's session) after another call met
   * its loss. A run paused here waited for a Resume that could no longer reach it; it ends now, and a run between steps
   * at its next pause point, with `error` (the loss that call met), so its caller hears it as a loss during a step.
   * The first loss told is kept.
   */
  lose(error: FinetuneError): void {
    this.lostWith ??= error;
    // Wakes a wait at a pause point, which then throws; the pause itself stands (nothing resumed the run).
    this.pausedWith?.resolve();
  }

  /** Between steps: waits here while paused (a stop releases it). Not a checkpoint: nothing is saved. */
  async pausePoint(): Promise<void> {
    // Before the stop: a stopped run saves its last step next, which a lost device cannot.
    if (this.lostWith) throw this.lostWith;
    if (!this.pausedWith || this.stopped) return;
    // Holding from here: what hears onPaused may read the adapter at once.
    this.held = true;
    this.onPaused?.();
    const t0 = this.clock();
    while (this.pausedWith && !this.stopped && !this.lostWith) await this.pausedWith.promise;
    this.held = false;
    this.pausedMs += this.clock() - t0;
    if (this.lostWith) throw this.lostWith;
  }
}

export interface TrainResult {
  /** Plan steps done in total (including those before a resume, and skipped ones). */
  steps: number;
  /** Steps of this call whose update was skipped (non-finite loss or gradient norm). */
  skipped: number;
  stopped: boolean;
  finalLoss: number | null;
  /** The last validation loss after a step (the pass before the first step is `baselineValLoss`, not this). */
  finalValLoss: number | null;
  /** The validation loss before the first step (eval_on_start), where this call made that pass (a session adds a resumed run's). */
  baselineValLoss?: number | null;
  /** Training time: this call's, pauses left out, plus `elapsedBefore` (the runs it resumes), as StepReport's. */
  seconds: number;
}

/**
 * The runner shape a run needs: micro-batch rows × the longest training sequence (or, with padding_free, the longest
 * row a micro-batch may hold, DataStats.rowTokens) or validation row, whichever is longer. A validation pass packs its
 * sequences into rows of the same count and length (TrainingData.validationPasses), so validating never asks for more.
 */
export function runnerShape(data: TrainingData): { B: number; T: number } {
  const T = data.stats.paddingFree ? data.stats.rowTokens : data.stats.longestSequence;
  return { B: data.stats.microBatchSize, T: Math.max(T, data.longestValidationRow) };
}

/**
 * One optimizer step's forward and backward passes, added into the runner's loss and gradients (zeroed by the caller):
 * the step's loss is the mean of its micro-batches' token means, over those with a token to learn from. A micro-batch
 * whose rows all lost their completions to max_seq_len once counted in that mean with nothing added, so a step of
 * [5, 5, 5, 0] loss tokens reported 0.75 of its loss and trained on 0.75 of its gradient. Micro-batch j draws its
 * dropout masks as step `dropoutBase + j`. Returns the micro-batches counted (0: nothing to learn from).
 */
export function accumulateStep(runner: MistralRunner, microBatches: readonly MicroBatch[], dropoutBase: number): number {
  const n = microBatches.filter((m) => m.lossTokens > 0).length;
  microBatches.forEach((m, j) => {
    if (m.lossTokens === 0) return;
    runner.setBatch(m);
    const scale = 1 / (m.lossTokens * n);
    runner.forwardBackward(scale, scale, 'train', dropoutBase + j);
  });
  return n;
}

/** How far a validation has come: `done` of its `passes` forward passes have finished on the GPU. */
export interface EvaluationProgress {
  passes: number;
  /**
   * The share of the validation's computed tokens in the passes done: passes run fullest first, so a late pass may be
   * far smaller than the first, and `done / passes` would put the time left too high.
   */
  fraction: number;
  done: number;
  /** Seconds since the pass began. */
  seconds: number;
}

/** A run's validation pass: the plan step it validates, and how far it has come. */
export interface ValidationProgress extends EvaluationProgress {
  step: number;
}

export interface EvaluateOptions {
  /** Pause and stop between forward passes: a paused validation resumes where it was, with the same result. */
  control?: TrainControl;
  /** After each forward pass finishes on the GPU (and once at 0 before the first). */
  onProgress?: (p: EvaluationProgress) => void;
}

/**
 * The validation loss as transformers' Trainer reports eval_loss (and so Replicate's trainer): each batch's mean over
 * its counted tokens, averaged over the batches weighted by their rows (sequences). A mean over every token of the set
 * weighted long rows more: rows of 2 and 100 tokens at losses 1 and 2 read 1.98 here, 1.5 there. A batch with no
 * counted token has no mean and is left out. The batches are computed packed, several to a forward pass
 * (TrainingData.validationPasses), each token weighted by its own batch: the same number up to float rounding, in
 * a few passes where validation_batch_size 1 made one a sequence. `stopped` when `control` stopped it between passes
 * (the loss is then NaN). One pass is kept queued ahead of the one being waited for, so the GPU never idles while
 * progress is read back.
 */
export async function evaluate(ctx: GpuContext, runner: MistralRunner, data: TrainingData, o: EvaluateOptions = {}): Promise<{ loss: number; tokens: number; seconds: number; stopped: boolean }> {
  const tokens = data.stats.validation.lossTokens;
  if (tokens === 0) return { loss: NaN, tokens: 0, seconds: 0, stopped: false };
  const passes = data.stats.validation.passes;
  const now = o.control?.clock ?? systemClock;
  const started = now();
  const elapsed = (): number => (now() - started) / 1000;
  // Tokens computed by the end of each pass, from the plan (building the passes twice would double the host's work).
  const computed = [0];
  for (const n of data.validationPassTokens()) computed.push(computed[computed.length - 1] + n);
  const progress = (done: number, seconds = elapsed()): void => o.onProgress?.({ passes, done, fraction: computed[done] / Math.max(1, computed[passes]), seconds });
  progress(0);
  runner.resetLoss();
  let queued = 0;
  let finished: Promise<void> | null = null;
  for (const pass of data.validationPasses()) {
    // A pause or stop takes effect between passes, before the next is queued. A pause never waits after the last one,
    // whose loss is then read and reported (a pause asked during the last pass once held the finished validation's
    // loss unshown).
    if (queued > 0 && o.control && (o.control.paused || o.control.stopped)) {
      // Settle the fence first: while paused, the page may use the GPU (export, Try it), which fences too.
      if (finished) {
        await finished;
        finished = null;
        progress(queued);
      }
      await o.control.pausePoint();
      if (o.control.stopped) return { loss: NaN, tokens, seconds: elapsed(), stopped: true };
    }
    queued++;
    if (pass.lossTokens === 0) continue;
    runner.setBatch(pass);
    runner.evaluateWeighted(pass.lossWeights);
    if (finished) {
      await finished;
      progress(queued - 1);
    }
    // A fence after this pass: awaited once the next one is queued behind it.
    finished = ctx.sync();
  }
  if (finished) await finished;
  // A stop asked during the last pass abandons the validation, as one asked between passes does (a stop is prompt: the
  // sample that follows a reported loss is not made); a pause lets the loss be read and reported first.
  if (o.control?.stopped) {
    progress(queued);
    return { loss: NaN, tokens, seconds: elapsed(), stopped: true };
  }
  // Σ sequences × batch mean, over those sequences: in float32 on the GPU the sum stays within a few units of the mean × sequences.
  const loss = (await runner.readLoss()) / data.stats.validation.scoredSequences;
  const seconds = elapsed();
  progress(queued, seconds);
  return { loss, tokens, seconds, stopped: false };
}

/**
 * Trains from optimizer step `fromStep` (0 = a new run; a resumed run passes the checkpoint's step) to the end of the
 * plan, or until stopped. `validateFirst`: the run resumes at a step whose validation pass was never finished (the
 * run was stopped in it, or before it): make that pass first, so the resumed run validates where the uninterrupted one
 * did (a pass changes nothing a step reads: no dropout, no random draw). `validationShare`: what a validation token
 * costs against a training token here, as the time estimate measured it (forwardShare in src/run/calibrate.ts): the
 * ETA prices the passes to come with it until the run's first pass has been timed. `elapsedBefore`: the training time of
 * the runs this one resumes (saved with the checkpoint's history), which the reported times include. `afterPassTokens`:
 * the tokens of the work onEval does after each pass (the validation_prompt sample: its prompt and max_new_tokens),
 * which the ETA prices until it has timed one (RunTimer); `afterPassSeconds`: that work's seconds, where the time
 * estimate timed the decoder on the same prompt (a better price than `afterPassTokens` until one is timed).
 */
export async function train(
  ctx: GpuContext,
  runner: MistralRunner,
  data: TrainingData,
  s: TrainerSettings,
  callbacks: TrainerCallbacks = {},
  control: TrainControl = new TrainControl(),
  fromStep = 0,
  o: { validateFirst?: boolean; validationShare?: number; elapsedBefore?: number; afterPassTokens?: number; afterPassSeconds?: number } = {},
): Promise<TrainResult> {
  const total = data.stats.totalSteps;
  if (!(Number.isInteger(fromStep) && fromStep >= 0 && fromStep <= total)) {
    throw new FinetuneError('bad-input', `cannot start at step ${fromStep}: the plan has ${total} steps`, { fromStep, totalSteps: total });
  }
  const k = data.accumulation;
  // Every duration the run reports comes from the control's clock (tests drive a fake one).
  const now = control.clock;
  const started = now();
  const paused0 = control.pausedMs;
  // Training time, as a step and the result report it: the work so far, with that of the runs this one resumes,
  // and without the pauses (which the page may fill with exports and generations).
  const elapsedSeconds = (): number => (o.elapsedBefore ?? 0) + (now() - started - (control.pausedMs - paused0)) / 1000;
  let lastLoss: number | null = null;
  let lastVal: number | null = null;
  let baselineVal: number | null = null;
  let stepsDone = fromStep;
  /** The last plan step whose validation pass ran to its end. */
  let validatedAt = -1;
  let skipped = 0;
  let applied = 0;
  let emptySteps = 0;
  let badInARow = 0;
  // From the plan (building the next step just to read its epoch would tokenise-copy a whole batch for nothing).
  const epochEnds = new Set(epochEndSteps(data.stats.stepsByEpoch));
  const evalAfter = validationSteps(data.stats, s);
  const shouldEval = new Set(evalAfter);
  // The ETA, from the work timed so far (pauses are not work).
  const timer = new RunTimer(total, evalAfter, data.stats.validation.paddedTokens, o.validationShare, o.afterPassTokens, o.afterPassSeconds);
  const shouldSave = (step: number, endOfEpoch: boolean): boolean => (s.save_steps > 0 ? step % s.save_steps === 0 || step === total : endOfEpoch);
  const saveTimer = new SaveTimer(s.save_every_minutes ?? 0, control.clock);
  // The validation pass after plan step `at`. Stopped between its batches, it is abandoned: no validation loss for
  // that step (a resume makes the pass again, validateFirst).
  const validateAfter = async (at: number): Promise<void> => {
    const v = await evaluate(ctx, runner, data, {
      control,
      onProgress: (p) => callbacks.onValidating?.({ step: at, ...p, etaSeconds: timer.remainingDuringValidation(at, p.fraction, p.seconds) }),
    });
    if (v.stopped) return;
    timer.validationDone(v.seconds);
    if (at === 0) baselineVal = v.loss;
    else lastVal = v.loss;
    validatedAt = at;
    const o0 = now();
    await callbacks.onEval?.({ step: at, valLoss: v.loss, valTokens: v.tokens, seconds: v.seconds });
    timer.afterPassDone((now() - o0) / 1000);
  };
  if (o.validateFirst && fromStep > 0 && shouldEval.has(fromStep)) await validateAfter(fromStep);
  // The baseline: the adapter as the run starts (LoRA's B is zero: the base model), before any update. A new run
  // only: a resumed run's record has it. A pause or stop asked before the pass takes effect first.
  if (fromStep === 0 && shouldEval.has(0)) {
    await control.pausePoint();
    if (!control.stopped) await validateAfter(0);
  }

  for (let index = fromStep; index < total; index++) {
    await control.pausePoint();
    if (control.stopped) break;
    const t0 = now();
    const step = data.step(index);
    const lr = learningRate(s.learning_rate, index, total, s.warmup_ratio, s.lr_scheduler);
    runner.zeroGrads();
    runner.resetLoss();
    const n = accumulateStep(runner, step.microBatches, index * k);
    const opt: OptimizerSettings = { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: s.weight_decay, maxGradNorm: s.max_grad_norm };
    // The norm and the loss are read before the update is applied: a non-finite one skips the step, leaving the
    // adapter and the AdamW moments as they were.
    // A step with nothing to learn from (its rows' completions all cut off) is skipped: its loss read 0, and AdamW
    // moved the weights on momentum alone. It says nothing of the adapter's health, so it is not a bad step in a row.
    const empty = n === 0;
    let loss = 0;
    let norm = 0;
    if (!empty) {
      runner.measureGradients(opt.maxGradNorm);
      loss = await runner.readLoss();
      norm = (await runner.readClip()).norm;
    }
    const bad = empty ? NO_TOKEN_IN_STEP : nonFiniteReason(loss, norm);
    stepsDone = index + 1;
    if (bad) {
      skipped++;
      if (empty) emptySteps++;
      else badInARow++;
      callbacks.onSkip?.({ step: index + 1, totalSteps: total, epoch: step.epoch, reason: bad, consecutive: badInARow });
      if (badInARow >= MAX_CONSECUTIVE_SKIPPED_STEPS) {
        throw new FinetuneError(
          'mismatch',
          `training stopped at step ${index + 1}: ${badInARow} steps in a row were skipped (${bad}); the base model's weights, the adapter or the data hold non-finite values, or the learning rate is too high. The last checkpoint is kept.`,
          { step: index + 1, consecutive: badInARow },
        );
      }
    } else {
      applied++;
      badInARow = 0;
      // AdamW's bias correction counts plan steps (skipped ones included), so a resumed run needs only the step number.
      runner.steps = index;
      runner.applyUpdate(opt);
      lastLoss = loss;
    }
    const stepSeconds = (now() - t0) / 1000;
    timer.stepDone(stepSeconds, step.microBatches.reduce((sum, m) => sum + m.B * m.T, 0));
    const elapsed = elapsedSeconds();
    if (!bad) callbacks.onStep?.({
      step: index + 1,
      totalSteps: total,
      epoch: step.epoch,
      loss,
      lr,
      gradNorm: norm,
      tokens: step.tokens,
      tokensPerSecond: step.tokens / stepSeconds,
      elapsedSeconds: elapsed,
      etaSeconds: timer.remaining(index + 1) ?? 0,
    });
    const endOfEpoch = epochEnds.has(index + 1);
    // A stop asked for during the step skips its validation pass, one asked for during the pass abandons it; either
    // way the step's checkpoint is still saved below when due, and the loop ends at the next step's pause point.
    if (shouldEval.has(index + 1) && !control.stopped) await validateAfter(index + 1);
    if (callbacks.onCheckpoint && (shouldSave(index + 1, endOfEpoch) || saveTimer.due)) {
      const c0 = now();
      await callbacks.onCheckpoint(index + 1, await saveTrainState(ctx, runner.lora!, index + 1));
      saveTimer.saved();
      timer.otherDone((now() - c0) / 1000);
    }
  }
  // A run whose every step was skipped trained nothing: an error, not a run that finished (a 2-step run of a model with
  // NaN weights once wrote its untrained adapter and exited 0, under the 5-in-a-row stop).
  if (fromStep === 0 && applied === 0 && skipped > 0) {
    if (emptySteps === skipped) {
      throw new FinetuneError('bad-input', `every step of the run (${skipped}) had no token to learn from, so nothing was trained: the rows it reached lost their completions to max_seq_len. Raise max_seq_len, or shorten the prompts`, { skipped });
    }
    throw new FinetuneError(
      'mismatch',
      `every step of the run (${skipped}) was skipped, so nothing was trained: the base model's weights, the adapter or the data hold non-finite values, or the learning rate is too high`,
      { skipped },
    );
  }
  // A Stop that came once every step and the last validation pass were done (during the validation_prompt sample
  // after it, say) left nothing to resume: the run is finished, not stopped.
  const complete = stepsDone === total && (!shouldEval.has(total) || validatedAt === total);
  return { steps: stepsDone, skipped, stopped: control.stopped && !complete, finalLoss: lastLoss, finalValLoss: lastVal, baselineValLoss: baselineVal, seconds: elapsedSeconds() };
}

/** Why a step with no loss token is skipped. */
export const NO_TOKEN_IN_STEP = 'the step has no token to learn from (its rows lost their completions to max_seq_len)';

/** Why a step's loss or global gradient norm cannot be applied, or null when both are finite. */
export function nonFiniteReason(loss: number, gradNorm: number | null): string | null {
  if (!Number.isFinite(loss)) return `the loss is ${loss}`;
  if (gradNorm === null || !Number.isFinite(gradNorm)) return `the gradient norm is ${gradNorm}`;
  return null;
}

// ---- checkpoints -----------------------------------------------------------------------------------------------
// A checkpoint is one safetensors file: each adapted module's A and B (PEFT key names) and their AdamW moments
// (`<key>.exp_avg`, `<key>.exp_avg_sq`), with metadata {format: "finetune-state", step}. Enough to continue the run
// exactly: the data plan is a pure function of the hyperparameters and the step index.

export async function saveTrainState(ctx: GpuContext, lora: GpuLora, step: number): Promise<Uint8Array> {
  const tensors: TensorToWrite[] = [];
  for (const m of loraModules(lora)) {
    const shapes = { A: [lora.r, m.in], B: [m.out, lora.r] };
    for (const [factor, value, exp, expSq] of [
      ['A', m.A, m.mA, m.vA],
      ['B', m.B, m.mB, m.vB],
    ] as const) {
      const key = peftKey(m.layer, m.name, factor);
      const shape = shapes[factor];
      for (const [name, buf] of [[key, value], [`${key}.exp_avg`, exp], [`${key}.exp_avg_sq`, expSq]] as const) {
        const data = await ctx.readF32(buf);
        // A checkpoint is what a resume trusts: one holding a NaN would poison every later step, so none is written.
        const bad = firstNonFinite(data);
        if (bad >= 0) {
          throw new FinetuneError('mismatch', `not saving the checkpoint at step ${step}: ${name} holds ${data[bad]} at index ${bad}; the previous checkpoint is kept`, { step, tensor: name });
        }
        tensors.push({ name, dtype: 'F32', shape, data });
      }
    }
  }
  return writeSafetensors(tensors, { format: 'finetune-state', step: String(step), rank: String(lora.r) });
}

/** The adapted modules a training state must hold, by layer and projection, and its rank: the adapter's layout. */
export interface TrainStateLayout {
  r: number;
  modules: readonly { layer: number; name: Projection; in: number; out: number }[];
}

/** A checked training state: its step and every tensor's values, by the names loadTrainState writes them under. */
export interface CheckedTrainState {
  step: number;
  values: ReadonlyMap<string, Float32Array>;
}

/**
 * Reads and checks a checkpoint against an adapter's layout, on the CPU: the format, the step (within `totalSteps` when
 * given), the rank, every tensor's shape, and that every value is finite (and every second moment ≥ 0). A caller can
 * check a saved state before it gives up the adapter it holds (session.train's resume).
 */
export async function checkTrainState(bytes: Uint8Array, layout: TrainStateLayout, totalSteps?: number): Promise<CheckedTrainState> {
  const file = await openSafetensors(bytesSource(bytes, 'checkpoint'));
  const meta = file.header.metadata ?? {};
  if (meta.format !== 'finetune-state') throw new FinetuneError('bad-input', 'this file is not a training checkpoint of this app');
  const step = Number(meta.step);
  if (!/^\d+$/.test(meta.step ?? '') || !Number.isSafeInteger(step)) throw new FinetuneError('bad-input', `checkpoint step "${meta.step}" is not a step number`);
  if (totalSteps !== undefined && step > totalSteps) {
    throw new FinetuneError('bad-input', `the checkpoint is at step ${step}, beyond the plan's ${totalSteps} steps: it belongs to another run or is corrupt`, { step, totalSteps });
  }
  if (meta.rank !== undefined && meta.rank !== String(layout.r)) {
    throw new FinetuneError('bad-input', `the checkpoint was made for LoRA rank ${meta.rank}, this adapter has rank ${layout.r}`);
  }
  const values = new Map<string, Float32Array>();
  for (const m of layout.modules) {
    for (const factor of ['A', 'B'] as const) {
      const key = peftKey(m.layer, m.name, factor);
      const shape = factor === 'A' ? [layout.r, m.in] : [m.out, layout.r];
      const n = shape[0] * shape[1];
      for (const name of [key, `${key}.exp_avg`, `${key}.exp_avg_sq`]) {
        if (!file.header.tensors.has(name)) throw new FinetuneError('bad-input', `the checkpoint has no tensor ${name}: it was made for another adapter layout`);
        // The whole shape, not only the count: a transposed (in, r) lora_A has as many values as (r, in), and was
        // loaded as if it were, every value in another place.
        const saved = file.info(name).shape;
        if (saved.length !== 2 || saved[0] !== shape[0] || saved[1] !== shape[1]) {
          throw new FinetuneError('bad-input', `checkpoint tensor ${name} has shape [${saved.join(', ')}], expected [${shape.join(', ')}]: it was made for another adapter layout`, { tensor: name });
        }
        const v = toFloat32(await file.read(name), file.info(name).dtype);
        if (v.length !== n) throw new FinetuneError('bad-input', `checkpoint tensor ${name} has ${v.length} values, expected ${n}`);
        const bad = firstNonFinite(v);
        if (bad >= 0) throw new FinetuneError('bad-input', `the checkpoint is corrupt: ${name} holds ${v[bad]} at index ${bad}`, { tensor: name });
        if (name.endsWith('.exp_avg_sq') && v.some((x) => x < 0)) throw new FinetuneError('bad-input', `the checkpoint is corrupt: ${name} holds a negative second moment`, { tensor: name });
        values.set(name, v);
      }
    }
  }
  return { step, values };
}

/** The layout a training state of this adapter holds. */
export function trainStateLayout(lora: Pick<GpuLora, 'r' | 'modules'>): TrainStateLayout {
  return { r: lora.r, modules: [...loraModules(lora)].map((m) => ({ layer: m.layer, name: m.name, in: m.in, out: m.out })) };
}

/** Writes a checked state into the adapter's GPU buffers (the adapter it was checked against); returns its step. */
export function writeTrainState(ctx: Pick<GpuContext, 'write'>, lora: Pick<GpuLora, 'modules'>, state: CheckedTrainState): number {
  for (const m of loraModules(lora)) {
    for (const [factor, value, exp, expSq] of [
      ['A', m.A, m.mA, m.vA],
      ['B', m.B, m.mB, m.vB],
    ] as const) {
      const key = peftKey(m.layer, m.name, factor);
      for (const [name, buf] of [[key, value], [`${key}.exp_avg`, exp], [`${key}.exp_avg_sq`, expSq]] as const) {
        const v = state.values.get(name);
        if (!v) throw new FinetuneError('internal', `the checked training state has no ${name}: it was checked against another adapter`);
        ctx.write(buf, v);
      }
    }
  }
  return state.step;
}

/**
 * Loads a checkpoint into the adapter's GPU buffers; returns its step. Everything is checked (checkTrainState) before
 * the first byte reaches the GPU. It needs only the context's write and the adapter's layout.
 */
export async function loadTrainState(ctx: Pick<GpuContext, 'write'>, lora: Pick<GpuLora, 'r' | 'modules'>, bytes: Uint8Array, totalSteps?: number): Promise<number> {
  return writeTrainState(ctx, lora, await checkTrainState(bytes, trainStateLayout(lora), totalSteps));
}
