// The learning-rate chart's words (src/ui/lr-chart.ts): what a screen reader hears for the curve.
import { describe, expect, it } from 'vitest';
import { lrCurveLabel } from '../../../src/ui/lr-chart.ts';

describe('lrCurveLabel', () => {
  it('says where the curve starts, peaks and ends', () => {
    expect(lrCurveLabel({ steps: [1, 2, 3, 4], rates: [0, 1e-4, 5e-5, 0] })).toBe('Learning rate by step: 0 at step 1, reaches 1.00e-4 at step 2, 0 at step 4.');
  });

  it('leaves the peak out where it is an end, and says when there is no step', () => {
    expect(lrCurveLabel({ steps: [1, 1000], rates: [2e-4, 2e-4] })).toBe('Learning rate by step: 2.00e-4 at step 1, 2.00e-4 at step 1,000.');
    expect(lrCurveLabel({ steps: [], rates: [] })).toBe('No learning rate: the run has no steps.');
  });
});
