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
