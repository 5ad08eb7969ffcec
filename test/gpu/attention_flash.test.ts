// The tiled attention forward (shaders/attention_flash.wgsl) against the float64 reference on odd shapes: head dims
// of the tiny model (16), the demo (32) and Mistral (128) and others; GQA ratios 1, 2, 4, 8; T = 1 and T not a
// multiple of the 64-key tile or of the block; B > 1; packed segments, some starting mid-tile; padding. Its tiled
// backward (attention_backward_tiled) on every case; on some, also the row-split backward run on its out and lse.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { attention_backward_rows, attention_backward_tiled, attention_forward_rows, attentionBackwardScratchBytes } from '../../src/engine/kernels/attention.ts';
import { attention_forward_tiled, flashLayout } from '../../src/engine/kernels/attention_flash.ts';
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
