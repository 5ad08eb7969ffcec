// A Hub load where fetch follows the redirects (the page): the Hub API pins it to a commit and versions each file by
// its content id (src/model/hub-manifest.ts), so a CDN that gives the same file other ETags from other nodes neither
// fails a read as "changed" nor misses the weight cache. Against a fake Hub: the real one is not reachable here.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hubFileSet, readJson } from '../../../src/model/source.ts';
import { errorOf } from './helpers.ts';

const TOKEN = 'hf_SeCrEtToKeN1234567890abcdef';
const COMMIT = 'c0ffee0000000000000000000000000000000001';
const BLOB = 'b10b000000000000000000000000000000000002';
const WEIGHTS = new Uint8Array(4000).map((_, i) => (i * 13 + 5) & 0xff);
const CONFIG = new TextEncoder().encode('{"r": 4}');
const SHA = createHash('sha256').update(WEIGHTS).digest('hex');

interface Call {
  method: string;
  url: string;
  auth: string | null;
  body: string | null;
}

/**
 * The Hub as the page sees it: the API (revision, paths-info) and resolve URLs that answer Range requests with a new
 * ETag each time (a CDN's nodes). `api`: 'ok', 'missing' (404s), 'garbage' (a 200 of HTML); `listedSize`: the size
 * paths-info gives the weights.
 */
function fakeHub(o: { api?: 'ok' | 'missing' | 'garbage' | 'huge'; listedSize?: number } = {}): { fetch: typeof fetch; calls: Call[] } {
  const calls: Call[] = [];
  let node = 0;
  const fetchImpl: typeof fetch = async (input, init) => {
    const url = String(input);
    const headers = new Headers(init?.headers);
    calls.push({ method: init?.method ?? 'GET', url, auth: headers.get('authorization'), body: typeof init?.body === 'string' ? init.body : null });
    if (url.startsWith('https://huggingface.co/api/')) {
      if (o.api === 'missing') return new Response('{"error":"not found"}', { status: 404 });
      if (o.api === 'garbage') return new Response('<html>proxy login</html>', { status: 200 });
      // An answer past the bound, without a Content-Length: read no further than the bound.
      if (o.api === 'huge') return new Response(new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(1 << 20).fill(0x20)) }), { status: 200 });
      if (url === 'https://huggingface.co/api/models/someone/model/revision/main') return Response.json({ id: 'someone/model', sha: COMMIT, siblings: [] });
      if (url === `https://huggingface.co/api/models/someone/model/paths-info/${COMMIT}` && init?.method === 'POST') {
        const { paths } = JSON.parse(String(init.body)) as { paths: string[] };
        const listed: Record<string, unknown> = {
          'config.json': { type: 'file', path: 'config.json', size: CONFIG.length, oid: BLOB },
          'model.safetensors': { type: 'file', path: 'model.safetensors', size: o.listedSize ?? WEIGHTS.length, oid: 'f'.repeat(40), lfs: { oid: SHA, size: WEIGHTS.length, pointerSize: 134 } },
        };
        return Response.json(paths.flatMap((p) => (listed[p] ? [listed[p]] : [])));
      }
      return new Response('', { status: 404 });
    }
    const m = /^https:\/\/huggingface\.co\/someone\/model\/resolve\/([^/]+)\/(.+)$/.exec(url);
    const body = m?.[2] === 'config.json' ? CONFIG : m?.[2] === 'model.safetensors' ? WEIGHTS : null;
    if (!body) return new Response('', { status: 404, headers: { 'x-error-code': 'EntryNotFound' } });
    const r = /^bytes=(\d+)-(\d+)$/.exec(headers.get('range') ?? '')!;
    const [start, end] = [Number(r[1]), Math.min(Number(r[2]), body.length - 1)];
    return new Response(body.slice(start, end + 1), {
      status: 206,
      headers: { 'content-range': `bytes ${start}-${end}/${body.length}`, etag: `"cdn-node-${node++}"` },
    });
  };
  return { fetch: fetchImpl, calls };
}

