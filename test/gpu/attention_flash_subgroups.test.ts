// The tiled attention forward's row max by subgroup shuffles (shaders/attention_flash.wgsl, SUBGROUPS) against the
// same kernel with the row max through workgroup memory only: the same outputs and lse to the bit (a max is exact in
// any order), on SwiftShader's own subgroups (4 wide) and with the shuffles emulated at other widths
// (test/helpers/subgroup-shuffle-emulation.ts), among them subgroups as wide as a row group and wider, where nothing
// goes through workgroup memory. With lanes out of invocation order the kernel finds that its shuffles do not pair its
// threads and falls back to workgroup memory; the same kernel made to trust them gives other numbers, so the
// comparison can fail.
import { beforeAll, describe, expect, it } from 'vitest';
import { findNodeAdapter } from '../../src/cli/node-gpu.ts';
import { GpuContext } from '../../src/engine/gpu.ts';
import { compareBits } from '../../src/engine/int8-kernel-check.ts';
import { attention_forward_tiled } from '../../src/engine/kernels/attention_flash.ts';
import { randomArray } from '../../src/engine/reference/common.ts';
import { attentionForwardRef, type AttentionDims } from '../../src/engine/reference/attention.ts';
import { shaderSources } from '../../src/engine/shaders.ts';
import { gpuContext } from './context.ts';
import { attentionRelError, packedSegments } from '../helpers/attention-inputs.ts';
import { emulateSubgroupShuffles, type ShuffleEmulation } from '../helpers/subgroup-shuffle-emulation.ts';

interface Case extends AttentionDims {
  maxLen: number;
  pad: number;
}

const CASES: Case[] = [
  // Packed examples with padding: masked tiles, rows that see nothing in a tile, segments starting mid-block.
  { B: 2, T: 140, nH: 8, nKV: 2, hd: 32, maxLen: 50, pad: 2 },
  // Mistral's head dim and GQA ratio.
  { B: 1, T: 70, nH: 8, nKV: 2, hd: 128, maxLen: 40, pad: 2 },
  // One head per KV head (32 positions a block), one segment over two tiles: unmasked tiles below the diagonal.
  { B: 1, T: 77, nH: 4, nKV: 4, hd: 16, maxLen: 77, pad: 0 },
];

interface Inputs {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  seg: Uint32Array;
}

const inputs: Inputs[] = CASES.map((c, n) => ({
  q: randomArray(c.B * c.T * c.nH * c.hd, 40 * n + 1, 2),
  k: randomArray(c.B * c.T * c.nKV * c.hd, 40 * n + 2, 2),
  v: randomArray(c.B * c.T * c.nKV * c.hd, 40 * n + 3),
  seg: packedSegments(c.B, c.T, 500 + n, c.maxLen, c.pad),
}));

/** Every case's out and lse. */
async function forwardBits(ctx: GpuContext): Promise<Float32Array[][]> {
  const all: Float32Array[][] = [];
  for (const [n, c] of CASES.entries()) {
    const x = inputs[n];
    const bufs = [ctx.upload('q', x.q, 'scratch'), ctx.upload('k', x.k, 'scratch'), ctx.upload('v', x.v, 'scratch'), ctx.upload('seg', x.seg, 'scratch')];
    const out = ctx.upload('out', new Float32Array(x.q.length).fill(9), 'scratch');
    const lse = ctx.upload('lse', new Float32Array(c.B * c.T * c.nH).fill(9), 'scratch');
    try {
      attention_forward_tiled(ctx, out, lse, bufs[0], bufs[1], bufs[2], bufs[3], c.B, c.T, c.nH, c.nKV, c.hd);
      all.push([await ctx.readF32(out), await ctx.readF32(lse)]);
    } finally {
      for (const b of [...bufs, out, lse]) ctx.destroy(b);
    }
  }
  return all;
}

