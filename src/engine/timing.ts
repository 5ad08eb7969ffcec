// Wall-clock timing of GPU work: warm up, then repeat the recorded work until enough time has passed, with a fence
// (a small readback) closing each batch. Per-kernel timestamps are not portable (timestamp-query is optional and
// quantised in browsers), and a fence-bounded batch of identical dispatches measures throughput, which is what we report.

import type { GpuContext } from './gpu.ts';

export interface Timing {
  /** Mean milliseconds per repetition. */
  ms: number;
  reps: number;
}

export interface TimingOptions {
  warmup?: number;
  /** Stop once this much time was measured (default 300 ms). */
  minMs?: number;
  maxReps?: number;
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

export async function timeGpu(ctx: GpuContext, record: () => void, o: TimingOptions = {}): Promise<Timing> {
  for (let i = 0; i < (o.warmup ?? 1); i++) record();
  await ctx.sync();
  const minMs = o.minMs ?? 300;
  const maxReps = o.maxReps ?? 1000;
  let reps = 0;
  let batch = 1;
  const start = now();
  let elapsed = 0;
  while (elapsed < minMs && reps < maxReps) {
    for (let i = 0; i < batch; i++) record();
    await ctx.sync();
    reps += batch;
    elapsed = now() - start;
    // Grow batches so per-batch fence overhead fades on fast GPUs.
    batch = Math.min(batch * 2, maxReps - reps, 64);
  }
  return { ms: elapsed / reps, reps };
}

/** A candidate timed beside its yardstick in alternating rounds (timePaired). */
export interface PairedTiming {
  candidate: Timing;
  yardstick: Timing;
  /**
   * The candidate's rate over the yardstick's (yardstick ms ÷ candidate ms): the median of the rounds' ratios, each
   * from two measurements made one right after the other.
   */
  ratio: number;
  /** Each round's ratio, in the order measured: their spread is the measurement's noise. */
  ratios: number[];
}

export interface PairedOptions {
  /** Milliseconds each side is measured for in all, split evenly among the rounds (default 300). */
  minMs?: number;
  /** Rounds of one yardstick and one candidate measurement (default 3). */
  rounds?: number;
}

/** Which side a measurement is of, in pairRounds. */
export type PairedSide = 'yardstick' | 'candidate';

/**
 * The rounds of a paired measurement, whatever measures: round i measures both sides, the yardstick first in even
 * rounds and the candidate first in odd ones (so a clock that drifts one way through the rounds favours neither), and
 * the ratio is the median of the rounds' ratios (one round's disturbance cannot move it). Each side's Timing is its
 * mean over all rounds' repetitions.
 */
export async function pairRounds(rounds: number, measure: (side: PairedSide, round: number) => Promise<Timing>): Promise<PairedTiming> {
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`paired timing needs a whole number of rounds ≥ 1, got ${rounds}`);
  const all: Record<PairedSide, Timing[]> = { yardstick: [], candidate: [] };
  const ratios: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const order: PairedSide[] = i % 2 === 0 ? ['yardstick', 'candidate'] : ['candidate', 'yardstick'];
    const got: Partial<Record<PairedSide, Timing>> = {};
    for (const side of order) {
      const t = await measure(side, i);
      got[side] = t;
      all[side].push(t);
    }
    ratios.push(got.yardstick!.ms / got.candidate!.ms);
  }
  const pooled = (ts: Timing[]): Timing => {
    const reps = ts.reduce((n, t) => n + t.reps, 0);
    return { ms: ts.reduce((s, t) => s + t.ms * t.reps, 0) / reps, reps };
  };
  const sorted = [...ratios].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const ratio = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { candidate: pooled(all.candidate), yardstick: pooled(all.yardstick), ratio, ratios };
}

/**
 * A paired timing's ratio and rounds as a ratio of rates where the two sides do different work: the candidate's
 * FLOP/s over the yardstick's (each round's time ratio times candidateFlop / yardstickFlop; the median scales alike).
 */
export function rateRatio(p: PairedTiming, candidateFlop: number, yardstickFlop: number): { ratio: number; ratios: number[] } {
  const scale = candidateFlop / yardstickFlop;
  return { ratio: p.ratio * scale, ratios: p.ratios.map((r) => r * scale) };
}

/**
 * A candidate's speed against a yardstick's, measured in alternating rounds in the same process: a ratio from one
 * yardstick measurement made minutes earlier carries whatever the GPU's clocks did in between (on the H200 the same
 * kernel at one shape measured 35.2 TFLOP/s at the start of `bench sweep` and 38.3 in `bench matmul`, which moved
 * every ratio of that sweep by 9 %). Each side runs minMs in all (default 300), in `rounds` pieces (default 3).
 */
export function timePaired(ctx: GpuContext, yardstick: () => void, candidate: () => void, o: PairedOptions = {}): Promise<PairedTiming> {
  const rounds = o.rounds ?? 3;
  const minMs = (o.minMs ?? 300) / rounds;
  return pairRounds(rounds, (side) => timeGpu(ctx, side === 'yardstick' ? yardstick : candidate, { minMs }));
}
