// Retry-After (RFC 9110 §10.2.3), read once for every client that honours it: the Replicate client (src/remote/http.ts)
// and the model's HTTP source (src/model/source.ts).

/**
 * Retry-After as milliseconds: delta-seconds or an HTTP date; null when absent or unreadable. So many digits that they
 * make no number (Infinity) are unreadable too: waited for or said, Infinity became "Try again in Infinity s.".
 */
export function retryAfterMs(value: string | null, now = Date.now()): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) {
    const ms = Number(v) * 1000;
    return Number.isFinite(ms) ? ms : null;
  }
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, t - now);
}
