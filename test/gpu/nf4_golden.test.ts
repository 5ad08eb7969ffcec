// The GPU's NF4 round trip of tiny-mistral's bf16 projections equals PyTorch's (test/fixtures/golden_qlora.safetensors,
// `nf4_dequant/<module>.weight`: blocksize 64, fp32 absmax, no double quantisation) in every bit.
import { bf16ArrayToF32 } from '../../src/core/dtypes.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { nf4_dequantize, nf4_destroy, nf4_download, nf4_quantize } from '../../src/engine/kernels/nf4.ts';
import { dequantizeRef, quantizeRef } from '../../src/engine/reference/nf4.ts';
import { readSafetensorsFile, type FileTensor } from '../helpers/safetensors-file.ts';
import { gpuContext } from './context.ts';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');

function sameBits(a: Float32Array, b: Float32Array): { differ: number; first: number } {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let differ = 0;
  let first = -1;
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) {
      if (first < 0) first = i;
      differ++;
    }
  }
  return { differ, first };
}

describe('NF4 golden (PyTorch) on tiny-mistral', () => {
  let ctx: GpuContext;
  const golden = readSafetensorsFile(join(FIXTURES, 'golden_qlora.safetensors'));
  const index = JSON.parse(readFileSync(join(FIXTURES, 'tiny-mistral', 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const shards = new Map<string, Map<string, FileTensor>>();
  const shard = (file: string): Map<string, FileTensor> => {
    let s = shards.get(file);
    if (!s) shards.set(file, (s = readSafetensorsFile(join(FIXTURES, 'tiny-mistral', file))));
    return s;
  };
  const modules = [...golden.keys()].filter((k) => k.startsWith('nf4_dequant/')).map((k) => k.slice('nf4_dequant/'.length));

  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('covers all 14 base projections of the two layers', () => {
    expect(modules.length).toBe(14);
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']) {
      expect(modules.filter((x) => x.endsWith(`.${m}.weight`)).length).toBe(2);
    }
  });

  for (const module of modules) {
    it(`${module}: GPU quantise (from bf16) + dequantise equals the golden exactly`, async () => {
      const src = shard(index.weight_map[module]).get(module);
      const want = golden.get(`nf4_dequant/${module}`);
      if (!src || !want) throw new Error(`missing ${module}`);
      expect(src.dtype).toBe('BF16');
      expect(want.dtype).toBe('F32');
      expect(want.shape).toEqual(src.shape);
      const [rows, cols] = src.shape;
      const wantF32 = new Float32Array(want.bytes.buffer, want.bytes.byteOffset, rows * cols);

      // The safetensors bytes as they are: bf16 little-endian, two per u32 with the first element in the low half.
      const bSrc = ctx.upload(`${module} bf16`, src.bytes, 'scratch');
      const w = nf4_quantize(ctx, bSrc, 'bf16', rows, cols, { label: module });
      const bOut = ctx.createBuffer(`${module} deq`, rows * cols * 4, 'scratch');
      nf4_dequantize(ctx, bOut, w);
      const got = await ctx.readF32(bOut);
      expect(sameBits(got, wantF32)).toEqual({ differ: 0, first: -1 });

      // And the CPU reference agrees with both, codes and scales included.
      const values = bf16ArrayToF32(new Uint16Array(src.bytes.buffer, src.bytes.byteOffset, rows * cols));
      const ref = quantizeRef(values, rows, cols, false);
      expect(sameBits(dequantizeRef(ref), wantF32)).toEqual({ differ: 0, first: -1 });
      const host = await nf4_download(ctx, w);
      expect(Buffer.from(host.codes).equals(Buffer.from(ref.codes))).toBe(true);
      expect(sameBits(host.absmax!, ref.absmax!)).toEqual({ differ: 0, first: -1 });

      nf4_destroy(ctx, w);
      ctx.destroy(bOut);
      ctx.destroy(bSrc);
    });
  }

  it('double-quantises every projection exactly as the reference does', async () => {
    for (const module of modules) {
      const src = shard(index.weight_map[module]).get(module)!;
      const [rows, cols] = src.shape;
      const bSrc = ctx.upload(`${module} bf16`, src.bytes, 'scratch');
      const w = nf4_quantize(ctx, bSrc, 'bf16', rows, cols, { doubleQuant: true, label: module });
      const bOut = ctx.createBuffer(`${module} deq`, rows * cols * 4, 'scratch');
      nf4_dequantize(ctx, bOut, w);
      const ref = quantizeRef(bf16ArrayToF32(new Uint16Array(src.bytes.buffer, src.bytes.byteOffset, rows * cols)), rows, cols, true);
      expect(sameBits(await ctx.readF32(bOut), dequantizeRef(ref)), module).toEqual({ differ: 0, first: -1 });
      nf4_destroy(ctx, w);
      ctx.destroy(bOut);
      ctx.destroy(bSrc);
    }
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
