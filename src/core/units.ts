// Sizes and counts as people read them, for messages from any floor (an out-of-memory error, a refused plan, the
// page's readouts, the CLI).

/** Thousands separated: 12,345 (whole numbers; '—' for a non-finite one). */
export function formatCount(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—';
}

/** "1 token", "2,412 tokens": a count and its noun, singular for exactly one (`plural` when not noun + s). */
export function formatCounted(n: number, noun: string, plural = `${noun}s`): string {
  return `${formatCount(n)} ${n === 1 ? noun : plural}`;
}

/** 26 %, 4.5 % (one decimal below 10 %), and 0 % for none at all (not "0.0 %", which reads as a rounded measurement). */
export function formatPercent(fraction: number): string {
  if (!Number.isFinite(fraction)) return '—';
  if (fraction === 0) return '0 %';
  return `${(fraction * 100).toFixed(fraction < 0.1 ? 1 : 0)} %`;
}

/** 1023 B, 1.5 KiB, 37.8 MiB: binary units, one decimal. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/**
 * A wait a server asked for, in words: "45 s", "60 min", "5 h", and "more than a day (Retry-After: 86401 s)" past
 * that, where a count of hours or days would read as a promise (a 20-digit Retry-After was said as so many seconds).
 */
export function formatWait(seconds: number): string {
  if (seconds < 120) return `${formatCount(seconds)} s`;
  if (seconds < 2 * 3600) return `${formatCount(seconds / 60)} min`;
  if (seconds <= 24 * 3600) return `${formatCount(seconds / 3600)} h`;
  return `more than a day (Retry-After: ${seconds.toLocaleString('en-US', { useGrouping: false, maximumFractionDigits: 0 })} s)`;
}
