// Paired timing (src/engine/timing.ts, pairRounds): a candidate against its yardstick in alternating rounds, the
// ratio the median of the rounds', so neither a drifting clock nor one disturbed round moves it much.
import { describe, expect, it } from 'vitest';
import { pairRounds, rateRatio, type PairedSide, type Timing } from '../../../src/engine/timing.ts';

/** A measurement's Timing as timeGpu gives it, for scripted rounds. */
const timing = (ms: number, reps: number): Timing => ({ ms, reps, range: [ms, ms], batches: 1 });

describe('pairRounds', () => {
  it('alternates which side goes first, round by round', async () => {
    const calls: string[] = [];
    await pairRounds(4, async (side, round) => {
      calls.push(`${round}:${side}`);
      return timing(1, 1);
    });
    expect(calls).toEqual(['0:yardstick', '0:candidate', '1:candidate', '1:yardstick', '2:yardstick', '2:candidate', '3:candidate', '3:yardstick']);
  });

  it('gives the median of the rounds’ ratios, not the ratio of the means: one disturbed round does not move it', async () => {
    // The candidate takes 2 ms against the yardstick's 3 (1.5× as fast), except in round 1 where something else ran
    // and the yardstick took 30.
    const ms: Record<PairedSide, number[]> = { yardstick: [3, 30, 3], candidate: [2, 2, 2] };
    const p = await pairRounds(3, async (side, round) => timing(ms[side][round], 10));
    expect(p.ratios).toEqual([1.5, 15, 1.5]);
    expect(p.ratio).toBe(1.5);
    // Each side's figure is its rounds' median (the disturbed round's 30 does not show), over all their repetitions.
    expect(p.yardstick).toEqual({ ms: 3, reps: 30, range: [3, 30], batches: 3 });
    expect(p.candidate).toEqual({ ms: 2, reps: 30, range: [2, 2], batches: 3 });
  });

  it('with an even number of rounds takes the mean of the middle two, for the ratio and each side', async () => {
    const ms: Record<PairedSide, number[]> = { yardstick: [2, 4], candidate: [1, 1] };
    const reps: Record<PairedSide, number[]> = { yardstick: [1, 3], candidate: [2, 2] };
    const p = await pairRounds(2, async (side, round): Promise<Timing> => timing(ms[side][round], reps[side][round]));
    expect(p.ratios).toEqual([2, 4]);
    expect(p.ratio).toBe(3);
    expect(p.yardstick).toEqual({ ms: 3, reps: 4, range: [2, 4], batches: 2 });
  });

  it('cancels a clock that slows steadily through the measurement, to within one step of it', async () => {
    // Every measurement takes 1 % longer than the one before; the candidate is as fast as the yardstick.
    let n = 0;
    const p = await pairRounds(3, async () => timing(1 + 0.01 * n++, 1));
    // Within one step of the drift (a yardstick measured once, six measurements before the candidate, would be off 6 %).
    expect(Math.abs(p.ratio - 1)).toBeLessThan(0.011);
  });

  it('refuses no rounds', async () => {
    await expect(pairRounds(0, async () => timing(1, 1))).rejects.toThrow(/rounds ≥ 1/);
  });
});

describe('rateRatio', () => {
  it('turns time ratios into FLOP-rate ratios where the two sides do different work', async () => {
    // The candidate does 3 GFLOP in 2 ms, the yardstick 1 GFLOP in 1 ms: 1.5 against 1 TFLOP/s.
    const p = await pairRounds(3, async (side) => timing(side === 'yardstick' ? 1 : 2, 1));
    expect(p.ratio).toBe(0.5);
    expect(rateRatio(p, 3e9, 1e9)).toEqual({ ratio: 1.5, ratios: [1.5, 1.5, 1.5] });
  });
});
