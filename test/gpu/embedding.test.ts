import { beforeAll, describe, expect, it } from 'vitest';
import { f16ArrayToF32, f32ToF16Bits } from '../../src/core/dtypes.ts';
import { isFinetuneError } from '../../src/core/errors.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { checkTokenIds, embedding_forward } from '../../src/engine/kernels/embedding.ts';
import { mulberry32, randomArray } from '../../src/engine/reference/common.ts';
import { embeddingRef, toBf16 } from '../../src/engine/reference/embedding.ts';
import { gpuContext } from './context.ts';

function randomIds(BT: number, V: number, seed: number): Uint32Array {
  const r = mulberry32(seed);
  const ids = Uint32Array.from({ length: BT }, () => Math.floor(r() * V));
  ids[0] = V - 1; // the last row (and, for bf16 with odd C, its last half-word)
  return ids;
}

describe('embedding lookup', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  // [V, C, BT]: odd C makes bf16 rows start in the middle of a u32.
  for (const [V, C, BT] of [
    [11, 37, 9],
    [300, 128, 17],
    [5, 1, 4],
  ] as const) {
    it(`copies rows exactly, f32, bf16 and f16 tables, V=${V} C=${C} BT=${BT}`, async () => {
      const table = randomArray(V * C, V + C, 3);
      const ids = randomIds(BT, V, BT);
      const { bits, values } = toBf16(table);
      const bIds = ctx.upload('ids', ids, 'scratch');
      const bF32 = ctx.upload('table f32', table, 'scratch');
      const bBf16 = ctx.upload('table bf16', bits, 'scratch');
      const bOut = ctx.createBuffer('out', BT * C * 4, 'scratch');
      embedding_forward(ctx, bOut, bIds, bF32, BT, C);
      expect(Array.from(await ctx.readF32(bOut))).toEqual(Array.from(embeddingRef(ids, table, V, C)));
      embedding_forward(ctx, bOut, bIds, bBf16, BT, C, { storage: 'bf16', V });
      expect(Array.from(await ctx.readF32(bOut))).toEqual(Array.from(embeddingRef(ids, values, V, C)));
      // f16, every 3rd value a subnormal there (exact in f32: it must not be flushed).
      const half = Uint16Array.from(table, (v, i) => f32ToF16Bits(i % 3 === 0 ? v * 2 ** -18 : v));
      const bF16 = ctx.upload('table f16', half, 'scratch');
      embedding_forward(ctx, bOut, bIds, bF16, BT, C, { storage: 'f16', V });
      expect(Array.from(await ctx.readF32(bOut))).toEqual(Array.from(embeddingRef(ids, f16ArrayToF32(half), V, C)));
      for (const b of [bIds, bF32, bBf16, bF16, bOut]) ctx.destroy(b);
    });
  }

  it('writes zeros for ids ≥ V on the GPU, and rejects them on the CPU when given a CPU copy', async () => {
    const [V, C] = [6, 5];
    const table = randomArray(V * C, 1);
    const ids = new Uint32Array([2, 6, 1, 4000000000]);
    const bIds = ctx.upload('ids', ids, 'scratch');
    const bTable = ctx.upload('table', table, 'scratch');
    const bOut = ctx.upload('out', new Float32Array(ids.length * C).fill(7), 'scratch');
    embedding_forward(ctx, bOut, bIds, bTable, ids.length, C);
    const out = await ctx.readF32(bOut);
    expect(Array.from(out)).toEqual(Array.from(embeddingRef(ids, table, V, C)));
    expect(Array.from(out.subarray(C, 2 * C))).toEqual([0, 0, 0, 0, 0]);
    // V smaller than the table: rows past V count as out of range too.
    embedding_forward(ctx, bOut, bIds, bTable, ids.length, C, { V: 2 });
    expect(Array.from(await ctx.readF32(bOut))).toEqual(Array.from(embeddingRef(ids, table, 2, C)));
    let caught: unknown;
    try {
      embedding_forward(ctx, bOut, bIds, bTable, ids.length, C, { cpuIds: ids });
    } catch (e) {
      caught = e;
    }
    expect(isFinetuneError(caught, 'bad-input')).toBe(true);
    expect((caught as Error).message).toMatch(/token id 6 at position 1/);
    expect(() => checkTokenIds([0, 5], 6)).not.toThrow();
    expect(() => checkTokenIds([0, -1], 6)).toThrow(/-1/);
    for (const b of [bIds, bTable, bOut]) ctx.destroy(b);
  });

  it('leaves no buffers behind in the ledger', () => {
    expect(ctx.ledger.liveBuffers().map((b) => b.label).sort()).toEqual(['fence', 'fence source', 'uniform arena']);
  });
});
