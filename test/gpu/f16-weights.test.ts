// A checkpoint stored in float16 (as many Hub fine-tunes are) keeps its 16-bit weights on the GPU on every adapter:
// the kernels decode f16 bits themselves (shaders/half.wgsl), exactly and without shader-f16. So it must compute what
// the same values stored in float32 compute, to the bit: the training runner's losses and trained LoRA weights, and
// the decoder's logits (the embedding lookup, the dense projections on both GEMM kernels and the matvec, the head).
// tiny-mistral's bf16 weights are rounded to f16 (the smallest become f16 subnormals) and written both ways.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bf16ArrayToF32, f16ArrayToF32, f32ToF16Bits } from '../../src/core/dtypes.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { MistralDecoder } from '../../src/engine/mistral/decode.ts';
import { destroyMistralWeights, loadMistralWeights, type MistralWeights } from '../../src/engine/mistral/weights.ts';
import { openBaseCheckpoint, type BaseCheckpoint } from '../../src/model/checkpoint.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.ts';
import { memoryFileSet } from '../../src/model/source.ts';
import { readSafetensorsFile } from '../helpers/safetensors-file.ts';
import { trainSteps } from '../helpers/train-steps.ts';
import { gpuContext } from './context.ts';

const DIR = 'test/fixtures/tiny-mistral';
const SHARDS = [1, 2, 3].map((i) => `${DIR}/model-0000${i}-of-00003.safetensors`);
const IDS = [1, 1014, 3459, 28705, 31999, 7, 2, 415];

/** tiny-mistral with every weight rounded to f16, stored as F16 and (the same values) as F32. */
function checkpoints(): { f16: Promise<BaseCheckpoint>; f32: Promise<BaseCheckpoint>; subnormals: number } {
  const half: TensorToWrite[] = [];
  const full: TensorToWrite[] = [];
  let subnormals = 0;
  for (const shard of SHARDS) {
    for (const [name, t] of readSafetensorsFile(shard)) {
      expect(t.dtype).toBe('BF16');
      const values = bf16ArrayToF32(new Uint16Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 2));
      const bits = Uint16Array.from(values, (v) => f32ToF16Bits(v));
      for (const b of bits) if ((b & 0x7c00) === 0 && (b & 0x3ff) !== 0) subnormals++;
      half.push({ name, dtype: 'F16', shape: t.shape, data: bits });
      full.push({ name, dtype: 'F32', shape: t.shape, data: f16ArrayToF32(bits) });
    }
  }
  const config = readFileSync(`${DIR}/config.json`, 'utf8');
  const open = (tensors: TensorToWrite[]): Promise<BaseCheckpoint> => openBaseCheckpoint(memoryFileSet({ 'config.json': config, 'model.safetensors': writeSafetensors(tensors) }));
  return { f16: open(half), f32: open(full), subnormals };
}

async function decodedLogits(ctx: GpuContext, w: MistralWeights): Promise<Uint32Array> {
  const dec = new MistralDecoder(ctx, w, null, { maxT: IDS.length });
  try {
    dec.feed(IDS.slice(0, 5)); // a prefill of several rows (the GEMM), then one row at a time (the matvec)
    const out: number[] = [...new Uint32Array((await dec.readLogits()).buffer)];
    for (const id of IDS.slice(5)) {
      dec.feed([id]);
      out.push(...new Uint32Array((await dec.readLogits()).buffer));
    }
    return Uint32Array.from(out);
  } finally {
    dec.destroy();
  }
}

describe('float16 checkpoints', () => {
  let ctx: GpuContext;
  let half: MistralWeights;
  let full: MistralWeights;
  let config: BaseCheckpoint['config'];
  let subnormals = 0;
  beforeAll(async () => {
    ctx = await gpuContext();
    const c = checkpoints();
    subnormals = c.subnormals;
    const f16 = await c.f16;
    config = f16.config;
    const before = ctx.ledger.snapshot().byCategory.weights.currentBytes;
    half = await loadMistralWeights(ctx, f16, { quantization: 'none' });
    const afterHalf = ctx.ledger.snapshot().byCategory.weights.currentBytes;
    full = await loadMistralWeights(ctx, await c.f32, { quantization: 'none' });
    const afterFull = ctx.ledger.snapshot().byCategory.weights.currentBytes;
    // 16 bits per weight where float32 takes 32 (the norms stay f32 either way).
    expect((afterHalf - before) / (afterFull - afterHalf)).toBeLessThan(0.51);
  });
  afterAll(() => {
    destroyMistralWeights(ctx, half);
    destroyMistralWeights(ctx, full);
  });

  it('stay 16-bit on the GPU, whether or not the adapter has shader-f16', () => {
    expect(subnormals).toBeGreaterThan(0);
    expect(half.embed.storage).toBe('f16');
    expect(half.lmHead.storage).toBe('f16');
    const q = half.layers[0].linears.q_proj;
    expect(q.kind === 'dense' && q.storage).toBe('f16');
    expect(full.embed.storage).toBe('f32');
  });

  it('train to the same losses and LoRA weights as the same values in float32, bit for bit, on both GEMM kernels', async () => {
    const before = ctx.gemmKernel;
    try {
      for (const gemm of ['basic', 'tiled'] as const) {
        ctx.gemmKernel = gemm;
        const a = await trainSteps(ctx, config, half, { B: 2, T: 7, steps: 1 });
        const b = await trainSteps(ctx, config, full, { B: 2, T: 7, steps: 1 });
        expect(a.losses.every((bits) => Number.isFinite(new Float32Array(Uint32Array.of(bits).buffer)[0]))).toBe(true);
        expect(a.losses, gemm).toEqual(b.losses);
        expect(Buffer.from(a.lora.buffer).equals(Buffer.from(b.lora.buffer)), gemm).toBe(true);
      }
    } finally {
      ctx.gemmKernel = before;
    }
  });

  it('decode to the same logits as the same values in float32, bit for bit', async () => {
    const a = await decodedLogits(ctx, half);
    const b = await decodedLogits(ctx, full);
    expect(a.length).toBe(4 * config.vocabSize);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });
});
