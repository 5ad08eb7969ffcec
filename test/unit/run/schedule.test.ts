import { describe, expect, it } from 'vitest';
import { learningRate, learningRateCurve, LR_CURVE_POINTS, scheduleNotice, warmupSteps } from '../../../src/run/schedule.ts';

describe('learning-rate schedules (HF get_*_schedule_with_warmup)', () => {
  it('warms up linearly from 0 over ceil(ratio · total) steps', () => {
    expect(warmupSteps(100, 0.03)).toBe(3);
    expect([0, 1, 2, 3].map((s) => learningRate(1, s, 100, 0.03, 'constant'))).toEqual([0, 1 / 3, 2 / 3, 1]);
  });

  it('decays linearly to 0 at the last step', () => {
    expect(learningRate(2, 3, 103, 0.029, 'linear')).toBeCloseTo(2, 12);
    expect(learningRate(2, 53, 103, 0.029, 'linear')).toBeCloseTo(1, 12);
    expect(learningRate(2, 103, 103, 0.029, 'linear')).toBe(0);
    // The last step a run makes is 102 (0-based): HF's lr · (total − step) / (total − warmup), not 0.
    expect(learningRate(2, 102, 103, 0.029, 'linear')).toBeCloseTo(2 / 100, 12);
  });

  it('follows a half cosine', () => {
    expect(learningRate(1, 0, 10, 0, 'cosine')).toBe(1);
    expect(learningRate(1, 5, 10, 0, 'cosine')).toBeCloseTo(0.5, 12);
    expect(learningRate(1, 10, 10, 0, 'cosine')).toBeCloseTo(0, 12);
  });

  it('without warmup starts at the peak', () => {
    expect(learningRate(1e-4, 0, 10, 0, 'linear')).toBe(1e-4);
  });

  it('says before a run when every step would train at learning rate 0 (one step with any warmup), and only then', () => {
    expect(scheduleNotice(1, 0.03, 1e-4, 'linear')).toMatch(/every step of this run \(1\) trains at learning rate 0, so it learns nothing: the warmup \(warmup_ratio 0\.03: 1 step\)/);
    expect(scheduleNotice(1, 0.5, 1e-4, 'constant')).toMatch(/learns nothing/);
    expect(scheduleNotice(1, 0, 1e-4, 'linear')).toBeUndefined();
    expect(scheduleNotice(2, 0.5, 1e-4, 'linear')).toBeUndefined(); // step 1 trains at the peak
    expect(scheduleNotice(2, 0.03, 1e-4, 'cosine')).toBeUndefined();
    expect(scheduleNotice(0, 0.03, 1e-4, 'linear')).toBeUndefined();
  });
});

describe('learningRateCurve', () => {
  it('gives every step of a short run, 1-based, as the trainer applies them', () => {
    const c = learningRateCurve(1e-4, 14, 0.03, 'linear');
    expect(c.steps).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
    // warmup ceil(0.42) = 1 step: step 1 trains at 0, step 2 at the peak, then linear decay.
    c.steps.forEach((s, i) => expect(c.rates[i]).toBe(learningRate(1e-4, s - 1, 14, 0.03, 'linear')));
    expect(c.rates[0]).toBe(0);
    expect(c.rates[1]).toBe(1e-4);
  });

  it('spreads LR_CURVE_POINTS over a long run, keeping the ends and the warmup turn', () => {
    const total = 10_007;
    const c = learningRateCurve(2e-4, total, 0.1, 'cosine');
    const w = Math.ceil(total * 0.1); // 1001: the last warmup step, and the peak right after
    expect(c.steps[0]).toBe(1);
    expect(c.steps.at(-1)).toBe(total);
    expect(c.steps).toContain(w);
    expect(c.steps).toContain(w + 1);
    expect(c.rates[c.steps.indexOf(w + 1)]).toBe(2e-4);
    expect(c.steps.length).toBeLessThanOrEqual(LR_CURVE_POINTS + 2);
    expect(c.steps.length).toBeGreaterThanOrEqual(LR_CURVE_POINTS);
    for (let i = 1; i < c.steps.length; i++) expect(c.steps[i]).toBeGreaterThan(c.steps[i - 1]);
  });

  it('has no points for a run of no steps', () => {
    expect(learningRateCurve(1e-4, 0, 0.03, 'linear')).toEqual({ steps: [], rates: [] });
  });
});
