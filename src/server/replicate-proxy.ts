// The same-origin proxy in front of Replicate. Replicate's API sends no CORS headers, so the page cannot call it; this
// forwards exactly the calls remote training needs (src/remote/endpoints.ts ALLOWED_ROUTES) and output downloads from
// Replicate's delivery hosts, and refuses everything else with 403: it is not an open relay, it cannot be pointed at
// another host (no SSRF), and it never follows a redirect anywhere.
//
// What it forwards: the method, the allowlisted path, the query (GET only), the body, and three request headers
// (Authorization, Content-Type, Accept). Cookies never leave; Set-Cookie never comes back. The Authorization header is
// passed through and forgotten: it is not logged, stored or echoed in any answer.
//
// Who may use it: a request's Host must be this machine's (a loopback name or address, or the address the request
// reached it on) or one the operator allowed (allowHosts), so that a page whose name is made to resolve to this machine
// after it loaded (DNS rebinding: its requests carry its own name as Host, and an Origin that matches it) is refused;
// and a request with an Origin must come from the Host itself or from an origin in allowOrigins (CORS).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { PROXY_API_PATH, PROXY_DOWNLOAD_PATH, PROXY_HELLO, PROXY_HELLO_PATH, PROXY_PROBLEM_TITLE, REPLICATE_API_BASE, allowedRoute, isDownloadAllowed } from '../remote/endpoints.ts';
import { quote } from '../core/quote.ts';
import { thrownMessage, thrownName } from '../core/errors.ts';

export interface ReplicateProxyOptions {
  /** Where /replicate/v1/… goes (default Replicate's own API; tests point it at a local fake). */
  upstream?: string;
  /** Largest request body forwarded to POST /files (Replicate takes files under 100 MB; multipart adds a little). */
  maxUploadBytes?: number;
  /** Largest request body of any other call (JSON). */
  maxJsonBytes?: number;
  /** Time allowed for one API call, request body to last byte of the answer. */
  timeoutMs?: number;
  /** Time allowed for one output download. */
  downloadTimeoutMs?: number;
  /** Origins (scheme://host:port) of pages served elsewhere that may use this proxy (CORS). Default: none. */
  allowOrigins?: readonly string[];
  /**
   * Host names (any port) besides this machine's that requests may be addressed to: `box.lan`, `.home.arpa` for that
   * name and its subdomains, an IP address. Loopback names and addresses (localhost, *.localhost, 127.x.x.x, [::1]) and
   * the address a request reached the server on are always allowed; any other Host is refused (DNS rebinding).
   */
  allowHosts?: readonly string[];
  /** One line per request: method, route, status, time. Never headers, never bodies. */
  log?: (line: string) => void;
  /** For tests. */
  fetch?: typeof fetch;
}

export type Middleware = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

const MiB = 1024 * 1024;
const DEFAULTS = { maxUploadBytes: 101 * MiB, maxJsonBytes: 1 * MiB, timeoutMs: 120_000, downloadTimeoutMs: 600_000 };
const FORWARDED_REQUEST_HEADERS = ['authorization', 'content-type', 'accept'] as const;
const RETURNED_RESPONSE_HEADERS = ['content-type', 'retry-after', 'content-disposition'] as const;
const MAX_DOWNLOAD_REDIRECTS = 3;
/**
 * On every relayed answer: it is served from the page's own origin, where the page keeps the token (localStorage), and
 * anyone can put a file on Replicate's delivery hosts (a model's output). Opened as a page (a link to
 * /replicate/download?url=…), an HTML file would run its scripts as this origin's; sandboxed, with no sniffing, it
 * cannot. fetch() from the page reads the bytes as before.
 */
const RELAY_SAFETY_HEADERS = { 'content-security-policy': "default-src 'none'; sandbox", 'x-content-type-options': 'nosniff' } as const;

class Refusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function answer(res: ServerResponse, status: number, detail: string, cors: Record<string, string> = {}): void {
  if (res.headersSent) return void res.destroy();
  const body = JSON.stringify({ title: PROXY_PROBLEM_TITLE, detail, status });
  // An allowed page must be able to read why it was refused, so the CORS headers go on refusals too.
  res.writeHead(status, { ...cors, 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/** The request body, refused (413) past `limit` bytes — by its Content-Length at once, else as it streams in. */
async function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new Refusal(413, `request body of ${declared} bytes is over this proxy's limit of ${limit} bytes`);
  // A body that trickles in forever would hold the connection: it gets the same time as the whole call.
  const timer = setTimeout(() => req.destroy(new Refusal(408, `the request body did not arrive within ${timeoutMs} ms`)), timeoutMs);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) throw new Refusal(413, `request body is over this proxy's limit of ${limit} bytes`);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  } finally {
    clearTimeout(timer);
  }
}

