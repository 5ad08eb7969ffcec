// Fuzzing the Replicate proxy's allowlist over a real loopback socket (requests written byte for byte). The contract,
// for any method, request target (an allowlisted or a forbidden path, mutated: encodings, backslashes, dot segments,
// look-alikes, absolute form, great length…), Host, Origin and Authorization:
// - the proxy either answers itself without calling upstream (a refusal, a preflight, or the app's next handler for a
//   path outside /replicate), or calls upstream exactly once for an API route, at Replicate's API origin, at a path the
//   allowlist names (docs/remote.md), spelled exactly as the allowlist matched it (no normalisation between the check
//   and the forward: the path is read the same by a lenient server as by the check);
// - a download goes only to a delivery host (https, replicate.delivery or a subdomain, default port, no user info) or to
//   the API's own origin at a path that a lenient server would not read as under the API base; every redirect hop too;
// - the token (in Authorization) never appears in a log line or in any answer (the fake upstream never echoes it, so
//   any token that comes back was written by the proxy); log lines and the proxy's own refusals hold no control
//   character, whatever of the request they name.
import fc from 'fast-check';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReplicateProxy } from '../../../src/server/replicate-proxy.ts';
import { listen, type Loopback } from '../../helpers/loopback.ts';
import { mutatedPathText, mutatedTarget, utf8Bytes } from '../../helpers/path-mutations.ts';
import { rawRequest, type RawRequest } from '../../helpers/raw-http.ts';

const API_ORIGIN = 'https://api.replicate.com';
const UPSTREAM = `${API_ORIGIN}/v1`;
const VERSION = '79052a3adbba8116ebc6697dcba67ad0d58feff23e7aeb2f103fc9aa545f9269';

/** Calls after /v1 with the method they are made with: each allowlisted route, and calls a page never needs (which must stay refused however spelled). */
const API_CALLS: [string, string][] = [
  ['GET', '/account'],
  ['POST', '/files'],
  ['GET', '/models'],
  ['POST', '/models'],
  ['GET', '/models/alice/m'],
  ['GET', '/models/alice/m/versions'],
  ['GET', `/models/alice/m/versions/${VERSION}`],
  ['POST', `/models/mistralai/mistral-7b-instruct-v0.2/versions/${VERSION}/trainings`],
  ['GET', '/trainings'],
  ['GET', '/trainings/zz4ibbonubfz7carwiefibzgga'],
  ['POST', '/trainings/zz4ibbonubfz7carwiefibzgga/cancel'],
  ['POST', '/predictions'],
  ['GET', '/webhooks/default/secret'],
  ['POST', '/deployments/a/b/predictions'],
  ['GET', '/models/alice/m/readme'],
  ['GET', '/trainings/abc/../../account'],
];

/** The routes docs/remote.md lists, written here independently of src/remote/endpoints.ts. */
const SEG = '[A-Za-z0-9._-]+';
const DOCUMENTED: [string, RegExp][] = [
  ['GET', /^\/account$/],
  ['POST', /^\/files$/],
  ['GET', /^\/models$/],
  ['POST', /^\/models$/],
  ['GET', new RegExp(`^/models/${SEG}/${SEG}$`)],
  ['GET', new RegExp(`^/models/${SEG}/${SEG}/versions$`)],
  ['GET', new RegExp(`^/models/${SEG}/${SEG}/versions/${SEG}$`)],
  ['POST', new RegExp(`^/models/${SEG}/${SEG}/versions/${SEG}/trainings$`)],
  ['GET', /^\/trainings$/],
  ['GET', new RegExp(`^/trainings/${SEG}$`)],
  ['POST', new RegExp(`^/trainings/${SEG}/cancel$`)],
];

/** Whether `path` (after /v1) is a documented route for `method`, with no dot segment among its segments. */
function documented(method: string, path: string): boolean {
  if (path.split('/').some((s) => s === '.' || s === '..')) return false;
  return DOCUMENTED.some(([m, re]) => m === method && re.test(path));
}

/**
 * `pathname` as lenient servers may read it, one reading per way: percent-decoded none to four times (a server that
 * decodes, behind another that decoded already), `\` as `/`, `;` parameters dropped from each segment (as servlet
 * containers do), repeated slashes as one, dot segments resolved, lowercase. Null for a reading that fails to decode:
 * what a server makes of that is anyone's guess, so such a path is taken as possibly under the API.
 */
