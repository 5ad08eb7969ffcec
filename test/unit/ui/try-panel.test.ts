// What the Try it panel says beside a disabled Generate button (src/ui/try-panel.ts): why it cannot run now, in each
// state that disables it, and nothing when it can run (or is running: Stop is the control then).
import { describe, expect, it } from 'vitest';
import { generateBlockedReason, readSettings } from '../../../src/ui/try-panel.ts';

describe('generateBlockedReason', () => {
  it('says that training holds the GPU while steps run, and nothing while the run is paused or over', () => {
    for (const phase of ['starting', 'running', 'validating', 'stopping'] as const) {
      expect(generateBlockedReason(phase, 'ready', false)).toBe('Training is using the GPU: pause the run (or wait until it ends) to generate.');
    }
    for (const phase of ['idle', 'paused', 'done', 'stopped', 'error'] as const) expect(generateBlockedReason(phase, 'ready', false)).toBeNull();
    // Pause asked, not yet in effect: the step (or sample) under way still holds the GPU.
    expect(generateBlockedReason('pausing', 'ready', false)).toBe('The run is pausing: Try it can run once the work under way ends.');
    // Resume asked: the run waits only for what reads the adapter now; a new generation would hold it longer.
    expect(generateBlockedReason('resuming', 'ready', false)).toBe('The run is resuming: pause it again to generate.');
  });

  it('asks for a model first, whatever the run does', () => {
    expect(generateBlockedReason('idle', 'none', false)).toBe('Load a model first (Model panel).');
    expect(generateBlockedReason('idle', 'error', false)).toBe('Load a model first (Model panel).');
    expect(generateBlockedReason('idle', 'loading', false)).toBe('The model is loading…');
  });

  it('gives no reason while a generation runs', () => {
    expect(generateBlockedReason('idle', 'ready', true)).toBeNull();
  });
});

describe('readSettings', () => {
  it('ignores the seed of greedy generation (its field is disabled): not checked, not sent', () => {
    // Temperature 0.7, seed "1.5" typed, then temperature 0: the disabled field still holds "1.5".
    expect(readSettings('16', '0', '1', '1.5')).toEqual({ maxNewTokens: 16, temperature: 0, topP: 1 });
    expect(readSettings('16', '0', '1', undefined)).toEqual({ maxNewTokens: 16, temperature: 0, topP: 1 });
  });

  it('checks and sends the seed of sampled generation', () => {
    expect(readSettings('16', '0.7', '1', '1.5')).toBe('Seed must be a whole number from -(2^53 - 1) to 2^53 - 1, got "1.5"');
    expect(readSettings('16', '0.7', '0.9', '42')).toEqual({ maxNewTokens: 16, temperature: 0.7, topP: 0.9, seed: 42 });
  });
});