function forwardedHeaders(req: IncomingMessage): Headers {
  const h = new Headers();
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const v = req.headers[name];
    if (typeof v === 'string') h.set(name, v);
  }
  return h;
}

/** Copies the upstream answer: status, a few headers, the body streamed. */
async function relay(upstream: Response, res: ServerResponse, extraHeaders: Record<string, string>): Promise<void> {
  const headers: Record<string, string> = { 'cache-control': 'no-store', ...RELAY_SAFETY_HEADERS, ...extraHeaders };
  for (const name of RETURNED_RESPONSE_HEADERS) {
    const v = upstream.headers.get(name);
    if (v !== null) headers[name] = v;
  }
  // fetch has already undone any Content-Encoding, so the upstream Content-Length would be wrong: stream unsized.
  res.writeHead(upstream.status, headers);
  if (!upstream.body) return void res.end();
  await new Promise<void>((resolve, reject) => {
    const body = Readable.fromWeb(upstream.body as unknown as NodeReadableStream<Uint8Array>);
    body.on('error', reject);
    res.on('close', resolve);
    body.pipe(res);
  });
}

/** An IPv6 address as the URL parser writes it: compressed, lowercase, in brackets. */
function bracketedIPv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname;
}

/**
 * The name in a Host header (`name[:port]`, `[v6][:port]`): lowercase, IPv6 in brackets; undefined for anything else.
 * A fully qualified name's one trailing dot is dropped (`localhost.` is localhost, `box.lan.` box.lan: the same name to
 * DNS, and what a browser sends for http://localhost.:5173/): refused as another name, the hint said to start the
 * server with --allow-host localhost., which the server refuses.
 */
function hostName(host: string): string | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::\d{0,5})?$/.exec(host);
  if (!m) return undefined;
  if (m[1] !== undefined) return isIP(m[1]) === 6 ? bracketedIPv6(m[1]) : undefined;
  const name = m[2]!.toLowerCase();
  return name.endsWith('.') && !name.endsWith('..') ? name.slice(0, -1) : name;
}

/** A socket's local address as a Host names it: `::ffff:10.0.0.5` is 10.0.0.5, IPv6 in brackets without its zone. */
function addressName(address: string): string | undefined {
  const a = address.split('%')[0]!;
  if (isIP(a) === 4) return a;
  if (isIP(a) !== 6) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return mapped && isIP(mapped[1]!) === 4 ? mapped[1] : bracketedIPv6(a);
}

function isLoopbackName(name: string): boolean {
  return name === 'localhost' || name.endsWith('.localhost') || (isIP(name) === 4 && name.startsWith('127.')) || name === '[::1]';
}

interface HostRule {
  name: string;
  /** `.home.arpa`: the name and any name under it. */
  subdomains: boolean;
}

function hostRule(entry: string): HostRule {
  const subdomains = entry.startsWith('.');
  const rest = subdomains ? entry.slice(1) : entry;
  const name = isIP(rest) === 6 ? bracketedIPv6(rest) : /^[A-Za-z0-9._-]+$|^\[/.test(rest) ? hostName(rest) : undefined;
  if (name === undefined || name === '' || name.startsWith('.') || name.endsWith('.') || (subdomains && name.startsWith('['))) {
    throw new Error(`allowed host ${quote(entry)} is not a host name or an IP address (--allow-host box.lan; .home.arpa for it and its subdomains; 192.168.1.5)`);
  }
  return { name, subdomains };
}

function hostAllowed(host: string | undefined, localAddress: string | undefined, rules: readonly HostRule[]): boolean {
  const name = host === undefined ? undefined : hostName(host);
  if (name === undefined) return false;
  if (isLoopbackName(name)) return true;
  if (localAddress !== undefined && isIP(name.replace(/^\[|\]$/g, '')) !== 0 && addressName(localAddress) === name) return true;
  return rules.some((r) => name === r.name || (r.subdomains && name.endsWith(`.${r.name}`)));
}

/**
 * Whether a request addressed to `host` (its Host header) may use the proxy: a loopback name or address, the address
 * it reached the server on (`localAddress`, the socket's), or one of `allowHosts` (see ReplicateProxyOptions).
 */
export function isHostAllowed(host: string | undefined, o: { localAddress?: string; allowHosts?: readonly string[] }): boolean {
  return hostAllowed(host, o.localAddress, (o.allowHosts ?? []).map(hostRule));
}

/** The host a request is addressed to: its Host header, or HTTP/2's :authority (Vite's https dev server speaks HTTP/2). */
function requestHost(req: IncomingMessage): string | undefined {
  const host = req.headers.host ?? req.headers[':authority'];
  return typeof host === 'string' ? host : undefined;
}

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400;
}

