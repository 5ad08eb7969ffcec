// Where Replicate lives and which of its URLs we talk to. Shared by the client (src/remote) and the proxy
// (src/server), so both sides agree on one list.

/** Replicate's HTTP API (docs/remote.md). */
export const REPLICATE_API_BASE = 'https://api.replicate.com/v1';

/** The proxy's mount points on the page's own origin: the API under API_PATH, output downloads under DOWNLOAD_PATH. */
export const PROXY_API_PATH = '/replicate/v1';
export const PROXY_DOWNLOAD_PATH = '/replicate/download';
/** Answered by the proxy itself (never forwarded): how a page finds out that a proxy is there. */
export const PROXY_HELLO_PATH = '/replicate/hello';

/**
 * The problem+json title of every answer the proxy gives itself (a refusal, Replicate unreachable or too slow): how the
 * client and the page tell such an answer from Replicate's own, which may carry the same status.
 */
export const PROXY_PROBLEM_TITLE = 'Refused by the finetune proxy';

/** What the proxy answers at PROXY_HELLO_PATH. */
export const PROXY_HELLO = { proxy: 'finetune', api: PROXY_API_PATH, download: PROXY_DOWNLOAD_PATH } as const;

/**
 * Output files are served by `replicate.delivery` and its subdomains (Replicate's OpenAPI description, predictions.get).
 * Only https, the default port, no user name or password in the URL.
 */
export function isDeliveryUrl(url: URL): boolean {
  const host = url.hostname.toLowerCase();
  return (
    url.protocol === 'https:' &&
    url.port === '' &&
    url.username === '' &&
    url.password === '' &&
    (host === 'replicate.delivery' || host.endsWith('.replicate.delivery'))
  );
}

/**
 * Whether an output URL may be fetched with the token: one of Replicate's delivery hosts, or the very origin of the
 * API base in use (a private proxy or a local fake chosen by whoever configured the API base: the token already goes
 * there; the test fake serves outputs at /delivery/… on its own origin) — but never a path under the API base itself
 * there: the download route would otherwise be a way around the allowlist (any GET, e.g. /v1/webhooks/default/secret,
 * with the token). The path is judged as a server may read it: percent-decoded (until nothing changes), backslashes as
 * slashes, ";" parameters dropped, repeated slashes as one, dot segments resolved, in any case; a path that cannot be
 * decoded is refused.
 */
export function isDownloadAllowed(url: URL, apiBase: string): boolean {
  if (isDeliveryUrl(url)) return true;
  let base: URL;
  try {
    base = new URL(apiBase);
  } catch {
    return false;
  }
  if (url.origin !== base.origin || url.username !== '' || url.password !== '') return false;
  const basePath = looseCanonicalPath(base.pathname);
  if (basePath === null || basePath === '/') return false; // an API base at the root leaves no path outside the API
  // As written (already dot-resolved by URL) and as a lenient server may read it: neither may be under the API base.
  for (const spelled of [url.pathname.replace(/\/+$/, '').toLowerCase() || '/', looseCanonicalPath(url.pathname)]) {
    if (spelled === null || spelled === basePath || spelled.startsWith(`${basePath}/`)) return false;
  }
  return true;
}

/** How many times a path is percent-decoded at most: a path still changing after that is refused. */
const MAX_DECODINGS = 4;

/**
 * A path as a lenient server may read it (see isDownloadAllowed), lowercase, without a trailing slash; null if it
 * cannot be decoded. Decoded until nothing changes: a server behind another that decoded it already (or one that
 * decodes twice) reads "%2576%2531" as "v1", which one decoding left as "%76%31". Each segment loses its ";"
 * parameters, as servlet containers read "/v1;x/account" as "/v1/account".
 */
function looseCanonicalPath(pathname: string): string | null {
  let p = pathname;
  for (let i = 0; ; i++) {
    let next: string;
    try {
      next = decodeURIComponent(p);
    } catch {
      return null;
    }
    if (next === p) break;
    if (i === MAX_DECODINGS) return null;
    p = next;
  }
  // A decoded '?' or '#' is a character of the path to the server, not the start of a query: kept in the path.
  p = p.replace(/\\/g, '/').replace(/;[^/]*/g, '').replace(/\/{2,}/g, '/').replace(/\?/g, '%3F').replace(/#/g, '%23');
  // Resolved on a dummy origin: '.' and '..' segments go, as the server would resolve them.
  const resolved = new URL(p.startsWith('/') ? p : `/${p}`, 'http://x').pathname.replace(/\/{2,}/g, '/').toLowerCase();
  const trimmed = resolved.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

/** One path segment of an allowlisted route: an owner, a model name, an id. No dots-only names, no escapes. */
const SEGMENT = '[A-Za-z0-9][A-Za-z0-9._-]{0,127}';

/**
 * The API routes a page may reach through the proxy (path after /v1, without the query). Everything else is refused:
 * predictions, deployments, deleting, webhooks secrets… a page of this app needs none of them.
 */
export const ALLOWED_ROUTES: readonly { method: 'GET' | 'POST'; path: RegExp; what: string }[] = [
  { method: 'GET', path: /^\/account$/, what: 'account.get (token check)' },
  { method: 'POST', path: /^\/files$/, what: 'files.create (upload the JSONL)' },
  { method: 'GET', path: /^\/models$/, what: 'models.list' },
  { method: 'POST', path: /^\/models$/, what: 'models.create (the destination)' },
  { method: 'GET', path: new RegExp(`^/models/${SEGMENT}/${SEGMENT}$`), what: 'models.get (does the destination exist)' },
  { method: 'GET', path: new RegExp(`^/models/${SEGMENT}/${SEGMENT}/versions(/${SEGMENT})?$`), what: 'models.versions.list/get' },
  { method: 'POST', path: new RegExp(`^/models/${SEGMENT}/${SEGMENT}/versions/${SEGMENT}/trainings$`), what: 'trainings.create' },
  { method: 'GET', path: new RegExp(`^/trainings(/${SEGMENT})?$`), what: 'trainings.list/get' },
  { method: 'POST', path: new RegExp(`^/trainings/${SEGMENT}/cancel$`), what: 'trainings.cancel' },
];

/** The allowlisted route a request matches, or null. `path` is the part after /v1, without the query. */
export function allowedRoute(method: string, path: string): (typeof ALLOWED_ROUTES)[number] | null {
  if (path.includes('..') || path.includes('//')) return null;
  return ALLOWED_ROUTES.find((r) => r.method === method && r.path.test(path)) ?? null;
}
