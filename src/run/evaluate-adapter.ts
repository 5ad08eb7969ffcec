// The validation loss of whatever adapter the session holds (an imported one, the last trained one, or none: the base
// model alone), without training: how an adapter brought home from Replicate is compared with one trained here.

import { FinetuneError } from '../core/errors.ts';
import type { TrainingData } from '../data/batches.ts';
import type { GpuContext } from '../engine/gpu.ts';
import type { GpuLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import { evaluate, runnerShape, type EvaluationProgress } from './trainer.ts';

/** Mean loss over every counted token of `data`'s validation set, with `lora` (or the base model when null). */
export async function validationLoss(ctx: GpuContext, weights: MistralWeights, lora: GpuLora | null, data: TrainingData, onProgress?: (p: EvaluationProgress) => void): Promise<{ loss: number; tokens: number }> {
  if (data.stats.validation.lossTokens === 0) {
    throw new FinetuneError('bad-input', 'there is no validation set to evaluate on: choose a validation file, or keep run_validation on with num_validation_samples above 0');
  }
  // Sized for the largest batch; the runner's buffers are freed whatever happens.
  const runner = new MistralRunner(ctx, weights, lora, runnerShape(data));
  try {
    const v = await evaluate(ctx, runner, data, { onProgress });
    return { loss: v.loss, tokens: v.tokens };
  } finally {
    runner.destroy();
  }
}
