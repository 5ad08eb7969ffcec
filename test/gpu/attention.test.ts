import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { attention_backward, attention_forward, attentionBackwardScratchBytes } from '../../src/engine/kernels/attention.ts';
import { maxRelError, mulberry32, randomArray } from '../../src/engine/reference/common.ts';
import { attentionBackwardRef, attentionForwardRef, type AttentionDims } from '../../src/engine/reference/attention.ts';
import { gpuContext } from './context.ts';
import { attentionRelError, packedSegments } from '../helpers/attention-inputs.ts';

const TOL = 1e-4;

interface Run {
  out: Float32Array;
  lse: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
}

async function runGpu(ctx: GpuContext, d: AttentionDims, q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array, seg: Uint32Array, useScratch: boolean): Promise<Run> {
  const { B, T, nH, nKV, hd } = d;
  const BT = B * T;
  const bq = ctx.upload('q', q, 'scratch');
  const bk = ctx.upload('k', k, 'scratch');
  const bv = ctx.upload('v', v, 'scratch');
  const bseg = ctx.upload('seg', seg, 'scratch');
  const bdout = ctx.upload('dout', dout, 'scratch');
  const bout = ctx.createBuffer('out', BT * nH * hd * 4, 'scratch');
  const blse = ctx.createBuffer('lse', BT * nH * 4, 'scratch');
  // Garbage in the outputs: every result must be overwritten, not accumulated.
  const bdq = ctx.upload('dq', new Float32Array(BT * nH * hd).fill(7), 'scratch');
  const bdk = ctx.upload('dk', new Float32Array(BT * nKV * hd).fill(-3), 'scratch');
  const bdv = ctx.upload('dv', new Float32Array(BT * nKV * hd).fill(5), 'scratch');
  const scratch = useScratch ? ctx.createBuffer('attn scratch', attentionBackwardScratchBytes(B, T, nH), 'scratch') : undefined;
  attention_forward(ctx, bout, blse, bq, bk, bv, bseg, B, T, nH, nKV, hd);
  attention_backward(ctx, bdq, bdk, bdv, bdout, bout, blse, bq, bk, bv, bseg, B, T, nH, nKV, hd, scratch);
  const res: Run = {
    out: await ctx.readF32(bout),
    lse: await ctx.readF32(blse),
    dq: await ctx.readF32(bdq),
    dk: await ctx.readF32(bdk),
    dv: await ctx.readF32(bdv),
  };
  for (const b of [bq, bk, bv, bseg, bdout, bout, blse, bdq, bdk, bdv]) ctx.destroy(b);
  if (scratch) ctx.destroy(scratch);
  return res;
}

function inputs(d: AttentionDims, seed: number): { q: Float32Array; k: Float32Array; v: Float32Array; dout: Float32Array } {
  const { B, T, nH, nKV, hd } = d;
  const BT = B * T;
  // Scale 2 gives peaked softmaxes (scores up to several units), so the online rescaling matters.
  return {
    q: randomArray(BT * nH * hd, seed, 2),
    k: randomArray(BT * nKV * hd, seed + 1, 2),
    v: randomArray(BT * nKV * hd, seed + 2),
    dout: randomArray(BT * nH * hd, seed + 3),
  };
}

interface Case {
  B: number;
  T: number;
  nH: number;
  nKV: number;
  hd: number;
  maxLen: number;
  pad: number;
}

const CASES: Case[] = [
  { B: 1, T: 1, nH: 8, nKV: 2, hd: 16, maxLen: 1, pad: 0 },
  { B: 2, T: 1, nH: 2, nKV: 1, hd: 32, maxLen: 1, pad: 0 },
  { B: 1, T: 5, nH: 4, nKV: 4, hd: 32, maxLen: 5, pad: 0 },
  { B: 2, T: 5, nH: 8, nKV: 2, hd: 16, maxLen: 3, pad: 1 },
  { B: 1, T: 24, nH: 2, nKV: 1, hd: 16, maxLen: 24, pad: 0 },
  { B: 2, T: 24, nH: 8, nKV: 2, hd: 32, maxLen: 9, pad: 3 },
  { B: 1, T: 70, nH: 4, nKV: 4, hd: 16, maxLen: 30, pad: 5 },
  { B: 2, T: 70, nH: 8, nKV: 2, hd: 32, maxLen: 40, pad: 2 },
  { B: 1, T: 70, nH: 2, nKV: 1, hd: 32, maxLen: 70, pad: 0 },
  // Many short examples: most tiles of a block hold no key (query) of its rows' segments and are skipped.
  { B: 1, T: 70, nH: 2, nKV: 1, hd: 16, maxLen: 3, pad: 4 },
  // Mistral's head_dim and others: several threads share a row (partial dots summed in workgroup memory).
  { B: 1, T: 37, nH: 4, nKV: 2, hd: 128, maxLen: 20, pad: 2 },
  { B: 2, T: 20, nH: 2, nKV: 1, hd: 64, maxLen: 3, pad: 1 },
  { B: 1, T: 19, nH: 2, nKV: 2, hd: 80, maxLen: 19, pad: 0 },
];

