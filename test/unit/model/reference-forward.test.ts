// The float64 reference forward, fed by the model loaders (checkpoint + adapter), against the PyTorch/PEFT float64
// goldens: hidden states, logits, logsumexp and loss of tiny-mistral + LoRA, and the same with NF4 base weights.
import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import { maxRelError } from '../../../src/engine/reference/common.ts';
import { peftKey } from '../../../src/model/lora-adapter.ts';
import { moduleWeightName, openBaseCheckpoint, type BaseCheckpoint } from '../../../src/model/checkpoint.ts';
import { openSafetensors, toFloat64, typedView, type SafetensorsFile } from '../../../src/model/safetensors.ts';
import { bytesSource } from '../../../src/model/source.ts';
import { FIXTURES, fixtureBytes, TINY_MISTRAL } from './helpers.ts';
import { causalLmLoss, loadRefWeights, logsumexp, referenceForward, type RefLora } from './reference-forward.ts';

async function goldenInputs(g: SafetensorsFile): Promise<{ ids: number[][]; labels: number[][] }> {
  const [B, T] = g.info('input_ids').shape;
  const ids = typedView(await g.read('input_ids'), 'I32');
  const labels = typedView(await g.read('labels'), 'I32');
  const rows = (a: Int32Array): number[][] => Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T)));
  return { ids: rows(ids), labels: rows(labels) };
}

async function goldenLora(g: SafetensorsFile, layers: number): Promise<RefLora> {
  const tensors: RefLora['tensors'] = [];
  for (let l = 0; l < layers; l++) {
    const layer: RefLora['tensors'][number] = {};
    for (const m of PROJECTIONS) {
      const A = toFloat64(await g.read(`lora/${peftKey(l, m, 'A')}`), g.info(`lora/${peftKey(l, m, 'A')}`).dtype);
      const B = toFloat64(await g.read(`lora/${peftKey(l, m, 'B')}`), g.info(`lora/${peftKey(l, m, 'B')}`).dtype);
      layer[m] = { A, B };
    }
    tensors.push(layer);
  }
  return { scaling: 2, r: 4, tensors }; // metadata: r=4 alpha=8 scaling=2
}

async function golden(g: SafetensorsFile, name: string): Promise<Float64Array> {
  return toFloat64(await g.read(name), g.info(name).dtype);
}

/** Columns [0, 256) of (rows, V) logits. */
function first256(logits: Float64Array, V: number): Float64Array {
  const rows = logits.length / V;
  const out = new Float64Array(rows * 256);
  for (let r = 0; r < rows; r++) out.set(logits.subarray(r * V, r * V + 256), r * 256);
  return out;
}

describe('float64 reference forward against the PyTorch goldens', () => {
  let ck: BaseCheckpoint;
  beforeAll(async () => {
    ck = await openBaseCheckpoint(nodeDirectory(TINY_MISTRAL));
  });

  for (const kind of ['lora', 'qlora'] as const) {
    it(`matches golden_${kind}: hidden states, logits, logsumexp, loss`, async () => {
      const g = await openSafetensors(bytesSource(fixtureBytes(`${FIXTURES}/golden_${kind}.safetensors`)));
      const overrides = new Map<string, Float64Array>();
      if (kind === 'qlora') {
        for (let l = 0; l < ck.config.layers; l++) {
          for (const m of PROJECTIONS) overrides.set(moduleWeightName(l, m), await golden(g, `nf4_dequant/${moduleWeightName(l, m)}`));
        }
      }
      const w = await loadRefWeights(ck, overrides);
      const { ids, labels } = await goldenInputs(g);
      const out = referenceForward(w, ids, await goldenLora(g, ck.config.layers));
      const V = ck.config.vocabSize;

      // Measured agreement is ~5e-7 (relative to max-abs), about one float32 ulp of each value, not float64's 1e-15:
      // the goldens seem to carry a float32 step somewhere inside transformers/PEFT (emulating f32 RMSNorm, f32 RoPE
      // angles or an f32 LoRA path did not explain it). Far below the 1e-5 the engine is held to.
      for (let i = 0; i < 3; i++) expect(maxRelError(out.hidden[i], await golden(g, `hidden_states/${i}`))).toBeLessThan(1e-6);
      expect(maxRelError(first256(out.logits, V), await golden(g, 'logits_first256'))).toBeLessThan(1e-6);
      expect(maxRelError(logsumexp(out.logits, V), await golden(g, 'logsumexp'))).toBeLessThan(1e-7);
      const loss = causalLmLoss(out.logits, labels, V);
      expect(Math.abs(loss - (await golden(g, 'loss'))[0]) / loss).toBeLessThan(1e-6);
    });
  }

  it('differs from the golden without the LoRA (the comparison has teeth)', async () => {
    const g = await openSafetensors(bytesSource(fixtureBytes(`${FIXTURES}/golden_lora.safetensors`)));
    const w = await loadRefWeights(ck);
    const { ids } = await goldenInputs(g);
    const noLora = referenceForward(w, ids);
    expect(maxRelError(first256(noLora.logits, ck.config.vocabSize), await golden(g, 'logits_first256'))).toBeGreaterThan(1e-3);
  });
});