function lenientReadings(pathname: string): (string | null)[] {
  const readings: (string | null)[] = [];
  let p = pathname;
  for (let i = 0; i < 4; i++) {
    readings.push(normalised(p));
    try {
      p = decodeURIComponent(p);
    } catch {
      readings.push(null);
      break;
    }
  }
  return readings;
}

function normalised(p: string): string {
  const segments: string[] = [];
  for (const raw of p.replace(/\\/g, '/').split('/')) {
    const s = raw.split(';')[0]!;
    if (s === '' || s === '.') continue;
    if (s === '..') segments.pop();
    else segments.push(s.toLowerCase());
  }
  return `/${segments.join('/')}`;
}

/** Whether a download may go to `url` (docs/remote.md): a delivery host, or the API's origin outside the API. */
function downloadAllowed(url: URL): boolean {
  if (url.username !== '' || url.password !== '') return false;
  const delivery = url.protocol === 'https:' && url.port === '' && (url.hostname === 'replicate.delivery' || url.hostname.endsWith('.replicate.delivery'));
  if (delivery) return true;
  if (url.origin !== API_ORIGIN) return false;
  return lenientReadings(url.pathname).every((r) => r !== null && r !== '/v1' && !r.startsWith('/v1/'));
}

const alnum = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'];
/** A token of Replicate's shape: "r8_" and 37 letters and digits. */
const tokenArb = fc.string({ unit: fc.constantFrom(...alnum), minLength: 37, maxLength: 37 }).map((s) => `r8_${s}`);

const METHODS = ['GET', 'GET', 'GET', 'POST', 'POST', 'OPTIONS', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'CONNECT', 'get'];

interface Call {
  url: string;
  method: string;
}

let server: Loopback;
let port: number;
const logs: string[] = [];
let calls: Call[] = [];
/** What the fake upstream answers a download with, in order (a Location each: a redirect), then 200. */
let redirects: string[] = [];

beforeAll(async () => {
  // The fake upstream: records each call and answers without ever echoing anything it was sent.
  const fakeFetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    calls.push({ url, method: init?.method ?? 'GET' });
    const location = redirects.shift();
    if (location !== undefined) return new Response(null, { status: 302, headers: { location } });
    return new Response('{"ok":true}', { status: 200, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  const proxy = createReplicateProxy({ upstream: UPSTREAM, fetch: fakeFetch, log: (l) => logs.push(l), allowOrigins: ['http://pages.example'], allowHosts: ['box.lan'] });
  server = await listen((req, res) => proxy(req, res, () => res.writeHead(404, { 'x-app': 'next' }).end('the app')));
  port = (server.server.address() as AddressInfo).port;
});
afterAll(() => server.close());

/**
 * Host, Origin and Authorization header lines for a token: half the time those of the page on this origin, else each
 * drawn (possibly absent, another host, another origin).
 */
function headersArb(token: string): fc.Arbitrary<[string, string][]> {
  const page = fc.constant<[string, string][]>([['Host', `127.0.0.1:${port}`], ['Authorization', `Bearer ${token}`]]);
  const drawn = fc
    .tuple(
      fc.constantFrom<string | null>('127.0.0.1:PORT', '127.0.0.1:PORT', 'localhost', '[::1]:80', 'box.lan', 'evil.example', 'evil.example:5173', '127.0.0.1.evil.example', 'ev\u009b2Jil.example', '', null),
      // Header bytes past ASCII are read as latin1: \u009b is the byte of the C1 control CSI, which starts a terminal's sequences.
      fc.constantFrom<string | null>(null, null, 'http://HOST', 'http://pages.example', 'http://evil.example', 'null', 'http://e\u009b2Jvil.example', 'http://\u00e9vil.example'),
      fc.constantFrom<string | null>(`Bearer ${token}`, `Bearer ${token}`, token, `Token ${token}`, `bearer ${token}`, `Bearer ${token}, Bearer ${token}`, null),
    )
    .map(([host, origin, auth]) => {
      const h = host?.replace('PORT', String(port)) ?? null;
      const lines: [string, string][] = [];
      if (h !== null) lines.push(['Host', h]);
      if (origin !== null) lines.push(['Origin', origin.replace('HOST', h ?? '')]);
      if (auth !== null) lines.push(['Authorization', auth]);
      return lines;
    });
  return fc.oneof(page, drawn);
}

/** The path of a request target before its query, and the query with its '?' ('' when none). */
function split(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q < 0 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q) };
}

