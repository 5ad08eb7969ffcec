// How many layers keep their intermediates from the forward to the backward (engine/mistral/model.ts, `keptLayers`):
// each kept layer skips its recomputation — about a quarter of its training FLOPs — for one more set of layer buffers.
// Asked for outright, or chosen when the GPU's memory is known (WebGPU cannot report it: the user gives it), from the
// bytes the ledger holds right now and the runner's own layout: as many as fit under TIGHT_SHARE of the memory, so the
// run never becomes tight for speed's sake. Without a known memory none is kept: a guess is no basis to spend memory.
// The recomputed layers may also keep just their attention outputs (RunnerShape.keptAttention), chosen first.

import { FinetuneError } from '../core/errors.ts';
import { formatBytes } from '../core/units.ts';
import type { Dims } from '../engine/mistral/dims.ts';
import { runnerBytes, runnerLayout, type RunnerShape } from '../engine/mistral/sizing.ts';
import { mostKeptLayers, recomputationText, TIGHT_SHARE } from './planner.ts';

export interface KeptLayersDecision {
  kept: number;
  /** The recomputed layers keep their attention output (RunnerShape.keptAttention): no attention in the recomputation. */
  keptAttention: boolean;
  /** The runner's bytes with this choice (activations, scratch, io, optimizer partials). */
  runnerBytes: number;
  /** What the user should hear (null when nothing was chosen for them and nothing is kept). */
  notice: string | null;
}

function totalRunnerBytes(d: Dims, shape: RunnerShape, kept: number, keptAttention: boolean): number {
  const b = runnerBytes(runnerLayout(d, { ...shape, keptLayers: kept, keptAttention }));
  return b.activations + b.scratch + b.io + b.optimizer;
}

/**
 * `asked`: a number of layers (checked against the model), or undefined to choose; `askedAttention` likewise for
 * keeping the recomputed layers' attention outputs. `memoryBytes`: the GPU's memory when known. `inUseBytes`: what
 * the ledger holds before the runner is made (weights, adapter, moments, context); `besideBytes`: what the run makes
 * beside the runner later (its validation_prompt sample's decoder: sizing.ts decoderBytes). With the memory known, what is not
 * asked is chosen: the attention outputs first (at Mistral-7B's 2048 tokens 34 MB a layer against 353 MB for a whole
 * kept layer: on the H200's tiled kernels about as much recomputation saved per byte, more as T grows, attention being
 * quadratic in it), then as many whole layers as still fit.
 */
export function chooseKeptLayers(
  d: Dims,
  shape: Omit<RunnerShape, 'keptLayers' | 'keptAttention'>,
  o: { asked?: number; askedAttention?: boolean; memoryBytes: number | null; inUseBytes: number; besideBytes?: number },
): KeptLayersDecision {
  if (o.asked !== undefined && !(Number.isInteger(o.asked) && o.asked >= 0 && o.asked <= d.L)) {
    throw new FinetuneError('bad-input', `the layers to keep must be a whole number from 0 to ${d.L} (this model's layers), got ${o.asked}`);
  }
  const budget = o.memoryBytes === null ? null : TIGHT_SHARE * o.memoryBytes - o.inUseBytes - (o.besideBytes ?? 0);
  const fits = (kept: number, att: boolean): boolean => budget !== null && totalRunnerBytes(d, shape, kept, att) <= budget;
  const keptAttention = o.askedAttention ?? fits(o.asked ?? 0, true);
  if (o.asked !== undefined || o.memoryBytes === null) {
    const kept = o.asked ?? 0;
    const bytes = totalRunnerBytes(d, shape, kept, keptAttention);
    const said = kept > 0 || (keptAttention && kept < d.L);
    return { kept, keptAttention, runnerBytes: bytes, notice: said ? `recomputation: ${recomputationText(d.L, kept, keptAttention)}` : null };
  }
  const lo = mostKeptLayers(d.L, (k) => fits(k, keptAttention));
  const bytes = totalRunnerBytes(d, shape, lo, keptAttention);
  const extra = bytes - totalRunnerBytes(d, shape, 0, false);
  const notice =
    lo === 0 && !keptAttention
      ? `recomputation: every layer is recomputed in the backward (keeping even one layer's attention output would pass ${Math.round(TIGHT_SHARE * 100)} % of the GPU's ${formatBytes(o.memoryBytes)})`
      : `recomputation: ${recomputationText(d.L, lo, keptAttention)} — chosen for the GPU's ${formatBytes(o.memoryBytes)}, ${formatBytes(extra)} more activation memory than recomputing everything`;
  return { kept: lo, keptAttention, runnerBytes: bytes, notice };
}
