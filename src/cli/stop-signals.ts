// `finetune train` stops alike on SIGINT (Ctrl-C), SIGTERM (kill, job schedulers, containers) and SIGHUP (a closed
// terminal or SSH session): the run stops at the next step boundary and saves, so that --resume continues from there.
// A second signal while stopping ends the process at once: the run store commits all-or-nothing (run-store.ts), so an
// interrupted save leaves the last complete checkpoint as it was.

export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

/** Where signals come from: `process`, or a fake in tests. */
export interface SignalSource {
  on(signal: StopSignal, listener: () => void): unknown;
  off(signal: StopSignal, listener: () => void): unknown;
}

export interface StopHandlers {
  /** The first signal: stop at the next step boundary and save. */
  stop(signal: StopSignal): void;
  /** A later one: give up now. */
  abort(signal: StopSignal): void;
}

/** The exit status a shell reports for a process ended by this signal (128 + its number). */
export const SIGNAL_EXIT_CODE: Readonly<Record<StopSignal, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

/** Installs the handlers on every stop signal; returns the function that removes them. */
export function onStopSignals(source: SignalSource, handlers: StopHandlers): () => void {
  let stopping = false;
  const listeners = STOP_SIGNALS.map((signal) => {
    const listener = (): void => {
      if (stopping) return handlers.abort(signal);
      stopping = true;
      handlers.stop(signal);
    };
    source.on(signal, listener);
    return [signal, listener] as const;
  });
  return () => {
    for (const [signal, listener] of listeners) source.off(signal, listener);
  };
}
