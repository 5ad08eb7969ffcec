import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/engine/gpu.ts';
import type { WeightStorage } from '../../src/engine/kernels/matmul.ts';
import {
  createLmheadXentScratch,
  destroyLmheadXentScratch,
  gather_rows,
  IGNORE_INDEX,
  lmhead_xent_forward,
  lmhead_xent_forward_backward,
  scatter_rows,
} from '../../src/engine/kernels/xent.ts';
import { maxRelError, mulberry32, randomArray } from '../../src/engine/reference/common.ts';
import { gatherRowsRef, lmheadXentRef, scatterRowsRef } from '../../src/engine/reference/xent.ts';
import { gpuContext } from './context.ts';

const LOSS_TOL = 1e-5;
const TOL = 1e-4;

/** bf16 (round to nearest even) packed two per u32, low half first, and the float values it stands for. */
function toBf16(x: Float32Array): { packed: Uint16Array; rounded: Float32Array } {
  const u = new Uint32Array(x.buffer.slice(0));
  const packed = new Uint16Array(x.length);
  const rounded = new Float32Array(x.length);
  const r32 = new Uint32Array(rounded.buffer);
  for (let i = 0; i < x.length; i++) {
    const r = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
    packed[i] = r;
    r32[i] = r << 16;
  }
  return { packed, rounded };
}

function makeTargets(BT: number, V: number, seed: number, ignoreEvery: number): Int32Array {
  const r = mulberry32(seed);
  const t = new Int32Array(BT);
  for (let i = 0; i < BT; i++) t[i] = ignoreEvery > 0 && i % ignoreEvery === ignoreEvery - 1 ? IGNORE_INDEX : Math.floor(r() * V);
  return t;
}

interface Case {
  BT: number;
  C: number;
  V: number;
  chunk: number;
  storage: WeightStorage;
  ignoreEvery: number;
  shared: boolean; // pass a scratch made once
}

// SwiftShader pays for whole 64×64 matmul tiles, so the V = 32000 cases keep few chunks; the long and ragged ones use
// a small vocabulary.
const CASES: Case[] = [
  { BT: 3, C: 64, V: 32000, chunk: 2, storage: 'bf16', ignoreEvery: 3, shared: false },
  { BT: 2, C: 128, V: 32000, chunk: 2, storage: 'f32', ignoreEvery: 0, shared: true },
  { BT: 40, C: 128, V: 1000, chunk: 16, storage: 'f32', ignoreEvery: 4, shared: true },
  { BT: 1, C: 64, V: 1000, chunk: 5, storage: 'f32', ignoreEvery: 0, shared: false },
  { BT: 23, C: 128, V: 997, chunk: 23, storage: 'f32', ignoreEvery: 5, shared: true },
  { BT: 33, C: 64, V: 1000, chunk: 8, storage: 'bf16', ignoreEvery: 7, shared: false },
];

