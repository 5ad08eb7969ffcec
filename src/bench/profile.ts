// `finetune bench profile`: where one Mistral-7B-shaped layer's training work (forward, recomputation, backward, as
// `bench layer` runs it) spends its GPU time, kernel by kernel, from timestamp queries around each dispatch
// (GpuContext.profileDispatches). Issue #9's shares (attention ≤ 15 % of a layer, LoRA ≤ 3 %) were estimates from
// kernels timed alone; this measures them inside the layer. One line per kernel variant, then a summary by part, with
// the unprofiled wall-clock time of the same layer beside the profiled sum.

import type { GpuContext } from '../engine/gpu.ts';
import type { ProfiledDispatch } from '../engine/profiler.ts';
import type { KernelSpec } from '../engine/registry.ts';
import { timeGpu } from '../engine/timing.ts';
import type { Dims } from '../engine/mistral/dims.ts';
import { benchLayerRunner } from './layer.ts';

/** What a layer's kernels are for. */
export type ProfilePart = 'base products' | 'attention' | 'LoRA products' | 'other';
export const PROFILE_PARTS: readonly ProfilePart[] = ['base products', 'attention', 'LoRA products', 'other'];

/**
 * The part a kernel of the layer bench belongs to. Its base weights are NF4, so the frozen products are the NF4 (and
 * int8) kernels, LoRA's low-rank terms riding on them included; its f32 GEMMs are LoRA's products on the general
 * kernels (no dense base weight there); the skinny kernel and the standalone dropout are LoRA's too.
 */
export function profilePart(spec: KernelSpec): ProfilePart {
  const { shader } = spec;
  if (shader === 'nf4_matmul' || shader.startsWith('int8_') || (shader === 'matmul_tiled' && spec.defines?.NF4)) return 'base products';
  if (shader === 'attention' || shader === 'attention_flash') return 'attention';
  if (shader === 'matmul_skinny' || shader === 'matmul' || shader === 'matmul_tiled' || shader === 'lora') return 'LoRA products';
  return 'other';
}

/** A kernel variant's name in the profile: shader, entry point, and the defines that are on. */
export function profileKernel(spec: KernelSpec): string {
  const on = Object.entries(spec.defines ?? {})
    .filter(([, v]) => v)
    .map(([k]) => k)
    .sort();
  return `${spec.shader}${spec.entry ? `:${spec.entry}` : ''}${on.length ? ` [${on.join(' ')}]` : ''}`;
}

export interface ProfileKernelLine {
  bench: 'profile';
  T: number;
  part: ProfilePart;
  kernel: string;
  dispatches: number;
  ms: number;
  /** Of the profiled sum. */
  share: number;
}

export interface ProfileSummaryLine {
  bench: 'profile-summary';
  T: number;
  C: number;
  I: number;
  dispatches: number;
  /** The sum of the dispatches' GPU times. */
  kernelMs: number;
  /** The same layer's training work timed without the profiler (wall clock, fenced batches). */
  layerMs: number;
  /** Per part: GPU time and its share of the profiled sum. */
  parts: Record<ProfilePart, { ms: number; share: number; dispatches: number }>;
}

/** Groups profiled dispatches into one line per kernel variant (largest first) and a summary by part. */
export function summariseProfile(T: number, d: Pick<Dims, 'C' | 'I'>, dispatches: readonly ProfiledDispatch[], layerMs: number): { kernels: ProfileKernelLine[]; summary: ProfileSummaryLine } {
  const total = dispatches.reduce((a, x) => a + x.ms, 0);
  const share = (ms: number): number => (total > 0 ? ms / total : 0);
  const byKernel = new Map<string, { part: ProfilePart; ms: number; dispatches: number }>();
  const parts = Object.fromEntries(PROFILE_PARTS.map((p) => [p, { ms: 0, share: 0, dispatches: 0 }])) as ProfileSummaryLine['parts'];
  for (const x of dispatches) {
    const part = profilePart(x.spec);
    const name = profileKernel(x.spec);
    const k = byKernel.get(name) ?? { part, ms: 0, dispatches: 0 };
    k.ms += x.ms;
    k.dispatches++;
    byKernel.set(name, k);
    parts[part].ms += x.ms;
    parts[part].dispatches++;
  }
  for (const p of PROFILE_PARTS) parts[p].share = share(parts[p].ms);
  const kernels = [...byKernel.entries()]
    .map(([kernel, k]): ProfileKernelLine => ({ bench: 'profile', T, part: k.part, kernel, dispatches: k.dispatches, ms: k.ms, share: share(k.ms) }))
    .sort((a, b) => b.ms - a.ms);
  return { kernels, summary: { bench: 'profile-summary', T, C: d.C, I: d.I, dispatches: dispatches.length, kernelMs: total, layerMs, parts } };
}

export interface ProfileBenchOptions {
  dims: Omit<Dims, 'L' | 'V'>;
  T: number;
  r?: number;
  minMs?: number;
}

/** Profiles one layer's training work at T tokens (after a warm-up that builds every pipeline). */
export async function benchProfile(ctx: GpuContext, o: ProfileBenchOptions): Promise<{ kernels: ProfileKernelLine[]; summary: ProfileSummaryLine }> {
  const { runner, destroy } = await benchLayerRunner(ctx, o.dims, o.T, o.r ?? 8, false);
  try {
    const wall = await timeGpu(ctx, () => runner.layerTrainingWork(0), { minMs: o.minMs ?? 300, maxReps: 50 });
    const dispatches = await ctx.profileDispatches(() => runner.layerTrainingWork(0));
    return summariseProfile(o.T, o.dims, dispatches, wall.ms);
  } finally {
    destroy();
  }
}
