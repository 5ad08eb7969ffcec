// The tiled attention forward (shaders/attention_flash.wgsl) against the float64 reference on odd shapes: head dims
// of the tiny model (16), the demo (32) and Mistral (128) and others; GQA ratios 1, 2, 4, 8; T = 1 and T not a
// multiple of the 64-key tile or of the block; B > 1; packed segments, some starting mid-tile; padding. Its tiled
// backward (attention_backward_tiled) on every case; on some, also the row-split backward run on its out and lse.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { attention_backward_rows, attention_backward_tiled, attention_forward_rows, attentionBackwardScratchBytes } from '../../src/engine/kernels/attention.ts';
import { attention_forward_tiled, attentionSpillGroupFloats, flashLayout } from '../../src/engine/kernels/attention_flash.ts';
import { maxRelError, mulberry32, randomArray } from '../../src/engine/reference/common.ts';
import { attentionBackwardRef, attentionForwardRef, type AttentionDims } from '../../src/engine/reference/attention.ts';
import { gpuContext } from './context.ts';
import { attentionRelError, packedSegments } from '../helpers/attention-inputs.ts';

const TOL = 1e-4;

interface Case extends AttentionDims {
  maxLen: number;
  pad: number;
  /** Also run the row-split backward on the tiled forward's out and lse (slow on SwiftShader: only some cases). */
  backward?: boolean;
}

const CASES: Case[] = [
  { B: 1, T: 1, nH: 8, nKV: 2, hd: 16, maxLen: 1, pad: 0, backward: true },
  { B: 2, T: 1, nH: 8, nKV: 1, hd: 32, maxLen: 1, pad: 0 },
  { B: 2, T: 5, nH: 8, nKV: 2, hd: 16, maxLen: 3, pad: 1 },
  // One segment over more than one 64-key tile: unmasked tiles below the diagonal, T not a multiple of the tile.
  { B: 1, T: 150, nH: 8, nKV: 2, hd: 16, maxLen: 150, pad: 0, backward: true },
  { B: 2, T: 77, nH: 4, nKV: 4, hd: 32, maxLen: 77, pad: 3 },
  // Packed examples: segments start mid-tile and mid-block; tiles outside every row's segment are skipped.
  { B: 2, T: 140, nH: 8, nKV: 2, hd: 32, maxLen: 50, pad: 2, backward: true },
  { B: 1, T: 130, nH: 8, nKV: 1, hd: 16, maxLen: 4, pad: 5 },
  // Mistral's head dim and GQA ratio; then others (V chunks of 16 keys, a head dim not a multiple of 16).
  { B: 1, T: 70, nH: 8, nKV: 2, hd: 128, maxLen: 40, pad: 2, backward: true },
  { B: 1, T: 67, nH: 2, nKV: 2, hd: 128, maxLen: 67, pad: 0 },
  { B: 2, T: 33, nH: 4, nKV: 2, hd: 64, maxLen: 20, pad: 1 },
  { B: 1, T: 19, nH: 3, nKV: 1, hd: 80, maxLen: 19, pad: 0 },
  { B: 1, T: 23, nH: 2, nKV: 1, hd: 20, maxLen: 9, pad: 0 },
];

