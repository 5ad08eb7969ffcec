// Words a run's reports share, in the page, the command line and the session's status lines alike.

/**
 * Where a validation pass (its loss, its sample) sits in a run: step 0 is the pass before the first step
 * (eval_on_start), said "before training"; any other step is said as `atStep` words it (each surface has its own:
 * "after step 4", "at step 4", "step 4").
 */
export function passPlace(step: number, atStep: string): string {
  return step === 0 ? 'before training' : atStep;
}

/**
 * A run's validation loss in words, with the one before its first step (eval_on_start) beside it where it made that
 * pass, so the number has something to be read against: "validation loss 3.912 (3.951 before training)". Empty when
 * the run has neither. `loss` writes a loss as the surface does (the page: 4 significant digits; the CLI: 4 decimals).
 */
export function validationLossWords(final: number | null | undefined, before: number | null | undefined, loss: (x: number) => string): string {
  const hasFinal = final !== null && final !== undefined;
  const hasBefore = before !== null && before !== undefined;
  if (hasFinal) return `validation loss ${loss(final)}${hasBefore ? ` (${loss(before)} before training)` : ''}`;
  return hasBefore ? `validation loss ${loss(before)} before training` : '';
}
