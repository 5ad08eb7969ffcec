// The saved run's one-writer lock (src/worker/run-lock.ts) between two tabs' workers, over a fake of the Web Locks API
// with its ifAvailable semantics (granted at once or not at all) and one lock table per origin, as the browser keeps.
// The browser test (test/e2e/two-tabs.test.ts) runs the real API in two tabs.
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { RUN_ELSEWHERE_MESSAGE, RUN_LOCK, runLock, type RunLocks } from '../../../src/worker/run-lock.ts';

/** One origin's lock table; each call of `tab()` is a tab's worker using it. */
function origin(): { tab(): RunLocks; held: Set<string> } {
  const held = new Set<string>();
  const tab = (): RunLocks => ({
    async request(name, _options, callback) {
      if (held.has(name)) return callback(null);
      held.add(name);
      try {
        return await callback({ name });
      } finally {
        held.delete(name);
      }
    },
    query: async () => ({ held: [...held].map((name) => ({ name })) }),
  });
  return { tab, held };
}

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('the run lock', () => {
  it('refuses a second tab while the first trains, says so to it, and frees when the run ends', async () => {
    const o = origin();
    const a = runLock(o.tab());
    const b = runLock(o.tab());
    const training = deferred();
    const run = a.exclusive(async () => {
      await training.promise;
      return 'a trained';
    });
    await Promise.resolve();
    expect(o.held.has(RUN_LOCK)).toBe(true);
    expect(await b.heldElsewhere()).toBe(true);
    expect(await a.heldElsewhere()).toBe(false); // its own run is not "elsewhere"
    let ran = false;
    const refused = await b.exclusive(async () => (ran = true)).catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(refused).toBeInstanceOf(FinetuneError);
    expect((refused as FinetuneError).kind).toBe('bad-input');
    expect((refused as FinetuneError).message).toBe(RUN_ELSEWHERE_MESSAGE);
    // Flagged, so that the page tells it from a failed run and shows the other tab's run instead.
    expect((refused as FinetuneError).details).toEqual({ runElsewhere: true });

    training.resolve();
    expect(await run).toBe('a trained');
    expect(await b.heldElsewhere()).toBe(false);
    expect(await b.exclusive(async () => 'b trained')).toBe('b trained');
  });

  it('frees the lock when the work fails, and a second call in the same tab is told a run is going', async () => {
    const o = origin();
    const a = runLock(o.tab());
    await expect(a.exclusive(async () => Promise.reject(new Error('device lost')))).rejects.toThrow('device lost');
    expect(o.held.size).toBe(0);
    const training = deferred();
    const run = a.exclusive(() => training.promise);
    await Promise.resolve();
    await expect(a.exclusive(async () => undefined)).rejects.toThrow('a training run is already going');
    training.resolve();
    await run;
  });

  it('without the Locks API (an insecure origin) runs the work uncoordinated', async () => {
    const lock = runLock(undefined);
    expect(await lock.exclusive(async () => 7)).toBe(7);
    expect(await lock.heldElsewhere()).toBe(false);
  });
});
