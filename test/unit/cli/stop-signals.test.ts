import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { onStopSignals, STOP_SIGNALS, type SignalSource, type StopSignal } from '../../../src/cli/stop-signals.ts';

function fakeProcess(): EventEmitter & SignalSource {
  return new EventEmitter() as EventEmitter & SignalSource;
}

describe('stop signals of finetune train', () => {
  for (const signal of STOP_SIGNALS) {
    it(`${signal} stops the run like Ctrl-C; a second signal of any kind aborts`, () => {
      const proc = fakeProcess();
      const calls: string[] = [];
      onStopSignals(proc, { stop: (s) => void calls.push(`stop ${s}`), abort: (s) => void calls.push(`abort ${s}`) });
      proc.emit(signal);
      expect(calls).toEqual([`stop ${signal}`]);
      proc.emit('SIGINT');
      expect(calls).toEqual([`stop ${signal}`, 'abort SIGINT']);
    });
  }

  it('installs a listener on each of SIGINT, SIGTERM and SIGHUP, and removes them all', () => {
    const proc = fakeProcess();
    const off = onStopSignals(proc, { stop: () => undefined, abort: () => undefined });
    expect(STOP_SIGNALS.map((s: StopSignal) => proc.listenerCount(s))).toEqual([1, 1, 1]);
    off();
    expect(STOP_SIGNALS.map((s: StopSignal) => proc.listenerCount(s))).toEqual([0, 0, 0]);
  });
});
