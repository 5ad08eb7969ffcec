// The training loop, MLX-LM style: a plain function of the data plan, the model runner and callbacks that report
// dicts with fixed keys. Per optimizer step: zero the LoRA gradients, forward+backward each micro-batch (gradients
// accumulate), clip and step AdamW on the GPU, read back one number (the loss). Validation, checkpoints and
// pause/stop happen between steps; nothing else.

import type { TrainingData, MicroBatch } from '../data/batches.ts';
import { peftKey } from '../model/lora-adapter.ts';
import { openSafetensors, toFloat32, writeSafetensors, type TensorToWrite } from '../model/safetensors.ts';
import { bytesSource } from '../model/source.ts';
import { FinetuneError } from '../core/errors.ts';
import type { GpuContext } from '../engine/gpu.ts';
import type { GpuLora } from '../engine/mistral/lora.ts';
import { loraModules } from '../engine/mistral/lora.ts';
import type { MistralRunner, OptimizerSettings, TokenBatch } from '../engine/mistral/model.ts';
import { learningRate, type LrScheduler } from './schedule.ts';
import { SaveTimer, systemClock, type Clock } from './save-timer.ts';

/** What the loop needs from the hyperparameters (a Hyperparams object from src/config fits). */
export interface TrainerSettings {
  learning_rate: number;
  lr_scheduler: LrScheduler;
  warmup_ratio: number;
  weight_decay: number;
  max_grad_norm: number;
  eval_steps: number;
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
  elapsedSeconds: number;
  etaSeconds: number;
}

export interface EvalReport {
  step: number;
  valLoss: number;
  valTokens: number;
  seconds: number;
}

export interface TrainerCallbacks {
  onStep?: (r: StepReport) => void;
  /** A promise it returns is awaited before training goes on (the session generates the validation_prompt sample). */
  onEval?: (r: EvalReport) => unknown;
  /** A checkpoint (saveState bytes) to persist; awaited before training continues. */
  onCheckpoint?: (step: number, state: Uint8Array) => void | Promise<void>;
}

/** Pause, resume and stop between steps. */
export class TrainControl {
  private pausedWith: { promise: Promise<void>; resolve: () => void } | null = null;
  stopped = false;

  /** `clock` (milliseconds) times the checkpoints by minutes; tests pass a fake one. */
  constructor(readonly clock: Clock = systemClock) {}

  get paused(): boolean {
    return this.pausedWith !== null;
  }

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

  async checkpoint(): Promise<void> {
    while (this.pausedWith && !this.stopped) await this.pausedWith.promise;
  }
}

