// The engine on Mistral shapes the goldens do not cover (GQA ×4, head_dim 16, rank 3, rsLoRA, a subset of target
// modules, odd sequence lengths, F32 and NF4 bases): its loss against a float64 CPU forward pass, and its LoRA
// gradients against central finite differences of that float64 loss.
import { PROJECTIONS, type Projection, type Quantization } from '../../src/core/mistral.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { nf4_dequantize } from '../../src/engine/kernels/nf4.ts';
import { destroyLora, downloadLoraGrads, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { destroyMistralWeights, loadMistralWeights, moduleName } from '../../src/engine/mistral/weights.ts';
import { mulberry32 } from '../../src/engine/reference/common.ts';
import { shiftLabels } from '../../src/run/check.ts';
import { createAdapter, type LoraAdapter } from '../../src/model/lora-adapter.ts';
import { expectedTensors, openBaseCheckpoint, type BaseCheckpoint } from '../../src/model/checkpoint.ts';
import { writeSafetensors } from '../../src/model/safetensors.ts';
import { memoryFileSet } from '../../src/model/source.ts';
import { causalLmLoss, loadRefWeights, referenceForward, type RefWeights } from '../unit/model/reference-forward.ts';
import { gpuContext } from './context.ts';

const CONFIG = {
  architectures: ['MistralForCausalLM'],
  model_type: 'mistral',
  vocab_size: 300,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 1,
  head_dim: 16,
  rope_theta: 10000.0,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 512,
  sliding_window: null,
  tie_word_embeddings: false,
  torch_dtype: 'float32',
};

/** A random Mistral-shaped checkpoint, F32, in memory. */
async function randomCheckpoint(): Promise<BaseCheckpoint> {
  const rand = mulberry32(99);
  const shapes = expectedTensors({
    vocabSize: 300, hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 1, headDim: 16, ropeTheta: 1e4, rmsNormEps: 1e-6,
    maxPositions: 512, tieWordEmbeddings: false, slidingWindow: null, dtype: 'float32', bosTokenId: null, eosTokenId: null, warnings: [],
  });
  const tensors = [...shapes].map(([name, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = name.endsWith('norm.weight');
    const scale = isNorm ? 0.5 : 1 / Math.sqrt(shape[shape.length - 1]);
    for (let i = 0; i < n; i++) data[i] = isNorm ? 1 + (rand() * 2 - 1) * scale : (rand() * 2 - 1) * scale * 2;
    return { name, dtype: 'F32' as const, shape, data };
  });
  return openBaseCheckpoint(memoryFileSet({ 'config.json': JSON.stringify(CONFIG), 'model.safetensors': writeSafetensors(tensors) }));
}

const TARGETS: Projection[] = ['q_proj', 'o_proj', 'up_proj', 'down_proj'];

function randomAdapter(ck: BaseCheckpoint): LoraAdapter {
  const a = createAdapter(ck.config, { r: 3, alpha: 5, targetModules: TARGETS, useRslora: true, random: mulberry32(4) });
  const rand = mulberry32(5);
  for (const layer of a.tensors) for (const m of TARGETS) layer[m]!.B.forEach((_, i, arr) => (arr[i] = (rand() * 2 - 1) * 0.2));
  return a;
}

function refLoss(w: RefWeights, a: LoraAdapter, ids: number[][], labels: number[][]): number {
  const out = referenceForward(w, ids, { scaling: a.scaling, tensors: a.tensors, r: a.config.r });
  return causalLmLoss(out.logits, labels, w.config.vocabSize);
}

describe('engine vs float64 reference on other Mistral shapes', () => {
  let ctx: GpuContext;
  let ck: BaseCheckpoint;
  beforeAll(async () => {
    ctx = await gpuContext();
    ck = await randomCheckpoint();
  });

  for (const quantization of ['none', 'nf4'] as Quantization[]) {
    it(`loss and LoRA gradients agree (${quantization === 'none' ? 'F32' : 'NF4'} base, GQA ×4, rsLoRA r=3, q/o/up/down)`, async () => {
      const rand = mulberry32(quantization === 'none' ? 11 : 12);
      const [B, T] = [2, 7];
      const ids = Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(rand() * 300)));
      const labels = ids.map((row, b) => row.map((t, i) => (b === 1 && i < 3 ? -100 : t)));
      const adapter = randomAdapter(ck);
      const weights = await loadMistralWeights(ctx, ck, { quantization });
      // The reference sees exactly the base the engine holds (NF4: the dequantised weights).
      const overrides = new Map<string, Float32Array>();
      for (let l = 0; l < 2; l++) {
        for (const m of PROJECTIONS) {
          const w = weights.layers[l].linears[m];
          if (w.kind !== 'nf4') continue;
          const out = ctx.createBuffer('deq', w.out * w.in * 4, 'scratch');
          nf4_dequantize(ctx, out, w.weight);
          overrides.set(moduleName(l, m), await ctx.readF32(out));
          ctx.destroy(out);
        }
      }
      const ref = await loadRefWeights(ck, overrides);
      const lora = uploadLora(ctx, weights.dims, adapter);
      const runner = new MistralRunner(ctx, weights, lora, { B, T });
      try {
        const targets = shiftLabels(labels.flat(), B, T);
        const count = targets.filter((t) => t !== -100).length;
        runner.setBatch({ B, T, inputIds: ids.flat(), targets, segmentIds: new Uint32Array(B * T).fill(1), positionIds: Uint32Array.from({ length: B * T }, (_, i) => i % T) });
        runner.zeroGrads();
        runner.resetLoss();
        // Inference mode: the float64 reference has no dropout.
        runner.forwardBackward(1 / count, 1 / count, 'eval');
        const loss = await runner.readLoss();
        const expected = refLoss(ref, adapter, ids, labels);
        expect(Math.abs(loss - expected) / expected).toBeLessThan(1e-5);

        const grads = await downloadLoraGrads(ctx, lora);
        const pick = mulberry32(3);
        const h = 1e-5;
        let checked = 0;
        for (let l = 0; l < 2; l++) {
          for (const m of TARGETS) {
            for (const factor of ['A', 'B'] as const) {
              const g = factor === 'A' ? grads[l][m]!.dA : grads[l][m]!.dB;
              const param = adapter.tensors[l][m]![factor];
              const scale = Math.max(...Array.from(g, Math.abs));
              expect(scale, `${l}.${m}.${factor}`).toBeGreaterThan(0);
              for (let k = 0; k < 3; k++) {
                const i = Math.floor(pick() * param.length);
                const keep = param[i];
                // Finite differences in float64: the adapter tensors are f32 arrays, so perturb through a float64 copy.
                const p64 = Float64Array.from(param);
                const at = (v: number): number => {
                  p64[i] = v;
                  const t = { ...adapter.tensors[l][m]!, [factor]: p64 };
                  const tensors = adapter.tensors.map((layer, j) => (j === l ? { ...layer, [m]: t } : layer));
                  return refLoss(ref, { ...adapter, tensors } as LoraAdapter, ids, labels);
                };
                const fd = (at(keep + h) - at(keep - h)) / (2 * h);
                expect(Math.abs(g[i] - fd) / scale, `${l}.${m}.${factor}[${i}]`).toBeLessThan(1e-3);
                checked++;
              }
            }
          }
        }
        expect(checked).toBe(2 * TARGETS.length * 2 * 3);
      } finally {
        runner.destroy();
        destroyLora(ctx, lora);
        destroyMistralWeights(ctx, weights);
      }
    });
  }
});
