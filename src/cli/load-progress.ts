// Model-load progress for the CLI, on stderr: what the page's Model panel shows (src/ui/model-panel.ts) — the phase,
// tensors, bytes, MB/s and the time left — as a line at most every 2 s, and at every change of stage. Without it a
// Mistral-7B download (minutes) showed nothing, and a stalled one could not be told from a slow one.

import { formatBytes, formatCount } from '../core/units.ts';
import type { LoadProgress } from '../engine/mistral/weights.ts';
import { visibleText } from '../core/quote.ts';

/** How often a progress line is printed at most (a change of phase and the end of one are printed at once). */
export const LOAD_PROGRESS_EVERY_MS = 2000;

/** "6 min 37 s", "13 s", "1 h 5 min": whole seconds, rounded up (as the page's "… s left"). */
export function timeLeft(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/**
 * One progress line: "loading NAME: downloading · 3 / 291 tensors · 1.5 GiB / 14.5 GiB · 35.2 MB/s · 6 min 37 s left".
 * `local`: the files are on disk, so "downloading" is said "reading" (as the page says it of picked files).
 */
export function formatLoadProgress(p: LoadProgress, model: string, o: { local?: boolean } = {}): string {
  const phase = p.phase === 'downloading' && o.local ? 'reading' : p.phase;
  const parts = [`${formatCount(p.done)} / ${formatCount(p.total)} tensors`, `${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)}`];
  if (phase) parts.unshift(phase);
  if (p.bytesPerSecond) parts.push(`${(p.bytesPerSecond / 1e6).toFixed(1)} MB/s`);
  if (p.etaSeconds != null && Number.isFinite(p.etaSeconds)) parts.push(`${timeLeft(p.etaSeconds)} left`);
  return `loading ${visibleText(model)}: ${parts.join(' · ')}`;
}

/**
 * The stage a phase belongs to. Downloading and quantising alternate tensor by tensor: one stage, or every tensor
 * would be a change. Writing the cache and reading from it are stages of their own.
 */
function stageOf(p: LoadProgress): string {
  return p.phase === 'caching' || p.phase === 'loading from cache' ? p.phase : 'load';
}

/**
 * An onProgress that prints through `print`: the first report, then at most one every LOAD_PROGRESS_EVERY_MS, and
 * always the first of a new stage and the last of one (its done = total).
 */
export function loadProgressPrinter(
  print: (line: string) => void,
  model: string,
  o: { local?: boolean; now?: () => number; everyMs?: number } = {},
): (p: LoadProgress) => void {
  const now = o.now ?? (() => performance.now());
  const every = o.everyMs ?? LOAD_PROGRESS_EVERY_MS;
  let last = -Infinity;
  let stage: string | null = null; // null: nothing printed yet
  return (p) => {
    const t = now();
    const newStage = stageOf(p) !== stage;
    if (!newStage && p.done < p.total && t - last < every) return;
    last = t;
    stage = stageOf(p);
    print(formatLoadProgress(p, model, o));
  };
}
