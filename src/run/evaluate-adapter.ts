// The validation loss of whatever adapter the session holds (an imported one, the last trained one, or none: the base
// model alone), without training: how an adapter brought home from Replicate is compared with one trained here.

import { FinetuneError } from '../core/errors.ts';
import type { TrainingData } from '../data/batches.ts';
import type { GpuContext } from '../engine/gpu.ts';
import type { GpuLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import { evaluate, runnerShape, type EvaluationProgress, type TrainControl } from './trainer.ts';

/** A validation loss asked for apart from a run. */
export interface EvaluationResult {
  /** NaN when stopped. */
  loss: number;
  /** The validation set's counted tokens (0 when stopped before its data was read). */
  tokens: number;
  /** Ended by `control` between forward passes (a Stop, or a model load that frees the weights it reads). */
  stopped: boolean;
}

/**
 * Mean loss over every counted token of `data`'s validation set, with `lora` (or the base model when null); `control`
 * stops it between forward passes (minutes of them for Mistral-7B on a large validation set).
 */
export async function validationLoss(
  ctx: GpuContext,
  weights: MistralWeights,
  lora: GpuLora | null,
  data: TrainingData,
  onProgress?: (p: EvaluationProgress) => void,
  control?: TrainControl,
): Promise<EvaluationResult> {
  if (data.stats.validation.lossTokens === 0) {
    throw new FinetuneError('bad-input', 'there is no validation set to evaluate on: choose a validation file, or keep run_validation on with num_validation_samples above 0');
  }
  // Sized for the largest batch; the runner's buffers are freed whatever happens.
  const runner = new MistralRunner(ctx, weights, lora, runnerShape(data));
  try {
    const v = await evaluate(ctx, runner, data, { onProgress, control });
    return { loss: v.loss, tokens: v.tokens, stopped: v.stopped };
  } finally {
    runner.destroy();
  }
}