describe('Hub loads read through fetch (the page): the API names the commit and each file\'s content', () => {
  it('versions each file by its content id, reads it at the commit, and reads on when the CDN\'s ETags differ', async () => {
    const hub = fakeHub();
    const files = hubFileSet('someone/model', { token: TOKEN, fetch: hub.fetch, retries: 0 });
    const config = await files.open('config.json');
    expect(config.version).toBe(`http "${BLOB}"`);
    expect(await readJson(config)).toEqual({ r: 4 });
    const weights = await files.open('model.safetensors');
    expect(weights.version).toBe(`http "${SHA}"`);
    // What earlier builds versioned it by (its probe's ETag): the weight cache moves such an entry, not rebuild it.
    expect(weights.formerVersion).toMatch(/^http "cdn-node-\d+"$/);
    // Each read gets another ETag: the same file at the same commit, not a changed one.
    expect(await weights.read(10, 20)).toEqual(WEIGHTS.subarray(10, 30));
    expect(await weights.read(3000, 900)).toEqual(WEIGHTS.subarray(3000, 3900));
    // Every file read at the commit the API named; the API asked once for it, once per file for its listing.
    const resolves = hub.calls.filter((c) => c.url.includes('/resolve/'));
    expect(resolves.length).toBeGreaterThan(3);
    for (const c of resolves) expect(c.url).toContain(`/resolve/${COMMIT}/`);
    expect(hub.calls.filter((c) => c.url.endsWith('/revision/main'))).toHaveLength(1);
    // Opened again (a load opens its files for the cache's identity, then for their weights): not asked again.
    expect((await files.open('model.safetensors')).version).toBe(`http "${SHA}"`);
    expect(hub.calls.filter((c) => c.url.includes('/paths-info/')).map((c) => JSON.parse(c.body ?? '{}').paths)).toEqual([['config.json'], ['model.safetensors']]);
    // The token: in the Authorization header of every call, in no URL.
    for (const c of hub.calls) {
      expect(c.auth).toBe(`Bearer ${TOKEN}`);
      expect(c.url).not.toContain(TOKEN);
    }
  });

  it('without an API answer (404, a proxy page, an endless answer) reads the files as before: at the revision, versioned by ETag, and a changed ETag fails the read', async () => {
    for (const api of ['missing', 'garbage', 'huge'] as const) {
      const hub = fakeHub({ api });
      const files = hubFileSet('someone/model', { fetch: hub.fetch, retries: 0 });
      const weights = await files.open('model.safetensors');
      expect(weights.version).toMatch(/^http "cdn-node-\d+"$/);
      expect(hub.calls.filter((c) => c.url.includes('/resolve/')).every((c) => c.url.includes('/resolve/main/'))).toBe(true);
      // What the page did before the API: the next read's other ETag is taken for a changed file.
      const e = await errorOf(() => weights.read(10, 20));
      expect(e.details?.reason).toBe('changed');
    }
  });

  it('refuses a file whose download is not the size the API lists at the commit', async () => {
    const hub = fakeHub({ listedSize: WEIGHTS.length + 1 });
    const e = await errorOf(() => hubFileSet('someone/model', { fetch: hub.fetch, retries: 0 }).open('model.safetensors'));
    expect(e.details?.reason).toBe('changed');
    expect(e.message).toBe('someone/model/model.safetensors: the Hub lists it as 4001 bytes, and its download has 4000: load it again');
  });

  it('is not asked where the redirects are followed here (the command line reads X-Linked-Etag on them)', async () => {
    const hub = fakeHub();
    const weights = await hubFileSet('someone/model', { fetch: hub.fetch, redirects: 'here', retries: 0 }).open('model.safetensors');
    expect(hub.calls.some((c) => c.url.includes('/api/'))).toBe(false);
    expect(weights.version).toMatch(/^http "cdn-node-\d+"$/);
  });
});

describe("the Hub API's requests heed the signal of the open that asks", () => {
  /**
   * fakeHub, but the API requests `hang` picks are held: they end when their signal aborts (`aborted` is then set) or,
   * answered as fakeHub answers, when `release` is called.
   */
  function heldApi(hang: (url: string) => boolean): { fetch: typeof fetch; held: { url: string; aborted: boolean }[]; release(): void } {
    const hub = fakeHub();
    const held: { url: string; aborted: boolean; answer: () => void }[] = [];
    const fetchImpl: typeof fetch = (input, init) => {
      const url = String(input);
      if (!hang(url)) return hub.fetch(input, init);
      return new Promise<Response>((resolve, reject) => {
        const h = { url, aborted: false, answer: () => resolve(hub.fetch(input, init)) };
        held.push(h);
        const signal = init?.signal;
        if (signal?.aborted) return void reject(signal.reason);
        signal?.addEventListener('abort', () => {
          h.aborted = true;
          reject(signal.reason);
        }, { once: true });
      });
    };
    return { fetch: fetchImpl, held, release: () => held.splice(0).forEach((h) => h.answer()) };
  }
  /** What `p` came to within `ms`: 'opened', its error's name, or 'still waiting'. */
  const outcome = (p: Promise<unknown>, ms = 2000): Promise<string> =>
    Promise.race([p.then(() => 'opened', (e: unknown) => (e as { name?: string }).name ?? String(e)), new Promise<string>((r) => setTimeout(() => r('still waiting'), ms))]);
  const until = async (ok: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
  };

  for (const [what, hang] of [
    ['the revision', (url: string) => url.endsWith('/revision/main')],
    ["the file's listing", (url: string) => url.includes('/paths-info/')],
  ] as const) {
    it(`an open whose signal aborts ends ${what} request it waits on, and a later open asks again`, async () => {
      const api = heldApi(hang);
      const files = hubFileSet('someone/model', { fetch: api.fetch, retries: 0 });
      const stop = new AbortController();
      const opening = files.open('config.json', { signal: stop.signal });
      await until(() => api.held.length === 1);
      expect(api.held.map((h) => h.url.replace(/^.*\/api\/models\/someone\/model\//, ''))).toEqual([what === 'the revision' ? 'revision/main' : `paths-info/${COMMIT}`]);
      stop.abort();
      expect(await outcome(opening)).toBe('AbortError');
      expect(api.held[0].aborted).toBe(true);
      // The stopped request is not what the next open gets: it asks again, and reads at the commit with the file's id.
      api.held.length = 0;
      const next = files.open('config.json');
      await until(() => api.held.length === 1);
      api.release();
      expect((await next).version).toBe(`http "${BLOB}"`);
    });
  }

  it("a request shared by two opens goes on for the one that was not stopped", async () => {
    const api = heldApi((url) => url.endsWith('/revision/main'));
    const files = hubFileSet('someone/model', { fetch: api.fetch, retries: 0 });
    const [a, b] = [new AbortController(), new AbortController()];
    const first = files.open('config.json', { signal: a.signal });
    const second = files.open('model.safetensors', { signal: b.signal });
    await until(() => api.held.length === 1);
    a.abort();
    expect(await outcome(first)).toBe('AbortError');
    // The second open asked again under its own signal; answered, it reads at the commit.
    await until(() => api.held.some((h) => !h.aborted));
    api.release();
    expect((await second).version).toBe(`http "${SHA}"`);
    expect(b.signal.aborted).toBe(false);
  });
});