export function createReplicateProxy(options: ReplicateProxyOptions = {}): Middleware {
  const upstream = (options.upstream ?? REPLICATE_API_BASE).replace(/\/+$/, '');
  const limits = { ...DEFAULTS, ...options };
  const doFetch = options.fetch ?? globalThis.fetch;
  const log = options.log ?? (() => {});
  const allowOrigins = new Set(options.allowOrigins ?? []);
  const allowHosts = (options.allowHosts ?? []).map(hostRule);

  /**
   * Refuses a request addressed to a host that is not this machine's nor allowed (DNS rebinding), then gives the CORS
   * headers for the origins named in allowOrigins; any other cross-origin browser request is refused.
   */
  function corsHeaders(req: IncomingMessage): Record<string, string> {
    const host = requestHost(req);
    if (!hostAllowed(host, req.socket?.localAddress, allowHosts)) {
      const shown = host === undefined ? 'no Host header' : `the host ${quote(host)}`;
      const name = host === undefined ? undefined : hostName(host);
      const hint = name === undefined ? '' : ` (start it with --allow-host ${name.replace(/^\[|\]$/g, '')} to allow it; under Vite, add it to server.allowedHosts or preview.allowedHosts)`;
      throw new Refusal(403, `requests for ${shown} may not use this proxy: only this machine's names and addresses (localhost, 127.0.0.1, [::1], the address it listens on) and allowed hosts may, so that a page of another site whose name was made to point here (DNS rebinding) cannot${hint}`);
    }
    const origin = req.headers.origin;
    if (origin === undefined) return {};
    if (host !== undefined && (origin === `http://${host}` || origin === `https://${host}`)) return {};
    if (!allowOrigins.has(origin)) {
      // The header's words, quoted: its bytes past ASCII are read as latin1, and one of them (CSI) starts a terminal's
      // sequences in the log. The hint only for an origin that can be typed as --allow-origin's value.
      const hint = /^[\x21-\x7e]+$/.test(origin) ? ` (start it with --allow-origin ${origin} to allow them)` : '';
      throw new Refusal(403, `pages from ${quote(origin)} may not use this proxy${hint}`);
    }
    return { 'access-control-allow-origin': origin, vary: 'Origin', 'access-control-expose-headers': 'Retry-After' };
  }

  async function api(req: IncomingMessage, res: ServerResponse, rest: string, query: string, cors: Record<string, string>, gone: AbortSignal): Promise<string> {
    const method = req.method ?? 'GET';
    const route = allowedRoute(method, rest);
    if (!route) throw new Refusal(403, `${method} ${PROXY_API_PATH}${rest} is not one of the Replicate calls this proxy forwards`);
    const body = method === 'POST' ? await readBody(req, rest === '/files' ? limits.maxUploadBytes : limits.maxJsonBytes, limits.timeoutMs) : undefined;
    const target = `${upstream}${rest}${method === 'GET' ? query : ''}`;
    const up = await doFetch(target, {
      method,
      headers: forwardedHeaders(req),
      body: body === undefined ? undefined : new Uint8Array(body),
      redirect: 'manual',
      signal: AbortSignal.any([gone, AbortSignal.timeout(limits.timeoutMs)]),
    });
    if (isRedirect(up.status)) throw new Refusal(502, `Replicate answered ${method} ${rest} with a redirect (${up.status}); this proxy does not follow redirects`);
    await relay(up, res, cors);
    return `${up.status} (${route.what})`;
  }

  async function download(req: IncomingMessage, res: ServerResponse, query: string, cors: Record<string, string>, gone: AbortSignal): Promise<string> {
    if (req.method !== 'GET') throw new Refusal(403, `${PROXY_DOWNLOAD_PATH} answers GET only`);
    const raw = new URLSearchParams(query).get('url');
    if (!raw) throw new Refusal(400, `${PROXY_DOWNLOAD_PATH} needs ?url=<the output URL>`);
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new Refusal(400, `${PROXY_DOWNLOAD_PATH}: the url parameter is not a URL`);
    }
    const deadline = AbortSignal.any([gone, AbortSignal.timeout(limits.downloadTimeoutMs)]);
    for (let hop = 0; ; hop++) {
      if (!isDownloadAllowed(url, upstream)) throw new Refusal(403, `downloads come only from Replicate's delivery hosts (https://replicate.delivery and its subdomains), not from ${url.protocol}//${url.host}`);
      const up = await doFetch(url, { method: 'GET', headers: forwardedHeaders(req), redirect: 'manual', signal: deadline });
      if (!isRedirect(up.status)) {
        await relay(up, res, cors);
        return `${up.status} (download from ${url.host})`;
      }
      const location = up.headers.get('location');
      if (!location || hop >= MAX_DOWNLOAD_REDIRECTS) throw new Refusal(502, `the download redirected ${location ? 'too many times' : 'without a Location'}`);
      // Followed only if the next hop passes the same check (at the top of the loop).
      url = new URL(location, url);
    }
  }

  /** The page's "is a proxy there?" question, answered here: nothing is forwarded, no token is needed. */
  function hello(req: IncomingMessage, res: ServerResponse): void {
    let cors: Record<string, string> = {};
    try {
      cors = corsHeaders(req);
      if (req.method !== 'GET') throw new Refusal(403, `${PROXY_HELLO_PATH} answers GET only`);
    } catch (e) {
      const r = e instanceof Refusal ? e : new Refusal(500, 'internal error');
      return answer(res, r.status, r.message, cors);
    }
    const body = JSON.stringify(PROXY_HELLO);
    res.writeHead(200, { ...cors, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  }

  return (req, res, next) => {
    const full = req.url ?? '/';
    const q = full.indexOf('?');
    const path = q < 0 ? full : full.slice(0, q);
    const query = q < 0 ? '' : full.slice(q);
    const isApi = path === PROXY_API_PATH || path.startsWith(`${PROXY_API_PATH}/`);
    const isDownload = path === PROXY_DOWNLOAD_PATH;
    if (path === PROXY_HELLO_PATH) return hello(req, res);
    if (!isApi && !isDownload) {
      if (path === '/replicate' || path.startsWith('/replicate/')) return answer(res, 403, `${path} is not a path of this proxy`);
      return next();
    }
    const started = Date.now();
    const method = req.method ?? 'GET';
    const shown = isApi ? path : PROXY_DOWNLOAD_PATH;
    // The browser closed the connection before the whole answer went out: the upstream request is aborted (its body
    // too), where it used to stay open, unread, until the deadline (2 min for a call, 10 min for a download).
    const browser = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) browser.abort();
    });
    void (async () => {
      let outcome: string;
      let cors: Record<string, string> = {};
      try {
        cors = corsHeaders(req);
        if (method === 'OPTIONS') {
          res.writeHead(204, { ...cors, 'access-control-allow-methods': 'GET, POST', 'access-control-allow-headers': 'Authorization, Content-Type, User-Agent', 'access-control-max-age': '600' });
          res.end();
          outcome = '204 (preflight)';
        } else {
          outcome = isApi ? await api(req, res, path.slice(PROXY_API_PATH.length), query, cors, browser.signal) : await download(req, res, query, cors, browser.signal);
        }
      } catch (e) {
        if (browser.signal.aborted) {
          outcome = 'nothing sent'; // no one to answer
        } else {
          const refusal =
            e instanceof Refusal
              ? e
              : thrownName(e) === 'TimeoutError'
                ? new Refusal(504, 'Replicate did not answer in time')
                : new Refusal(502, `Replicate could not be reached (${thrownMessage(e)})`);
          answer(res, refusal.status, refusal.message, cors);
          outcome = `${refusal.status} ${refusal.message}`;
        }
      }
      log(`replicate-proxy: ${method} ${shown} → ${outcome}${browser.signal.aborted ? ', the browser went away' : ''} in ${Date.now() - started} ms`);
    })();
  };
}
