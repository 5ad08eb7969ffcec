// GpuContext.sync from callers that wait at once: the session lets a model load quantise its new weights while a
// validation loss or a generation still runs on the old ones, and each waits for the GPU on its own.
import { describe, expect, it } from 'vitest';
import { gpuContext } from './context.ts';

describe('waiting for the GPU from several callers at once', () => {
  it('each sync gets a fence of its own; the fences are reused, and reads see the work before them', async () => {
    const ctx = await gpuContext();
    await ctx.sync();
    const before = ctx.ledger.snapshot().currentBytes;
    const buffer = ctx.upload('sync test', new Float32Array([1, 2, 3, 4]), 'scratch');
    try {
      // Three at once: the second and third copied into a fence pending its map ('used in submit while pending map').
      await Promise.all([ctx.sync(), ctx.sync(), ctx.sync()]);
      await ctx.sync(); // a GPU error of the three is reported here at the latest
      const grown = ctx.ledger.snapshot().currentBytes - before;
      // Three at once again: no further fence.
      ctx.write(buffer, new Float32Array([5, 6, 7, 8]));
      const [, values] = await Promise.all([ctx.sync(), ctx.readF32(buffer), ctx.sync(), ctx.sync()]);
      await ctx.sync();
      expect(ctx.ledger.snapshot().currentBytes - before).toBe(grown);
      expect([...values]).toEqual([5, 6, 7, 8]);
      expect(grown).toBe(16 + 2 * 4); // the test's buffer and two more fences
    } finally {
      ctx.ledger.destroy(buffer);
    }
  });
});
