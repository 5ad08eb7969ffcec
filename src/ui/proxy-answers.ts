// Who answered a failed call: the page's proxy itself or Replicate behind it. Both reach the page as, say, a 502, and
// "Replicate answered 502" is untrue when the proxy could not reach Replicate at all. The proxy's own answers carry
// its problem+json title (PROXY_PROBLEM_TITLE; src/remote/errors.ts reads it for the final error), so the fetch handed
// to the client looks at the body of each server error.

import { PROXY_PROBLEM_TITLE } from '../remote/endpoints.ts';

/** An answer the proxy gave itself instead of Replicate's. */
export interface ProxyAnswer {
  status: number;
  detail: string;
}

export interface WatchedFetch {
  fetch: typeof fetch;
  /**
   * The proxy's own answer to the latest request, or null when that answer came from Replicate (or was not an error).
   * "Latest" is enough because each action of the panel makes its own client and awaits its calls one at a time.
   */
  last(): ProxyAnswer | null;
}

/** The proxy's own answer, if `res` is one; the original response stays unread for the client. */
async function proxyAnswer(res: Response): Promise<ProxyAnswer | null> {
  if (!(res.headers.get('content-type') ?? '').includes('json')) return null;
  try {
    const body = (await res.clone().json()) as { title?: unknown; detail?: unknown } | null;
    if (body?.title !== PROXY_PROBLEM_TITLE) return null;
    return { status: res.status, detail: typeof body.detail === 'string' ? body.detail : '' };
  } catch {
    return null;
  }
}

export function watchProxyAnswers(inner: typeof fetch = (...a) => globalThis.fetch(...a)): WatchedFetch {
  let last: ProxyAnswer | null = null;
  const watched = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    last = null;
    const res = await inner(input, init);
    // Only server errors are retried with a status line; their bodies are small.
    if (res.status >= 500) last = await proxyAnswer(res);
    return res;
  };
  return { fetch: watched as typeof fetch, last: () => last };
}