/** Sends `r`, and returns the upstream calls it caused and the log lines it wrote, with the answer. */
async function send(r: RawRequest): Promise<{ status: number; appAnswered: boolean; bytes: Buffer; body: Buffer; contentType: string | undefined; calls: Call[]; logs: string[] }> {
  calls = [];
  const before = logs.length;
  const answer = await rawRequest(port, r);
  // The log line is written when the answer has gone out: one turn later at most.
  await new Promise((resolve) => setImmediate(resolve));
  return { status: answer.status, appAnswered: answer.headers.get('x-app') === 'next', bytes: answer.bytes, body: answer.body, contentType: answer.headers.get('content-type'), calls, logs: logs.slice(before) };
}

/** C0 and C1 control characters and DEL: none may reach a log line (a terminal) or a refusal's words (the page). */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * The token is in no log line and no answer; the log lines and the words of the proxy's own answers (problem+json)
 * hold no control character: whatever of the request they name (a path, an Origin, a Host) is escaped.
 */
function expectNoTokenNorControls(token: string, where: { bytes: Buffer; body: Buffer; contentType: string | undefined; logs: string[] }): void {
  expect(where.bytes.includes(token)).toBe(false);
  for (const line of where.logs) {
    expect(line).not.toContain(token);
    expect({ line, controls: CONTROLS.test(line) }).toEqual({ line, controls: false });
  }
  if (where.contentType === 'application/problem+json' && where.body.length > 0) {
    const detail = (JSON.parse(where.body.toString('utf8')) as { detail: string }).detail;
    expect({ detail, controls: CONTROLS.test(detail) }).toEqual({ detail, controls: false });
  }
}

describe('the proxy\'s API allowlist, for generated requests', () => {
  it('refuses without calling upstream, or forwards once to an allowlisted path spelled as matched; never shows the token', async () => {
    // The method of the call (most of the time) or any other; the call's path mutated, or another path of the server.
    const apiRequest = fc.constantFrom(...API_CALLS).chain(([m, p]) =>
      fc.record({ method: fc.oneof({ weight: 3, arbitrary: fc.constant(m) }, { weight: 1, arbitrary: fc.constantFrom(...METHODS) }), target: mutatedTarget([`/replicate/v1${p}`]) }),
    );
    const otherRequest = fc.record({ method: fc.constantFrom(...METHODS), target: mutatedTarget(['/replicate/hello', '/replicate', '/replicate/', '/replicate/v2/account', '/index.html']) });
    const requestArb = fc.tuple(fc.oneof({ weight: 4, arbitrary: apiRequest }, { weight: 1, arbitrary: otherRequest }), tokenArb).map(([r, token]) => ({ ...r, token }));
    await fc.assert(
      fc.asyncProperty(requestArb.chain((r) => headersArb(r.token).map((headers) => ({ ...r, headers }))), async ({ method, target, token, headers }) => {
        const body = method === 'POST' ? new TextEncoder().encode('{"destination":"alice/m"}') : undefined;
        const got = await send({ method, target, headers, body });
        expectNoTokenNorControls(token, got);
        // Always an answer, but to CONNECT: Node's server closes the connection of a CONNECT nothing listens for.
        if (method !== 'CONNECT') expect(got.status).toBeGreaterThan(0);
        if (got.calls.length === 0) {
          // Answered by the proxy itself (or the app): nothing forwarded, so nothing may look like Replicate's success.
          const ownAnswer = got.appAnswered || (method === 'OPTIONS' && got.status === 204) || target.startsWith('/replicate/hello') || (method === 'CONNECT' && got.status === 0);
          if (!ownAnswer) expect(got.status).toBeGreaterThanOrEqual(400);
          return;
        }
        expect(got.appAnswered).toBe(false);
        expect(got.calls).toHaveLength(1);
        const [call] = got.calls;
        // Node's parser skips spaces before the target, as the request line allows none there: read as it reads it.
        const { path, query } = split(target.replace(/^ +/, ''));
        expect(path.startsWith('/replicate/v1/')).toBe(true);
        const rest = path.slice('/replicate/v1'.length);
        // Exactly what was matched, on Replicate's origin, with the query on GETs only.
        expect(call!.url).toBe(`${UPSTREAM}${rest}${method === 'GET' ? query : ''}`);
        const url = new URL(call!.url);
        expect(url.origin).toBe(API_ORIGIN);
        // The URL parser leaves the path as it was matched, and a lenient server reads it the same way.
        expect(url.pathname).toBe(`/v1${rest}`);
        expect(new Set(lenientReadings(url.pathname))).toEqual(new Set([normalised(url.pathname)]));
        expect(documented(method, rest)).toBe(true);
        expect(call!.method).toBe(method);
      }),
      { numRuns: 2000 },
    );
  }, 60_000);
});

