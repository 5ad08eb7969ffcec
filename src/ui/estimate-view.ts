// What the Training panel's estimate box shows when the time estimate failed: the reason, and a button that measures
// again. The estimate is measured when the form, the data or the model changes; a measurement that failed (the GPU busy
// with another tab's run, a lost device, memory another page held) offered no way to measure again but to change one
// of them.

import { h } from './dom.ts';

/** The failure's line and its "Measure again" button, which calls `measureAgain` on each click. */
export function estimateFailureView(message: string, measureAgain: () => void): HTMLElement[] {
  const again = h('button', { type: 'button', class: 'secondary', 'data-testid': 'train-estimate-again' }, 'Measure again');
  again.addEventListener('click', measureAgain);
  return [h('p', { class: 'hint', 'data-testid': 'train-estimate-failed' }, `No time estimate: ${message}`), h('div', { class: 'actions' }, again)];
}
