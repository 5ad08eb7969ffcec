// LoRA's up-projection (y += s · t·Bᵀ) and input gradient (dx += drop(dt·A)) in the frozen base products' epilogue
// (GpuContext.loraEpilogue, mistral/linear.ts) against the same steps with them as GEMMs of their own: seeded QLoRA
// steps with dropout on every projection must give the same losses and trained LoRA weights to the bit, with one
// dispatch fewer per adapted module in each forward, recomputation and backward pass. On the basic GEMM, which has no
// such epilogue, nothing changes.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { GemmKernel, GpuContext } from '../../src/engine/gpu.ts';
import type { Dims } from '../../src/engine/mistral/dims.ts';
import { destroyMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { configOf, randomMistral } from '../../src/bench/model.ts';
import { trainSteps, type TrainStepsResult } from '../helpers/train-steps.ts';
import { gpuContext } from './context.ts';

// 3 layers, GQA 2, two rows of different lengths' segments: every projection of every layer is adapted (r 4).
const DIMS: Dims = { V: 97, C: 64, I: 128, L: 3, nH: 4, nKV: 2, hd: 16, theta: 10000, eps: 1e-5 };
const LAYOUT = {
  segmentIds: Uint32Array.of(1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1),
  positionIds: Uint32Array.of(0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6),
};
const STEPS = 2;

const lowRankPipelines = (ctx: GpuContext): string[] => ctx.registry.pipelineKeys.filter((k) => k.startsWith('matmul_tiled|') && k.includes('LOW_RANK=true'));

describe('LoRA in the base products\' epilogue', () => {
  let ctx: GpuContext;
  let gemmBefore: GemmKernel;
  beforeAll(async () => {
    ctx = await gpuContext();
    gemmBefore = ctx.gemmKernel;
  });
  afterEach(() => {
    ctx.gemmKernel = gemmBefore;
    ctx.loraEpilogue = true;
  });

  async function both(weights: boolean | 'dense', gemm: GemmKernel, keptLayers = 0): Promise<{ on: TrainStepsResult; off: TrainStepsResult; pipelines: string[] }> {
    const w: MistralWeights = await randomMistral(ctx, DIMS, weights);
    ctx.gemmKernel = gemm;
    try {
      const run = (epilogue: boolean): Promise<TrainStepsResult> => {
        ctx.loraEpilogue = epilogue;
        return trainSteps(ctx, configOf(DIMS), w, { B: 2, T: 7, steps: STEPS, layout: LAYOUT, keptLayers });
      };
      const before = new Set(lowRankPipelines(ctx));
      const off = await run(false);
      const afterOff = lowRankPipelines(ctx).filter((k) => !before.has(k));
      expect(afterOff).toEqual([]); // switched off, nothing built the variant
      const on = await run(true);
      return { on, off, pipelines: lowRankPipelines(ctx) };
    } finally {
      destroyMistralWeights(ctx, w);
    }
  }

  const sameBits = (a: TrainStepsResult, b: TrainStepsResult): void => {
    expect(a.losses.every((bits) => Number.isFinite(new Float32Array(Uint32Array.of(bits).buffer)[0]))).toBe(true);
    expect(a.losses).toEqual(b.losses);
    expect(Buffer.from(a.lora.buffer).equals(Buffer.from(b.lora.buffer))).toBe(true);
  };

  it('NF4 (double-quantised) base, recomputed layers: the same bits, 20 dispatches fewer per layer and step', async () => {
    const { on, off, pipelines } = await both(true, 'tiled');
    sameBits(on, off);
    // Per layer and step: 7 modules in the forward, 6 in the recomputation (down_proj's output is not recomputed), 7 in
    // the backward.
    expect(off.passDispatches - on.passDispatches).toBe(STEPS * DIMS.L * 20);
    // Both NF4 products, with the up-projection's V = B (N, r) and the input gradient's V = A (r, N), masked.
    expect(pipelines.some((k) => k.includes('NF4=true') && k.includes('DQ=true') && k.includes('LR_TRANS_V=true'))).toBe(true);
    expect(pipelines.some((k) => k.includes('NF4=true') && k.includes('LR_DROP=true') && k.includes('LR_TRANS_V=false'))).toBe(true);
  });

  it('every layer kept (no recomputation): the same bits, 14 dispatches fewer per layer and step', async () => {
    const { on, off } = await both(true, 'tiled', DIMS.L);
    sameBits(on, off);
    expect(off.passDispatches - on.passDispatches).toBe(STEPS * DIMS.L * 14);
  });

  it('an unquantised f32 base on the tiled GEMM: the same bits, the term on its dense products', async () => {
    const { on, off, pipelines } = await both('dense', 'tiled');
    sameBits(on, off);
    expect(off.passDispatches - on.passDispatches).toBe(STEPS * DIMS.L * 20);
    expect(pipelines.some((k) => !k.includes('NF4=true') && k.includes('LR_DROP=true'))).toBe(true);
  });

  it('on the basic GEMM the term stays a product of its own: no variant built, the same dispatches', async () => {
    const before = lowRankPipelines(ctx).length;
    const { on, off } = await both(true, 'basic');
    sameBits(on, off);
    expect(on.passDispatches).toBe(off.passDispatches);
    expect(lowRankPipelines(ctx).length).toBe(before);
  });
});
