// The KV-cache decoder (src/engine/mistral/decode.ts) against MistralRunner's full forward pass on tiny-mistral with
// tiny-adapter: the logits of every position agree, whether the tokens come one at a time or a prompt is prefilled in
// chunks first, with a bf16 or an NF4 base; the caches are in the ledger while the decoder lives.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { matvec_forward } from '../../src/engine/kernels/matvec.ts';
import { MistralDecoder } from '../../src/engine/mistral/decode.ts';
import { decoderBytes, decoderChunk } from '../../src/engine/mistral/sizing.ts';
import { generate } from '../../src/run/generate.ts';
import { destroyLora, uploadLora, type GpuLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { destroyMistralWeights, loadMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { maxRelError } from '../../src/engine/reference/common.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { readAdapter } from '../../src/model/lora-adapter.ts';
import { gpuContext } from './context.ts';

// fp32 against fp32 with different summation orders (attention over a cache, one-row products).
const TOL = 2e-5;
const IDS = [1, 1014, 3459, 28705, 31999, 7, 2, 415, 12, 9000];

/** (T, V) logits of every position from the training runner's forward pass in inference mode (no dropout). */
async function fullLogits(ctx: GpuContext, w: MistralWeights, lora: GpuLora | null, ids: number[]): Promise<Float32Array> {
  const T = ids.length;
  const { C, V } = w.dims;
  const runner = new MistralRunner(ctx, w, lora, { B: 1, T });
  const row = ctx.createBuffer('row', C * 4, 'scratch');
  const out = ctx.createBuffer('logits', V * 4, 'scratch');
  try {
    runner.setBatch({ B: 1, T, inputIds: ids, targets: new Int32Array(T).fill(-100), segmentIds: new Uint32Array(T).fill(1), positionIds: Uint32Array.from({ length: T }, (_, i) => i) });
    runner.forwardHidden('eval');
    // The head one row at a time as a matvec (checked against float64 in matvec.test.ts): the tiled GEMM takes
    // minutes here on SwiftShader.
    const logits = new Float32Array(T * V);
    for (let t = 0; t < T; t++) {
      ctx.copy(runner.xf, t * C * 4, row, 0, C * 4);
      matvec_forward(ctx, out, row, w.lmHead.buffer, 1, V, C, { wStorage: w.lmHead.storage });
      logits.set(await ctx.readF32(out), t * V);
    }
    return logits;
  } finally {
    runner.destroy();
    ctx.destroy(row);
    ctx.destroy(out);
  }
}

describe('KV-cache decoder', () => {
  let ctx: GpuContext;
  let weights: MistralWeights;
  let lora: GpuLora;
  let full: Float32Array;
  beforeAll(async () => {
    ctx = await gpuContext();
    const ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
    weights = await loadMistralWeights(ctx, ckpt, { quantization: 'none' });
    const adapter = await readAdapter(nodeDirectory('test/fixtures/tiny-adapter'), { base: ckpt.config });
    lora = uploadLora(ctx, weights.dims, adapter);
    full = await fullLogits(ctx, weights, lora, IDS);
  });
  afterAll(() => {
    destroyLora(ctx, lora);
    destroyMistralWeights(ctx, weights);
  });
  const V = 32000;
  const row = (t: number): Float32Array => full.subarray(t * V, (t + 1) * V);

  it('one token at a time: the logits of every position equal the full forward pass', async () => {
    const dec = new MistralDecoder(ctx, weights, lora, { maxT: IDS.length });
    try {
      for (let t = 0; t < IDS.length; t++) {
        dec.feed([IDS[t]]);
        expect(dec.length).toBe(t + 1);
        expect(maxRelError(await dec.readLogits(), row(t))).toBeLessThan(TOL);
      }
    } finally {
      dec.destroy();
    }
  });

  it('a prompt prefilled in chunks (of 2), then single tokens: the same logits', async () => {
    const dec = new MistralDecoder(ctx, weights, lora, { maxT: 11, chunk: 2 });
    try {
      dec.feed(IDS.slice(0, 5));
      expect(maxRelError(await dec.readLogits(), row(4))).toBeLessThan(TOL);
      for (let t = 5; t < IDS.length; t++) {
        dec.feed([IDS[t]]);
        expect(maxRelError(await dec.readLogits(), row(t))).toBeLessThan(TOL);
      }
      // reset() starts over at position 0 with the same buffers.
      dec.reset();
      dec.feed(IDS.slice(0, 3));
      expect(maxRelError(await dec.readLogits(), row(2))).toBeLessThan(TOL);
    } finally {
      dec.destroy();
    }
  });

  it('a prompt of 9 rows in one chunk (the tiled products, as on a hardware GPU), then a single token: the same logits', async () => {
    const dec = new MistralDecoder(ctx, weights, lora, { maxT: IDS.length, chunk: 16 });
    try {
      expect(dec.chunk).toBe(IDS.length);
      dec.feed(IDS.slice(0, 9));
      expect(maxRelError(await dec.readLogits(), row(8))).toBeLessThan(TOL);
      dec.feed([IDS[9]]);
      expect(maxRelError(await dec.readLogits(), row(9))).toBeLessThan(TOL);
    } finally {
      dec.destroy();
    }
  });

  it('without the adapter it is the base model (and the adapter changes the logits)', async () => {
    const base = await fullLogits(ctx, weights, null, IDS.slice(0, 3));
    const dec = new MistralDecoder(ctx, weights, null, { maxT: 3 });
    try {
      dec.feed(IDS.slice(0, 3));
      const got = await dec.readLogits();
      const baseLast = base.subarray(2 * V, 3 * V);
      expect(maxRelError(got, baseLast)).toBeLessThan(TOL);
      expect(maxRelError(got, row(2))).toBeGreaterThan(1e-3);
    } finally {
      dec.destroy();
    }
  });

  it('with an NF4 (double-quantised) base, one token at a time: the logits equal the full forward pass', async () => {
    const nf4 = await loadMistralWeights(ctx, await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral')), { quantization: 'nf4-double' });
    const ids = IDS.slice(0, 3);
    const dec = new MistralDecoder(ctx, nf4, lora, { maxT: ids.length });
    try {
      const ref = await fullLogits(ctx, nf4, lora, ids);
      for (let t = 0; t < ids.length; t++) {
        dec.feed([ids[t]]);
        expect(maxRelError(await dec.readLogits(), ref.subarray(t * V, (t + 1) * V))).toBeLessThan(TOL);
      }
    } finally {
      dec.destroy();
      destroyMistralWeights(ctx, nf4);
    }
  });

  it('keeps its caches in the ledger under kv-cache, sized from maxT, and refuses to run past them', () => {
    const before = ctx.ledger.snapshot().byCategory['kv-cache'].currentBytes;
    const dec = new MistralDecoder(ctx, weights, lora, { maxT: 6 });
    const d = weights.dims;
    expect(ctx.ledger.snapshot().byCategory['kv-cache'].currentBytes - before).toBe(2 * d.L * 6 * d.nKV * d.hd * 4);
    dec.feed(IDS.slice(0, 4));
    expect(() => dec.feed(IDS.slice(4, 7))).toThrow(/needs 7 positions; this decoder holds 6/);
    dec.destroy();
    expect(ctx.ledger.snapshot().byCategory['kv-cache'].currentBytes).toBe(before);
  });

  it('allocates, by category, what sizing.ts decoderBytes says (the planner counts a run\'s sample with it)', () => {
    for (const [maxT, chunk, withLora] of [[7, 3, true], [5, undefined, false], [1, 1, true], [13, 13, false]] as const) {
      const at = ctx.ledger.snapshot().byCategory;
      const dec = new MistralDecoder(ctx, weights, withLora ? lora : null, { maxT, chunk });
      const now = ctx.ledger.snapshot().byCategory;
      const b = decoderBytes(weights.dims, { maxT, chunk: decoderChunk(maxT, ctx.report.software, chunk), loraRank: withLora ? lora.r : null });
      const grew = (c: keyof typeof now): number => now[c].currentBytes - at[c].currentBytes;
      expect({ kv: grew('kv-cache'), act: grew('activations'), scratch: grew('scratch'), io: grew('io') }, `maxT ${maxT} chunk ${chunk}`).toEqual({ kv: b.kvCache, act: b.activations, scratch: b.scratch, io: b.io });
      expect(dec.chunk).toBe(decoderChunk(maxT, ctx.report.software, chunk));
      dec.destroy();
    }
  });

  it('a generation whose decoder would pass the GPU memory given is refused before anything is made; one that fits runs', async () => {
    const inUse = ctx.ledger.snapshot().currentBytes;
    const maxT = IDS.length + 3 - 1;
    const b = decoderBytes(weights.dims, { maxT, chunk: decoderChunk(maxT, ctx.report.software), loraRank: lora.r });
    const needs = b.kvCache + b.activations + b.scratch + b.io + b.logitsReadback;
    const o = { maxNewTokens: 3 };
    await expect(generate(ctx, weights, lora, IDS, { ...o, memoryBytes: inUse + needs - 1 })).rejects.toMatchObject({
      kind: 'out-of-memory',
      message: expect.stringMatching(/^this generation needs .* of GPU memory \(a KV cache of 12 positions: the prompt's 10 tokens and the new ones\), and the GPU's .* has .* left beside the .* in use: shorten the prompt or ask for fewer new tokens$/),
    });
    expect(ctx.ledger.snapshot().currentBytes).toBe(inUse);
    const r = await generate(ctx, weights, lora, IDS, { ...o, memoryBytes: inUse + needs });
    expect(r.ids).toHaveLength(3);
  });
});