export interface TrainResult {
  /** Optimizer steps done in total (including those before a resume). */
  steps: number;
  stopped: boolean;
  finalLoss: number | null;
  finalValLoss: number | null;
  seconds: number;
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

function asTokenBatch(m: MicroBatch): TokenBatch {
  return { B: m.B, T: m.T, inputIds: m.inputIds, targets: m.targets, segIds: m.segmentIds, positions: m.positionIds };
}

/** The runner shape a run needs: micro-batch rows × the longest training or validation sequence. */
export function runnerShape(data: TrainingData): { B: number; T: number } {
  let T = data.stats.longestSequence;
  let B = data.stats.microBatchSize;
  for (const v of data.validationBatches()) {
    T = Math.max(T, v.T);
    B = Math.max(B, v.B);
  }
  return { B, T };
}

/** Mean validation loss over every counted token of the validation set. */
export async function evaluate(runner: MistralRunner, data: TrainingData): Promise<{ loss: number; tokens: number }> {
  const tokens = data.stats.validation.lossTokens;
  if (tokens === 0) return { loss: NaN, tokens: 0 };
  runner.resetLoss();
  for (const b of data.validationBatches()) {
    runner.setBatch(asTokenBatch(b));
    runner.evaluate(1 / tokens);
  }
  return { loss: await runner.readLoss(), tokens };
}

/**
 * Trains from optimizer step `fromStep` (0 = a new run; a resumed run passes the checkpoint's step) to the end of the
 * plan, or until stopped.
 */
export async function train(
  ctx: GpuContext,
  runner: MistralRunner,
  data: TrainingData,
  s: TrainerSettings,
  callbacks: TrainerCallbacks = {},
  control: TrainControl = new TrainControl(),
  fromStep = 0,
): Promise<TrainResult> {
  const total = data.stats.totalSteps;
  const k = data.accumulation;
  const started = now();
  let lastLoss: number | null = null;
  let lastVal: number | null = null;
  runner.steps = fromStep;
  // 1-based step numbers that close an epoch, from the plan (building the next step just to read its epoch would
  // tokenise-copy a whole batch for nothing).
  const epochEnds = new Set<number>();
  data.stats.stepsByEpoch.reduce((end, n) => {
    epochEnds.add(end + n);
    return end + n;
  }, 0);
  const shouldEval = (step: number, endOfEpoch: boolean): boolean =>
    s.run_validation && data.stats.validation.lossTokens > 0 && (s.eval_steps > 0 ? step % s.eval_steps === 0 || step === total : endOfEpoch);
  const shouldSave = (step: number, endOfEpoch: boolean): boolean => (s.save_steps > 0 ? step % s.save_steps === 0 || step === total : endOfEpoch);
  const saveTimer = new SaveTimer(s.save_every_minutes ?? 0, control.clock);

  for (let index = fromStep; index < total; index++) {
    await control.checkpoint();
    if (control.stopped) break;
    const t0 = now();
    const step = data.step(index);
    const lr = learningRate(s.learning_rate, index, total, s.warmup_ratio, s.lr_scheduler);
    runner.zeroGrads();
    runner.resetLoss();
    const n = step.microBatches.length;
    step.microBatches.forEach((m, j) => {
      if (m.lossTokens === 0) return;
      runner.setBatch(asTokenBatch(m));
      const scale = 1 / (m.lossTokens * n);
      runner.forwardBackward(scale, scale, 'train', index * k + j);
    });
    const opt: OptimizerSettings = { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: s.weight_decay, maxGradNorm: s.max_grad_norm };
    runner.optimizerStep(opt);
    const loss = await runner.readLoss();
    const { norm } = await runner.readClip();
    if (!Number.isFinite(loss)) {
      throw new FinetuneError('mismatch', `the loss became ${loss} at step ${index + 1}; lower the learning rate or check the data`, { step: index + 1 });
    }
    lastLoss = loss;
    const elapsed = (now() - started) / 1000;
    const done = index + 1 - fromStep;
    callbacks.onStep?.({
      step: index + 1,
      totalSteps: total,
      epoch: step.epoch,
      loss,
      lr,
      gradNorm: norm,
      tokens: step.tokens,
      tokensPerSecond: step.tokens / ((now() - t0) / 1000),
      elapsedSeconds: elapsed,
      etaSeconds: (elapsed / done) * (total - index - 1),
    });
    const endOfEpoch = epochEnds.has(index + 1);
    if (shouldEval(index + 1, endOfEpoch)) {
      const e0 = now();
      const v = await evaluate(runner, data);
      lastVal = v.loss;
      await callbacks.onEval?.({ step: index + 1, valLoss: v.loss, valTokens: v.tokens, seconds: (now() - e0) / 1000 });
    }
    if (callbacks.onCheckpoint && (shouldSave(index + 1, endOfEpoch) || saveTimer.due)) {
      await callbacks.onCheckpoint(index + 1, await saveTrainState(ctx, runner.lora!, index + 1));
      saveTimer.saved();
    }
  }
  return { steps: runner.steps, stopped: control.stopped, finalLoss: lastLoss, finalValLoss: lastVal, seconds: (now() - started) / 1000 };
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
      tensors.push({ name: key, dtype: 'F32', shape, data: await ctx.readF32(value) });
      tensors.push({ name: `${key}.exp_avg`, dtype: 'F32', shape, data: await ctx.readF32(exp) });
      tensors.push({ name: `${key}.exp_avg_sq`, dtype: 'F32', shape, data: await ctx.readF32(expSq) });
    }
  }
  return writeSafetensors(tensors, { format: 'finetune-state', step: String(step), rank: String(lora.r) });
}

/** Loads a checkpoint into the adapter's GPU buffers; returns its step. */
export async function loadTrainState(ctx: GpuContext, lora: GpuLora, bytes: Uint8Array): Promise<number> {
  const file = await openSafetensors(bytesSource(bytes, 'checkpoint'));
  const meta = file.header.metadata ?? {};
  if (meta.format !== 'finetune-state') throw new FinetuneError('bad-input', 'this file is not a training checkpoint of this app');
  const step = Number(meta.step);
  if (!Number.isInteger(step) || step < 0) throw new FinetuneError('bad-input', `checkpoint step "${meta.step}" is not a step number`);
  for (const m of loraModules(lora)) {
    for (const [factor, value, exp, expSq] of [
      ['A', m.A, m.mA, m.vA],
      ['B', m.B, m.mB, m.vB],
    ] as const) {
      const key = peftKey(m.layer, m.name, factor);
      const n = factor === 'A' ? lora.r * m.in : m.out * lora.r;
      for (const [name, buf] of [[key, value], [`${key}.exp_avg`, exp], [`${key}.exp_avg_sq`, expSq]] as const) {
        if (!file.header.tensors.has(name)) throw new FinetuneError('bad-input', `the checkpoint has no tensor ${name}: it was made for another adapter layout`);
        const v = toFloat32(await file.read(name), file.info(name).dtype);
        if (v.length !== n) throw new FinetuneError('bad-input', `checkpoint tensor ${name} has ${v.length} values, expected ${n}`);
        ctx.write(buf, v);
      }
    }
  }
  return step;
}
