// How long will this run take here? One short training pass (forward + backward with recomputation, on a throwaway
// adapter of the run's rank and targets) is measured on the loaded model, and the run's token count is scaled by it.
// The page says the answer before Train is pressed, so a software adapter's "hours" is never a surprise.

import { ADAPTER_INIT_STREAM, uniformSource } from '../core/prng.ts';
import { targetModules } from '../config/index.ts';
import type { Hyperparams } from '../config/hyperparams.ts';
import type { DataStats } from '../data/batches.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { destroyLora, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import type { MistralConfig } from '../model/config.ts';
import { createAdapter } from '../model/lora-adapter.ts';

/** Tokens in the measured pass: enough to amortise dispatch overhead, few enough for seconds on a software adapter. */
export const CALIBRATION_TOKENS = 16;

/**
 * A forward pass costs about this share of a training pass (forward, recomputation and backward): used to price
 * validation, which runs forward passes only.
 */
const FORWARD_SHARE = 0.3;

export interface Calibration {
  /** Seconds one token of training takes (forward, recomputation, backward) on this adapter and model. */
  secondsPerToken: number;
  measuredTokens: number;
  measuredSeconds: number;
}

export interface RunEstimate extends Calibration {
  /** Tokens the run trains on, padding included (every epoch). */
  trainTokens: number;
  /** Validation passes the run will make and the tokens each reads. */
  evaluations: number;
  validationTokens: number;
  /** Training plus validation, in seconds. */
  seconds: number;
  /** The adapter is a CPU implementation of WebGPU (correct, slow). */
  softwareAdapter: boolean;
}

/** Times one training pass of CALIBRATION_TOKENS tokens (after one untimed pass that compiles the pipelines). */
export async function calibrate(ctx: GpuContext, weights: MistralWeights, config: MistralConfig, hp: Hyperparams): Promise<Calibration> {
  const adapter = createAdapter(config, {
    r: hp.lora_rank,
    alpha: hp.lora_alpha,
    dropout: hp.lora_dropout,
    targetModules: targetModules(hp),
    random: uniformSource(hp.seed, ADAPTER_INIT_STREAM),
  });
  const lora = uploadLora(ctx, weights.dims, adapter);
  const T = CALIBRATION_TOKENS;
  const runner = new MistralRunner(ctx, weights, lora, { B: 1, T, seed: hp.seed });
  try {
    // Any ids inside the vocabulary do: the cost does not depend on which tokens they are.
    const ids = Array.from({ length: T }, (_, i) => (1000 + 37 * i) % config.vocabSize);
    runner.setBatch({
      B: 1,
      T,
      inputIds: ids,
      targets: Int32Array.from({ length: T }, (_, i) => (i + 1 < T ? ids[i + 1] : -100)),
      segmentIds: new Uint32Array(T).fill(1),
      positionIds: Uint32Array.from({ length: T }, (_, i) => i),
    });
    const pass = async (): Promise<number> => {
      const t0 = performance.now();
      runner.zeroGrads();
      runner.resetLoss();
      runner.forwardBackward(1 / T, 1 / T, 'train', 0);
      await runner.readLoss(); // the readback is the fence: the pass has finished on the GPU
      return (performance.now() - t0) / 1000;
    };
    await pass();
    const seconds = await pass();
    return { secondsPerToken: seconds / T, measuredTokens: T, measuredSeconds: seconds };
  } finally {
    runner.destroy();
    destroyLora(ctx, lora);
  }
}

/** How many validation passes a run makes (as the trainer decides: every eval_steps steps and at the end, or per epoch). */
export function evaluationCount(stats: DataStats, hp: Pick<Hyperparams, 'run_validation' | 'eval_steps'>): number {
  if (!hp.run_validation || stats.validation.lossTokens === 0) return 0;
  if (hp.eval_steps > 0) return Math.ceil(stats.totalSteps / hp.eval_steps);
  return stats.epochs;
}

/** The run's duration from a calibration: padded training tokens at the measured rate, plus its validation passes. */
export function estimateRun(stats: DataStats, hp: Pick<Hyperparams, 'run_validation' | 'eval_steps'>, c: Calibration, softwareAdapter: boolean): RunEstimate {
  const trainTokens = Math.round((stats.epochs * stats.tokensPerEpoch) / Math.max(0.05, 1 - stats.paddingFraction));
  const evaluations = evaluationCount(stats, hp);
  const validationTokens = stats.validation.tokens;
  const seconds = c.secondsPerToken * (trainTokens + FORWARD_SHARE * evaluations * validationTokens);
  return { ...c, trainTokens, evaluations, validationTokens, seconds, softwareAdapter };
}
