// One layer's training work (or its validation forward) made repeatable, for measurements on a real runner (kernel
// tuning, the time estimate): the layers to run get random inputs, and every call starts from the same random incoming
// gradient, because the backward leaves the layer's input gradient where it read the incoming one.

import type { GpuContext } from '../engine/gpu.ts';
import { copy } from '../engine/kernels/elementwise.ts';
import { fill_uniform } from '../engine/kernels/random.ts';
import type { MistralRunner } from '../engine/mistral/model.ts';

export interface LayerWork {
  /** Records layer l's forward, recomputation (unless kept) and backward from the fixed inputs, and submits them. */
  run(l: number): void;
  /** Records layer l's inference-mode forward (a validation pass's share) from the fixed input, and submits it. */
  forward(l: number): void;
  /** Frees the incoming-gradient copy (the runner stays the caller's). */
  destroy(): void;
}

/** `layers`: the layers `run` will be asked for; their inputs are filled here, seeded so that every call is the same. */
export function repeatableLayerWork(ctx: GpuContext, runner: MistralRunner, layers: readonly number[], C: number): LayerWork {
  const floats = runner.N * C;
  const gradient = ctx.createBuffer('layer work gradient', floats * 4, 'scratch');
  for (const l of layers) fill_uniform(ctx, runner.xs[l], floats, 1, 101 + l);
  fill_uniform(ctx, gradient, floats, 1e-2, 100);
  return {
    run(l) {
      copy(ctx, runner.layerGradient, gradient, floats);
      runner.layerTrainingWork(l);
    },
    forward(l) {
      runner.layerEvalWork(l);
    },
    destroy() {
      ctx.destroy(gradient); // submits what was recorded first
    },
  };
}