/** How many outputs differ in any bit between two runs, over every case's out and lse. */
function differingWords(a: Float32Array[][], b: Float32Array[][]): number {
  return a.reduce((n, pair, i) => n + pair.reduce((m, x, j) => m + compareBits(`case ${i}, ${j ? 'lse' : 'out'}`, x, b[i][j]).differing, 0), 0);
}

describe('tiled attention forward: the row max by subgroup shuffles', () => {
  let ctx: GpuContext;
  /** The outputs with the row max through workgroup memory only (no SUBGROUPS). */
  let memoryOnly: Float32Array[][];

  beforeAll(async () => {
    ctx = await gpuContext();
    // The default: the row max through workgroup memory (measured faster on the H200).
    expect(ctx.useSubgroups).toBe(false);
    expect(ctx.subgroupsInUse).toBe(false);
    memoryOnly = await forwardBits(ctx);
    ctx.useSubgroups = true;
  });

  it('is right against float64 without subgroups (the bits every other run must give)', () => {
    CASES.forEach((c, n) => {
      const ref = attentionForwardRef(inputs[n].q, inputs[n].k, inputs[n].v, inputs[n].seg, c);
      expect(attentionRelError(memoryOnly[n][0], ref.out, 1e-4)).toBeLessThan(1e-4);
      expect(attentionRelError(memoryOnly[n][1], ref.lse, 1e-4)).toBeLessThan(1e-4);
    });
  });

  const sources = shaderSources as Record<string, string>;
  const real = sources.attention_flash;
  /** The outputs of the kernel as `text` says, on a fresh device (the registry keeps one module per shader and defines). */
  const runText = async (text: string): Promise<Float32Array[][]> => {
    sources.attention_flash = text;
    const c = await GpuContext.fromAdapter((await findNodeAdapter()).adapter, {});
    try {
      c.useSubgroups = true;
      expect(c.subgroupsInUse).toBe(true);
      return await forwardBits(c);
    } finally {
      c.destroyDevice();
      sources.attention_flash = real;
    }
  };

  it("gives the same bits on the adapter's own subgroups, which it does use", async () => {
    // The tier's adapters (SwiftShader, and every GPU this project targets) offer subgroups: the path must run here.
    expect(ctx.hasSubgroups).toBe(true);
    expect(ctx.useSubgroups).toBe(true);
    expect(differingWords(await forwardBits(ctx), memoryOnly)).toBe(0);
    // The shuffles are not skipped (the kernel falls back when its check fails): with the row max's shuffle made a
    // no-op, the same adapter gives other bits.
    const noShuffle = real.replace('subgroupShuffleXor(mx, m)', 'mx');
    expect(noShuffle).not.toBe(real);
    expect(differingWords(await runText(noShuffle), memoryOnly)).toBeGreaterThan(0);
  });

  describe('with the shuffles emulated', () => {
    const run = (e: ShuffleEmulation, edit: (text: string) => string = (t) => t): Promise<Float32Array[][]> =>
      runText(edit(emulateSubgroupShuffles(real, e)));

    // 2 and 8: shuffles, then 8 or 2 partials a row through workgroup memory; 16: a row group is one subgroup;
    // 32: two row groups share a subgroup (the masks stay within each); no memory round trip at 16 and 32.
    for (const size of [2, 8, 16, 32]) {
      it(`${size} lanes a subgroup: the same bits`, async () => {
        expect(differingWords(await run({ size }), memoryOnly)).toBe(0);
      });
    }

    it('lanes out of invocation order: the kernel finds its shuffles do not pair its threads and falls back to workgroup memory (the same bits); trusting them gives others', async () => {
      const rotated: ShuffleEmulation = { size: 32, lane: '(t + 1u) % 32u' };
      expect(differingWords(await run(rotated), memoryOnly)).toBe(0);
      const trusting = (text: string): string => {
        const edited = text.replace('select(1u, sgWidth, sgOk)', 'sgWidth');
        if (edited === text) throw new Error('the kernel no longer has its shuffle check');
        return edited;
      };
      expect(differingWords(await run(rotated, trusting), memoryOnly)).toBeGreaterThan(0);
    });
  });
});
