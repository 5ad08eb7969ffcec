// timeGpu (src/engine/timing.ts) on a scripted clock: each recorded repetition advances a virtual clock by what the
// script says it cost, and the fence (ctx.sync) costs nothing, so every figure below is exact.
import { describe, expect, it } from 'vitest';
import type { GpuContext } from '../../../src/engine/gpu.ts';
import { median, timeGpu, type TimingOptions } from '../../../src/engine/timing.ts';

/** A GPU whose n-th repetition (warm-up included, from 0) takes cost(n, clock) milliseconds. */
function scripted(cost: (n: number, clock: number) => number) {
  let clock = 0;
  let n = 0;
  const batches: number[] = []; // repetitions between fences
  let pending = 0;
  const ctx = {
    sync: async () => {
      batches.push(pending);
      pending = 0;
    },
  } as unknown as GpuContext;
  const record = (): void => {
    clock += cost(n++, clock);
    pending++;
  };
  const time = (o: TimingOptions = {}) => timeGpu(ctx, record, { ...o, now: () => clock });
  return { time, batches, reps: () => n };
}

describe('timeGpu', () => {
  it('gives the median batch, so one batch something else slowed does not move it', async () => {
    // 2 ms a repetition. After the warm-up (repetition 0) the batches grow 1, 2 … 16 (under 50 ms each), then settle
    // at 32 (64 ms): repetitions 32–63, 64–95, … Every repetition of the second settled batch takes 20 ms.
    const gpu = scripted((n) => (n >= 64 && n < 96 ? 20 : 2));
    const t = await gpu.time({ minMs: 300 });
    expect(gpu.batches.slice(1)).toEqual([1, 2, 4, 8, 16, 32, 32, 32]);
    expect(t).toEqual({ ms: 2, reps: 127, range: [2, 20], batches: 3 });
    // The mean of the timed repetitions (the figure before) would have been 2 + 18 · 32 / 127 ≈ 6.5.
  });

  it('doubles the batch while a batch is short, and leaves the growing batches out of the median', async () => {
    // minMs 300 and 3 batches: the batch grows while it takes under 50 ms. The first 7 timed repetitions (batches of
    // 1, 2 and 4 after the one warm-up) are slow, as on a GPU whose clocks are still rising.
    const gpu = scripted((n) => (n >= 1 && n <= 7 ? 5 : 1));
    const t = await gpu.time({ minMs: 300 });
    expect(gpu.batches.slice(1, 8)).toEqual([1, 2, 4, 8, 16, 32, 64]);
    expect(t.ms).toBe(1);
    expect(t.batches).toBe(gpu.batches.length - 7);
    expect(t.reps).toBe(gpu.reps() - 1);
  });

  it('takes at least minBatches batches, even of slow work that passes minMs in one', async () => {
    const gpu = scripted(() => 400);
    const t = await gpu.time({ minMs: 300 });
    expect(t).toEqual({ ms: 400, reps: 3, range: [400, 400], batches: 3 });
  });

  it('stops at maxReps, in a growing batch too', async () => {
    const gpu = scripted(() => 1);
    const t = await gpu.time({ minMs: 1000, maxReps: 5 });
    expect(t.reps).toBe(5);
    expect(gpu.batches.slice(1)).toEqual([1, 2, 2]);
    // The batches never settled: the last one's figure is what there is.
    expect(t).toMatchObject({ ms: 1, batches: 1 });
  });

  it('warms up for warmupMs before timing, so a GPU coming up from idle clocks is not measured slow', async () => {
    // Work costs 8 ms a repetition for the first 100 ms of the GPU's time, then 1 ms.
    const ramp = (_n: number, clock: number): number => (clock < 100 ? 8 : 1);
    const cold = await scripted(ramp).time({ minMs: 30 });
    expect(cold.ms).toBeGreaterThan(1);
    const warm = await scripted(ramp).time({ minMs: 30, warmupMs: 100 });
    expect(warm.ms).toBe(1);
  });

  it('refuses maxReps below 1', async () => {
    await expect(scripted(() => 1).time({ maxReps: 0 })).rejects.toThrow(/maxReps ≥ 1/);
  });
});

describe('median', () => {
  it('takes the middle value, or the mean of the middle two, and refuses nothing', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow(/nothing/);
  });
});
