// The gpu tier's hang watchdog (test/helpers/hang-watchdog.ts): a process whose main thread stops running JavaScript
// is killed and says why; one that keeps running is left alone.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/** Runs `body` in a child node process (through tsx) after arming the watchdog at `ms`; how it ended and its stderr. */
function child(ms: number, body: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; err: string }> {
  const script = `
    import { startHangWatchdog } from './test/helpers/hang-watchdog.ts';
    startHangWatchdog(${ms}, 50);
    ${body}
  `;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code, signal) => resolve({ code, signal, err }));
  });
}

describe('hang watchdog', () => {
  it('kills a process whose main thread is blocked, saying so', async () => {
    // Atomics.wait blocks the main thread as a native deadlock does: no timer, no promise runs on it.
    const r = await child(400, 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20000);');
    expect(r.signal).toBe('SIGKILL');
    expect(r.err).toMatch(/^hang watchdog: the main thread ran no JavaScript for \d+ s \(a native deadlock, such as Dawn's\); killing test process \d+\n$/);
  }, 30_000);

  it('leaves alone a process that keeps running, however long, and lets it exit by itself', async () => {
    const r = await child(400, 'await new Promise((ok) => setTimeout(ok, 1500));');
    expect(r).toEqual({ code: 0, signal: null, err: '' });
  }, 30_000);
});
