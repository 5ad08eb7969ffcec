// A few seeded QLoRA training steps on the runner, with dropout (masks keyed by the step) and AdamW with clipping, then
// a validation pass: what the "same numbers, other memory layout" tests (layer streaming, kept layers) compare bit for
// bit between two ways of running the same model.
import { uniformSource } from '../../src/core/prng.ts';
import type { Projection } from '../../src/core/mistral.ts';
import type { TokenBatch } from '../../src/core/token-batch.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { destroyLora, downloadLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import type { MistralWeights } from '../../src/engine/mistral/weights.ts';
import type { MistralConfig } from '../../src/model/config.ts';
import { createAdapter } from '../../src/model/lora-adapter.ts';

export const ALL_PROJECTIONS: Projection[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export interface TrainStepsResult {
  /** Float32 bits of each step's loss, then of the validation loss. */
  losses: number[];
  /** Float32 bits of every A and B after the steps, module after module. */
  lora: Uint32Array;
  /** Layer uploads made by each micro-batch (streamed weights only). */
  uploadsPerStep: number[];
  /** Dispatches of the steps' forward + backward passes (the optimizer excluded). */
  passDispatches: number;
  /** Activation bytes the runner added to the ledger. */
  activationBytes: number;
}

export interface TrainStepsOptions {
  B: number;
  T: number;
  steps: number;
  /** Segment ids and positions of a batch (B·T each); default: one sequence per row. */
  layout?: { segmentIds: Uint32Array; positionIds: Uint32Array };
  keptLayers?: number;
  /** The recomputed layers keep their attention outputs (RunnerOptions.keptAttention). */
  keptAttention?: boolean;
}

export const bitsOf = (x: number): number => new Uint32Array(Float32Array.of(x).buffer)[0];

export async function trainSteps(ctx: GpuContext, config: MistralConfig, w: MistralWeights, o: TrainStepsOptions): Promise<TrainStepsResult> {
  const { B, T } = o;
  const adapter = createAdapter(config, { r: 4, alpha: 8, dropout: 0.1, targetModules: ALL_PROJECTIONS, random: uniformSource(7) });
  const lora = uploadLora(ctx, w.dims, adapter);
  const activationsBefore = ctx.ledger.snapshot().byCategory.activations.currentBytes;
  const runner = new MistralRunner(ctx, w, lora, { B, T, seed: 5, keptLayers: o.keptLayers, keptAttention: o.keptAttention });
  const activationBytes = ctx.ledger.snapshot().byCategory.activations.currentBytes - activationsBefore;
  try {
    const rand = uniformSource(11);
    const batch = (): TokenBatch => {
      const ids = Array.from({ length: B * T }, () => 3 + Math.floor(rand() * (config.vocabSize - 3)));
      return {
        B,
        T,
        inputIds: ids,
        targets: ids.map((_, i) => ((i + 1) % T === 0 ? -100 : ids[i + 1])),
        segmentIds: o.layout?.segmentIds ?? new Uint32Array(B * T).fill(1),
        positionIds: o.layout?.positionIds ?? Uint32Array.from({ length: B * T }, (_, i) => i % T),
      };
    };
    const losses: number[] = [];
    const uploadsPerStep: number[] = [];
    const counted = B * (T - 1);
    let passDispatches = 0;
    for (let s = 0; s < o.steps; s++) {
      runner.setBatch(batch());
      runner.zeroGrads();
      runner.resetLoss();
      const uploads0 = w.stream?.uploads ?? 0;
      const d0 = ctx.dispatchCount;
      runner.forwardBackward(1 / counted, 1 / counted, 'train', s);
      passDispatches += ctx.dispatchCount - d0;
      uploadsPerStep.push((w.stream?.uploads ?? 0) - uploads0);
      runner.optimizerStep({ lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 });
      losses.push(bitsOf(await runner.readLoss()));
    }
    runner.setBatch(batch());
    runner.resetLoss();
    runner.evaluate(1 / counted);
    losses.push(bitsOf(await runner.readLoss()));
    const trained = await downloadLora(ctx, lora, adapter);
    const parts: number[] = [];
    for (const layer of trained.tensors) for (const m of ALL_PROJECTIONS) for (const f of ['A', 'B'] as const) parts.push(...new Uint32Array(layer[m]![f].buffer));
    return { losses, lora: Uint32Array.from(parts), uploadsPerStep, passDispatches, activationBytes };
  } finally {
    runner.destroy();
    destroyLora(ctx, lora);
  }
}
