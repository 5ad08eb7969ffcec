// What a failed fetch says about why it failed. fetch rejects with a bare TypeError ("fetch failed" in Node, "Failed
// to fetch" in a browser); Node's undici hangs the reason on its cause (or the cause's causes), with a system code.
import { thrownMessage } from './errors.ts';

/** A refused connection, an unknown host or a port fetch refuses to use, as fetch reports them (on the cause, or its causes). */
export function isWrongAddress(e: unknown): boolean {
  const codes: unknown[] = [];
  const walk = (x: unknown, depth: number): void => {
    if (!x || typeof x !== 'object' || depth > 3) return;
    codes.push((x as { code?: unknown }).code);
    walk((x as { cause?: unknown }).cause, depth + 1);
    for (const inner of (x as { errors?: unknown[] }).errors ?? []) walk(inner, depth + 1);
  };
  walk(e, 0);
  return codes.some((c) => c === 'ECONNREFUSED' || c === 'ENOTFOUND') || /ECONNREFUSED|ENOTFOUND|bad port/.test(String((e as { cause?: { message?: string } })?.cause?.message ?? ''));
}

/** The reason a fetch failed in a few words: the cause's message where Node gives one ("getaddrinfo ENOTFOUND x"). */
export function networkReason(e: unknown): string {
  // Not an Error: whatever a fetch implementation threw, said by thrownMessage, which never throws (String() did).
  if (!(e instanceof Error)) return thrownMessage(e);
  if (e.name === 'TimeoutError') return 'it did not answer in time';
  const cause = (e as Error & { cause?: unknown }).cause;
  return cause instanceof Error ? cause.message : e.message;
}
