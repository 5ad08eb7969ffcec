import { describe, expect, it } from 'vitest';
import { SaveTimer } from '../../../src/run/save-timer.ts';
import { parseHyperparams } from '../../../src/config/hyperparams.ts';

describe('time-based checkpoints', () => {
  it('is due once the minutes have passed since the last save, and again after the next interval', () => {
    let t = 1_000_000;
    const timer = new SaveTimer(10, () => t);
    t += 9 * 60_000 + 59_999;
    expect(timer.due).toBe(false);
    t += 1;
    expect(timer.due).toBe(true);
    timer.saved();
    expect(timer.due).toBe(false);
    t += 10 * 60_000;
    expect(timer.due).toBe(true);
  });

  it('a save by steps restarts the interval', () => {
    let t = 0;
    const timer = new SaveTimer(1, () => t);
    t = 50_000;
    timer.saved();
    t = 80_000;
    expect(timer.due).toBe(false);
    t = 110_000;
    expect(timer.due).toBe(true);
  });

  it('0 minutes is off', () => {
    let t = 0;
    const timer = new SaveTimer(0, () => t);
    t = 1e12;
    expect(timer.due).toBe(false);
  });

  it('saves every 10 minutes by default, and takes fractions of a minute or 0', () => {
    expect(parseHyperparams({}).save_every_minutes).toBe(10);
    expect(parseHyperparams({ save_every_minutes: '0.5' }).save_every_minutes).toBe(0.5);
    expect(() => parseHyperparams({ save_every_minutes: -1 })).toThrow(/save_every_minutes must be a number of at least 0, got -1/);
  });
});
