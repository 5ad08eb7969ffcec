// The learning-rate chart's words (src/ui/lr-chart.ts): what a screen reader hears for the curve.
import { describe, expect, it } from 'vitest';
import { lrCurveLabel, lrRestingLegend } from '../../../src/ui/lr-chart.ts';

describe('lrCurveLabel', () => {
  it('says where the curve starts, peaks and ends', () => {
    expect(lrCurveLabel({ steps: [1, 2, 3, 4], rates: [0, 1e-4, 5e-5, 0] })).toBe('Learning rate by step: 0 at step 1, reaches 1.00e-4 at step 2, 0 at step 4.');
  });

  it('leaves the peak out where it is an end, and says when there is no step', () => {
    expect(lrCurveLabel({ steps: [1, 1000], rates: [2e-4, 2e-4] })).toBe('Learning rate by step: 2.00e-4 at step 1, 2.00e-4 at step 1,000.');
    expect(lrCurveLabel({ steps: [], rates: [] })).toBe('No learning rate: the run has no steps.');
  });
});

// What the legend says while the pointer is off the chart: uPlot's own "—" read as a broken chart.
describe('lrRestingLegend', () => {
  const curve = { steps: [1, 2, 3, 4], rates: [0, 1e-4, 5e-5, 0] };

  it('gives the steps\' range and the peak before a run marks its step', () => {
    expect(lrRestingLegend(curve, null)).toEqual(['1–4', 'peak 1.00e-4']);
    expect(lrRestingLegend({ steps: [1], rates: [2e-4] }, null)).toEqual(['1', 'peak 2.00e-4']);
  });

  it("gives the run's current step and its rate while a run marks one", () => {
    expect(lrRestingLegend(curve, 3)).toEqual(['3 (now)', '5.00e-5']);
    expect(lrRestingLegend(curve, 4)).toEqual(['4 (now)', '0']);
  });

  it('falls back to the range for a step the curve does not hold, and says "—" without steps', () => {
    expect(lrRestingLegend(curve, 9)).toEqual(['1–4', 'peak 1.00e-4']);
    expect(lrRestingLegend({ steps: [], rates: [] }, null)).toEqual(['—', '—']);
  });
});

describe('lrRestingLegend of a long run', () => {
  it('finds the peak of 300,000 steps (a spread of every rate into Math.max overflowed the call stack)', () => {
    const steps = Array.from({ length: 300_000 }, (_, i) => i + 1);
    const rates = steps.map((s) => (s === 7 ? 3e-4 : 1e-4));
    expect(lrRestingLegend({ steps, rates }, null)).toEqual(['1–300,000', 'peak 3.00e-4']);
  });
});
