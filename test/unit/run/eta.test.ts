// The run's ETA (src/run/eta.ts): which steps validate, and the seconds left from the work timed so far.
import { describe, expect, it } from 'vitest';
import { FORWARD_SHARE, RunTimer, validationSteps } from '../../../src/run/eta.ts';

const stats = { totalSteps: 10, stepsByEpoch: [4, 4, 2], validation: { lossTokens: 5 } };

describe('validationSteps', () => {
  it('is each epoch end, or every eval_steps steps and the last, or none', () => {
    expect(validationSteps(stats, { run_validation: true, eval_steps: 0 })).toEqual([4, 8, 10]);
    expect(validationSteps(stats, { run_validation: true, eval_steps: 3 })).toEqual([3, 6, 9, 10]);
    expect(validationSteps(stats, { run_validation: true, eval_steps: 5 })).toEqual([5, 10]);
    expect(validationSteps(stats, { run_validation: true, eval_steps: 20 })).toEqual([10]);
    expect(validationSteps(stats, { run_validation: false, eval_steps: 0 })).toEqual([]);
    expect(validationSteps({ ...stats, validation: { lossTokens: 0 } }, { run_validation: true, eval_steps: 2 })).toEqual([]);
  });

  it('leads with 0 (before the first step) with eval_on_start, and only where the run validates at all', () => {
    expect(validationSteps(stats, { run_validation: true, eval_steps: 0, eval_on_start: true })).toEqual([0, 4, 8, 10]);
    expect(validationSteps(stats, { run_validation: true, eval_steps: 3, eval_on_start: true })).toEqual([0, 3, 6, 9, 10]);
    expect(validationSteps(stats, { run_validation: true, eval_steps: 3, eval_on_start: false })).toEqual([3, 6, 9, 10]);
    expect(validationSteps(stats, { run_validation: false, eval_steps: 0, eval_on_start: true })).toEqual([]);
    expect(validationSteps({ ...stats, validation: { lossTokens: 0 } }, { run_validation: true, eval_steps: 0, eval_on_start: true })).toEqual([]);
  });

  it('does not count the pass before the first step among those still to come once the steps have begun', () => {
    const withBaseline = new RunTimer(10, [0, 4, 8, 10], 1000);
    const without = new RunTimer(10, [4, 8, 10], 1000);
    for (const t of [withBaseline, without]) {
      t.validationDone(3);
      t.stepDone(2, 400);
    }
    expect(withBaseline.remaining(1)).toBe(without.remaining(1));
  });
});

