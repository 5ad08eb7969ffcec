// The Mistral engine beyond the goldens: the forward pass agrees with an independent executor (onnxruntime on the
// ONNX export of tiny-mistral) on random inputs, packed rows do not see each other, training is bitwise reproducible,
// and a lost device surfaces as a typed error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeContext } from '../../src/cli/node-gpu.ts';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { FinetuneError } from '../../src/core/errors.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { gemm } from '../../src/engine/kernels/matmul.ts';
import { destroyLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner, type TokenBatch } from '../../src/engine/mistral/model.ts';
import { destroyMistralWeights, loadMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { maxRelError, mulberry32 } from '../../src/engine/reference/common.ts';
import { createAdapter } from '../../src/model/lora-adapter.ts';
import { openBaseCheckpoint, type BaseCheckpoint } from '../../src/model/checkpoint.ts';
import { gpuContext } from './context.ts';
import { onnxLogits } from './onnx-oracle.ts';

function plainBatch(ids: number[][]): TokenBatch {
  const B = ids.length;
  const T = ids[0].length;
  const inputIds = ids.flat();
  return {
    B,
    T,
    inputIds,
    targets: inputIds.map((_, i) => ((i + 1) % T === 0 ? -100 : inputIds[i + 1])),
    segmentIds: new Uint32Array(B * T).fill(1),
    positionIds: Uint32Array.from({ length: B * T }, (_, i) => i % T),
  };
}

async function logitsOf(ctx: GpuContext, w: MistralWeights, batch: TokenBatch): Promise<Float32Array> {
  const runner = new MistralRunner(ctx, w, null, { B: batch.B, T: batch.T });
  try {
    runner.setBatch(batch);
    runner.forwardHidden('eval');
    const N = batch.B * batch.T;
    const V = w.dims.V;
    const out = ctx.createBuffer('logits', N * V * 4, 'scratch');
    gemm(ctx, { C: out, A: runner.xf, B: w.lmHead.buffer, M: N, N: V, K: w.dims.C, transB: true, bStorage: w.lmHead.storage });
    const logits = await ctx.readF32(out);
    ctx.destroy(out);
    return logits;
  } finally {
    runner.destroy();
  }
}

describe('Mistral engine', () => {
  let ctx: GpuContext;
  let ckpt: BaseCheckpoint;
  let weights: MistralWeights;
  beforeAll(async () => {
    ctx = await gpuContext();
    ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
    weights = await loadMistralWeights(ctx, ckpt, { quantization: 'none' });
  });
  afterAll(() => destroyMistralWeights(ctx, weights));

  for (const [B, T, seed] of [
    [1, 1, 1],
    [2, 17, 2],
    [1, 64, 3],
  ] as const) {
    it(`forward agrees with onnxruntime on random ids (batch ${B}, length ${T})`, async () => {
      const rand = mulberry32(seed);
      const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(rand() * 32000)));
      const ours = await logitsOf(ctx, weights, plainBatch(ids));
      const oracle = await onnxLogits(ids);
      expect(ours.length).toBe(oracle.length);
      expect(maxRelError(ours, oracle)).toBeLessThan(1e-4);
    });
  }

  it('keeps packed examples apart: a row holding two examples gives each the logits it has alone', async () => {
    const a = [1, 415, 2936, 9060, 285, 1142];
    const b = [1, 851, 349, 264, 1369];
    const packed: TokenBatch = {
      B: 1,
      T: a.length + b.length,
      inputIds: [...a, ...b],
      targets: new Array(a.length + b.length).fill(-100),
      segmentIds: [...a.map(() => 1), ...b.map(() => 2)],
      positionIds: [...a.map((_, i) => i), ...b.map((_, i) => i)],
    };
    const together = await logitsOf(ctx, weights, packed);
    const alone = await logitsOf(ctx, weights, plainBatch([b]));
    const V = 32000;
    expect(maxRelError(together.subarray(a.length * V), alone)).toBeLessThan(1e-5);
  });

  it('trains bitwise reproducibly: same seed, data and adapter give identical losses', async () => {
    const rand = mulberry32(7);
    const ids = Array.from({ length: 2 }, () => Array.from({ length: 8 }, () => Math.floor(rand() * 32000)));
    const run = async (): Promise<number[]> => {
      const adapter = createAdapter(ckpt.config, { r: 4, alpha: 8, dropout: 0.1, targetModules: ['q_proj', 'v_proj', 'down_proj'], random: mulberry32(3) });
      const lora = uploadLora(ctx, weights.dims, adapter);
      const runner = new MistralRunner(ctx, weights, lora, { B: 2, T: 8, seed: 42 });
      const losses: number[] = [];
      try {
        runner.setBatch(plainBatch(ids));
        for (let step = 0; step < 2; step++) {
          runner.zeroGrads();
          runner.resetLoss();
          runner.forwardBackward(1 / 14, 1 / 14, 'train');
          runner.optimizerStep({ lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
          losses.push(await runner.readLoss());
        }
      } finally {
        runner.destroy();
        destroyLora(ctx, lora);
      }
      return losses;
    };
    const first = await run();
    const second = await run();
    expect(second).toEqual(first);
    // And it learns: the loss goes down on a repeated batch.
    expect(first[1]).toBeLessThan(first[0]);
  });

  it('reports a lost device as a typed device-lost error, not a hang', async () => {
    const { ctx: own } = await createNodeContext();
    const buf = own.upload('x', new Float32Array([1, 2, 3]), 'scratch');
    own.destroyDevice();
    await new Promise((r) => setTimeout(r, 50));
    const err = await own.readF32(buf).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FinetuneError);
    expect((err as FinetuneError).kind).toBe('device-lost');
  });
});
