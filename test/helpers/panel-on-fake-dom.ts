// What a unit test of the Training panel on the fake DOM sets up (test/unit/ui/training-panel-*.test.ts): the fake
// document around each test, and fake timers (the "another tab" box looks again every few seconds: advanced by the
// tests, never by the clock). The loss chart draws with uPlot, which needs a real DOM; what it draws is not what these
// tests are about, so each such file mocks it with `vi.mock('…/src/ui/loss-chart.ts', () => import('…/fake-loss-chart.ts'))`.
import { afterEach, beforeEach, vi } from 'vitest';
import { installFakeDocument } from './fake-dom.ts';

/** Installs the fake document and fake timers around each test of the calling file. */
export function panelOnFakeDom(): void {
  let restore: () => void;
  beforeEach(() => {
    restore = installFakeDocument();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
    restore();
  });
}

/** Lets the page's pending promises and zero-delay timers run out. */
export async function settled(): Promise<void> {
  for (let i = 0; i < 10; i++) await vi.advanceTimersByTimeAsync(0);
}