describe('causal GQA attention (flash forward/backward) against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  CASES.forEach((c, n) => {
    it(`B=${c.B} T=${c.T} nH=${c.nH} nKV=${c.nKV} hd=${c.hd}, segments ≤ ${c.maxLen}, ${c.pad} padding`, async () => {
      const d: AttentionDims = c;
      const seg = packedSegments(c.B, c.T, 100 + n, c.maxLen, c.pad);
      const { q, k, v, dout } = inputs(d, 10 * n + 1);
      const got = await runGpu(ctx, d, q, k, v, dout, seg, n % 2 === 0);
      const ref = attentionForwardRef(q, k, v, seg, d);
      const grad = attentionBackwardRef(dout, q, k, v, seg, d);
      expect(attentionRelError(got.out, ref.out, TOL)).toBeLessThan(TOL);
      expect(attentionRelError(got.lse, ref.lse, TOL)).toBeLessThan(TOL);
      expect(attentionRelError(got.dq, grad.dq, TOL)).toBeLessThan(TOL);
      expect(attentionRelError(got.dk, grad.dk, TOL)).toBeLessThan(TOL);
      expect(attentionRelError(got.dv, grad.dv, TOL)).toBeLessThan(TOL);
      // Padding tokens: zero output, zero lse, zero gradients (as queries and as keys).
      const { B, T, nH, nKV, hd } = c;
      for (let t = 0; t < B * T; t++) {
        if (seg[t] !== 0) continue;
        expect(got.out.subarray(t * nH * hd, (t + 1) * nH * hd).every((x) => x === 0)).toBe(true);
        expect(got.lse.subarray(t * nH, (t + 1) * nH).every((x) => x === 0)).toBe(true);
        expect(got.dq.subarray(t * nH * hd, (t + 1) * nH * hd).every((x) => x === 0)).toBe(true);
        expect(got.dk.subarray(t * nKV * hd, (t + 1) * nKV * hd).every((x) => x === 0)).toBe(true);
        expect(got.dv.subarray(t * nKV * hd, (t + 1) * nKV * hd).every((x) => x === 0)).toBe(true);
      }
    });
  });

  it('handles a segment id that reappears later in the row (the mask is by id, not by run)', async () => {
    const d: AttentionDims = { B: 1, T: 21, nH: 4, nKV: 2, hd: 16 };
    const seg = Uint32Array.from([1, 1, 2, 2, 2, 1, 1, 3, 1, 2, 2, 2, 2, 1, 3, 3, 1, 1, 0, 1, 0]);
    const { q, k, v, dout } = inputs(d, 77);
    const got = await runGpu(ctx, d, q, k, v, dout, seg, false);
    const ref = attentionForwardRef(q, k, v, seg, d);
    const grad = attentionBackwardRef(dout, q, k, v, seg, d);
    expect(attentionRelError(got.out, ref.out, TOL)).toBeLessThan(TOL);
    expect(attentionRelError(got.lse, ref.lse, TOL)).toBeLessThan(TOL);
    expect(attentionRelError(got.dq, grad.dq, TOL)).toBeLessThan(TOL);
    expect(attentionRelError(got.dk, grad.dk, TOL)).toBeLessThan(TOL);
    expect(attentionRelError(got.dv, grad.dv, TOL)).toBeLessThan(TOL);
  });

  it('never lets one packed segment influence another (bit-exact isolation)', async () => {
    const d: AttentionDims = { B: 2, T: 40, nH: 4, nKV: 2, hd: 32 };
    const { B, T, nH, nKV, hd } = d;
    // Row 0: segments 1 (0..14), 2 (15..33), 3 (34..37), padding. Row 1: segment 1 (0..19), 2 (20..39).
    const seg = new Uint32Array(B * T);
    for (let i = 0; i < T; i++) {
      seg[i] = i < 15 ? 1 : i < 34 ? 2 : i < 38 ? 3 : 0;
      seg[T + i] = i < 20 ? 1 : 2;
    }
    const base = inputs(d, 5);
    const a = await runGpu(ctx, d, base.q, base.k, base.v, base.dout, seg, true);
    // Change everything about segment 2 of row 0 (q, k, v, dout) and the padding tokens.
    const changed = { q: base.q.slice(), k: base.k.slice(), v: base.v.slice(), dout: base.dout.slice() };
    const r = mulberry32(9);
    const touched = (t: number): boolean => t < T && (seg[t] === 2 || seg[t] === 0);
    for (let t = 0; t < B * T; t++) {
      if (!touched(t)) continue;
      for (let c = 0; c < nH * hd; c++) {
        changed.q[t * nH * hd + c] = r() * 6 - 3;
        changed.dout[t * nH * hd + c] = r() * 6 - 3;
      }
      for (let c = 0; c < nKV * hd; c++) {
        changed.k[t * nKV * hd + c] = r() * 6 - 3;
        changed.v[t * nKV * hd + c] = r() * 6 - 3;
      }
    }
    const b = await runGpu(ctx, d, changed.q, changed.k, changed.v, changed.dout, seg, true);
    let segment2Changed = false;
    for (let t = 0; t < B * T; t++) {
      const rows: [Float32Array, Float32Array, number][] = [
        [a.out, b.out, nH * hd],
        [a.lse, b.lse, nH],
        [a.dq, b.dq, nH * hd],
        [a.dk, b.dk, nKV * hd],
        [a.dv, b.dv, nKV * hd],
      ];
      for (const [x, y, w] of rows) {
        const same = x.subarray(t * w, (t + 1) * w).every((val, idx) => Object.is(val, y[t * w + idx]));
        if (touched(t)) {
          if (seg[t] === 2 && !same) segment2Changed = true;
        } else {
          expect(same, `token ${t} changed`).toBe(true);
        }
      }
    }
    expect(segment2Changed).toBe(true);
  });

  it('rejects shapes it cannot run', () => {
    const dummy = ctx.createBuffer('dummy', 16, 'scratch');
    expect(() => attention_forward(ctx, dummy, dummy, dummy, dummy, dummy, dummy, 1, 4, 6, 4, 16)).toThrow(/multiple/);
    expect(() => attention_forward(ctx, dummy, dummy, dummy, dummy, dummy, dummy, 1, 4, 4, 4, 130)).toThrow(/head_dim/);
    ctx.destroy(dummy);
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
