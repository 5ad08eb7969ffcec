// Redirects followed by the HTTP source itself (Node: `redirects: 'here'`), as the Hub serves a large file: its resolve
// URL answers 302 with X-Linked-Etag (the LFS file's SHA-256) and a Location on its CDN, whose ETag differs from node
// to node. The file's version is the X-Linked-Etag (a CDN ETag made the weight cache miss, and a resumed read was
// refused as "changed"), and the token goes to the URL's own origin only, never to the CDN.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { modelSpec } from '../../../src/cli/node-source.ts';
import { hubFileSet, hubSource, httpSource } from '../../../src/model/source.ts';
import { errorOf } from './helpers.ts';

const TOKEN = 'hf_redirectTestToken0123456789';
const FILE = new Uint8Array(5000).map((_, i) => (i * 7) % 251);
const SHA = '"5a1f0e0c9d7b3a2e1f4c6b8a9d0e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"';

interface Seen {
  path: string;
  headers: IncomingHttpHeaders;
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; origin: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const close = (s: Server): Promise<void> =>
  new Promise((r) => {
    s.closeAllConnections();
    s.close(() => r());
  });

describe('redirects followed by the source', () => {
  const hubSeen: Seen[] = [];
  const cdnSeen: Seen[] = [];
  let hub: { server: Server; origin: string };
  let cdn: { server: Server; origin: string };
  let cdnNode = 0;
  beforeAll(async () => {
    // The CDN: Range support, and another ETag from each "node" (every answer).
    cdn = await listen((req, res) => {
      cdnSeen.push({ path: req.url ?? '', headers: req.headers });
      // A signed link past its expiry: the CDN refuses it, whoever asks (403 as S3 does, 401 as some CDNs do).
      if (req.url?.startsWith('/expired/')) return void res.writeHead(Number(req.url.slice(9, 12))).end('AccessDenied: Request has expired');
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const [start, end] = m ? [Number(m[1]), Math.min(Number(m[2]), FILE.length - 1)] : [0, FILE.length - 1];
      const etag = req.url?.startsWith('/plain/') ? '"plain"' : `"cdn-node-${++cdnNode}"`;
      res.writeHead(m ? 206 : 200, { etag, 'content-range': `bytes ${start}-${end}/${FILE.length}`, 'content-length': end - start + 1 });
      res.end(FILE.subarray(start, end + 1));
    });
    // The Hub: a renamed repository (same-origin 307 to the new name), then the resolve URL's 302 to the CDN. A loop
    // for the redirect limit, and a redirect without X-Linked-Etag (a plain server's).
    hub = await listen((req, res) => {
      hubSeen.push({ path: req.url ?? '', headers: req.headers });
      const url = req.url ?? '';
      if (url.startsWith('/old-name/')) return void res.writeHead(307, { location: url.replace('/old-name/', '/new-name/') }).end();
      if (url === '/new-name/resolve/main/model.safetensors') {
        return void res.writeHead(302, { location: `${cdn.origin}/blobs/abc?X-Amz-Signature=secret`, 'x-linked-etag': SHA, etag: '"pointer-file"', 'x-repo-commit': 'f'.repeat(40) }).end();
      }
      if (url.startsWith('/cdn-refuses/')) return void res.writeHead(302, { location: `${cdn.origin}/expired/${url.slice(13, 16)}/blob?X-Amz-Signature=secret` }).end();
      if (url === '/plain/file.bin') return void res.writeHead(302, { location: `${cdn.origin}/plain/file.bin` }).end();
      if (url.startsWith('/loop/')) return void res.writeHead(302, { location: `/loop/${Number(url.slice(6)) + 1}` }).end();
      res.writeHead(404).end();
    });
  });
  afterAll(async () => {
    await close(hub.server);
    await close(cdn.server);
  });

  it("is versioned by the first answer's X-Linked-Etag, reads across CDN nodes, and sends the token to the URL's origin only", async () => {
    hubSeen.length = 0;
    cdnSeen.length = 0;
    const src = await httpSource(`${hub.origin}/old-name/resolve/main/model.safetensors`, { token: TOKEN, redirects: 'here', retryDelayMs: 5 });
    expect(src.size).toBe(FILE.length);
    expect(src.version).toBe(`http ${SHA}`);
    // What earlier builds called its version (the CDN's ETag then), for the weight cache to move their entries.
    expect(src.formerVersion).toBe('http "cdn-node-1"');
    // Two reads, answered by two other CDN "nodes" with other ETags: the same file, not "changed".
    const a = await src.read(0, 2000);
    const b = await src.read(2000, 3000);
    expect(Buffer.concat([a, b]).equals(Buffer.from(FILE))).toBe(true);
    expect(cdnSeen.length).toBe(3);
    expect(cdnSeen.every((s) => s.headers.authorization === undefined)).toBe(true);
    expect(cdnSeen.map((s) => s.headers.range)).toEqual(['bytes=0-0', 'bytes=0-1999', 'bytes=2000-4999']);
    // Both hops on the Hub's origin (the rename's and the resolve URL's) carried it.
    expect(hubSeen.map((s) => s.path)).toEqual(Array(3).fill(['/old-name/resolve/main/model.safetensors', '/new-name/resolve/main/model.safetensors']).flat());
    expect(hubSeen.every((s) => s.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });

  it("without X-Linked-Etag the last answer's ETag is the version", async () => {
    const src = await httpSource(`${hub.origin}/plain/file.bin`, { redirects: 'here' });
    expect(src.version).toBe('http "plain"');
    expect(src.formerVersion).toBeUndefined();
    expect(Buffer.from(await src.read(10, 20)).equals(Buffer.from(FILE.subarray(10, 30)))).toBe(true);
  });

  it("says the download host refused the file when the CDN answers 401 / 403 after the redirect, not that the token is wrong", async () => {
    for (const status of [401, 403]) {
      for (const redirects of ['here', 'fetch'] as const) {
        const e = await errorOf(() => httpSource(`${hub.origin}/cdn-refuses/${status}/model.safetensors`, { token: TOKEN, redirects, name: 'o/m/model.safetensors', accessHint: 'Model page: https://huggingface.co/o/m' }));
        const host = new URL(cdn.origin).host;
        expect(e.message, `${status}, redirects followed by ${redirects}`).toBe(`o/m/model.safetensors: the download host ${host}, where the server redirected the download, refused the file (HTTP ${status}): the download link may have expired; load it again.`);
        expect(e.message).not.toMatch(/token|licence/);
        expect(e.message).not.toContain('secret'); // the signed link's query is not repeated
        expect(e.details?.status).toBe(status);
        expect(e.details?.reason).toBe('download-host-refused');
      }
    }
    // A Hub file: the Hub redirected it, and the token that reached the Hub is not what the CDN refused.
    const hubFetch: typeof fetch = (u, init) => fetch(String(u).replace('https://huggingface.co/o/m/resolve/main/', `${hub.origin}/cdn-refuses/403/`), init);
    const e = await errorOf(() => hubSource('o/m', 'model.safetensors', { token: TOKEN, fetch: hubFetch, redirects: 'here' }));
    expect(e.message).toBe(`o/m/model.safetensors: the download host ${new URL(cdn.origin).host}, where the Hub redirected the download, refused the file (HTTP 403): the download link may have expired; load it again.`);
  });

  it('stops after 10 redirects, naming the file', async () => {
    const e = await errorOf(() => httpSource(`${hub.origin}/loop/0`, { redirects: 'here', token: TOKEN }));
    expect(e.message).toBe(`${hub.origin}/loop/0: more than 10 redirects; check the URL.`);
  });
});

describe("the command line's Hub and URL models", () => {
  afterEach(() => vi.unstubAllGlobals());

  it('follow redirects themselves: the token never goes to the CDN, and the version is the X-Linked-Etag', async () => {
    const seen: { url: string; authorization: string | null; redirect: RequestRedirect | undefined }[] = [];
    vi.stubGlobal('fetch', async (u: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const url = String(u);
      const h = new Headers(init?.headers);
      seen.push({ url, authorization: h.get('authorization'), redirect: init?.redirect });
      const range = /bytes=(\d+)-(\d+)/.exec(h.get('range') ?? '');
      const [start, end] = range ? [Number(range[1]), Number(range[2])] : [0, FILE.length - 1];
      if (url.startsWith('https://huggingface.co/')) {
        // As the Hub answers: the redirect when it may be seen, else (fetch following it) the CDN's answer, with the
        // Authorization header fetch was given.
        if (init?.redirect === 'manual') return new Response(null, { status: 302, headers: { location: 'https://cas-bridge.xethub.hf.co/blob?sig=x', 'x-linked-etag': SHA } });
      }
      return new Response(FILE.slice(start, end + 1), { status: 206, headers: { etag: `"cdn-${seen.length}"`, 'content-range': `bytes ${start}-${end}/${FILE.length}` } });
    });
    const spec = modelSpec('someone/model', { token: TOKEN });
    const src = await spec.files.open('model.safetensors');
    expect(src.version).toBe(`http ${SHA}`);
    expect(seen.map((s) => [s.url.replace(/\?.*$/, ''), s.authorization, s.redirect])).toEqual([
      ['https://huggingface.co/someone/model/resolve/main/model.safetensors', `Bearer ${TOKEN}`, 'manual'],
      ['https://cas-bridge.xethub.hf.co/blob', null, 'manual'],
    ]);
  });
});

describe("the Hub's commit pin when redirects are followed here", () => {
  afterEach(() => vi.unstubAllGlobals());
  const C1 = '1'.repeat(40);
  const C2 = '2'.repeat(40);

  /** A Hub whose answers come through redirects: X-Repo-Commit only on the Hub's own hop, never on the final answer. */
  function stubHub(commitOf: (url: string) => string): string[] {
    const asked: string[] = [];
    vi.stubGlobal('fetch', async (u: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const url = String(u);
      const range = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get('range') ?? '');
      const [start, end] = range ? [Number(range[1]), Number(range[2])] : [0, FILE.length - 1];
      if (url.startsWith('https://huggingface.co/')) {
        asked.push(url);
        // A small file by the resolve cache, a large one by the CDN: either way the final answer has no X-Repo-Commit.
        const location = url.endsWith('config.json') ? 'https://huggingface.co/api/resolve-cache/x' : 'https://cas-bridge.xethub.hf.co/blob?sig=x';
        if (!url.includes('/api/resolve-cache/')) return new Response(null, { status: 307, headers: { location, 'x-repo-commit': commitOf(url), 'x-linked-etag': SHA } });
      }
      return new Response(FILE.slice(start, end + 1), { status: 206, headers: { etag: '"final"', 'content-range': `bytes ${start}-${end}/${FILE.length}` } });
    });
    return asked;
  }

  it("pins the load to the commit the Hub's redirect names, and reads every later file at it", async () => {
    const asked = stubHub(() => C1);
    const files = modelSpec('someone/model').files;
    await files.open('config.json');
    await files.open('model-00001-of-00002.safetensors');
    // The second file at the commit of the first (it was read at main, unpinned: the redirect's header was not read).
    expect(asked.filter((u) => u.includes('model-00001')).every((u) => u.includes(`/resolve/${C1}/`))).toBe(true);
  });

  it('refuses a file whose redirect names another commit than the one the load is pinned to', async () => {
    stubHub((url) => (url.includes('model-00002') ? C2 : C1));
    const files = modelSpec('someone/model').files;
    await files.open('config.json');
    const e = await errorOf(() => files.open('model-00002-of-00002.safetensors'));
    expect(e.message).toContain(`the Hub answered commit ${C2} for this file, and ${C1} for the files before it: the repository changed while the model was loading`);
  });
});

describe('a signed download link that expires in the middle of a load', () => {
  // A 7B load reads for an hour and more, longer than the CDN's signed links last. The CDN honours a link for LINK_BYTES
  // bytes: the body that reaches them is cut there (the connection drops), and the link is refused (403) from then on.
  // The Hub hands out the link it minted, as a cache would, until the CDN has refused that link; asked after that, it
  // mints a fresh one (`renew`), or keeps handing out the dead one. `fresh`: what a fresh link serves (another file:
  // the repository changed meanwhile).
  const LINK_BYTES = 3000;
  const C1 = '1'.repeat(40);
  const C2 = '2'.repeat(40);
  const OTHER = new Uint8Array(4000).map((_, i) => (i * 11 + 3) % 251);
  interface Plan {
    renew: boolean;
    fresh?: { file: Uint8Array; etag: string; commit: string };
  }
  interface State {
    plan: Plan;
    link: number;
    spent: Map<number, number>;
    dead: Set<number>;
    refused: Set<number>;
  }
  const states = new Map<string, State>();
  /** The Hub's asks per scenario; 'fresh' where it asked past any cache (Cache-Control: no-cache, fetch's no-store). */
  const hubAsks: string[] = [];
  const cdnLog: string[] = [];
  let hub: { server: Server; origin: string };
  let cdn: { server: Server; origin: string };
  beforeAll(async () => {
    cdn = await listen((req, res) => {
      const m = /^\/signed\/([^/]+)\/blob\?sig=(\d+)-secret$/.exec(req.url ?? '');
      const s = m ? states.get(m[1]) : undefined;
      if (!m || !s) return void res.writeHead(404).end();
      const link = Number(m[2]);
      const range = req.headers.range ?? '';
      if (s.dead.has(link)) {
        s.refused.add(link);
        cdnLog.push(`${m[1]} link ${link} ${range} 403`);
        return void res.writeHead(403).end('AccessDenied: Request has expired');
      }
      cdnLog.push(`${m[1]} link ${link} ${range} 206`);
      const fresh = link > 1 ? s.plan.fresh : undefined;
      const file = fresh?.file ?? FILE;
      const r = /^bytes=(\d+)-(\d+)$/.exec(range);
      const [start, end] = r ? [Number(r[1]), Math.min(Number(r[2]), file.length - 1)] : [0, file.length - 1];
      res.writeHead(206, { etag: fresh?.etag ?? '"v1"', 'content-range': `bytes ${start}-${end}/${file.length}`, 'content-length': end - start + 1 });
      const left = LINK_BYTES - (s.spent.get(link) ?? 0);
      if (end - start + 1 < left) {
        s.spent.set(link, (s.spent.get(link) ?? 0) + end - start + 1);
        return void res.end(file.subarray(start, end + 1));
      }
      // The link runs out in this body: what it still covers is sent, then the connection drops.
      s.spent.set(link, LINK_BYTES);
      s.dead.add(link);
      res.write(file.subarray(start, start + left), () => setTimeout(() => res.socket?.destroy(), 20));
    });
    hub = await listen((req, res) => {
      const m = /^\/expiring\/([^/]+)\/model\.safetensors$/.exec(req.url ?? '');
      const s = m ? states.get(m[1]) : undefined;
      if (!m || !s) return void res.writeHead(404).end();
      hubAsks.push(`${m[1]}${req.headers['cache-control'] === 'no-cache' ? ' fresh' : ''}`);
      if (s.plan.renew && s.refused.has(s.link)) s.link++;
      const fresh = s.link > 1 ? s.plan.fresh : undefined;
      res.writeHead(302, { location: `${cdn.origin}/signed/${m[1]}/blob?sig=${s.link}-secret`, 'x-linked-etag': fresh?.etag ?? SHA, 'x-repo-commit': fresh?.commit ?? C1 }).end();
    });
  });
  afterAll(async () => {
    await close(hub.server);
    await close(cdn.server);
  });
  const scenario = (name: string, plan: Plan): string => {
    states.set(name, { plan, link: 1, spent: new Map(), dead: new Set(), refused: new Set() });
    return `${hub.origin}/expiring/${name}/model.safetensors`;
  };

  for (const redirects of ['here', 'fetch'] as const) {
    it(`asks the Hub again for a fresh link when the CDN refuses the old one, and reads on from the byte it had reached (redirects followed by ${redirects})`, async () => {
      const url = scenario(`renewed-${redirects}`, { renew: true });
      const src = await httpSource(url, { token: TOKEN, redirects, retryDelayMs: 5, name: 'o/m/model.safetensors' });
      expect(src.size).toBe(FILE.length);
      const bytes = await src.read(0, FILE.length);
      expect(Buffer.from(bytes).equals(Buffer.from(FILE))).toBe(true);
      // The probe's byte and the first 2999 of the read on link 1; its resume (from byte 2999, not from 0) was refused,
      // and the rest came on link 2, which the Hub gave when it was asked again, past any cache.
      expect(hubAsks.filter((a) => a.startsWith(`renewed-${redirects}`))).toEqual([...Array(3).fill(`renewed-${redirects}`), `renewed-${redirects} fresh`]);
      expect(cdnLog.filter((l) => l.startsWith(`renewed-${redirects} `))).toEqual([
        `renewed-${redirects} link 1 bytes=0-0 206`,
        `renewed-${redirects} link 1 bytes=0-4999 206`,
        `renewed-${redirects} link 1 bytes=2999-4999 403`,
        `renewed-${redirects} link 2 bytes=2999-4999 206`,
      ]);
    });

    it(`fails with the download host's refusal when the fresh link is refused too (redirects followed by ${redirects})`, async () => {
      const name = `dead-${redirects}`;
      const url = scenario(name, { renew: false });
      const src = await httpSource(url, { token: TOKEN, redirects, retryDelayMs: 5, name: 'o/m/model.safetensors' });
      const e = await errorOf(() => src.read(0, FILE.length));
      expect(e.message).toBe(`o/m/model.safetensors: the download host ${new URL(cdn.origin).host}, where the server redirected the download, refused the file (HTTP 403): the download link may have expired; load it again.`);
      expect(e.details?.reason).toBe('download-host-refused');
      expect(e.message).not.toContain('secret');
      // Asked once more, not again and again: the probe, the read, its resume and one fresh ask.
      expect(hubAsks.filter((a) => a.split(' ')[0] === name)).toEqual([name, name, name, `${name} fresh`]);
      expect(cdnLog.filter((l) => l.startsWith(`${name} `) && l.endsWith(' 403'))).toEqual([`${name} link 1 bytes=2999-4999 403`, `${name} link 1 bytes=2999-4999 403`]);
    });

    it(`refuses a fresh link that serves another file: the identity checks hold for it (redirects followed by ${redirects})`, async () => {
      const url = scenario(`changed-${redirects}`, { renew: true, fresh: { file: OTHER, etag: '"v2"', commit: C1 } });
      const src = await httpSource(url, { token: TOKEN, redirects, retryDelayMs: 5, name: 'o/m/model.safetensors' });
      const e = await errorOf(() => src.read(0, FILE.length));
      expect(e.details?.reason).toBe('changed');
      expect(e.message).toMatch(/^o\/m\/model\.safetensors: the file changed on the server while it was being read/);
    });
  }

  it("refuses a fresh link from another commit than the one the Hub's load is pinned to", async () => {
    const url = scenario('commit', { renew: true, fresh: { file: FILE, etag: SHA, commit: C2 } });
    const hubFetch: typeof fetch = (u, init) => fetch(String(u).replace(/^https:\/\/huggingface\.co\/o\/m\/resolve\/[^/]+\/model\.safetensors$/, url), init);
    const files = hubFileSet('o/m', { token: TOKEN, fetch: hubFetch, redirects: 'here', retryDelayMs: 5 });
    const src = await files.open('model.safetensors');
    const e = await errorOf(() => src.read(0, FILE.length));
    expect(e.message).toContain(`o/m/model.safetensors: the Hub answered commit ${C2} for this file, and ${C1} for the files before it: the repository changed while the model was loading`);
  });
});
