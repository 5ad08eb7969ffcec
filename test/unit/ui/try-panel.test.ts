// What the Try it panel says beside a disabled Generate button (src/ui/try-panel.ts): why it cannot run now, in each
// state that disables it, and nothing when it can run (or is running: Stop is the control then).
import { describe, expect, it } from 'vitest';
import { generateBlockedReason } from '../../../src/ui/try-panel.ts';

describe('generateBlockedReason', () => {
  it('says that training holds the GPU while steps run, and nothing while the run is paused or over', () => {
    for (const phase of ['starting', 'running', 'validating', 'stopping'] as const) {
      expect(generateBlockedReason(phase, 'ready', false)).toBe('Training is using the GPU: pause the run (or wait until it ends) to generate.');
    }
    for (const phase of ['idle', 'paused', 'done', 'stopped', 'error'] as const) expect(generateBlockedReason(phase, 'ready', false)).toBeNull();
    // Pause asked, not yet in effect: the step (or sample) under way still holds the GPU.
    expect(generateBlockedReason('pausing', 'ready', false)).toBe('The run is pausing: Try it can run once the work under way ends.');
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