describe('fused lm_head + cross-entropy against float64', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  CASES.forEach((c, n) => {
    it(`BT=${c.BT} C=${c.C} V=${c.V} chunk=${c.chunk} W ${c.storage}`, async () => {
      const { BT, C, V, chunk } = c;
      const h = randomArray(BT * C, 10 + n);
      const w32 = randomArray(V * C, 20 + n, 0.4);
      const { packed, rounded } = toBf16(w32);
      const W = c.storage === 'bf16' ? rounded : w32;
      const targets = makeTargets(BT, V, 30 + n, c.ignoreEvery);
      const counted = targets.filter((t) => t !== IGNORE_INDEX).length;
      const gradScale = 1 / Math.max(counted, 1);
      const lossScale = 0.5;
      const ref = lmheadXentRef(h, W, targets, BT, C, V, gradScale, lossScale);

      const bh = ctx.upload('h', h, 'scratch');
      const bW = ctx.upload('W', c.storage === 'bf16' ? packed : w32, 'scratch');
      const bt = ctx.upload('targets', targets, 'scratch');
      const bdh = ctx.upload('dh', new Float32Array(BT * C).fill(9), 'scratch'); // overwritten, not accumulated
      const blse = ctx.createBuffer('lse', BT * 4, 'scratch');
      const bloss = ctx.upload('loss', Float32Array.of(0.25), 'scratch'); // accumulated
      const scratch = c.shared ? createLmheadXentScratch(ctx, BT, C, V, chunk) : undefined;
      lmhead_xent_forward_backward(ctx, { dh: bdh, lossSum: bloss, lse: blse, h: bh, W: bW, wStorage: c.storage, targets: bt, BT, C, V, gradScale, lossScale, chunkTokens: chunk, scratch });
      const loss = (await ctx.readF32(bloss))[0];
      expect(Math.abs(loss - 0.25 - ref.loss) / Math.max(Math.abs(ref.loss), 1e-30)).toBeLessThan(LOSS_TOL);
      expect(maxRelError(await ctx.readF32(blse), ref.lse)).toBeLessThan(LOSS_TOL);
      const dh = await ctx.readF32(bdh);
      expect(maxRelError(dh, ref.dh)).toBeLessThan(TOL);
      for (let t = 0; t < BT; t++) {
        if (targets[t] === IGNORE_INDEX) expect(dh.subarray(t * C, (t + 1) * C).every((x) => x === 0)).toBe(true);
      }

      // The forward-only variant gives the same loss and lse (checked at the small vocabulary: SwiftShader is slow).
      if (V > 1000) {
        for (const b of [bh, bW, bt, bdh, blse, bloss]) ctx.destroy(b);
        if (scratch) destroyLmheadXentScratch(ctx, scratch);
        return;
      }
      const bloss2 = ctx.upload('loss2', Float32Array.of(0), 'scratch');
      const blse2 = ctx.createBuffer('lse2', BT * 4, 'scratch');
      lmhead_xent_forward(ctx, { lossSum: bloss2, lse: blse2, h: bh, W: bW, wStorage: c.storage, targets: bt, BT, C, V, lossScale, chunkTokens: chunk, scratch });
      const loss2 = (await ctx.readF32(bloss2))[0];
      expect(Math.abs(loss2 - ref.loss) / Math.max(Math.abs(ref.loss), 1e-30)).toBeLessThan(LOSS_TOL);
      expect(maxRelError(await ctx.readF32(blse2), ref.lse)).toBeLessThan(LOSS_TOL);

      for (const b of [bh, bW, bt, bdh, blse, bloss, bloss2, blse2]) ctx.destroy(b);
      if (scratch) destroyLmheadXentScratch(ctx, scratch);
    });
  });

  it('gives the same bits whatever the chunk (the runner takes 1024 tokens where it took 256): each row is computed alone', async () => {
    const [BT, C, V] = [150, 64, 1000];
    const h = ctx.upload('h', randomArray(BT * C, 41), 'scratch');
    const W = ctx.upload('W', toBf16(randomArray(V * C, 42, 0.4)).packed, 'scratch');
    const targets = ctx.upload('targets', makeTargets(BT, V, 43, 7), 'scratch');
    const bits = async (b: GPUBuffer): Promise<Uint32Array> => new Uint32Array((await ctx.readF32(b)).buffer);
    const gemmBefore = ctx.gemmKernel;
    const outputs: Uint32Array[][] = [];
    try {
      for (const gemmKernel of ['basic', 'tiled'] as const) {
        ctx.gemmKernel = gemmKernel;
        for (const chunk of [150, 128, 37]) {
          const dh = ctx.createBuffer('dh', BT * C * 4, 'scratch');
          const lse = ctx.createBuffer('lse', BT * 4, 'scratch');
          const loss = ctx.upload('loss', Float32Array.of(0), 'scratch');
          lmhead_xent_forward_backward(ctx, { dh, lossSum: loss, lse, h, W, wStorage: 'bf16', targets, BT, C, V, gradScale: 1 / BT, lossScale: 1 / BT, chunkTokens: chunk });
          outputs.push([await bits(dh), await bits(lse), await bits(loss)]);
          for (const b of [dh, lse, loss]) ctx.destroy(b);
        }
        const [whole, ...chunked] = outputs.splice(0);
        for (const o of chunked) o.forEach((b, i) => expect(Buffer.from(b.buffer).equals(Buffer.from(whole[i].buffer))).toBe(true));
      }
    } finally {
      ctx.gemmKernel = gemmBefore;
      for (const b of [h, W, targets]) ctx.destroy(b);
    }
  });

  it('sums the loss deterministically (same bits on every run) and ignores all-(-100) batches', async () => {
    const [BT, C, V, chunk] = [29, 64, 1000, 6];
    const h = randomArray(BT * C, 1);
    const W = randomArray(V * C, 2, 0.4);
    const targets = makeTargets(BT, V, 3, 0);
    const bh = ctx.upload('h', h, 'scratch');
    const bW = ctx.upload('W', W, 'scratch');
    const bt = ctx.upload('targets', targets, 'scratch');
    const bdh = ctx.createBuffer('dh', BT * C * 4, 'scratch');
    const blse = ctx.createBuffer('lse', BT * 4, 'scratch');
    const scratch = createLmheadXentScratch(ctx, BT, C, V, chunk);
    const losses: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      const bloss = ctx.upload('loss', Float32Array.of(0), 'scratch');
      lmhead_xent_forward_backward(ctx, { dh: bdh, lossSum: bloss, lse: blse, h: bh, W: bW, wStorage: 'f32', targets: bt, BT, C, V, gradScale: 1 / BT, chunkTokens: chunk, scratch });
      losses.push((await ctx.readF32(bloss))[0]);
      ctx.destroy(bloss);
    }
    expect(losses[0]).toBeGreaterThan(0);
    expect(losses[1]).toBe(losses[0]);
    expect(losses[2]).toBe(losses[0]);

    const ignored = ctx.upload('ignored', new Int32Array(BT).fill(IGNORE_INDEX), 'scratch');
    const bloss = ctx.upload('loss', Float32Array.of(0), 'scratch');
    lmhead_xent_forward_backward(ctx, { dh: bdh, lossSum: bloss, lse: blse, h: bh, W: bW, targets: ignored, BT, C, V, gradScale: 1, chunkTokens: chunk, scratch });
    expect((await ctx.readF32(bloss))[0]).toBe(0);
    expect((await ctx.readF32(bdh)).every((x) => x === 0)).toBe(true);
    expect(maxRelError(await ctx.readF32(blse), lmheadXentRef(h, W, targets, BT, C, V, 1).lse)).toBeLessThan(LOSS_TOL);
    for (const b of [bh, bW, bt, bdh, blse, ignored, bloss]) ctx.destroy(b);
    destroyLmheadXentScratch(ctx, scratch);
  });

  it('weighs each token by its own weight when given (a packed validation pass), over chunks that do not divide the tokens', async () => {
    const [BT, C, V, chunk] = [37, 64, 997, 10];
    const h = randomArray(BT * C, 51);
    const W = randomArray(V * C, 52, 0.4);
    const targets = makeTargets(BT, V, 53, 6);
    // Three "batches" of different weights, and a run of zero weights: a token outside every batch adds nothing.
    const weights = Float32Array.from({ length: BT }, (_, t) => (t < 11 ? 1 / 9 : t < 20 ? 0 : t < 30 ? 2 / 7 : 0.5));
    const ref = lmheadXentRef(h, W, targets, BT, C, V, 1, 0.75, weights);
    const unweighted = lmheadXentRef(h, W, targets, BT, C, V, 1, 0.75);
    const bh = ctx.upload('h', h, 'scratch');
    const bW = ctx.upload('W', W, 'scratch');
    const bt = ctx.upload('targets', targets, 'scratch');
    const bw = ctx.upload('weights', weights, 'scratch');
    const blse = ctx.createBuffer('lse', BT * 4, 'scratch');
    const bloss = ctx.upload('loss', Float32Array.of(0.25), 'scratch'); // accumulated
    lmhead_xent_forward(ctx, { lossSum: bloss, lse: blse, h: bh, W: bW, targets: bt, BT, C, V, lossScale: 0.75, lossWeights: bw, chunkTokens: chunk });
    const loss = (await ctx.readF32(bloss))[0] - 0.25;
    expect(Math.abs(loss - ref.loss) / Math.abs(ref.loss)).toBeLessThan(LOSS_TOL);
    // The weights are not ignored: the weighted sum is far from the plain one.
    expect(Math.abs(ref.loss - unweighted.loss) / Math.abs(unweighted.loss)).toBeGreaterThan(0.3);
    expect(maxRelError(await ctx.readF32(blse), ref.lse)).toBeLessThan(LOSS_TOL);
    for (const b of [bh, bW, bt, bw, blse, bloss]) ctx.destroy(b);
  });

  it('gathers rows by index and scatters them back (gather_rows and its backward) as float64 does, at odd widths', async () => {
    for (const [rows, width, n, row0] of [
      [7, 1, 5, 1],
      [13, 37, 9, 3],
      [6, 301, 4, 2], // wider than a workgroup: each thread copies two or more columns
    ]) {
      const src = randomArray(rows * width, 60 + width);
      const r = mulberry32(61 + width);
      // Distinct rows in a random order, and some entries before row0 the call must not read.
      const index = Uint32Array.from(Array.from({ length: rows }, (_, i) => i).sort(() => r() - 0.5).slice(0, row0 + n));
      const bsrc = ctx.upload('rows', src, 'scratch');
      const bidx = ctx.upload('index', index, 'scratch');
      const bout = ctx.upload('gathered', new Float32Array(n * width).fill(7), 'scratch');
      gather_rows(ctx, bout, bsrc, bidx, row0, n, width);
      expect(maxRelError(await ctx.readF32(bout), gatherRowsRef(src, index, row0, n, width))).toBe(0);
      const into = randomArray(rows * width, 62 + width);
      const binto = ctx.upload('into', into, 'scratch');
      scatter_rows(ctx, binto, bout, bidx, row0, n, width);
      const back = await ctx.readF32(binto);
      expect(maxRelError(back, scatterRowsRef(into, gatherRowsRef(src, index, row0, n, width), index, row0, n, width))).toBe(0);
      // The rows not listed keep what they held.
      const listed = new Set(index.subarray(row0, row0 + n));
      for (let t = 0; t < rows; t++) if (!listed.has(t)) expect(back.subarray(t * width, (t + 1) * width)).toEqual(Float32Array.from(into.subarray(t * width, (t + 1) * width)));
      for (const b of [bsrc, bidx, bout, binto]) ctx.destroy(b);
    }
  });

  it('computes only the listed rows (HeadRows): the loss, gradient and lse of those rows as float64, zero gradient elsewhere', async () => {
    for (const [BT, C, V, chunk, storage] of [
      [31, 64, 997, 8, 'f32'],
      [9, 128, 1000, 16, 'bf16'], // one chunk: its rows still go through the chunk buffers
    ] as const) {
      const h = randomArray(BT * C, 71 + BT);
      const w32 = randomArray(V * C, 72 + BT, 0.4);
      const { packed, rounded } = toBf16(w32);
      const W = storage === 'bf16' ? rounded : w32;
      const targets = makeTargets(BT, V, 73 + BT, 3);
      // A prompt's worth of tokens without a loss at the start, then every third one (a sequence's end).
      for (let t = 0; t < 4; t++) targets[t] = IGNORE_INDEX;
      const index = Uint32Array.from([...targets].flatMap((tg, t) => (tg === IGNORE_INDEX ? [] : [t])));
      const listedTargets = Int32Array.from(index, (t) => targets[t]);
      const gradScale = 1 / index.length;
      const ref = lmheadXentRef(h, W, targets, BT, C, V, gradScale, 0.5);
      const bh = ctx.upload('h', h, 'scratch');
      const bW = ctx.upload('W', storage === 'bf16' ? packed : w32, 'scratch');
      const bt = ctx.upload('listed targets', listedTargets, 'scratch');
      const bidx = ctx.upload('index', index, 'scratch');
      const bdh = ctx.upload('dh', new Float32Array(BT * C).fill(9), 'scratch'); // overwritten everywhere
      const blse = ctx.createBuffer('lse', BT * 4, 'scratch');
      const bloss = ctx.upload('loss', Float32Array.of(0), 'scratch');
      const scratch = createLmheadXentScratch(ctx, BT, C, V, chunk, true);
      const args = { lossSum: bloss, lse: blse, h: bh, W: bW, wStorage: storage, targets: bt, BT, C, V, lossScale: 0.5, chunkTokens: chunk, scratch, rows: { index: bidx, count: index.length } };
      lmhead_xent_forward_backward(ctx, { ...args, dh: bdh, gradScale });
      const loss = (await ctx.readF32(bloss))[0];
      expect(Math.abs(loss - ref.loss) / Math.abs(ref.loss)).toBeLessThan(LOSS_TOL);
      const dh = await ctx.readF32(bdh);
      expect(maxRelError(dh, ref.dh)).toBeLessThan(TOL);
      for (let t = 0; t < BT; t++) if (targets[t] === IGNORE_INDEX) expect(dh.subarray(t * C, (t + 1) * C).every((x) => x === 0)).toBe(true);
      // lse holds one value a listed row, in the list's order.
      expect(maxRelError((await ctx.readF32(blse)).subarray(0, index.length), Float64Array.from(index, (t) => ref.lse[t]))).toBeLessThan(LOSS_TOL);
      // The forward alone adds the same loss.
      const bloss2 = ctx.upload('loss2', Float32Array.of(0), 'scratch');
      lmhead_xent_forward(ctx, { ...args, lossSum: bloss2 });
      expect((await ctx.readF32(bloss2))[0]).toBe(loss);
      // A scratch not sized to gather is refused, not read past its end.
      const plain = createLmheadXentScratch(ctx, BT, C, V, BT);
      expect(() => lmhead_xent_forward(ctx, { ...args, chunkTokens: BT, scratch: plain })).toThrow(/scratch sized/);
      destroyLmheadXentScratch(ctx, plain);
      for (const b of [bh, bW, bt, bidx, bdh, blse, bloss, bloss2]) ctx.destroy(b);
      destroyLmheadXentScratch(ctx, scratch);
    }
  });

  it("gives each listed row the bits the whole head gives it (the rows are computed alone), and no row's loss twice", async () => {
    const [BT, C, V, chunk] = [150, 64, 1000, 37];
    const h = ctx.upload('h', randomArray(BT * C, 81), 'scratch');
    const W = ctx.upload('W', toBf16(randomArray(V * C, 82, 0.4)).packed, 'scratch');
    const all = makeTargets(BT, V, 83, 4);
    const index = Uint32Array.from([...all].flatMap((tg, t) => (tg === IGNORE_INDEX ? [] : [t])));
    const targets = ctx.upload('targets', all, 'scratch');
    const listedTargets = ctx.upload('listed targets', Int32Array.from(index, (t) => all[t]), 'scratch');
    const bidx = ctx.upload('index', index, 'scratch');
    const run = async (rows: boolean) => {
      const dh = ctx.createBuffer('dh', BT * C * 4, 'scratch');
      const lse = ctx.createBuffer('lse', BT * 4, 'scratch');
      const loss = ctx.upload('loss', Float32Array.of(0), 'scratch');
      const common = { dh, lossSum: loss, lse, h, W, wStorage: 'bf16' as const, BT, C, V, gradScale: 1 / index.length, lossScale: 1 / index.length, chunkTokens: chunk };
      lmhead_xent_forward_backward(ctx, rows ? { ...common, targets: listedTargets, rows: { index: bidx, count: index.length } } : { ...common, targets });
      const out = { dh: await ctx.readF32(dh), lse: await ctx.readF32(lse), loss: (await ctx.readF32(loss))[0] };
      for (const b of [dh, lse, loss]) ctx.destroy(b);
      return out;
    };
    const whole = await run(false);
    const listed = await run(true);
    expect(Buffer.from(listed.dh.buffer).equals(Buffer.from(whole.dh.buffer))).toBe(true);
    expect(Float32Array.from(index, (t) => whole.lse[t])).toEqual(listed.lse.subarray(0, index.length));
    // The same terms summed in another grouping: equal to rounding.
    expect(Math.abs(listed.loss - whole.loss) / whole.loss).toBeLessThan(1e-6);
    for (const b of [h, W, targets, listedTargets, bidx]) ctx.destroy(b);
  });

  it('refuses a logits chunk larger than one storage binding, with a typed error', () => {
    const limit = ctx.device.limits.maxStorageBufferBindingSize;
    const chunk = Math.ceil(limit / (32000 * 4)) + 1;
    expect(() => createLmheadXentScratch(ctx, chunk, 64, 32000, chunk)).toThrow(/fewer chunk tokens/);
  });

  it('leaves no buffers behind in the ledger', () => {
    const names = ctx.ledger.liveBuffers().map((b) => b.label);
    expect(names.sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
