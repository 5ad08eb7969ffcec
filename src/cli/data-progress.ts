// Reading and tokenising a data file (validate, train) on stderr, as the model's load is (load-progress.ts): bytes,
// MB/s and the time left, once the read has taken LOAD_PROGRESS_EVERY_MS and then at most that often. A small file says
// nothing; an 81 MB one took 16 s in silence, and files up to 2 GiB are accepted (input-file.ts).

import { formatBytes } from '../core/units.ts';
import { LOAD_PROGRESS_EVERY_MS, timeLeft } from './load-progress.ts';

/** "reading --data "rows.jsonl": 41.0 MiB / 81.0 MiB (51 %) · 5.1 MB/s · 8 s left". */
export function formatDataProgress(what: string, bytesRead: number, totalBytes: number, seconds: number): string {
  const parts = [`${formatBytes(bytesRead)} / ${formatBytes(totalBytes)} (${Math.floor((100 * bytesRead) / Math.max(1, totalBytes))} %)`];
  if (seconds > 0 && bytesRead > 0) {
    const rate = bytesRead / seconds;
    parts.push(`${(rate / 1e6).toFixed(1)} MB/s`);
    if (bytesRead < totalBytes) parts.push(`${timeLeft((totalBytes - bytesRead) / rate)} left`);
  }
  return `reading ${what}: ${parts.join(' · ')}`;
}

/**
 * An onProgress for one file: `what` names it as the command line did ("--data "rows.jsonl""), `totalBytes` is its
 * size. Silent for the first `everyMs`, then a line at most every `everyMs`, and the last one (all read) once anything
 * was said, so that a line the reader saw does not stay at 97 %.
 */
export function dataProgressPrinter(
  print: (line: string) => void,
  what: string,
  totalBytes: number,
  o: { now?: () => number; everyMs?: number } = {},
): (bytesRead: number) => void {
  const now = o.now ?? (() => performance.now());
  const every = o.everyMs ?? LOAD_PROGRESS_EVERY_MS;
  const start = now();
  let last = start;
  let said = false;
  return (bytesRead) => {
    const t = now();
    const end = bytesRead >= totalBytes;
    if (!(end && said) && t - last < every) return;
    last = t;
    said = true;
    print(formatDataProgress(what, bytesRead, totalBytes, (t - start) / 1000));
  };
}
