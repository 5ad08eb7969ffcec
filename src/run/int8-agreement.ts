// The accuracy gates of the experimental int8 base path (docs/int8.md): the same forward and backward run with the
// NF4 base products in fp32 and in int8, and the two compared where training feels the difference: the loss, and the
// LoRA gradients (the only gradients QLoRA uses). The path may be turned on by default only where both gates hold.

import type { BaseMatmul, GpuContext } from '../engine/gpu.ts';

/** The int8 choices the gates judge. */
export type Int8Choice = Exclude<BaseMatmul, 'fp32'>;
export const INT8_CHOICES: readonly Int8Choice[] = ['int8', 'int8-mlp'];

export const INT8_GATES = { lossRelError: 1e-3, gradCosine: 0.999 } as const;

/** One side of the comparison: a loss and named gradient tensors. */
export interface PassResult {
  loss: number;
  grads: ReadonlyMap<string, Float32Array>;
}

export interface Int8Agreement {
  ok: boolean;
  gates: typeof INT8_GATES;
  loss: { fp32: number; int8: number; relError: number };
  /** Cosine between the int8 and fp32 gradients: the worst tensor, and all tensors as one vector. */
  gradCosine: { worst: number; where: string; all: number; tensors: number };
}

/** |a − b| / |b|, NaN counted as an infinite difference. */
export function relDiff(a: number, b: number): number {
  const d = Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
  return Number.isNaN(d) ? Infinity : d;
}

/** The three sums a cosine is made of: a·b, a·a, b·b. */
interface DotSums {
  ab: number;
  aa: number;
  bb: number;
}

function dotSums(a: ArrayLike<number>, b: ArrayLike<number>): DotSums {
  if (a.length !== b.length) throw new Error(`lengths ${a.length} and ${b.length} differ`);
  const s: DotSums = { ab: 0, aa: 0, bb: 0 };
  for (let i = 0; i < a.length; i++) {
    s.ab += a[i] * b[i];
    s.aa += a[i] * a[i];
    s.bb += b[i] * b[i];
  }
  return s;
}

/** The cosine of summed vectors; 1 when both are zero (nothing to disagree on), 0 when only one is. */
function cosineOf({ ab, aa, bb }: DotSums): number {
  if (aa === 0 && bb === 0) return 1;
  if (aa === 0 || bb === 0) return 0;
  return ab / Math.sqrt(aa * bb);
}

/** cos(a, b); 1 when both are zero (nothing to disagree on), 0 when only one is. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  return cosineOf(dotSums(a, b));
}

/** The gates applied to an fp32 pass and an int8 pass of the same inputs. NaN anywhere fails them. */
export function compareInt8(fp32: PassResult, int8: PassResult): Int8Agreement {
  const relError = relDiff(int8.loss, fp32.loss);
  let worst = 1;
  let where = '';
  const total: DotSums = { ab: 0, aa: 0, bb: 0 };
  for (const [name, g] of fp32.grads) {
    const h = int8.grads.get(name);
    if (!h) throw new Error(`the int8 pass has no gradient ${name}`);
    const s = dotSums(h, g);
    const c = cosineOf(s);
    if (!(c >= worst)) {
      worst = Number.isNaN(c) ? -Infinity : c;
      where = name;
    }
    total.ab += s.ab;
    total.aa += s.aa;
    total.bb += s.bb;
  }
  const all = cosineOf(total);
  const ok = relError <= INT8_GATES.lossRelError && worst >= INT8_GATES.gradCosine && all >= INT8_GATES.gradCosine;
  return { ok, gates: INT8_GATES, loss: { fp32: fp32.loss, int8: int8.loss, relError }, gradCosine: { worst, where, all, tensors: fp32.grads.size } };
}

/**
 * Runs `pass` (a forward and backward that leaves a loss and gradients) with the base products as `choice` says and
 * returns what `read` makes of it; the context's choice is restored afterwards, whatever happens.
 */
export async function withBaseMatmul<T>(ctx: GpuContext, choice: BaseMatmul, pass: () => void, read: () => Promise<T>): Promise<T> {
  const before = ctx.baseMatmul;
  ctx.baseMatmul = choice;
  try {
    pass();
    return await read();
  } finally {
    ctx.baseMatmul = before;
  }
}
