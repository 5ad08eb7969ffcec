// Finite-value checks shared by the training guards, checkpoints and exports: a NaN or an infinity written into an
// adapter file would poison every later use of it, silently.

/** Index of the first value that is NaN or ±Infinity, or −1 when every value is finite. */
export function firstNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return i;
  return -1;
}
