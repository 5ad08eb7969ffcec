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
