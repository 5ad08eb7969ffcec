// The ONNX oracle (onnxruntime-web, wasm, in Node) against the float64 reference forward of the base model loaded by
// our checkpoint reader: two independent executors of the same weights must agree. This also checks the loaders
// (safetensors, bf16 conversion, index/shards) on every weight of the model.
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { maxRelError, mulberry32 } from '../../src/engine/reference/common.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { loadRefWeights, referenceForward, type RefWeights } from '../unit/model/reference-forward.ts';
import { TINY_MISTRAL } from '../unit/model/helpers.ts';
import { ONNX_VOCAB, onnxLogits, onnxSession } from './onnx-oracle.ts';

const V = ONNX_VOCAB;

function randomIds(B: number, T: number, seed: number): number[][] {
  const r = mulberry32(seed);
  return Array.from({ length: B }, () => Array.from({ length: T }, () => Math.floor(r() * V)));
}

function argmaxRows(x: ArrayLike<number>, V: number): number[] {
  const out: number[] = [];
  for (let o = 0; o < x.length; o += V) {
    let best = 0;
    for (let i = 1; i < V; i++) if (x[o + i] > x[o + best]) best = i;
    out.push(best);
  }
  return out;
}

describe('ONNX oracle (tiny-mistral.onnx on onnxruntime-web wasm)', () => {
  let ref: RefWeights;
  beforeAll(async () => {
    const t0 = performance.now();
    await onnxSession();
    console.log(`onnx session created in ${(performance.now() - t0).toFixed(0)} ms`);
    ref = await loadRefWeights(await openBaseCheckpoint(nodeDirectory(TINY_MISTRAL)));
  });

  it('returns finite logits of shape (batch, seq, 32000), deterministically', async () => {
    const ids = randomIds(2, 13, 1);
    const t0 = performance.now();
    const a = await onnxLogits(ids);
    const ms = performance.now() - t0;
    console.log(`onnxLogits(2 × 13 tokens): ${ms.toFixed(0)} ms`);
    expect(a.length).toBe(2 * 13 * V);
    expect(a.every(Number.isFinite)).toBe(true);
    const b = await onnxLogits(ids);
    let differ = 0;
    for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) differ++;
    expect(differ).toBe(0); // bit-identical (toEqual on 832k floats is needlessly slow)
    expect(new Set(a.subarray(0, 100)).size).toBeGreaterThan(90); // not a constant
  });

  it('agrees with the float64 reference forward of the weights our loaders read', async () => {
    // Odd sizes, a single token, the special tokens and the vocabulary's ends.
    const cases: number[][][] = [randomIds(2, 13, 7), [[1]], [[1, 2, 0, 31999, 29871, 13]], randomIds(3, 5, 11)];
    for (const ids of cases) {
      const onnx = await onnxLogits(ids);
      const want = referenceForward(ref, ids).logits;
      const err = maxRelError(onnx, want);
      console.log(`batch ${ids.length} × ${ids[0].length}: max rel error ONNX fp32 vs float64 reference ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-5); // measured ~1e-6
      expect(argmaxRows(onnx, V)).toEqual(argmaxRows(want, V));
    }
  });

  it('is causal and batch-independent', async () => {
    const ids = randomIds(2, 9, 3);
    const full = await onnxLogits(ids);
    // The second sequence alone gives the same logits as inside the batch.
    const alone = await onnxLogits([ids[1]]);
    expect(maxRelError(alone, full.subarray(9 * V))).toBeLessThan(1e-5);
    // A prefix gives the prefix's logits: later tokens do not leak backwards.
    const prefix = await onnxLogits([ids[0].slice(0, 4)]);
    expect(maxRelError(prefix, full.subarray(0, 4 * V))).toBeLessThan(1e-5);
    // Changing the last token changes only the last position.
    const changed = ids[0].slice();
    changed[8] = (changed[8] + 1) % V;
    const c = await onnxLogits([changed]);
    expect(maxRelError(c.subarray(0, 8 * V), full.subarray(0, 8 * V))).toBeLessThan(1e-5);
    expect(maxRelError(c.subarray(8 * V, 9 * V), full.subarray(8 * V, 9 * V))).toBeGreaterThan(1e-3);
  });

  it('rejects bad input', async () => {
    await expect(onnxLogits([[1, 2], [3]])).rejects.toThrow(/same length/);
    await expect(onnxLogits([[32000]])).rejects.toThrow(/outside the vocabulary/);
    await expect(onnxLogits([])).rejects.toThrow(/empty/);
  });
});