/** Output URLs: delivery hosts and look-alikes, the API's origin (outside the API and in it), other hosts. */
const DOWNLOAD_ORIGINS = [
  'https://replicate.delivery',
  'https://pbxt.replicate.delivery',
  'https://REPLICATE.DELIVERY',
  API_ORIGIN,
  'https://API.replicate.com:443',
  'http://api.replicate.com',
  'https://evil.example',
  'http://replicate.delivery',
  'https://replicate.delivery.evil.example',
  'https://evilreplicate.delivery',
  'https://user@replicate.delivery',
  'https://replicate.delivery:8443',
  'https://replicate.delivery.',
  'https://api.replicate.com@evil.example',
  'https://evil.example\\@replicate.delivery',
  'https://evil.example#@replicate.delivery',
  'https://evil.example?@replicate.delivery',
  'https://replicate%2edelivery',
  'https://repl\u0456cate.delivery',
  'https://\uff52eplicate.delivery',
  'http://127.0.0.1',
  'file://',
];
const DOWNLOAD_PATHS = ['/pbxt/abc/trainings.zip', '/delivery/x.zip', '/v1/webhooks/default/secret', '/v1/account', '/v1', '/v2/x', '/', '/x/../v1/trainings'];

/** A generated output URL: an origin and a mutated path. */
const outputUrlArb = fc.tuple(fc.constantFrom(...DOWNLOAD_ORIGINS), mutatedPathText(DOWNLOAD_PATHS)).map(([o, p]) => o + p);

describe('the proxy\'s download route, for generated output URLs and redirects', () => {
  it('fetches only from delivery hosts or the API origin outside the API, every hop; never shows the token', async () => {
    const arb = fc
      .record({
        url: outputUrlArb,
        // How the url parameter is written: encoded as a page does, or raw (bytes as they are, a lenient client).
        encoded: fc.boolean(),
        method: fc.constantFrom('GET', 'GET', 'GET', 'GET', 'GET', 'POST', 'OPTIONS'),
        hops: fc.array(outputUrlArb, { maxLength: 4 }),
        token: tokenArb,
      })
      .chain((r) => headersArb(r.token).map((headers) => ({ ...r, headers })));
    await fc.assert(
      fc.asyncProperty(arb, async ({ url, encoded, method, hops, token, headers }) => {
        redirects = [...hops];
        const target = `/replicate/download?url=${encoded ? encodeURIComponent(url) : utf8Bytes(url)}`;
        const got = await send({ method, target, headers });
        redirects = [];
        expectNoTokenNorControls(token, got);
        expect(got.status).toBeGreaterThan(0);
        for (const call of got.calls) {
          expect(call.method).toBe('GET');
          expect({ url: call.url, allowed: downloadAllowed(new URL(call.url)) }).toEqual({ url: call.url, allowed: true });
        }
        expect(got.calls.length).toBeLessThanOrEqual(4); // the first hop and at most 3 redirects
        if (got.calls.length === 0 && !(method === 'OPTIONS' && got.status === 204)) expect(got.status).toBeGreaterThanOrEqual(400);
      }),
      { numRuns: 1500 },
    );
  }, 60_000);
});
