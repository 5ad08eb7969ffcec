// A validation pass in as few forward passes as fit the runner. Replicate's default validation_batch_size is 1, and a
// forward pass over one short sequence leaves a GPU mostly idle (a few dozen rows of tokens against thousands of
// threads; with streamed layers every pass also uploads the whole model). The validation loss does not depend on how
// its sequences are laid out: there is no dropout in a validation pass, and each example keeps its own segment id and
// positions, so no token sees another sequence. So the sequences are laid end to end into rows of the runner's row
// length, `rowsPerPass` rows a pass, and each token carries its own validation batch's weight (batches.ts
// validationPasses): one pass adds what a pass per batch added (docs/performance.md, "Packed validation passes").
//
// The rows are first-fit decreasing bin packing (within 11/9 of the fewest rows plus one), found with a tree of the
// rows' room so that a large validation set costs n log n; the rows are then sorted fullest first and taken
// `rowsPerPass` at a time, so a pass's rows have similar lengths. A pass costs its rows × its longest row (× the
// capacity where rows are padded to it: ValidationPassOptions.fixedRowLength), and first fit
// minimises rows, not that: a pass whose sequences cost less laid out again (repack.ts, longest first into the
// least-filled of k ≤ rowsPerPass rows; typically the last pass, its rows filled unevenly) takes that layout.

import { cheapestRows } from './repack.ts';

/** One forward pass of the validation set: its rows (each the indices of its sequences, ascending) and its longest row. */
export interface ValidationPassPlan {
  rows: number[][];
  /** Tokens of its longest row. */
  longestRow: number;
}

export interface ValidationPassOptions {
  /**
   * Every row is padded to `capacity` (a fixed padded length, BatchBuildOptions.padTo): a pass then costs its rows ×
   * capacity, so it is laid out again only into fewer rows, never into more shorter ones.
   */
  fixedRowLength?: boolean;
}

/**
 * The passes for sequences of these lengths, every one ≤ `capacity`. Deterministic: the same lengths give the same
 * passes everywhere.
 */
export function planValidationPasses(lengths: ArrayLike<number>, rowsPerPass: number, capacity: number, o: ValidationPassOptions = {}): ValidationPassPlan[] {
  if (!(Number.isSafeInteger(rowsPerPass) && rowsPerPass >= 1)) throw new RangeError(`planValidationPasses: ${rowsPerPass} rows a pass`);
  const n = lengths.length;
  if (n === 0) return [];
  for (let i = 0; i < n; i++) {
    const l = lengths[i];
    if (!Number.isSafeInteger(l) || l < 0 || l > capacity) throw new RangeError(`planValidationPasses: a length ${l} outside 0..capacity ${capacity}`);
  }
  // Longest first; equal lengths in index order, so ties break the same way on every machine.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => lengths[b] - lengths[a] || a - b);
  // A max-tree over n row slots of their room left: the leftmost slot with room for a sequence is found from the
  // root. A slot never used has the whole capacity, so first fit opens rows in order.
  let size = 1;
  while (size < n) size *= 2;
  const room = new Array<number>(2 * size).fill(0);
  for (let i = 0; i < n; i++) room[size + i] = capacity;
  for (let v = size - 1; v >= 1; v--) room[v] = Math.max(room[2 * v], room[2 * v + 1]);
  const rows: number[][] = [];
  const fill: number[] = [];
  for (const i of order) {
    const l = lengths[i];
    let v = 1;
    while (v < size) v = room[2 * v] >= l ? 2 * v : 2 * v + 1;
    const slot = v - size;
    if (slot === rows.length) {
      rows.push([]);
      fill.push(0);
    }
    rows[slot].push(i);
    fill[slot] += l;
    room[v] -= l;
    for (v >>= 1; v >= 1; v >>= 1) room[v] = Math.max(room[2 * v], room[2 * v + 1]);
  }
  const byFill = rows.map((_, r) => r).sort((a, b) => fill[b] - fill[a] || a - b);
  // What a pass computes: its rows × its longest row, or × capacity where every row is padded to it.
  const cost = (rowCount: number, longestRow: number): number => rowCount * (o.fixedRowLength ? capacity : longestRow);
  const passes: ValidationPassPlan[] = [];
  for (let p = 0; p < byFill.length; p += rowsPerPass) {
    const mine = byFill.slice(p, p + rowsPerPass);
    const pass = { rows: mine.map((r) => rows[r].sort((a, b) => a - b)), longestRow: Math.max(...mine.map((r) => fill[r])) };
    const sequences = pass.rows.flat().sort((a, b) => a - b);
    const own = sequences.map((i) => lengths[i]);
    const again = cheapestRows(own, capacity, rowsPerPass);
    const longest = again === null ? Infinity : Math.max(...again.map((r) => r.reduce((a, j) => a + own[j], 0)));
    if (again !== null && cost(again.length, longest) < cost(pass.rows.length, pass.longestRow)) {
      passes.push({ rows: again.map((r) => r.map((j) => sequences[j])), longestRow: longest });
    } else {
      passes.push(pass);
    }
  }
  return passes;
}
