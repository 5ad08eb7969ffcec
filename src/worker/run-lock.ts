// One writer for the run saved in this browser. Every tab of the page has its own worker, and all of them share one
// origin-private folder (finetune-run): two tabs training at once overwrote each other's checkpoints, and one tab's
// record could be committed beside the other's data (a resume then trained one run's adapter on the other's rows).
// A Web Lock, held by the worker for as long as it trains, resumes or forgets the saved run, makes the second tab's
// attempt a clear refusal instead; the browser releases it when the run ends or its tab closes (a crash included).
// Where the Locks API is missing (an insecure origin), nothing is coordinated: the page works as before.

import { FinetuneError } from '../core/errors.ts';

/** The lock's name: one saved run per origin, so one name. */
export const RUN_LOCK = 'finetune-run';

/**
 * What a refused second writer is told; its details say `runElsewhere: true`, so that the page shows the other tab's
 * run (as its own check before a start or resume does) rather than a failed one.
 */
export const RUN_ELSEWHERE_MESSAGE =
  'another tab of this page is training (or changing the run saved in this browser): follow it there, or close that tab first. Two runs at once would overwrite each other’s checkpoints';

/** The part of the Web Locks API used here (navigator.locks fits; tests pass a fake). */
export interface RunLocks {
  request<T>(name: string, options: { ifAvailable: true }, callback: (lock: unknown) => Promise<T>): Promise<T>;
  query(): Promise<{ held?: { name?: string }[] }>;
}

/** The run lock of this worker: what it holds now, and whether another tab holds it. */
export interface RunLock {
  /** Runs `work` holding the lock, or refuses at once (FinetuneError 'bad-input') when another tab holds it. */
  exclusive<T>(work: () => Promise<T>): Promise<T>;
  /** True while another tab (not this worker) holds the lock: it is training, resuming or forgetting the saved run. */
  heldElsewhere(): Promise<boolean>;
}

export function runLock(locks: RunLocks | undefined): RunLock {
  // How many of this worker's calls hold the lock now (Locks cannot tell whose a held lock is).
  let heldHere = 0;
  return {
    async exclusive(work) {
      if (!locks) return work();
      return locks.request(RUN_LOCK, { ifAvailable: true }, async (lock) => {
        // Held by someone else (or by this worker's run already: the session refuses a second run itself).
        if (lock === null) {
          if (heldHere > 0) throw new FinetuneError('bad-input', 'a training run is already going');
          throw new FinetuneError('bad-input', RUN_ELSEWHERE_MESSAGE, { runElsewhere: true });
        }
        heldHere++;
        try {
          return await work();
        } finally {
          heldHere--;
        }
      });
    },
    async heldElsewhere() {
      if (!locks || heldHere > 0) return false;
      const { held = [] } = await locks.query();
      return held.some((l) => l.name === RUN_LOCK);
    },
  };
}

/** This worker's navigator.locks, when the browser offers it. */
export function workerLocks(): RunLocks | undefined {
  return (self.navigator as (Navigator & { locks?: RunLocks }) | undefined)?.locks;
}
