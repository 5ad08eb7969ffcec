// `finetune bench dispatch`: what recording the GPU work costs the host. One decoder layer's training work (forward,
// recomputation, backward; LoRA r = 8 on all seven projections, dropout on) is recorded and submitted again and again,
// with bind groups reused between dispatches (GpuContext.cacheBindGroups, the default) and with a new bind group per
// dispatch, same run: host microseconds per dispatch for each, and the GPU time of the same work beside them.
//
// Host time is what the JavaScript thread spends between the first dispatch and the submit returning; it is Dawn's
// CPU work (validation, bind groups, command encoding) whatever the adapter, so it is meaningful on SwiftShader too.
// Where the GPU takes less time per dispatch than the host spends recording it — small models such as the demo, and
// most of a step on a fast GPU at short sequences — this is the step's speed limit.

import { uniformSource } from '../core/prng.ts';
import { unpackedBatch } from '../core/token-batch.ts';
import { PROJECTIONS } from '../core/mistral.ts';
import { createAdapter } from '../model/lora-adapter.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { add } from '../engine/kernels/elementwise.ts';
import type { Dims } from '../engine/mistral/dims.ts';
import { destroyLora, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import { destroyMistralWeights } from '../engine/mistral/weights.ts';
import { repeatableLayerWork } from '../run/layer-work.ts';
import { randomLayer, syntheticConfig } from './layer.ts';

export interface DispatchBenchResult {
  bench: 'dispatch';
  /**
   * 'layer': one layer's training work; 'record-only': 2,000 small elementwise dispatches recorded into one
   * submission with nothing running meanwhile — the host cost alone, free of the GPU's work (which on SwiftShader runs
   * on the same CPU cores while a layer is recorded).
   */
  work: 'layer' | 'record-only';
  /** 'cached': bind groups reused between dispatches; 'per-dispatch': a new one for every dispatch. */
  bindGroups: 'cached' | 'per-dispatch';
  T: number;
  C: number;
  dispatchesPerLayer: number;
  /** Host time to record and submit one layer's training work, per dispatch. */
  hostUsPerDispatch: number;
  hostMsPerLayer: number;
  /** Wall time per layer including the GPU's work (host and GPU overlap only across submits, so this bounds both). */
  wallMsPerLayer: number;
  /** Bind groups made during the timed repetitions (0 once the cache holds the layer's). */
  bindGroupsMade: number;
  reps: number;
  /** For 'cached': the per-dispatch run's host time ÷ this one's, same run. */
  hostSpeedup?: number;
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/**
 * Times `record` (which records dispatches; each repetition is then submitted and waited for), a new bind group per
 * dispatch and then with them reused, same run: one line for each. `wall`: whether the wall time per repetition means
 * something (the layer's work), or not (record-only, where there is no GPU work worth the name).
 */
async function* bothWays(ctx: GpuContext, line: Pick<DispatchBenchResult, 'work' | 'T' | 'C'>, record: () => void, minMs: number, wall: boolean): AsyncGenerator<DispatchBenchResult> {
  const before = ctx.cacheBindGroups;
  try {
    let perDispatchHost = NaN;
    for (const cached of [false, true]) {
      ctx.cacheBindGroups = cached;
      // Warm-up: pipelines compiled, and with the cache on, the bind groups made.
      record();
      await ctx.sync();
      const made = ctx.bindGroups.created;
      let host = 0;
      let dispatches = 0;
      let reps = 0;
      const start = now();
      while (now() - start < minMs || reps < 3) {
        const d0 = ctx.dispatchCount;
        const t0 = now();
        record();
        ctx.flush();
        host += now() - t0;
        dispatches += ctx.dispatchCount - d0;
        reps++;
        await ctx.sync();
      }
      const elapsed = now() - start;
      const hostUsPerDispatch = (host * 1000) / dispatches;
      if (!cached) perDispatchHost = hostUsPerDispatch;
      yield {
        bench: 'dispatch',
        ...line,
        bindGroups: cached ? 'cached' : 'per-dispatch',
        dispatchesPerLayer: dispatches / reps,
        hostUsPerDispatch,
        hostMsPerLayer: host / reps,
        wallMsPerLayer: wall ? elapsed / reps : NaN,
        bindGroupsMade: ctx.bindGroups.created - made,
        reps,
        ...(cached ? { hostSpeedup: perDispatchHost / hostUsPerDispatch } : {}),
      };
    }
  } finally {
    ctx.cacheBindGroups = before;
  }
}

/** One decoder layer's training work of shape `d` at T tokens, both ways. */
export async function* benchDispatch(ctx: GpuContext, d: Omit<Dims, 'L' | 'V'>, T: number, minMs = 300): AsyncGenerator<DispatchBenchResult> {
  const weights = await randomLayer(ctx, d, true);
  const config = syntheticConfig(d);
  const adapter = createAdapter(config, { r: 8, alpha: 16, dropout: 0.05, targetModules: [...PROJECTIONS], random: uniformSource(11) });
  const lora = uploadLora(ctx, weights.dims, adapter);
  const runner = new MistralRunner(ctx, weights, lora, { B: 1, T, seed: 1, keptLayers: 0 });
  const layer = repeatableLayerWork(ctx, runner, [0], d.C);
  try {
    const ids = Array.from({ length: T }, (_, i) => (1 + 37 * i) % weights.dims.V);
    runner.setBatch(unpackedBatch(1, T, ids, new Int32Array(T).fill(-100)));
    yield* bothWays(ctx, { work: 'layer', T, C: d.C }, () => layer.run(0), minMs, true);
  } finally {
    layer.destroy();
    runner.destroy();
    destroyLora(ctx, lora);
    destroyMistralWeights(ctx, weights);
  }
}

/** `count` elementwise adds recorded into one submission, both ways: the host's cost alone. */
export async function* benchRecording(ctx: GpuContext, count = 2000, minMs = 300): AsyncGenerator<DispatchBenchResult> {
  const n = 256;
  const [a, b, out] = ['a', 'b', 'out'].map((label) => ctx.createBuffer(`dispatch bench ${label}`, n * 4, 'scratch'));
  try {
    yield* bothWays(ctx, { work: 'record-only', T: 0, C: n }, () => {
      for (let i = 0; i < count; i++) add(ctx, out, a, b, n);
    }, minMs, false);
  } finally {
    for (const buf of [a, b, out]) ctx.destroy(buf);
  }
}
