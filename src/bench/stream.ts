// `finetune bench stream`: training tokens/s with the layers streamed from CPU memory (engine/mistral/layer-stream.ts)
// next to resident weights, in one process on the same random weights: first resident, then the same weights moved to
// CPU memory. Each line has the ledger's peak GPU memory and the bytes the stream moved per step; the losses of the
// two runs must be equal, bit for bit (the comparison line says whether they were).

import { PROJECTIONS, type Projection } from '../core/mistral.ts';
import type { GpuContext } from '../engine/gpu.ts';
import type { Dims } from '../engine/mistral/dims.ts';
import { destroyMistralWeights, moveLayersToHost, type MistralWeights } from '../engine/mistral/weights.ts';
import { randomMistral, timeTrainSteps, type TrainStepTiming } from './model.ts';

export interface StreamBenchResult {
  bench: 'stream';
  mode: 'resident' | 'streamed';
  layers: number;
  T: number;
  r: number;
  targets: string;
  quantization: string;
  stepMs: number;
  tokensPerSecond: number;
  losses: number[];
  /** Base weights on the GPU during the steps (the ledger's 'weights'). */
  gpuWeightBytes: number;
  peakBytes: number;
  peakByCategory: Record<string, number>;
  /** Streamed only: layer uploads and bytes moved to the GPU per training step, and the layers' CPU bytes. */
  uploadsPerStep: number;
  bytesMovedPerStep: number;
  hostBytes: number;
}

export interface StreamComparison {
  bench: 'stream-vs-resident';
  T: number;
  /** Streamed step time over resident step time. */
  slowdown: number;
  /** GPU bytes streaming saved at the peak. */
  peakSavedBytes: number;
  /** Bytes moved per second of streamed training: what the uploads ran at, at least. */
  movedBytesPerSecond: number;
  sameLosses: boolean;
}

function result(mode: StreamBenchResult['mode'], w: MistralWeights, T: number, r: number, targets: Projection[], t: TrainStepTiming, ctx: GpuContext): StreamBenchResult {
  const layerBytes = w.stream?.layerBytes ?? 0;
  return {
    bench: 'stream',
    mode,
    layers: w.dims.L,
    T,
    r,
    targets: targets.join(','),
    quantization: w.quantization,
    stepMs: t.stepMs,
    tokensPerSecond: T / (t.stepMs / 1000),
    losses: t.losses,
    gpuWeightBytes: ctx.ledger.snapshot().byCategory.weights.currentBytes,
    peakBytes: t.peakBytes,
    peakByCategory: t.peakByCategory,
    uploadsPerStep: t.uploadsPerStep,
    bytesMovedPerStep: t.uploadsPerStep * layerBytes,
    hostBytes: w.stream?.hostBytes ?? 0,
  };
}

/** For each T: resident steps, then streamed steps on the same weights, then the comparison. */
export async function* benchStream(
  ctx: GpuContext,
  o: { dims: Dims; tokens: number[]; steps: number; r?: number; targets?: Projection[]; doubleQuant?: boolean },
): AsyncGenerator<StreamBenchResult | StreamComparison> {
  const r = o.r ?? 8;
  const targets = o.targets ?? [...PROJECTIONS];
  for (const T of o.tokens) {
    // Fresh weights per T: the resident run must see every layer on the GPU.
    let w = await randomMistral(ctx, o.dims, o.doubleQuant ?? true);
    try {
      ctx.ledger.resetPeaks();
      const resident = result('resident', w, T, r, targets, await timeTrainSteps(ctx, w, { T, steps: o.steps, r, targets }), ctx);
      yield resident;
      w = await moveLayersToHost(ctx, w);
      await ctx.sync();
      ctx.ledger.resetPeaks();
      const streamed = result('streamed', w, T, r, targets, await timeTrainSteps(ctx, w, { T, steps: o.steps, r, targets }), ctx);
      yield streamed;
      yield {
        bench: 'stream-vs-resident',
        T,
        slowdown: streamed.stepMs / resident.stepMs,
        peakSavedBytes: resident.peakBytes - streamed.peakBytes,
        movedBytesPerSecond: streamed.bytesMovedPerStep / (streamed.stepMs / 1000),
        sameLosses: streamed.losses.length === resident.losses.length && streamed.losses.every((x, i) => Object.is(x, resident.losses[i])),
      };
    } finally {
      destroyMistralWeights(ctx, w);
    }
  }
}
