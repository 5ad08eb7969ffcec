// Greedy generation for sample outputs during training: re-runs the forward pass over the whole sequence for every new
// token (no KV cache yet: O(n²), fine for the short samples the page shows) and takes the argmax of the last logits.

import { FinetuneError } from '../core/errors.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { gemm } from '../engine/kernels/matmul.ts';
import type { GpuLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';

export interface GenerateOptions {
  maxNewTokens: number;
  /** Stop at this id (</s>). */
  eosId?: number;
  onToken?: (id: number) => void;
  shouldStop?: () => boolean;
}

/** Continues `prompt` (ids, BOS included) greedily; returns the new ids. */
export async function generateGreedy(ctx: GpuContext, weights: MistralWeights, lora: GpuLora | null, prompt: readonly number[], o: GenerateOptions): Promise<number[]> {
  if (prompt.length === 0) throw new FinetuneError('bad-input', 'generation needs at least one prompt token');
  const d = weights.dims;
  const maxT = prompt.length + o.maxNewTokens;
  const runner = new MistralRunner(ctx, weights, lora, { B: 1, T: maxT });
  const logits = ctx.createBuffer('generation logits', d.V * 4, 'scratch');
  const last = ctx.createBuffer('last hidden', d.C * 4, 'scratch');
  const ids = [...prompt];
  const out: number[] = [];
  try {
    for (let i = 0; i < o.maxNewTokens; i++) {
      if (o.shouldStop?.()) break;
      const T = ids.length;
      runner.setBatch({ B: 1, T, inputIds: ids, targets: new Int32Array(T).fill(-100), segIds: new Uint32Array(T).fill(1), positions: Uint32Array.from({ length: T }, (_, j) => j) });
      runner.forwardHidden('eval');
      // Only the last position's logits: its row of xf times lm_headᵀ.
      ctx.copy(runner.xf, (T - 1) * d.C * 4, last, 0, d.C * 4);
      gemm(ctx, { C: logits, A: last, B: weights.lmHead.buffer, M: 1, N: d.V, K: d.C, transB: true, bStorage: weights.lmHead.storage });
      const v = await ctx.readF32(logits);
      let best = 0;
      for (let j = 1; j < v.length; j++) if (v[j] > v[best]) best = j;
      if (best === o.eosId) break;
      ids.push(best);
      out.push(best);
      o.onToken?.(best);
    }
    return out;
  } finally {
    runner.destroy();
    ctx.destroy(logits);
    ctx.destroy(last);
  }
}
