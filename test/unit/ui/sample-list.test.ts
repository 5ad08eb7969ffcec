// Which earlier validation_prompt samples the training panel lists beneath the newest (src/ui/sample-list.ts).
import { describe, expect, it } from 'vitest';
import { EARLIER_SHOWN, earlierSamples } from '../../../src/ui/sample-list.ts';

const samples = (n: number) => Array.from({ length: n }, (_, i) => ({ step: (i + 1) * 10, prompt: 'p', text: `t${i + 1}` }));

describe('earlierSamples', () => {
  it('lists those before the newest, newest first', () => {
    expect(earlierSamples(samples(3))).toEqual({ earlier: 2, shown: [samples(3)[1], samples(3)[0]], left: 0 });
    expect(earlierSamples(samples(1))).toEqual({ earlier: 0, shown: [], left: 0 });
  });

  it(`lists ${EARLIER_SHOWN} at most, the newest of them, and counts the rest`, () => {
    const r = earlierSamples(samples(EARLIER_SHOWN + 8));
    expect(r.earlier).toBe(EARLIER_SHOWN + 7);
    expect(r.shown).toHaveLength(EARLIER_SHOWN);
    expect(r.shown[0].step).toBe((EARLIER_SHOWN + 7) * 10);
    expect(r.shown.at(-1)!.step).toBe(80);
    expect(r.left).toBe(7);
  });
});
