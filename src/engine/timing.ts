// Wall-clock timing of GPU work: warm up, then repeat the recorded work until enough time has passed, with a fence
// (a small readback) closing each batch. Per-kernel timestamps are not portable (timestamp-query is optional and
// quantised in browsers), and a fence-bounded batch of identical dispatches measures throughput, which is what we report:
// the median batch, so that whatever else the GPU did during one batch does not become the figure.

import type { GpuContext } from './gpu.ts';

export interface Timing {
  /**
   * Milliseconds per repetition: the median over the measured batches of each batch's time over its repetitions, so
   * a batch that something else on the GPU slowed (on the H200 of 2026-12-04 run c single measurements ran 2–20× their
   * neighbours) cannot move it; the mean is what it was before 2026-12-04 (late).
   */
  ms: number;
  /** Repetitions measured, in all batches (the warm-up not counted). */
  reps: number;
  /** Per-repetition milliseconds of the fastest and the slowest batch the median is taken over. */
  range: [number, number];
  /** Batches the median is taken over. */
  batches: number;
}

export interface TimingOptions {
  /** Repetitions run before anything is timed (default 1): pipelines compiled, buffers touched. */
  warmup?: number;
  /**
   * Go on warming up until this much time has passed (default 0). A GPU left idle while the host prepared the next
   * shape's data runs at low clocks for a while after: on the H200 (2026-12-04 run c) the first product timed at each
   * new shape of `bench matmul` ran at 4–7 TFLOP/s, the same product a second later at 38.
   */
  warmupMs?: number;
  /** Stop once this much time was measured (default 300 ms) and at least minBatches batches of the final size. */
  minMs?: number;
  maxReps?: number;
  /** Batches of the final size to take the median over, at least (default 3; fewer only where maxReps runs out). */
  minBatches?: number;
  /** The clock, in milliseconds (tests script it; default performance.now). */
  now?: () => number;
}

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/**
 * A benchmark's timing options: minMs of measurement after 100 ms of warm-up on the work itself (minMs where that is
 * shorter: tests time tiny work on SwiftShader), for a measurement that follows host work (a new shape's data made, a
 * readback checked). For timeGpu and timePaired alike.
 */
export function benchTiming(minMs: number): { minMs: number; warmupMs: number } {
  return { minMs, warmupMs: Math.min(100, minMs) };
}

/** The most repetitions one batch (one fence) holds. */
const MAX_BATCH = 64;

/** The median of a non-empty list (the mean of the middle two where its length is even). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of nothing');
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs `record` `reps` times, then on until `ms` milliseconds have passed, fenced (TimingOptions.warmup, warmupMs). */
async function warmUp(ctx: GpuContext, record: () => void, reps: number, ms: number, clock: () => number): Promise<void> {
  for (let i = 0; i < reps; i++) record();
  await ctx.sync();
  const start = clock();
  while (clock() - start < ms) {
    record();
    await ctx.sync();
  }
}

/**
 * Times `record` in fenced batches. The batch size doubles (up to 64) while a batch takes under half of minMs /
 * minBatches, so the fence's cost fades on fast work; batches of the size it settles on are then repeated until
 * minMs has passed and there are minBatches of them, and the figure is their median per repetition. The growing
 * batches are not in the median: a smaller batch carries more of the fence's cost per repetition.
 */
export async function timeGpu(ctx: GpuContext, record: () => void, o: TimingOptions = {}): Promise<Timing> {
  const clock = o.now ?? now;
  await warmUp(ctx, record, o.warmup ?? 1, o.warmupMs ?? 0, clock);
  const minMs = o.minMs ?? 300;
  const maxReps = o.maxReps ?? 1000;
  const minBatches = o.minBatches ?? 3;
  if (!(Number.isInteger(maxReps) && maxReps >= 1)) throw new Error(`timing needs maxReps ≥ 1, got ${maxReps}`);
  const growWhileUnder = minMs / minBatches / 2;
  let batch = 1;
  let growing = true;
  let reps = 0;
  let elapsed = 0;
  let last = 0; // the last batch's milliseconds per repetition, whatever its size
  const settled: number[] = []; // per-repetition milliseconds of each batch of the settled size
  while (reps < maxReps) {
    const n = Math.min(batch, maxReps - reps);
    const start = clock();
    for (let i = 0; i < n; i++) record();
    await ctx.sync();
    const ms = clock() - start;
    reps += n;
    elapsed += ms;
    last = ms / n;
    if (growing && ms < growWhileUnder && batch < MAX_BATCH) {
      batch = Math.min(batch * 2, MAX_BATCH);
      continue;
    }
    growing = false;
    settled.push(last);
    if (elapsed >= minMs && settled.length >= minBatches) break;
  }
  // maxReps ran out while the batches still grew: the last one is all there is.
  const samples = settled.length > 0 ? settled : [last];
  return { ms: median(samples), reps, range: [Math.min(...samples), Math.max(...samples)], batches: samples.length };
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
  /** The yardstick's warm-up before the first round, in milliseconds (TimingOptions.warmupMs; default 0). */
  warmupMs?: number;
}

/** Which side a measurement is of, in pairRounds. */
export type PairedSide = 'yardstick' | 'candidate';

/**
 * The rounds of a paired measurement, whatever measures: round i measures both sides, the yardstick first in even
 * rounds and the candidate first in odd ones (so a clock that drifts one way through the rounds favours neither), and
 * the ratio is the median of the rounds' ratios (one round's disturbance cannot move it). Each side's Timing is the
 * median of its rounds' figures, over all their repetitions and batches.
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
  const pooled = (ts: Timing[]): Timing => ({
    ms: median(ts.map((t) => t.ms)),
    reps: ts.reduce((n, t) => n + t.reps, 0),
    range: [Math.min(...ts.map((t) => t.range[0])), Math.max(...ts.map((t) => t.range[1]))],
    batches: ts.reduce((n, t) => n + t.batches, 0),
  });
  return { candidate: pooled(all.candidate), yardstick: pooled(all.yardstick), ratio: median(ratios), ratios };
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
 * every ratio of that sweep by 9 %). Each side runs minMs in all (default 300), in `rounds` pieces (default 3), each
 * a timeGpu median over its batches.
 */
export function timePaired(ctx: GpuContext, yardstick: () => void, candidate: () => void, o: PairedOptions = {}): Promise<PairedTiming> {
  const rounds = o.rounds ?? 3;
  const minMs = (o.minMs ?? 300) / rounds;
  return pairRounds(rounds, (side, round) =>
    timeGpu(ctx, side === 'yardstick' ? yardstick : candidate, { minMs, warmupMs: round === 0 && side === 'yardstick' ? o.warmupMs : 0 }),
  );
}
