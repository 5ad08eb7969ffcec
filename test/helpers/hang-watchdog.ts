// A watchdog for the gpu tier's test processes: if the main thread stops running JavaScript for WATCHDOG_MS, the
// process is killed, saying so on stderr, and vitest reports the file that was running as failed and goes on. Dawn can
// deadlock in native code with the main thread blocked (a CI run once sat 30 minutes in InstanceBase::ProcessEvents,
// waiting on a mutex; docs/testing.md): vitest's own timeouts run on that thread and never fire, so the suite hung
// until the CI limit. The watchdog is a worker thread, which runs while the main thread is stuck, fed a heartbeat
// through shared memory.
import { Worker } from 'node:worker_threads';

/** Longer than any test's own limit (testTimeout 600 s): a test that is merely slow is failed by vitest first. */
export const WATCHDOG_MS = 12 * 60_000;

/**
 * Starts the watchdog for this process (once). `ms`: how long the main thread may be silent; `beatMs`: how often it
 * says it is alive.
 */
export function startHangWatchdog(ms = WATCHDOG_MS, beatMs = 1000): void {
  const g = globalThis as { __hangWatchdog?: true };
  if (g.__hangWatchdog) return;
  g.__hangWatchdog = true;
  const beat = new Int32Array(new SharedArrayBuffer(4));
  // The worker's code as text: it must not depend on the test's module loader (tsx, vitest's transforms).
  const code = `
    const { workerData } = require('node:worker_threads');
    const beat = workerData.beat;
    let last = Atomics.load(beat, 0);
    let since = Date.now();
    setInterval(() => {
      const now = Atomics.load(beat, 0);
      if (now !== last) { last = now; since = Date.now(); return; }
      if (Date.now() - since >= workerData.ms) {
        // Straight to fd 2: a worker's process.stderr goes through the main thread, which is the one stuck.
        require('node:fs').writeSync(2, 'hang watchdog: the main thread ran no JavaScript for ' + Math.round((Date.now() - since) / 1000) + ' s (a native deadlock, such as Dawn\\'s); killing test process ' + process.pid + '\\n');
        process.kill(process.pid, 'SIGKILL');
      }
    }, Math.min(workerData.beatMs, 1000));
  `;
  // No inherited flags (an ESM --input-type would make the eval'd code a module, without require).
  const worker = new Worker(code, { eval: true, execArgv: [], workerData: { beat, ms, beatMs } });
  worker.unref();
  setInterval(() => Atomics.add(beat, 0, 1), beatMs).unref();
}
