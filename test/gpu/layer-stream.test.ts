// Layer streaming (src/engine/mistral/layer-stream.ts): the decoder layers in CPU memory, uploaded into two GPU slots as
// the passes need them, must give what resident weights give, bit for bit — losses, validation loss, the trained LoRA
// weights, generation's logits — on tiny-mistral loaded streamed (NF4 double-quant and dense) and on a 5-layer random
// stack where the slots really are rewritten; the ledger's weights drop to the non-layer weights plus two layers, and
// each micro-batch moves the layers the planner says it does.
import { describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import type { Quantization } from '../../src/core/mistral.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { MistralDecoder } from '../../src/engine/mistral/decode.ts';
import type { Dims } from '../../src/engine/mistral/dims.ts';
import { destroyMistralWeights, loadMistralWeights, moveLayersToHost, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { configOf, randomMistral } from '../../src/bench/model.ts';
import type { MistralConfig } from '../../src/model/config.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { gpuContext } from './context.ts';
import { trainSteps, type TrainStepsResult } from '../helpers/train-steps.ts';

const B = 2;
const T = 6;
const STEPS = 3;

type RunResult = TrainStepsResult;

/** A few training steps with dropout (masks keyed by the step), AdamW with clipping, then a validation pass. */
function run(ctx: GpuContext, config: MistralConfig, w: MistralWeights): Promise<RunResult> {
  return trainSteps(ctx, config, w, { B, T, steps: STEPS });
}

/** Logits (bits) after a prompt and after each of two more tokens, through the KV-cache decoder. */
async function decodeBits(ctx: GpuContext, w: MistralWeights): Promise<Uint32Array[]> {
  const dec = new MistralDecoder(ctx, w, null, { maxT: 8, chunk: 4 });
  try {
    const out: Uint32Array[] = [];
    for (const ids of [[1, 17, 400, 33, 9], [77], [5]]) {
      dec.feed(ids);
      out.push(new Uint32Array((await dec.readLogits()).buffer));
    }
    return out;
  } finally {
    dec.destroy();
  }
}

function expectSameRun(streamed: RunResult, resident: RunResult): void {
  expect(streamed.losses).toEqual(resident.losses);
  expect(streamed.lora.length).toBe(resident.lora.length);
  // Compared as bits: equal floats, not close ones.
  expect(Buffer.from(streamed.lora.buffer).equals(Buffer.from(resident.lora.buffer))).toBe(true);
}

describe('layer streaming equals resident weights', () => {
  for (const quantization of ['nf4-double', 'none'] as const satisfies readonly Quantization[]) {
    it(`tiny-mistral loaded streamed (${quantization}): the same losses, validation loss and LoRA weights, bit for bit`, async () => {
      const ctx = await gpuContext();
      const ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
      const resident = await loadMistralWeights(ctx, ckpt, { quantization });
      let expected: RunResult;
      try {
        expected = await run(ctx, ckpt.config, resident);
      } finally {
        destroyMistralWeights(ctx, resident);
      }
      const streamed = await loadMistralWeights(ctx, ckpt, { quantization, streamLayers: true });
      try {
        expect(streamed.layers).toEqual([]);
        expect(streamed.stream?.count).toBe(2);
        expectSameRun(await run(ctx, ckpt.config, streamed), expected);
        expect(expected.losses.every((b) => Number.isFinite(new Float32Array(Uint32Array.of(b).buffer)[0]))).toBe(true);
      } finally {
        destroyMistralWeights(ctx, streamed);
      }
    });
  }

  // Five layers in two slots: every pass rewrites them, so the queue-ordering argument is what keeps the results equal.
  const dims: Dims = { V: 512, C: 128, I: 256, L: 5, nH: 4, nKV: 2, hd: 32, theta: 1e6, eps: 1e-5 };
  for (const [quant, name] of [[true, 'NF4 double-quant'], ['dense', 'dense f32']] as const) {
    it(`a 5-layer random stack (${name}): slots rewritten every pass, the same training and generation bit for bit, less GPU memory`, async () => {
      const ctx = await gpuContext();
      const config = configOf(dims);
      const before = ctx.ledger.snapshot().byCategory.weights.currentBytes;
      let w = await randomMistral(ctx, dims, quant);
      try {
        const residentBytes = ctx.ledger.snapshot().byCategory.weights.currentBytes - before;
        const expected = await run(ctx, config, w);
        const expectedDecode = await decodeBits(ctx, w);
        w = await moveLayersToHost(ctx, w);
        const stream = w.stream!;
        // On the GPU: embeddings, lm_head, the final norm and two layer slots.
        const nonLayer = w.embed.buffer.size + w.lmHead.buffer.size + w.finalNorm.size;
        expect(ctx.ledger.snapshot().byCategory.weights.currentBytes - before).toBe(nonLayer + 2 * stream.layerBytes);
        expect(residentBytes).toBe(nonLayer + dims.L * stream.layerBytes);
        expect(stream.hostBytes).toBe(dims.L * stream.layerBytes);
        ctx.ledger.resetPeaks();
        const got = await run(ctx, config, w);
        expectSameRun(got, expected);
        // The slots are never more than two: the weights' peak over training is what it was at rest.
        expect(ctx.ledger.snapshot().byCategory.weights.peakBytes - before).toBe(nonLayer + 2 * stream.layerBytes);
        // The first pass fills both slots from empty (L uploads forward, L − 2 backward); after it, the two layers at
        // each turn are reused: 2·(L − 2) per micro-batch, as the planner counts.
        expect(got.uploadsPerStep).toEqual([2 * dims.L - 2, 2 * (dims.L - 2), 2 * (dims.L - 2)]);
        expect(await decodeBits(ctx, w)).toEqual(expectedDecode);
      } finally {
        destroyMistralWeights(ctx, w);
      }
    });
  }
});