describe('tiled causal GQA attention forward against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  CASES.forEach((c, n) => {
    it(`B=${c.B} T=${c.T} nH=${c.nH} nKV=${c.nKV} hd=${c.hd}, segments ≤ ${c.maxLen}, ${c.pad} padding, tiled backward${c.backward ? ', + row-split backward' : ''}`, async () => {
      const { B, T, nH, nKV, hd } = c;
      const BT = B * T;
      const seg = packedSegments(B, T, 300 + n, c.maxLen, c.pad);
      const q = randomArray(BT * nH * hd, 20 * n + 1, 2);
      const k = randomArray(BT * nKV * hd, 20 * n + 2, 2);
      const v = randomArray(BT * nKV * hd, 20 * n + 3);
      const dout = randomArray(BT * nH * hd, 20 * n + 4);
      const bq = ctx.upload('q', q, 'scratch');
      const bk = ctx.upload('k', k, 'scratch');
      const bv = ctx.upload('v', v, 'scratch');
      const bseg = ctx.upload('seg', seg, 'scratch');
      // Garbage in the outputs: every element must be written.
      const bout = ctx.upload('out', new Float32Array(BT * nH * hd).fill(9), 'scratch');
      const blse = ctx.upload('lse', new Float32Array(BT * nH).fill(9), 'scratch');
      const bufs = [bq, bk, bv, bseg, bout, blse];
      try {
        attention_forward_tiled(ctx, bout, blse, bq, bk, bv, bseg, B, T, nH, nKV, hd);
        const out = await ctx.readF32(bout);
        const lse = await ctx.readF32(blse);
        const ref = attentionForwardRef(q, k, v, seg, c);
        expect(attentionRelError(out, ref.out, TOL)).toBeLessThan(TOL);
        expect(attentionRelError(lse, ref.lse, TOL)).toBeLessThan(TOL);
        for (let t = 0; t < BT; t++) {
          if (seg[t] !== 0) continue;
          expect(out.subarray(t * nH * hd, (t + 1) * nH * hd).every((x) => x === 0)).toBe(true);
          expect(lse.subarray(t * nH, (t + 1) * nH).every((x) => x === 0)).toBe(true);
        }
        const bdout = ctx.upload('dout', dout, 'scratch');
        // Garbage in the gradients too: every element must be overwritten, not accumulated.
        const bdq = ctx.upload('dq', new Float32Array(BT * nH * hd).fill(7), 'scratch');
        const bdk = ctx.upload('dk', new Float32Array(BT * nKV * hd).fill(-3), 'scratch');
        const bdv = ctx.upload('dv', new Float32Array(BT * nKV * hd).fill(5), 'scratch');
        bufs.push(bdout, bdq, bdk, bdv);
        const grad = attentionBackwardRef(dout, q, k, v, seg, c);
        const backwards = c.backward ? [attention_backward_tiled, attention_backward_rows] : [attention_backward_tiled];
        for (const backward of backwards) {
          backward(ctx, bdq, bdk, bdv, bdout, bout, blse, bq, bk, bv, bseg, B, T, nH, nKV, hd);
          const dq = await ctx.readF32(bdq);
          const dk = await ctx.readF32(bdk);
          const dv = await ctx.readF32(bdv);
          expect(attentionRelError(dq, grad.dq, TOL)).toBeLessThan(TOL);
          expect(attentionRelError(dk, grad.dk, TOL)).toBeLessThan(TOL);
          expect(attentionRelError(dv, grad.dv, TOL)).toBeLessThan(TOL);
          // Padding tokens pass no gradient, as queries or as keys.
          for (let t = 0; t < BT; t++) {
            if (seg[t] !== 0) continue;
            expect(dq.subarray(t * nH * hd, (t + 1) * nH * hd).every((x) => x === 0)).toBe(true);
            expect(dk.subarray(t * nKV * hd, (t + 1) * nKV * hd).every((x) => x === 0)).toBe(true);
            expect(dv.subarray(t * nKV * hd, (t + 1) * nKV * hd).every((x) => x === 0)).toBe(true);
          }
        }
      } finally {
        for (const b of bufs) ctx.destroy(b);
      }
    });
  });

  it('agrees with the row-split forward on a segment id that reappears later in the row (mask by id)', async () => {
    const d: AttentionDims = { B: 1, T: 21, nH: 4, nKV: 1, hd: 16 };
    const seg = Uint32Array.from([1, 1, 2, 2, 2, 1, 1, 3, 1, 2, 2, 2, 2, 1, 3, 3, 1, 1, 0, 1, 0]);
    const q = randomArray(21 * 4 * 16, 7, 2);
    const k = randomArray(21 * 16, 8, 2);
    const v = randomArray(21 * 16, 9);
    const ref = attentionForwardRef(q, k, v, seg, d);
    const bufs = [ctx.upload('q', q, 'scratch'), ctx.upload('k', k, 'scratch'), ctx.upload('v', v, 'scratch'), ctx.upload('seg', seg, 'scratch')];
    const outs = [0, 1].map(() => [ctx.createBuffer('out', q.byteLength, 'scratch'), ctx.createBuffer('lse', 21 * 4 * 4, 'scratch')]);
    attention_forward_tiled(ctx, outs[0][0], outs[0][1], bufs[0], bufs[1], bufs[2], bufs[3], 1, 21, 4, 1, 16);
    attention_forward_rows(ctx, outs[1][0], outs[1][1], bufs[0], bufs[1], bufs[2], bufs[3], 1, 21, 4, 1, 16);
    const tiled = await ctx.readF32(outs[0][0]);
    expect(attentionRelError(tiled, ref.out, TOL)).toBeLessThan(TOL);
    expect(attentionRelError(await ctx.readF32(outs[0][1]), ref.lse, TOL)).toBeLessThan(TOL);
    expect(maxRelError(tiled, Float64Array.from(await ctx.readF32(outs[1][0])))).toBeLessThan(TOL);
    for (const b of [...bufs, ...outs.flat()]) ctx.destroy(b);
  });

  it('tiled backward: a segment id that reappears later in the row (mask by id), GQA 2, garbage scratch', async () => {
    const d: AttentionDims = { B: 1, T: 21, nH: 4, nKV: 2, hd: 16 };
    const seg = Uint32Array.from([1, 1, 2, 2, 2, 1, 1, 3, 1, 2, 2, 2, 2, 1, 3, 3, 1, 1, 0, 1, 0]);
    const q = randomArray(21 * 4 * 16, 17, 2);
    const k = randomArray(21 * 2 * 16, 18, 2);
    const v = randomArray(21 * 2 * 16, 19);
    const dout = randomArray(21 * 4 * 16, 20);
    const [bq, bk, bv, bseg, bdout] = [ctx.upload('q', q, 'scratch'), ctx.upload('k', k, 'scratch'), ctx.upload('v', v, 'scratch'), ctx.upload('seg', seg, 'scratch'), ctx.upload('dout', dout, 'scratch')];
    const [bout, blse, bdq] = [ctx.createBuffer('out', q.byteLength, 'scratch'), ctx.createBuffer('lse', 21 * 4 * 4, 'scratch'), ctx.createBuffer('dq', q.byteLength, 'scratch')];
    const [bdk, bdv] = [ctx.createBuffer('dk', k.byteLength, 'scratch'), ctx.createBuffer('dv', k.byteLength, 'scratch')];
    // The caller's scratch (D), with garbage in it: the D pass must overwrite it.
    const scratch = ctx.upload('scratch', new Float32Array(attentionBackwardScratchBytes(1, 21, 4) / 4).fill(3), 'scratch');
    attention_forward_tiled(ctx, bout, blse, bq, bk, bv, bseg, 1, 21, 4, 2, 16);
    attention_backward_tiled(ctx, bdq, bdk, bdv, bdout, bout, blse, bq, bk, bv, bseg, 1, 21, 4, 2, 16, scratch);
    const grad = attentionBackwardRef(dout, q, k, v, seg, d);
    expect(attentionRelError(await ctx.readF32(bdq), grad.dq, TOL)).toBeLessThan(TOL);
    expect(attentionRelError(await ctx.readF32(bdk), grad.dk, TOL)).toBeLessThan(TOL);
    expect(attentionRelError(await ctx.readF32(bdv), grad.dv, TOL)).toBeLessThan(TOL);
    for (const b of [bq, bk, bv, bseg, bdout, bout, blse, bdq, bdk, bdv, scratch]) ctx.destroy(b);
  });

  // dS through a scratch (5 products instead of 7): the same dk, dv and dq bits as recomputing it, in one pass and in
  // chunks of KV heads; NaN in the scratch, so an entry read without having been written (a skipped tile) would show.
  const SPILL_CASES: (Case & { chunkKV: number[] })[] = [
    // Packed segments with padding: skipped tiles, masked tiles, segment starts mid-block; one chunk and one KV head a chunk.
    { B: 2, T: 140, nH: 8, nKV: 2, hd: 32, maxLen: 50, pad: 2, chunkKV: [2, 1] },
    // One segment over three 64-key tiles (unmasked tiles below the diagonal), T not a multiple of 32.
    { B: 1, T: 150, nH: 8, nKV: 2, hd: 16, maxLen: 150, pad: 0, chunkKV: [2] },
    // Mistral's head dim; GQA 1 with three KV heads in chunks of 2 + 1; GQA 8; T = 1.
    { B: 1, T: 70, nH: 8, nKV: 2, hd: 128, maxLen: 40, pad: 2, chunkKV: [2] },
    { B: 2, T: 45, nH: 3, nKV: 3, hd: 16, maxLen: 30, pad: 1, chunkKV: [2] },
    { B: 1, T: 33, nH: 8, nKV: 1, hd: 16, maxLen: 33, pad: 0, chunkKV: [1] },
    { B: 1, T: 1, nH: 8, nKV: 2, hd: 16, maxLen: 1, pad: 0, chunkKV: [2] },
  ];
  SPILL_CASES.forEach((c, n) => {
    it(`tiled backward with dS spilled, B=${c.B} T=${c.T} nH=${c.nH} nKV=${c.nKV} hd=${c.hd}, segments ≤ ${c.maxLen}, ${c.pad} padding, KV heads per chunk ${c.chunkKV.join(', ')}: the bits of the 7-product backward`, async () => {
      const { B, T, nH, nKV, hd } = c;
      const BT = B * T;
      const seg = packedSegments(B, T, 700 + n, c.maxLen, c.pad);
      const q = randomArray(BT * nH * hd, 40 * n + 1, 2);
      const k = randomArray(BT * nKV * hd, 40 * n + 2, 2);
      const v = randomArray(BT * nKV * hd, 40 * n + 3);
      const dout = randomArray(BT * nH * hd, 40 * n + 4);
      const bufs = [q, k, v, seg, dout].map((x, i) => ctx.upload(`in ${i}`, x, 'scratch'));
      const [bq, bk, bv, bseg, bdout] = bufs;
      const bout = ctx.createBuffer('out', BT * nH * hd * 4, 'scratch');
      const blse = ctx.createBuffer('lse', BT * nH * 4, 'scratch');
      bufs.push(bout, blse);
      const grads = async (spillFloats: number): Promise<Float32Array[]> => {
        const g = [BT * nH * hd, BT * nKV * hd, BT * nKV * hd].map((len, i) => ctx.upload(`grad ${i}`, new Float32Array(len).fill(7), 'scratch'));
        const spill = spillFloats ? ctx.upload('spill', new Float32Array(spillFloats).fill(NaN), 'scratch') : undefined;
        const before = ctx.dispatchCount;
        attention_backward_tiled(ctx, g[0], g[1], g[2], bdout, bout, blse, bq, bk, bv, bseg, B, T, nH, nKV, hd, undefined, spill);
        const dispatches = ctx.dispatchCount - before;
        const out = await Promise.all(g.map((b) => ctx.readF32(b)));
        if (spill) {
          // The dS path ran: the D pass, then both kernels once per chunk, and dS is in the scratch.
          const chunk = Math.floor(spillFloats / attentionSpillGroupFloats(B, T, nH, nKV));
          expect(dispatches).toBe(1 + 2 * Math.ceil(nKV / chunk));
          expect((await ctx.readF32(spill)).some((x) => Number.isFinite(x))).toBe(true);
        } else {
          expect(dispatches).toBe(3);
        }
        for (const b of spill ? [...g, spill] : g) ctx.destroy(b);
        return out;
      };
      try {
        attention_forward_tiled(ctx, bout, blse, bq, bk, bv, bseg, B, T, nH, nKV, hd);
        const want = await grads(0);
        const ref = attentionBackwardRef(dout, q, k, v, seg, c);
        const group = attentionSpillGroupFloats(B, T, nH, nKV);
        for (const chunk of c.chunkKV) {
          // A scratch a little larger than `chunk` groups, not enough for one more.
          const [dq, dk, dv] = await grads(chunk * group + 4);
          expect(attentionRelError(dq, ref.dq, TOL)).toBeLessThan(TOL);
          expect(Array.from(dq)).toEqual(Array.from(want[0]));
          expect(Array.from(dk)).toEqual(Array.from(want[1]));
          expect(Array.from(dv)).toEqual(Array.from(want[2]));
        }
      } finally {
        for (const b of bufs) ctx.destroy(b);
      }
    });
  });

  it('sizes the dS scratch of a KV head group as whole 32-key blocks of the causal triangle', () => {
    // Queries 0–31 keep 32 keys each, 32–63 keep 64: 32·32 + 32·64 per head.
    expect(attentionSpillGroupFloats(1, 64, 4, 1)).toBe(4 * (32 * 32 + 32 * 64));
    expect(attentionSpillGroupFloats(1, 33, 4, 1)).toBe(4 * (32 * 32 + 32 * 64));
    expect(attentionSpillGroupFloats(2, 1, 8, 2)).toBe(2 * 4 * 32 * 32);
    // Mistral-7B at 2048 tokens, all 8 groups: 273 MB.
    expect(8 * 4 * attentionSpillGroupFloats(1, 2048, 32, 8)).toBe(272_629_760);
  });

  it('covers the head layouts of the tiny model, the demo and Mistral, and refuses what it cannot run', () => {
    expect(flashLayout(8, 2, 16)).toEqual({ G: 4, QP: 8, VK: 64 });
    expect(flashLayout(8, 2, 32)).toEqual({ G: 4, QP: 8, VK: 32 });
    expect(flashLayout(32, 8, 128)).toEqual({ G: 4, QP: 8, VK: 8 });
    expect(flashLayout(32, 4, 128)).toEqual({ G: 8, QP: 4, VK: 8 });
    expect(() => flashLayout(64, 1, 64)).toThrow(/at most 32/);
    expect(() => flashLayout(6, 4, 16)).toThrow(/multiple/);
    expect(() => flashLayout(4, 4, 130)).toThrow(/head_dim/);
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