describe('RunTimer', () => {
  it('has no ETA before a step was timed', () => {
    expect(new RunTimer(10, [10], 100).remaining(0)).toBeNull();
  });

  it('prices the validation passes to come from the training rate until one has run, then from the measured pass', () => {
    // 10 steps of 2 s over 400 tokens (5 ms a token); validation after steps 4, 8 and 10 over 1,000 tokens.
    const t = new RunTimer(10, [4, 8, 10], 1000);
    t.stepDone(2, 400);
    const priced = FORWARD_SHARE * 1000 * (2 / 400);
    expect(t.validationSeconds).toBeCloseTo(priced, 12);
    expect(t.remaining(1)).toBeCloseTo(9 * 2 + 3 * priced, 12);
    for (let s = 2; s <= 4; s++) t.stepDone(2, 400);
    // After step 4, its own pass still to come, then after it has run (12 s: slower than priced).
    expect(t.remaining(4)).toBeCloseTo(6 * 2 + 3 * priced, 12);
    t.validationDone(12);
    expect(t.remaining(4, true)).toBeCloseTo(6 * 2 + 2 * 12, 12);
    // The last step: only its pass is left.
    expect(t.remaining(10)).toBeCloseTo(12, 12);
    expect(t.remaining(10, true)).toBe(0);
  });

  it('prices a pass by the forward share it is given (the estimate measured it) until one has run', () => {
    // The same run as above, with a forward token measured at 0.45 of a training token (a kept layer's backward costs
    // about one forward): the passes to come cost 1.5× what FORWARD_SHARE would say.
    const t = new RunTimer(10, [4, 8, 10], 1000, 0.45);
    t.stepDone(2, 400);
    const priced = 0.45 * 1000 * (2 / 400);
    expect(t.validationSeconds).toBeCloseTo(priced, 12);
    expect(t.remaining(1)).toBeCloseTo(9 * 2 + 3 * priced, 12);
    t.validationDone(3);
    expect(t.remaining(4, true)).toBeCloseTo(6 * 2 + 2 * 3, 12);
  });

  it('spreads checkpoints and samples over the steps, and counts only what it is told (a pause is not work)', () => {
    const t = new RunTimer(4, [], 0);
    t.stepDone(1, 100);
    t.stepDone(3, 100);
    t.otherDone(2);
    // (1 + 3 + 2) / 2 s per step, 2 steps left; no validation.
    expect(t.remaining(2)).toBeCloseTo(6, 12);
  });

  it("prices the work after each pass (its validation_prompt sample) with the passes: the last pass's end is not 0 s left", () => {
    const t = new RunTimer(4, [2, 4], 500);
    t.stepDone(1, 100);
    t.stepDone(1, 100);
    t.validationDone(6);
    // Before any sample has been timed, nothing is priced for it.
    expect(t.remaining(2, true)).toBeCloseTo(2 + 6, 12);
    t.afterPassDone(3);
    // After step 2's pass and sample: 2 steps, then the last pass and its sample.
    expect(t.remaining(2, true)).toBeCloseTo(2 + 6 + 3, 12);
    t.stepDone(1, 100);
    t.stepDone(1, 100);
    expect(t.remaining(4)).toBeCloseTo(6 + 3, 12);
    // The last pass done to its end: its sample is still to come.
    expect(t.remainingDuringValidation(4, 1, 6)).toBeCloseTo(3, 12);
    expect(t.remainingDuringValidation(4, 0.5, 3)).toBeCloseTo(3 + 3, 12);
    // The sample is spread over the passes, not the steps: the step rate stays 1 s.
    expect(t.remaining(3)).toBeCloseTo(1 + 6 + 3, 12);
  });

  it("prices the sample after a run's only pass before one was timed: its tokens at the forward rate per token, not 0 s", () => {
    // 4 steps of 2 s over 400 tokens, one pass after the last over 500 tokens, a sample of 10 prompt tokens and 48 new.
    const t = new RunTimer(4, [4], 500, FORWARD_SHARE, 10 + 48);
    for (let s = 0; s < 4; s++) t.stepDone(2, 400);
    const pass = FORWARD_SHARE * 500 * (2 / 400);
    const sample = 58 * (pass / 500);
    // After the last step: its pass, then its sample, both priced at the forward rate.
    expect(t.remaining(4)).toBeCloseTo(pass + sample, 12);
    // The pass done to its end in 30 s (slower than priced): its sample, at the rate that pass measured, is all that is
    // left. It used to read 0 s, while the sample was still being written.
    const measured = 58 * (30 / 500);
    expect(t.remainingDuringValidation(4, 1, 30)).toBeGreaterThan(0);
    expect(t.remainingDuringValidation(4, 1, 30)).toBeCloseTo(measured, 12);
    // Halfway through it: the other half, then the sample at the rate so far.
    expect(t.remainingDuringValidation(4, 0.5, 15)).toBeCloseTo(15 + measured, 12);
    t.validationDone(30);
    expect(t.remaining(4, true)).toBe(0);
  });

  it('prices a sample by the one timed once there is one, and prices none for a run without a sample', () => {
    const t = new RunTimer(4, [2, 4], 500, FORWARD_SHARE, 58);
    for (let s = 0; s < 2; s++) t.stepDone(1, 100);
    t.validationDone(10);
    // Before the first sample was timed: 58 tokens at the pass's 10 s / 500 tokens.
    expect(t.remaining(2, true)).toBeCloseTo(2 + 10 + 58 * (10 / 500), 12);
    t.afterPassDone(4);
    expect(t.remaining(2, true)).toBeCloseTo(2 + 10 + 4, 12);
    const none = new RunTimer(4, [4], 500);
    for (let s = 0; s < 4; s++) none.stepDone(1, 100);
    expect(none.remainingDuringValidation(4, 1, 30)).toBe(0);
  });

  it('prices a sample the time estimate timed at that price until the run times one of its own', () => {
    const t = new RunTimer(4, [2, 4], 500, FORWARD_SHARE, 58, 9);
    for (let s = 0; s < 2; s++) t.stepDone(1, 100);
    t.validationDone(10);
    // Not 58 tokens at the pass's rate (1.16 s): the decoder's own 9 s.
    expect(t.remaining(2, true)).toBeCloseTo(2 + 10 + 9, 12);
    expect(t.remainingDuringValidation(4, 1, 10)).toBeCloseTo(9, 12);
    t.afterPassDone(4);
    expect(t.remaining(2, true)).toBeCloseTo(2 + 10 + 4, 12);
    // No sample in the run: no price, whatever was timed.
    const none = new RunTimer(4, [4], 500, FORWARD_SHARE, 0, 9);
    for (let s = 0; s < 4; s++) none.stepDone(1, 100);
    expect(none.remainingDuringValidation(4, 1, 30)).toBe(0);
  });

  it('during a pass: its rest at its own rate so far, then what follows it at that rate until a pass has finished', () => {
    const t = new RunTimer(6, [3, 6], 500);
    for (let s = 0; s < 3; s++) t.stepDone(1, 100);
    const priced = FORWARD_SHARE * 500 * (1 / 100);
    // Nothing done yet: the whole pass priced, then 3 steps and the last pass, priced.
    expect(t.remainingDuringValidation(3, 0, 0)).toBeCloseTo(priced + 3 + priced, 12);
    // 40 % of the first pass in 8 s: a pass takes 20 s here; 12 s of this one left, then 3 steps and a 20 s pass.
    expect(t.remainingDuringValidation(3, 0.4, 8)).toBeCloseTo(12 + 3 + 20, 12);
    // Once a pass has finished, the passes to come are priced by the finished ones.
    t.validationDone(20);
    expect(t.remainingDuringValidation(6, 0.5, 5)).toBeCloseTo(5, 12);
    expect(t.remainingDuringValidation(6, 1, 10)).toBe(0);
  });
});
