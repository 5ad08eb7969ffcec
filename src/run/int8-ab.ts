// The loss-curve A/B of the experimental int8 base path (docs/int8.md): the same run (model, data, hyperparameters,
// seed) trained twice on one loaded model, the NF4 base products in fp32 then in int8, step losses side by side. The
// int8 run's first step also probes every NF4 product (GpuContext.int8Probe): its error against fp32 on the
// activations and gradients a real model produces, by projection.

import type { GpuContext, Int8ProbeRecord } from '../engine/gpu.ts';
import { relDiff, type Int8Choice } from './int8-agreement.ts';
import { relFrobenius } from '../engine/reference/int8.ts';
import type { FinetuneSession, TrainEvent } from './session.ts';

export interface AbStep {
  bench: 'int8-ab';
  step: number;
  fp32: number;
  int8: number;
  /** |int8 − fp32| / |fp32|. */
  relDiff: number;
}

/** The per-kernel error of the int8 path on a real run's tensors, by product kind and projection. */
export interface ProbeSummary {
  bench: 'int8-probe';
  kind: Int8ProbeRecord['kind'];
  /** The projection (q_proj, …, down_proj), all layers together. */
  projection: string;
  products: number;
  /** ‖int8 − fp32‖ / ‖fp32‖: the median and worst product (a non-finite output counts as infinite). */
  medianRelError: number;
  worstRelError: number;
  worstWeight: string;
}

export interface AbSummary {
  bench: 'int8-ab-summary';
  choice: Int8Choice;
  steps: number;
  maxRelDiff: number;
  meanRelDiff: number;
  /** The mean loss over the last quarter of the steps (at least one), each way, and their relative difference. */
  tailFp32: number;
  tailInt8: number;
  tailRelDiff: number;
  finalValLoss: { fp32: number | null; int8: number | null };
}

/** Reads back and frees every probe record, and summarises them per kind and projection. */
export async function summarizeProbe(ctx: GpuContext, records: readonly Int8ProbeRecord[]): Promise<ProbeSummary[]> {
  const groups = new Map<string, { kind: Int8ProbeRecord['kind']; projection: string; errors: { e: number; weight: string }[] }>();
  for (const r of records) {
    const raw = relFrobenius(await ctx.readF32(r.int8, 0, r.count), await ctx.readF32(r.fp32, 0, r.count));
    ctx.destroy(r.int8);
    ctx.destroy(r.fp32);
    const e = Number.isNaN(raw) ? Infinity : raw;
    const projection = /(\w+_proj)(?:\.weight)?$/.exec(r.weight)?.[1] ?? r.weight;
    const key = `${r.kind} ${projection}`;
    const g = groups.get(key) ?? { kind: r.kind, projection, errors: [] };
    g.errors.push({ e, weight: r.weight });
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => {
    const sorted = [...g.errors].sort((a, b) => a.e - b.e);
    const worst = sorted[sorted.length - 1];
    return {
      bench: 'int8-probe',
      kind: g.kind,
      projection: g.projection,
      products: sorted.length,
      medianRelError: sorted[Math.floor((sorted.length - 1) / 2)].e,
      worstRelError: worst.e,
      worstWeight: worst.weight,
    };
  });
}

/** Step-by-step comparison of two loss curves of the same length. */
export function compareCurves(fp32: readonly number[], int8: readonly number[], valLoss: AbSummary['finalValLoss'], choice: Int8Choice = 'int8'): { steps: AbStep[]; summary: AbSummary } {
  if (fp32.length !== int8.length) throw new Error(`the runs made ${fp32.length} and ${int8.length} steps`);
  const steps = fp32.map((f, i): AbStep => ({ bench: 'int8-ab', step: i + 1, fp32: f, int8: int8[i], relDiff: relDiff(int8[i], f) }));
  const tail = Math.max(1, Math.floor(steps.length / 4));
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const tailFp32 = mean(fp32.slice(-tail));
  const tailInt8 = mean(int8.slice(-tail));
  return {
    steps,
    summary: {
      bench: 'int8-ab-summary',
      choice,
      steps: steps.length,
      maxRelDiff: steps.reduce((m, s) => Math.max(m, s.relDiff), 0),
      meanRelDiff: mean(steps.map((s) => s.relDiff)),
      tailFp32,
      tailInt8,
      tailRelDiff: relDiff(tailInt8, tailFp32),
      finalValLoss: valLoss,
    },
  };
}

export interface AbFiles {
  train: Blob;
  trainName: string;
  validation: Blob | null;
  validationName: string | null;
}

/**
 * Trains the loaded (NF4) model twice with the same hyperparameters and data, fp32 then as `choice` says, and compares
 * the loss curves; the int8 run's first step is probed. The context's choice is restored afterwards.
 */
export async function int8LossAB(
  ctx: GpuContext,
  session: FinetuneSession,
  hp: Readonly<Record<string, unknown>>,
  files: AbFiles,
  choice: Int8Choice = 'int8',
  onStatus: (text: string) => void = () => {},
): Promise<{ steps: AbStep[]; summary: AbSummary; probe: ProbeSummary[] }> {
  const records: Int8ProbeRecord[] = [];
  const curves: Record<'fp32' | 'int8', number[]> = { fp32: [], int8: [] };
  const val: AbSummary['finalValLoss'] = { fp32: null, int8: null };
  try {
    for (const way of ['fp32', 'int8'] as const) {
      // Probe the int8 run's first step only: every product of one forward and backward, then off.
      ctx.int8Probe = way === 'int8' ? (r) => records.push(r) : null;
      const onEvent = (e: TrainEvent): void => {
        if (e.type === 'step') {
          curves[way].push(e.loss);
          ctx.int8Probe = null;
          onStatus(`${way}: step ${e.step} of ${e.totalSteps}, loss ${e.loss.toFixed(4)}`);
        } else if (e.type === 'skipped') {
          curves[way].push(Number.NaN);
          ctx.int8Probe = null;
        }
      };
      // The run's own choice of base products (a run sets the context's for its length and restores it after).
      const result = await session.train(hp, files, onEvent, { baseMatmul: way === 'fp32' ? 'fp32' : choice });
      val[way] = result.finalValLoss;
    }
  } finally {
    ctx.int8Probe = null;
  }
  const { steps, summary } = compareCurves(curves.fp32, curves.int8, val, choice);
  return { steps, summary, probe: await summarizeProbe(ctx, records) };
}
