// decode_attention (new query rows against a KV cache) against its float64 reference on odd shapes: one new row
// (T = 1, the generation step) and several (a prefill chunk after earlier ones), GQA ratios 1 and 4, caches longer
// than one 64-key tile, and cache rows past the new ones filled with NaN to prove they are never read.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { decode_attention, type DecodeAttentionDims } from '../../src/engine/kernels/decode_attention.ts';
import { maxRelError, randomArray } from '../../src/engine/reference/common.ts';
import { decodeAttentionRef } from '../../src/engine/reference/decode_attention.ts';
import { FinetuneError } from '../../src/core/errors.ts';
import { gpuContext } from './context.ts';

const TOL = 1e-5;

async function run(ctx: GpuContext, d: DecodeAttentionDims, maxT: number, seed: number): Promise<{ got: Float32Array; ref: Float64Array }> {
  const { nQ, past, nH, nKV, hd } = d;
  const live = (past + nQ) * nKV * hd;
  // Scale 2 gives peaked softmaxes, so the online rescaling across tiles matters.
  const q = randomArray(nQ * nH * hd, seed, 2);
  const k = new Float32Array(maxT * nKV * hd).fill(NaN);
  const v = new Float32Array(maxT * nKV * hd).fill(NaN);
  k.set(randomArray(live, seed + 1, 2));
  v.set(randomArray(live, seed + 2));
  const bq = ctx.upload('q', q, 'scratch');
  const bk = ctx.upload('k cache', k, 'scratch');
  const bv = ctx.upload('v cache', v, 'scratch');
  const bout = ctx.upload('out', new Float32Array(nQ * nH * hd).fill(7), 'scratch');
  decode_attention(ctx, bout, bq, bk, bv, d);
  const got = await ctx.readF32(bout);
  for (const b of [bq, bk, bv, bout]) ctx.destroy(b);
  return { got, ref: decodeAttentionRef(q, k, v, d) };
}

describe('decode_attention', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  const cases: [string, DecodeAttentionDims, number][] = [
    ['first token (past 0, T = 1), GQA 1', { nQ: 1, past: 0, nH: 3, nKV: 3, hd: 12 }, 5],
    ['one step after 70 cached (two key tiles), GQA 4', { nQ: 1, past: 70, nH: 8, nKV: 2, hd: 20 }, 77],
    ['one step after 129 cached, GQA 1, head dim 128', { nQ: 1, past: 129, nH: 2, nKV: 2, hd: 128 }, 131],
    ['a chunk of 5 rows after 3 cached, GQA 4', { nQ: 5, past: 3, nH: 4, nKV: 1, hd: 4 }, 11],
    ['a prefill of 67 rows (past 0), GQA 4, head dim 36', { nQ: 67, past: 0, nH: 4, nKV: 1, hd: 36 }, 67],
  ];
  for (const [name, d, maxT] of cases) {
    it(name, async () => {
      const { got, ref } = await run(ctx, d, maxT, d.past + d.nQ * 7 + d.hd);
      expect(got.every(Number.isFinite)).toBe(true);
      expect(maxRelError(got, ref)).toBeLessThan(TOL);
    });
  }

  it('refuses a cache shorter than past + new rows', () => {
    const small = ctx.createBuffer('small cache', 4 * 4 * 4, 'scratch');
    const q = ctx.createBuffer('q', 2 * 4 * 4, 'scratch');
    try {
      expect(() => decode_attention(ctx, q, q, small, small, { nQ: 1, past: 4, nH: 2, nKV: 1, hd: 4 })).toThrow(FinetuneError);
    } finally {
      ctx.destroy(small);
      ctx.destroy(q);
    }
  });
});
