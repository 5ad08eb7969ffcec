// Bind groups reused between dispatches (src/engine/bind-group-cache.ts): a second training step of the same runner
// makes no new bind group, the steps give the same bits as a context that makes a new bind group per dispatch, and a
// destroyed buffer's groups are dropped, so nothing binds a destroyed buffer (WebGPU would refuse the submit).
import { describe, expect, it } from 'vitest';
import { uniformSource } from '../../src/core/prng.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { add } from '../../src/engine/kernels/elementwise.ts';
import type { Dims } from '../../src/engine/mistral/dims.ts';
import { destroyLora, downloadLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { destroyMistralWeights } from '../../src/engine/mistral/weights.ts';
import { configOf, randomMistral } from '../../src/bench/model.ts';
import { createAdapter } from '../../src/model/lora-adapter.ts';
import { ALL_PROJECTIONS } from '../helpers/train-steps.ts';
import { gpuContext } from './context.ts';

const DIMS: Dims = { V: 96, C: 64, I: 128, L: 3, nH: 2, nKV: 1, hd: 32, theta: 10000, eps: 1e-5 };
const T = 11;

/** Three training steps with LoRA dropout on; the losses, the trained LoRA values, and the bind groups each step made. */
async function threeSteps(ctx: GpuContext): Promise<{ losses: number[]; trained: number[]; madePerStep: number[]; reusedPerStep: number[]; dispatchesPerStep: number[] }> {
  const w = await randomMistral(ctx, DIMS, true);
  const adapter = createAdapter(configOf(DIMS), { r: 4, alpha: 8, dropout: 0.1, targetModules: ALL_PROJECTIONS, random: uniformSource(5) });
  for (const layer of adapter.tensors) for (const m of ALL_PROJECTIONS) layer[m]?.B.fill(1e-2);
  const lora = uploadLora(ctx, DIMS, adapter);
  const runner = new MistralRunner(ctx, w, lora, { B: 1, T, seed: 7 });
  const ids = Array.from({ length: T }, (_, i) => (5 + 13 * i) % DIMS.V);
  runner.setBatch({ B: 1, T, inputIds: ids, targets: ids.map((x, i) => (i + 1 < T ? ids[i + 1] : -100)), segmentIds: new Uint32Array(T).fill(1), positionIds: Uint32Array.from({ length: T }, (_, i) => i) });
  const out = { losses: [] as number[], trained: [] as number[], madePerStep: [] as number[], reusedPerStep: [] as number[], dispatchesPerStep: [] as number[] };
  try {
    for (let step = 0; step < 3; step++) {
      const [made, reused, dispatched] = [ctx.bindGroups.created, ctx.bindGroups.reused, ctx.dispatchCount];
      runner.zeroGrads();
      runner.resetLoss();
      runner.forwardBackward(1 / (T - 1), 1 / (T - 1), 'train', step);
      runner.optimizerStep({ lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
      out.losses.push(await runner.readLoss());
      out.madePerStep.push(ctx.bindGroups.created - made);
      out.reusedPerStep.push(ctx.bindGroups.reused - reused);
      out.dispatchesPerStep.push(ctx.dispatchCount - dispatched);
    }
    const trained = await downloadLora(ctx, lora, adapter);
    out.trained = trained.tensors.flatMap((layer) => ALL_PROJECTIONS.flatMap((m) => [...layer[m]!.A, ...layer[m]!.B]));
  } finally {
    runner.destroy();
    destroyLora(ctx, lora);
    destroyMistralWeights(ctx, w);
  }
  return out;
}

describe('bind groups reused between dispatches', () => {
  it('a repeated training step makes no new bind group, and trains to the same bits as one bind group per dispatch', async () => {
    const ctx = await gpuContext();
    const cached = await threeSteps(ctx);
    let uncached: Awaited<ReturnType<typeof threeSteps>>;
    ctx.cacheBindGroups = false;
    try {
      uncached = await threeSteps(ctx);
    } finally {
      ctx.cacheBindGroups = true;
    }
    expect(cached.losses.every(Number.isFinite)).toBe(true);
    expect(cached.losses).toEqual(uncached.losses);
    expect(cached.trained).toEqual(uncached.trained);
    // Step 1 makes its groups (a few may exist from an earlier test of this context); steps 2 and 3 only reuse them.
    expect(cached.madePerStep[0]).toBeGreaterThan(0);
    expect(cached.madePerStep.slice(1)).toEqual([0, 0]);
    expect(cached.reusedPerStep[1]).toBe(cached.dispatchesPerStep[1]);
    // Switched off, nothing goes through the cache.
    expect(uncached.madePerStep).toEqual([0, 0, 0]);
    expect(uncached.reusedPerStep).toEqual([0, 0, 0]);
  });

  it('drops the groups of a destroyed buffer: a new buffer in its place is bound afresh and the device stays valid', async () => {
    const ctx = await gpuContext();
    const n = 37;
    const a = ctx.upload('a', Float32Array.from({ length: n }, (_, i) => i), 'scratch');
    const b = ctx.upload('b', new Float32Array(n).fill(0.5), 'scratch');
    let out = ctx.createBuffer('out', n * 4, 'scratch');
    ctx.flush();
    const made = ctx.bindGroups.created;
    // The uniform block sits at the submission's next slot: the same dispatch in the same place of a submission is
    // the same bind group, the next one in the same submission another.
    add(ctx, out, a, b, n);
    ctx.flush();
    add(ctx, out, a, b, n);
    ctx.flush();
    expect(ctx.bindGroups.created - made).toBe(1);
    const size = ctx.bindGroups.size;
    ctx.destroy(out);
    expect(ctx.bindGroups.size).toBe(size - 1);
    out = ctx.createBuffer('out again', n * 4, 'scratch');
    ctx.flush();
    add(ctx, out, a, b, n);
    expect(ctx.bindGroups.created - made).toBe(2);
    expect(Array.from(await ctx.readF32(out))).toEqual(Array.from({ length: n }, (_, i) => i + 0.5));
    for (const buf of [a, b, out]) ctx.destroy(buf);
    await ctx.sync(); // raises any validation error a stale group would have caused
  });
});
