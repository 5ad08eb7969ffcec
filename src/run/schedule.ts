// Learning-rate schedules as HF transformers' get_*_schedule_with_warmup: linear warmup from 0 over the first
// ceil(warmup_ratio · total) optimizer steps, then constant, linear decay to 0 (Replicate's trainer) or a half cosine.

export type LrScheduler = 'constant' | 'linear' | 'cosine';

export function warmupSteps(totalSteps: number, warmupRatio: number): number {
  return Math.ceil(totalSteps * warmupRatio);
}

/** The learning rate of optimizer step `step` (0-based), as the scheduler multiplies the peak `lr`. */
export function learningRate(lr: number, step: number, totalSteps: number, warmupRatio: number, kind: LrScheduler): number {
  const warmup = warmupSteps(totalSteps, warmupRatio);
  if (step < warmup) return (lr * step) / Math.max(1, warmup);
  if (kind === 'constant') return lr;
  const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
  if (kind === 'linear') return lr * Math.max(0, 1 - progress);
  return lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** Points of a plan's learning-rate curve at most: a chart a few hundred pixels wide shows no more. */
export const LR_CURVE_POINTS = 200;

/**
 * The learning rate at optimizer steps 1 … totalSteps (the trainer's 0-based step s is step s + 1 here), at every step
 * or at LR_CURVE_POINTS of them spread evenly, always with the first, the last and the warmup's last step and the
 * step after it, where the curve turns.
 */
export function learningRateCurve(lr: number, totalSteps: number, warmupRatio: number, kind: LrScheduler): { steps: number[]; rates: number[] } {
  const at = new Set<number>();
  if (totalSteps <= LR_CURVE_POINTS) for (let s = 1; s <= totalSteps; s++) at.add(s);
  else {
    for (let i = 0; i < LR_CURVE_POINTS; i++) at.add(1 + Math.round((i * (totalSteps - 1)) / (LR_CURVE_POINTS - 1)));
    const w = warmupSteps(totalSteps, warmupRatio);
    for (const s of [w, w + 1]) if (s >= 1 && s <= totalSteps) at.add(s);
  }
  const steps = [...at].sort((a, b) => a - b);
  return { steps, rates: steps.map((s) => learningRate(lr, s - 1, totalSteps, warmupRatio, kind)) };
}

/**
 * Why a run of `totalSteps` would learn nothing, if it would: the warmup starts at 0 (step 0's rate is 0, as in
 * transformers), so a one-step run with any warmup trains at rate 0 throughout. Said in the plan, before a run.
 */
export function scheduleNotice(totalSteps: number, warmupRatio: number, lr: number, kind: LrScheduler): string | undefined {
  if (totalSteps < 1 || lr <= 0) return undefined;
  for (let s = 0; s < totalSteps; s++) if (learningRate(lr, s, totalSteps, warmupRatio, kind) > 0) return undefined;
  const w = warmupSteps(totalSteps, warmupRatio);
  return `every step of this run (${totalSteps}) trains at learning rate 0, so it learns nothing: the warmup (warmup_ratio ${warmupRatio}: ${w} step${w === 1 ? '' : 's'}) starts from 0, as in transformers, and takes the whole run; give more steps (max_steps, num_train_epochs), or set warmup_ratio 0`;
}
