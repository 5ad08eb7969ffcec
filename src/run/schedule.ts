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
