// How many layers keep their intermediates from the forward to the backward (engine/mistral/model.ts, `keptLayers`):
// each kept layer skips its recomputation — about a quarter of its training FLOPs — for one more set of layer buffers.
// Asked for outright, or chosen when the GPU's memory is known (WebGPU cannot report it: the user gives it), from the
// bytes the ledger holds right now and the runner's own layout: as many as fit under TIGHT_SHARE of the memory, so the
// run never becomes tight for speed's sake. Without a known memory none is kept: a guess is no basis to spend memory.

import { FinetuneError } from '../core/errors.ts';
import { formatBytes } from '../core/units.ts';
import type { Dims } from '../engine/mistral/dims.ts';
import { runnerBytes, runnerLayout, type RunnerShape } from '../engine/mistral/sizing.ts';
import { mostKeptLayers, recomputationText, TIGHT_SHARE } from './planner.ts';

export interface KeptLayersDecision {
  kept: number;
  /** The runner's bytes with this choice (activations, scratch, io, optimizer partials). */
  runnerBytes: number;
  /** What the user should hear (null when nothing was chosen for them and nothing is kept). */
  notice: string | null;
}

function totalRunnerBytes(d: Dims, shape: RunnerShape, kept: number): number {
  const b = runnerBytes(runnerLayout(d, { ...shape, keptLayers: kept }));
  return b.activations + b.scratch + b.io + b.optimizer;
}

/**
 * `asked`: a number of layers (checked against the model), or undefined to choose. `memoryBytes`: the GPU's memory
 * when known. `inUseBytes`: what the ledger holds before the runner is made (weights, adapter, moments, context).
 */
export function chooseKeptLayers(d: Dims, shape: Omit<RunnerShape, 'keptLayers'>, o: { asked?: number; memoryBytes: number | null; inUseBytes: number }): KeptLayersDecision {
  if (o.asked !== undefined) {
    if (!(Number.isInteger(o.asked) && o.asked >= 0 && o.asked <= d.L)) {
      throw new FinetuneError('bad-input', `the layers to keep must be a whole number from 0 to ${d.L} (this model's layers), got ${o.asked}`);
    }
    const bytes = totalRunnerBytes(d, shape, o.asked);
    return { kept: o.asked, runnerBytes: bytes, notice: o.asked > 0 ? `recomputation: ${recomputationText(d.L, o.asked)}` : null };
  }
  const none = totalRunnerBytes(d, shape, 0);
  if (o.memoryBytes === null) return { kept: 0, runnerBytes: none, notice: null };
  const budget = TIGHT_SHARE * o.memoryBytes - o.inUseBytes;
  const lo = mostKeptLayers(d.L, (k) => totalRunnerBytes(d, shape, k) <= budget);
  const bytes = totalRunnerBytes(d, shape, lo);
  const extra = bytes - none;
  const notice =
    lo === 0
      ? `recomputation: every layer is recomputed in the backward (keeping even one layer's intermediates would pass ${Math.round(TIGHT_SHARE * 100)} % of the GPU's ${formatBytes(o.memoryBytes)})`
      : `recomputation: ${recomputationText(d.L, lo)} — chosen for the GPU's ${formatBytes(o.memoryBytes)}, ${formatBytes(extra)} more activation memory than recomputing every layer`;
  return { kept: lo, runnerBytes: bytes, notice };
}
