// The loss chart's text alternative: what a screen reader says for the canvas, as points arrive. Pure, so the odd
// cases (nothing yet, one point, validation at some steps only, a loss that is not a number) are checked here.
import { describe, expect, it } from 'vitest';
import { lossChartLabel, restingLegend, smoothedLosses, smoothingWeight, type ChartPoint } from '../../../src/ui/loss-chart.ts';

const train = (step: number, loss: number): ChartPoint => ({ step, loss, valLoss: null });

describe('lossChartLabel', () => {
  it('says the curve is still to come when there is no point', () => {
    expect(lossChartLabel([])).toBe('No loss yet: the curve appears when training starts.');
  });

  it('gives the first and last loss, the lowest between them, and the latest validation loss', () => {
    const points: ChartPoint[] = [10.37, 7.2, 5.1, 4.0, 3.6, 3.41, 3.5, 3.45].map((loss, i) => train(i + 1, loss));
    points[3].valLoss = 4.2;
    points[7].valLoss = 3.72;
    expect(lossChartLabel(points)).toBe('Training loss over 8 steps: 10.37 at step 1, 3.450 at step 8 (lowest 3.410 at step 6); validation loss 3.720 at step 8.');
  });

  it('leaves "lowest" out when it is the first or the last point', () => {
    expect(lossChartLabel([train(1, 9), train(2, 8), train(3, 7)])).toBe('Training loss over 3 steps: 9.000 at step 1, 7.000 at step 3.');
    expect(lossChartLabel([train(1, 2), train(2, 8), train(3, 7)])).toBe('Training loss over 3 steps: 2.000 at step 1, 7.000 at step 3.');
  });

  it('reads one point as one point, not as a range from it to itself', () => {
    expect(lossChartLabel([train(1, 10.37)])).toBe('Training loss 10.37 at step 1.');
  });

  it('counts the steps that have a training loss, with thousands separated', () => {
    const points = Array.from({ length: 1200 }, (_, i) => train(i + 1, 5 - i / 1000));
    expect(lossChartLabel(points)).toBe('Training loss over 1,200 steps: 5.000 at step 1, 3.801 at step 1,200.');
  });

  it('names the latest validation loss even when it was measured at a step before the last, and the lowest when that is earlier', () => {
    const points: ChartPoint[] = [train(1, 6), train(2, 5), train(3, 4), train(4, 3.5), train(5, 3.2)];
    points[1].valLoss = 3.9;
    points[3].valLoss = 4.1;
    expect(lossChartLabel(points)).toBe('Training loss over 5 steps: 6.000 at step 1, 3.200 at step 5; validation loss 4.100 at step 4 (lowest 3.900 at step 2).');
  });

  it('says there is no training loss yet when validation came first (the pass before training, eval_on_start)', () => {
    expect(lossChartLabel([{ step: 0, loss: null, valLoss: 4.5 }])).toBe('No training loss yet; validation loss 4.500 before training.');
  });

  it('names the validation loss before training beside the latest, so the latest is read against it', () => {
    const points = [{ step: 0, loss: null, valLoss: 4.5 }, train(1, 4), { step: 2, loss: 3, valLoss: 4.1 }];
    expect(lossChartLabel(points)).toBe('Training loss over 2 steps: 4.000 at step 1, 3.000 at step 2; validation loss 4.500 before training, 4.100 at step 2.');
    // Worse than before training: the lowest is the baseline, and said so.
    const worse = [{ step: 0, loss: null, valLoss: 4.5 }, { step: 1, loss: 3, valLoss: 4.7 }];
    expect(lossChartLabel(worse)).toBe('Training loss 3.000 at step 1; validation loss 4.500 before training, 4.700 at step 1 (lowest 4.500 before training).');
  });

  it('says a loss that is not a number as it is, and leaves it out of "lowest"', () => {
    // A diverged run: the last loss is NaN, and the reader must hear that, not the last good value.
    const points = [train(1, 4), train(2, 3), train(3, Number.NaN), train(4, Number.NaN)];
    expect(lossChartLabel(points)).toBe('Training loss over 4 steps: 4.000 at step 1, NaN at step 4 (lowest 3.000 at step 2).');
    // Nothing finite at all: no "lowest" to name.
    expect(lossChartLabel([train(1, Number.NaN), train(2, Number.POSITIVE_INFINITY)])).toBe('Training loss over 2 steps: NaN at step 1, Infinity at step 2.');
  });

  it('takes the points in any order', () => {
    expect(lossChartLabel([train(3, 7), train(1, 9), train(2, 6)])).toBe('Training loss over 3 steps: 9.000 at step 1, 7.000 at step 3 (lowest 6.000 at step 2).');
  });
});

describe('smoothedLosses', () => {
  it('is the debiased exponential moving average: the first value itself, then each weighted against the past', () => {
    const w = 0.6;
    const got = smoothedLosses([4, 2, 3], w);
    // By hand: ema 1.6, 1.76, 1.856 over debias 0.4, 0.64, 0.784.
    expect(got[0]).toBeCloseTo(4, 12);
    expect(got[1]).toBeCloseTo((0.6 * 1.6 + 0.4 * 2) / (1 - 0.36), 12);
    expect(got[2]).toBeCloseTo((0.6 * 1.76 + 0.4 * 3) / (1 - 0.216), 12);
    // A constant curve stays where it is from the first point (no pull towards 0 at the start).
    for (const v of smoothedLosses([3.5, 3.5, 3.5, 3.5], 0.95)) expect(v).toBeCloseTo(3.5, 12);
  });

  it('gives a missing or non-finite loss no point and carries the average over it unchanged', () => {
    const w = 0.6;
    const got = smoothedLosses([4, null, Number.NaN, 2, Infinity], w);
    expect(got[1]).toBeNull();
    expect(got[2]).toBeNull();
    expect(got[4]).toBeNull();
    expect(got[3]).toBeCloseTo(smoothedLosses([4, 2], w)[1]!, 12);
  });
});

describe('smoothingWeight', () => {
  it("is TensorBoard's 0.6 for a short run, about ten steps' memory for a long one, at most 0.95", () => {
    expect(smoothingWeight(8)).toBe(0.6);
    expect(smoothingWeight(25)).toBe(0.6);
    expect(smoothingWeight(100)).toBeCloseTo(0.9, 12);
    expect(smoothingWeight(10_000)).toBe(0.95);
    expect(smoothingWeight(0)).toBe(0.6);
  });
});

// What the legend says while the pointer is off the chart: uPlot's own "—" for every series read as a broken chart.
describe('restingLegend', () => {
  it('gives the latest step and each series\' latest value, with its step where that is an earlier one', () => {
    const steps = [0, 1, 2, 3, 4];
    const train = [null, 5.1, 4.2, 3.9, 3.85];
    const val = [3.929, null, 3.7, null, null];
    const smoothed = [null, 5.1, 4.6, 4.3, 4.1];
    expect(restingLegend(steps, [train, val, smoothed])).toEqual(['4', '3.850', '3.700 (step 2)', '4.100']);
  });

  it('says a validation before the first step as such, and a loss that is not a number as it is', () => {
    expect(restingLegend([0, 1], [[null, Number.NaN], [3.929, null]])).toEqual(['1', 'NaN', '3.929 (before training)']);
  });

  it('says "—" for a series with no value yet and for a chart with no step, and counts steps with separators', () => {
    expect(restingLegend([1200], [[2.5], [null]])).toEqual(['1,200', '2.500', '—']);
    expect(restingLegend([], [[], []])).toEqual(['—', '—', '—']);
  });
});
