// Issue #9's launch budget: a whole training step of a 32-layer Mistral-shaped model (all seven projections adapted,
// LoRA dropout on, the lm_head + cross-entropy in 2 chunks as at 2048 tokens with its 1024-token chunks) records at most
// 3,000 dispatches with per-layer recomputation, and fewer when layers are kept; on the tiled GEMM, where LoRA's
// up-projection and input gradient ride on the base products' epilogue, 20 (14 kept) fewer per layer. The dims are tiny
// (the count does not depend on them), so the real step runs here on SwiftShader and the count is the context's own.
import { describe, expect, it } from 'vitest';
import { uniformSource } from '../../src/core/prng.ts';
import type { Dims } from '../../src/engine/mistral/dims.ts';
import { destroyLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { destroyMistralWeights } from '../../src/engine/mistral/weights.ts';
import { configOf, randomMistral } from '../../src/bench/model.ts';
import { createAdapter } from '../../src/model/lora-adapter.ts';
import { ALL_PROJECTIONS } from '../helpers/train-steps.ts';
import { gpuContext } from './context.ts';

const DIMS: Dims = { V: 64, C: 64, I: 64, L: 32, nH: 2, nKV: 1, hd: 32, theta: 10000, eps: 1e-5 };
const T = 8;

describe('dispatches per training step', () => {
  it('a 32-layer step with every projection adapted: ≤ 3,000 dispatches checkpointed, fewer with kept layers', async () => {
    const ctx = await gpuContext();
    const w = await randomMistral(ctx, DIMS, true);
    const adapter = createAdapter(configOf(DIMS), { r: 8, alpha: 16, dropout: 0.05, targetModules: ALL_PROJECTIONS, random: uniformSource(3) });
    const lora = uploadLora(ctx, DIMS, adapter);
    const ids = Array.from({ length: T }, (_, i) => 3 + i);
    const batch = { B: 1, T, inputIds: ids, targets: ids.map((x, i) => (i + 1 < T ? ids[i + 1] : -100)), segmentIds: new Uint32Array(T).fill(1), positionIds: Uint32Array.from({ length: T }, (_, i) => i) };
    const count = async (keptLayers: number): Promise<number> => {
      // Four tokens per head chunk: 2 chunks, as 2048 tokens make with the default 1024-token chunk.
      const runner = new MistralRunner(ctx, w, lora, { B: 1, T, seed: 1, xentChunk: 4, keptLayers });
      try {
        runner.setBatch(batch);
        const d0 = ctx.dispatchCount;
        runner.zeroGrads();
        runner.resetLoss();
        runner.forwardBackward(1 / (T - 1), 1 / (T - 1), 'train', 0);
        runner.optimizerStep({ lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
        const n = ctx.dispatchCount - d0;
        expect(Number.isFinite(await runner.readLoss())).toBe(true);
        return n;
      } finally {
        runner.destroy();
      }
    };
    const gemmBefore = ctx.gemmKernel;
    try {
      // On the basic GEMM LoRA's up-projection and input gradient are GEMMs of their own.
      ctx.gemmKernel = 'basic';
      const checkpointed = await count(0);
      const kept = await count(DIMS.L);
      expect(checkpointed).toBeLessThanOrEqual(3000);
      expect(kept).toBeLessThan(checkpointed);
      // On the tiled GEMM (what a run picks on the H200) they ride on the base products' epilogue: 7 modules in the
      // forward, 6 in the recomputation, 7 in the backward fewer per layer.
      ctx.gemmKernel = 'tiled';
      const checkpointedTiled = await count(0);
      const keptTiled = await count(DIMS.L);
      expect(checkpointedTiled).toBe(checkpointed - 20 * DIMS.L);
      expect(keptTiled).toBe(kept - 14 * DIMS.L);
      console.log(`dispatches per step at 32 layers: ${checkpointed} checkpointed, ${kept} with every layer kept; on the tiled GEMM ${checkpointedTiled} and ${keptTiled}`);
    } finally {
      ctx.gemmKernel = gemmBefore;
      destroyLora(ctx, lora);
      destroyMistralWeights(ctx, w);
    }
  });
});
