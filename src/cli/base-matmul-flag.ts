// --base-matmul fp32|int8 (train, check, bench, plan): how the products with the frozen NF4 base weights run
// (GpuContext.baseMatmul; 'int8' is the experimental path of docs/int8.md).

import { BASE_MATMULS, type BaseMatmul } from '../engine/gpu.ts';
import { UsageError } from './command.ts';

export const BASE_MATMUL_HELP = `--base-matmul fp32|int8|int8-mlp   the frozen NF4 base products: fp32 (default), or the experimental
                     int8 path (docs/int8.md) for every projection (int8) or the MLP's three (int8-mlp)`;

/** The choice, 'fp32' when the flag is absent. */
export function parseBaseMatmul(v: string | undefined): BaseMatmul {
  if (v === undefined) return 'fp32';
  if (!(BASE_MATMULS as readonly string[]).includes(v)) throw new UsageError(`--base-matmul must be one of ${BASE_MATMULS.join(', ')}, got ${JSON.stringify(v)}`);
  return v as BaseMatmul;
}
