// --keep-layers N|all (train, plan): how many layers keep their intermediates for the backward (src/run/kept-layers.ts).

import { UsageError } from './command.ts';
import { quote } from '../core/quote.ts';

/** A count of layers, or 'all'; undefined when the flag is absent (the run or the plan decides). */
export function parseKeepLayers(v: string | undefined): number | 'all' | undefined {
  if (v === undefined) return undefined;
  if (v === 'all') return 'all';
  if (!/^\d+$/.test(v)) throw new UsageError(`--keep-layers takes a number of layers or "all", got ${quote(v)}`);
  return Number(v);
}
