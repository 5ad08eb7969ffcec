// Padding-free micro-batches: a micro-batch's sequences laid end to end in as few rows as fit, so the GPU computes
// fewer padding tokens. A micro-batch of B sequences padded to its longest costs B × longest tokens in every product;
// the same sequences in B' ≤ B rows of at most `capacity` tokens cost B' × (the longest row). The sequences keep their
// segments (each example its own segment id, positions from 0), so no token attends across them, and a micro-batch's
// loss (the mean over its counted tokens) and gradients are the padded layout's up to rounding (docs/performance.md,
// "Padding-free micro-batches").
//
// Choosing the rows is makespan scheduling (NP-hard in general, tiny here: a micro-batch holds a few sequences): for
// each row count k, longest-first assignment to the least-filled row (LPT, within 4/3 of the best longest row), and the
// k whose rows cost least. k = B puts every sequence alone, the padded layout, so the result never costs more than it.
// On a tie the layout with more rows wins: it is closer to the padded one, and long rows of many short segments make
// the attention kernels look at (and skip) more tiles for nothing.

import { sequenceLength, type Sequence } from './pack.ts';

/**
 * The rows for sequences of these lengths (in micro-batch order) under a row capacity ≥ every length: each row the
 * indices of its sequences, ascending, the rows ordered by their first index. Deterministic: the same lengths give the
 * same rows everywhere (a resumed run must build the batches the interrupted one built).
 */
export function repackRows(lengths: readonly number[], capacity: number): number[][] {
  // k = n always fits (every length ≤ capacity), so there is an answer.
  return cheapestRows(lengths, capacity, lengths.length) as number[][];
}

/**
 * repackRows with at most `maxRows` rows (a validation pass's rows, validation-passes.ts): the cheapest row count up to
 * it, or null when longest-first fits none (the caller keeps its own rows).
 */
export function cheapestRows(lengths: readonly number[], capacity: number, maxRows: number): number[][] | null {
  const n = lengths.length;
  if (n === 0) return [];
  for (const l of lengths) {
    if (!Number.isSafeInteger(l) || l < 0 || l > capacity) throw new RangeError(`repackRows: a length ${l} outside 0..capacity ${capacity}`);
  }
  const total = lengths.reduce((a, b) => a + b, 0);
  const longestSequence = Math.max(...lengths);
  // Equal lengths cost n × the length in any layout that fits, so the tie rule keeps every sequence alone; said at once,
  // since the bound below never cuts that search short (5,000 equal sequences took seconds).
  if (maxRows >= n && total === n * longestSequence) return lengths.map((_, i) => [i]);
  // Longest first; equal lengths in micro-batch order, so ties break the same way on every machine.
  const byLength = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  let best: { cost: number; rows: number[][] } | null = null;
  for (let k = Math.max(1, Math.ceil(total / Math.max(capacity, 1))); k <= Math.min(n, maxRows); k++) {
    // k rows cost at least k × the longest sequence: past the best cost, no larger k can win.
    if (best !== null && k * longestSequence > best.cost) break;
    const rows = longestFirst(lengths, byLength, k);
    const longest = Math.max(...rows.map((r) => r.reduce((a, i) => a + lengths[i], 0)));
    if (longest > capacity) continue;
    const cost = k * longest;
    if (best === null || cost <= best.cost) best = { cost, rows };
  }
  if (best === null) return null;
  const rows = best.rows.filter((r) => r.length > 0).map((r) => r.sort((a, b) => a - b));
  return rows.sort((a, b) => a[0] - b[0]);
}

/**
 * LPT: the sequences in `order` (longest first), each into the least-filled of k rows (the lowest row on a tie). A
 * binary heap of the rows by (fill, row), so a large validation batch costs n log k per k, not n · k.
 */
function longestFirst(lengths: readonly number[], order: readonly number[], k: number): number[][] {
  const rows: number[][] = Array.from({ length: k }, () => []);
  const fill = new Array<number>(k).fill(0);
  const heap = Array.from({ length: k }, (_, r) => r); // all 0: in row order, a valid heap
  const below = (a: number, b: number): boolean => fill[a] < fill[b] || (fill[a] === fill[b] && a < b);
  for (const i of order) {
    const r = heap[0];
    rows[r].push(i);
    fill[r] += lengths[i];
    // Sift the grown row down.
    let at = 0;
    for (;;) {
      const left = 2 * at + 1;
      if (left >= k) break;
      const child = left + 1 < k && below(heap[left + 1], heap[left]) ? left + 1 : left;
      if (!below(heap[child], heap[at])) break;
      [heap[at], heap[child]] = [heap[child], heap[at]];
      at = child;
    }
  }
  return rows;
}

/** The sequences of one micro-batch in repackRows' rows: each row its sequences' segments, concatenated. */
export function repackSequences(seqs: readonly Sequence[], capacity: number): Sequence[] {
  return repackRows(seqs.map(sequenceLength), capacity).map((row) => row.flatMap((i) => seqs[i]));
}
