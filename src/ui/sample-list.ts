// The validation_prompt samples of a run: the newest in full, the earlier ones (newest first) folded beneath it, so
// that what the adapter writes can be compared as training goes on. Samples are model output: text nodes only.

import { passPlace } from '../core/run-words.ts';
import type { RunSample } from './run-state.ts';
import { h } from './dom.ts';
import { formatCount } from './format.ts';

/** Earlier samples listed at most; a run with more validations says how many are left out. */
export const EARLIER_SHOWN = 50;

/** The samples before the newest, newest first: those listed (EARLIER_SHOWN at most) and how many are left out. */
export function earlierSamples(samples: readonly RunSample[]): { earlier: number; shown: RunSample[]; left: number } {
  const earlier = samples.slice(0, -1).reverse();
  const shown = earlier.slice(0, EARLIER_SHOWN);
  return { earlier: earlier.length, shown, left: earlier.length - shown.length };
}

/**
 * The list's elements for `samples` (step order), or none when there are none. `earlierOpen`: whether the earlier
 * samples start unfolded (the panel keeps the reader's choice across a new sample).
 */
export function sampleListView(samples: readonly RunSample[], earlierOpen = false): HTMLElement[] {
  const latest = samples.at(-1);
  if (!latest) return [];
  const { earlier, shown, left } = earlierSamples(samples);
  const parts: (HTMLElement | null)[] = [
    h('h3', {}, latest.step === 0 ? 'Sample before training' : `Sample at step ${formatCount(latest.step)}`),
    h('p', { class: 'prompt' }, latest.prompt),
    h('p', { class: 'completion', 'data-testid': 'sample-text' }, latest.text),
    earlier > 0
      ? h(
          'details',
          { 'data-testid': 'earlier-samples', open: earlierOpen },
          h('summary', {}, `Earlier samples (${formatCount(earlier)})`),
          h(
            'ol',
            { class: 'earlier-samples' },
            ...shown.map((s) => h('li', { 'data-step': s.step }, h('span', { class: 'hint' }, passPlace(s.step, `step ${formatCount(s.step)}`)), h('p', { class: 'completion' }, s.text))),
          ),
          left > 0 ? h('p', { class: 'hint' }, `… and ${formatCount(left)} earlier, not listed.`) : null,
        )
      : null,
  ];
  return parts.filter((e): e is HTMLElement => e !== null);
}
