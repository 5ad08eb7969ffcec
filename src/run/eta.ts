// How long the rest of a run will take, from what its parts have taken so far. A run is training steps, the
// validation passes the plan makes between them, and the small work around both (checkpoints, the validation
// prompt's sample). Each is timed on its own and only while it runs, so that a pause is never counted as work, and
// a validation pass still to come is priced even before the first one ran (on a small dataset with Replicate's 50
// held-out rows it can take longer than the training itself).

import type { Hyperparams } from '../config/hyperparams.ts';
import type { DataStats } from '../data/batches.ts';

/**
 * A forward pass costs about this share of a training pass (forward, recomputation and backward): how a validation
 * token is priced when nothing better is known. The time estimate measures the share on the loaded model when the run
 * validates (src/run/calibrate.ts), and a run is given that; a run's own first pass then replaces either.
 */
export const FORWARD_SHARE = 0.3;

/** What validationSteps reads of a run's plan (DataStats). */
export interface ValidationPlan {
  totalSteps: DataStats['totalSteps'];
  stepsByEpoch: readonly number[];
  validation: Pick<DataStats['validation'], 'lossTokens'>;
}

/** What validationSteps reads of the hyperparameters (eval_on_start absent: false). */
export type ValidationSettings = Pick<Hyperparams, 'run_validation' | 'eval_steps'> & Partial<Pick<Hyperparams, 'eval_on_start'>>;

/**
 * The 1-based plan steps after which the trainer validates: every eval_steps steps and the last one, or else each
 * epoch's last step (an epoch cut short by max_steps ends at the run's last step), led by 0 (before the first step:
 * the baseline) with eval_on_start. None without validation data.
 */
export function validationSteps(stats: ValidationPlan, hp: ValidationSettings): number[] {
  if (!hp.run_validation || stats.validation.lossTokens === 0) return [];
  const out: number[] = hp.eval_on_start === true ? [0] : [];
  if (hp.eval_steps > 0) {
    for (let s = hp.eval_steps; s < stats.totalSteps; s += hp.eval_steps) out.push(s);
    if (stats.totalSteps > 0) out.push(stats.totalSteps);
    return out;
  }
  return [...out, ...epochEndSteps(stats.stepsByEpoch)];
}

/** The 1-based plan steps that close an epoch (the last one's is the run's last step). */
export function epochEndSteps(stepsByEpoch: readonly number[]): number[] {
  let end = 0;
  return stepsByEpoch.map((n) => (end += n));
}

export class RunTimer {
  private steps = 0;
  private stepSeconds = 0;
  private stepTokens = 0;
  private otherSeconds = 0;
  private evals = 0;
  private evalSeconds = 0;
  private afterPasses = 0;
  private afterPassSeconds = 0;

  /**
   * `evalAfter`: the plan steps followed by a validation pass (validationSteps). Until one has run, a pass is priced
   * as `validationTokens` (the tokens it computes, padding included) at `forwardShare` of the steps' rate per token.
   * `afterPassTokens`: the tokens the work after each pass computes (its validation_prompt sample: the prompt and its
   * max_new_tokens), 0 when there is none; priced until such work has been timed (see afterPass), unless
   * `afterPassSeconds` gives its price as measured before the run (the time estimate's timed sample).
   */
  constructor(
    private readonly totalSteps: number,
    private readonly evalAfter: readonly number[],
    private readonly validationTokens: number,
    private readonly forwardShare = FORWARD_SHARE,
    private readonly afterPassTokens = 0,
    private readonly afterPassPrior?: number,
  ) {}

  /** A training step took `seconds` over `tokens` tokens (padding included: what the GPU computed). */
  stepDone(seconds: number, tokens: number): void {
    this.steps++;
    this.stepSeconds += seconds;
    this.stepTokens += tokens;
  }

  /** A whole validation pass took `seconds`. */
  validationDone(seconds: number): void {
    this.evals++;
    this.evalSeconds += seconds;
  }

  /** Work between steps that the plan repeats (checkpoints): spread over the steps. */
  otherDone(seconds: number): void {
    this.otherSeconds += seconds;
  }

  /**
   * The work after a validation pass (its validation_prompt sample) took `seconds`: priced with each pass to come, so
   * that the end of the last pass does not say 0 s left while its sample is being written.
   */
  afterPassDone(seconds: number): void {
    this.afterPasses++;
    this.afterPassSeconds += seconds;
  }

  /**
   * Seconds of work after a pass whose validation takes `passSeconds`: the mean of those timed, else its tokens at that
   * pass's rate per token. A run with one pass never times a sample before writing it, and pricing it at 0 said 0 s
   * left while it was written (48 tokens are most of a minute on a software adapter). A forward token is the one rate
   * the run has measured by then that a sample is made of: the prompt is read as a forward pass is, and each new token
   * is a forward of one row. Nothing times that per-token loop before the first sample, and one row at a time costs
   * more per token than a batched forward wherever reading the weights or the dispatches dominate (a hardware GPU
   * above all), so this is a floor; max_new_tokens is a ceiling (</s> may end the sample sooner), which makes up for
   * part of that. Either way the ETA no longer reaches 0 before the run's work is done.
   */
  private afterPass(passSeconds: number): number {
    if (this.afterPasses > 0) return this.afterPassSeconds / this.afterPasses;
    if (this.afterPassTokens > 0 && this.afterPassPrior !== undefined) return this.afterPassPrior;
    return this.validationTokens > 0 ? this.afterPassTokens * (passSeconds / this.validationTokens) : 0;
  }

  /** Seconds one validation pass takes: measured once one ran, else priced from the training steps' rate. */
  get validationSeconds(): number {
    if (this.evals > 0) return this.evalSeconds / this.evals;
    return this.stepTokens > 0 ? this.forwardShare * this.validationTokens * (this.stepSeconds / this.stepTokens) : 0;
  }

  /**
   * Seconds left once plan step `step` (1-based) is done: the steps after it and every validation pass not yet made,
   * its own included unless `validated` says it already ran. Null before any step has been timed.
   */
  remaining(step: number, validated = false): number | null {
    if (this.steps === 0) return null;
    const own = !validated && this.evalAfter.includes(step) ? 1 : 0;
    const pass = this.validationSeconds;
    return this.stepsAfter(step) + (this.passesAfter(step) + own) * (pass + this.afterPass(pass));
  }

  /**
   * Seconds left during the validation pass after `step`, `fraction` (0..1) of it done in `seconds`: the rest of this
   * pass at its own rate so far and the work after it, then the steps and passes after it (priced at this pass's rate while none has
   * finished: it is the best measure of a pass there is).
   */
  remainingDuringValidation(step: number, fraction: number, seconds: number): number | null {
    if (this.steps === 0) return null;
    const projected = fraction > 0 ? seconds / fraction : this.validationSeconds;
    const pass = this.evals > 0 ? this.validationSeconds : projected;
    // This pass's sample, priced (until one has been timed) at this pass's rate, as the passes after it are.
    return Math.max(0, projected - seconds) + this.afterPass(pass) + this.stepsAfter(step) + this.passesAfter(step) * (pass + this.afterPass(pass));
  }

  private stepsAfter(step: number): number {
    return ((this.stepSeconds + this.otherSeconds) / this.steps) * Math.max(0, this.totalSteps - step);
  }

  private passesAfter(step: number): number {
    return this.evalAfter.filter((s) => s > step).length;
  }
}
