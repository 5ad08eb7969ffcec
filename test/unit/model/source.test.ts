// Byte sources: HTTP against a local node:http server on 127.0.0.1 (never the internet), Blob/File, memory, and the
// Node file source.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync, mkdirSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelSpec, nodeDirectory, nodeFileSource } from '../../../src/cli/node-source.ts';
import { isHuggingFaceUrl } from '../../../src/core/hub-reference.ts';
import {
  blobFileSet,
  blobSource,
  bytesSource,
  checkFileName,
  hubFileSet,
  hubFileUrl,
  hubSource,
  httpSource,
  isNotFound,
  memoryFileSet,
  pickedFolderName,
  MAX_JSON_FILE_BYTES,
  readJson,
  urlFileSet,
  type ByteSource,
} from '../../../src/model/source.ts';
import { parseSafetensorsHeader } from '../../../src/model/safetensors.ts';
import { errorOf, fixtureBytes, TINY_ADAPTER } from './helpers.ts';

const TOKEN = 'hf_SeCrEtToKeN1234567890abcdef';
const FILE = new Uint8Array(5000).map((_, i) => (i * 7 + 3) & 0xff);
const ADAPTER = fixtureBytes(`${TINY_ADAPTER}/adapter_model.safetensors`);
/** A JSON file's size past MAX_JSON_FILE_BYTES (16 MiB): what a hostile repository may serve as config.json. */
const HUGE_JSON = 64 * 1024 * 1024;

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
}

let server: Server;
let base = '';
const seen: Seen[] = [];

function serveRange(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, body: Uint8Array): void {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!m) {
    res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' });
    res.end(Buffer.from(body));
    return;
  }
  const start = Number(m[1]);
  const end = Math.min(Number(m[2]), body.length - 1);
  if (start >= body.length) {
    res.writeHead(416, { 'content-range': `bytes */${body.length}` });
    res.end();
    return;
  }
  res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${body.length}`, 'content-length': end - start + 1 });
  res.end(Buffer.from(body.subarray(start, end + 1)));
}

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    const url = (req.url ?? '').split('?')[0];
    // Error pages echo the Authorization header back, to prove we never repeat what a server says verbatim.
    const echo = `you sent ${req.headers.authorization ?? 'nothing'}`;
    if (url.endsWith('/401')) return void res.writeHead(401).end(echo);
    if (url.endsWith('/403')) return void res.writeHead(403).end(echo);
    // A file the repository does not have, as the Hub says it: 404 with X-Error-Code EntryNotFound.
    if (url.includes('/resolve/') && url.includes('missing')) return void res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-error-message': 'Entry not found' }).end(echo);
    if (url.endsWith('/404') || url.includes('missing')) return void res.writeHead(404).end(echo);
    if (url.endsWith('/500')) return void res.writeHead(500).end(echo);
    // The Hub's answer for a repository that does not exist (or is private, asked without a token): 401, not 404.
    if (url.includes('/no-such-repo/')) return void res.writeHead(401, { 'x-error-code': 'RepoNotFound', 'x-error-message': 'Repository not found' }).end(echo);
    // A revision the repository does not have: 404 with X-Error-Code RevisionNotFound.
    if (url.includes('/resolve/no-such-branch/')) return void res.writeHead(404, { 'x-error-code': 'RevisionNotFound', 'x-error-message': 'Invalid rev id: no-such-branch' }).end(echo);
    if (url.endsWith('/redirect')) return void res.writeHead(302, { location: '/file.bin' }).end();
    if (url.endsWith('/norange-small')) {
      res.writeHead(200, { 'content-length': 300 });
      return void res.end(Buffer.from(FILE.subarray(0, 300)));
    }
    if (url.endsWith('/norange-big')) {
      res.writeHead(200, { 'content-length': FILE.length });
      return void res.end(Buffer.from(FILE));
    }
    if (url.endsWith('/no-content-range')) return void res.writeHead(206).end(Buffer.from([1]));
    // A file of 0 bytes: its first byte is out of range, so even the size probe is 416 (Content-Range: bytes */0).
    if (url.endsWith('/empty.bin')) return serveRange(req, res, new Uint8Array(0));
    // A 416 to the size probe without a Content-Range: still only an empty file has no first byte.
    if (url.endsWith('/empty-bare')) return void res.writeHead(416).end();
    // A hostile repository's config.json of HUGE_JSON bytes: the size probe is answered, any read of its body is 416.
    if (url.includes('/huge-config/')) {
      if (req.headers.range === 'bytes=0-0') return void res.writeHead(206, { 'content-range': `bytes 0-0/${HUGE_JSON}`, 'content-length': 1 }).end('{');
      return void res.writeHead(416, { 'content-range': `bytes */${HUGE_JSON}` }).end();
    }
    if (url.endsWith('adapter_model.safetensors')) return serveRange(req, res, ADAPTER);
    if (url.endsWith('config.json')) return serveRange(req, res, new TextEncoder().encode('{"r": 4}'));
    if (url.endsWith('/file.bin') || url.includes('/resolve/')) return serveRange(req, res, FILE);
    res.writeHead(404).end();
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((ok) => server.close(() => ok()));
});

/** A fetch that sends Hub URLs to the local server instead (same path). */
const localHubFetch: typeof fetch = (input, init) => {
  const url = String(input);
  return fetch(url.replace('https://huggingface.co', base), init);
};

describe('HTTP byte source', () => {
  it('gets the size from a Range probe and reads exact ranges with Range requests', async () => {
    seen.length = 0;
    const src = await httpSource(`${base}/file.bin`, { token: TOKEN });
    expect(src.size).toBe(FILE.length);
    expect(await src.read(1000, 37)).toEqual(FILE.subarray(1000, 1037));
    expect(await src.read(4990, 10)).toEqual(FILE.subarray(4990));
    expect(await src.read(10, 0)).toEqual(new Uint8Array(0));
    expect(seen.map((s) => s.headers.range)).toEqual(['bytes=0-0', 'bytes=1000-1036', 'bytes=4990-4999']);
    // The token travels only in the Authorization header.
    for (const s of seen) {
      expect(s.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(s.url).not.toContain(TOKEN);
    }
    expect(src.name).not.toContain(TOKEN);
    const e = await errorOf(() => src.read(4990, 11));
    expect(e.message).toMatch(/goes past the end of the file \(5000 bytes\)/);
    expect(e.details?.reason).toBe('out-of-range');
  });

  it('sends no Authorization header without a token, and follows redirects', async () => {
    seen.length = 0;
    const src = await httpSource(`${base}/redirect`);
    expect(await src.read(0, 4)).toEqual(FILE.subarray(0, 4));
    expect(seen.every((s) => s.headers.authorization === undefined)).toBe(true);
    expect(seen.some((s) => s.url === '/file.bin')).toBe(true);
  });

  it('parses a safetensors header over HTTP with two small range reads', async () => {
    seen.length = 0;
    const src = await httpSource(`${base}/adapter_model.safetensors`);
    const h = await parseSafetensorsHeader(src);
    expect(h.tensors.size).toBe(28);
    expect(seen.map((s) => s.headers.range)).toEqual(['bytes=0-0', 'bytes=0-7', `bytes=8-${8 + h.headerLength - 1}`]);
  });

  it('tells 401 / 403 / 404 apart, and never shows the token', async () => {
    const cases: [string, RegExp, string][] = [
      ['401', /refused the access token \(HTTP 401\).*valid and unexpired.*accept the licence/, 'unauthorized'],
      ['403', /HTTP 403.*accept the licence on the model page.*token lacks access/, 'forbidden'],
      ['404', /not found \(HTTP 404\)/, 'not-found'],
    ];
    for (const [path, re, reason] of cases) {
      const e = await errorOf(() => httpSource(`${base}/${path}`, { token: TOKEN, retryDelayMs: 1 }));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toMatch(re);
      expect(e.details?.reason).toBe(reason);
      expect(e.details?.status).toBe(Number(path));
      expect(JSON.stringify({ m: e.message, d: e.details, s: e.stack })).not.toContain(TOKEN);
      expect(e.message).not.toContain('you sent'); // the server's body is not repeated
    }
    // Hugging Face's words are for Hugging Face: another server asking for credentials is told as such (no token goes
    // there, and it has no licence to accept).
    const anon = await errorOf(() => httpSource(`${base}/401`));
    expect(anon.message).toBe(`${base}/401: the server asks for credentials (HTTP 401); a Hugging Face token is sent only to huggingface.co over https, so use a URL that needs none, or download the files and load them from disk.`);
    const denied = await errorOf(() => httpSource(`${base}/403`));
    expect(denied.message).toBe(`${base}/403: the server denied access (HTTP 403).`);
    const hub = await errorOf(() => httpSource(`${base}/401`, { accessHint: 'Model page: https://huggingface.co/o/m' }));
    expect(hub.message).toMatch(/authentication required \(HTTP 401\).*gated or private.*accept the licence.*access token.*Model page/);
    expect(isNotFound(await errorOf(() => httpSource(`${base}/404`)))).toBe(true);
  });

  it('says a file of 0 bytes is empty, not "shorter than expected"', async () => {
    for (const path of ['empty.bin', 'empty-bare']) {
      const e = await errorOf(() => httpSource(`${base}/${path}`, { token: TOKEN, retryDelayMs: 1 }));
      expect(e.message).toBe(`${base}/${path}: the file is empty (0 bytes): the server refused a read of its first byte (HTTP 416).`);
      expect(e.details?.reason).toBe('empty');
      expect(e.details?.status).toBe(416);
    }
    // Named as the Hub file it is.
    const hub = await errorOf(() => hubSource('o/m', 'empty.bin', { fetch: localHubFetch }));
    expect(hub.message).toMatch(/^o\/m\/empty\.bin: the file is empty \(0 bytes\)/);
  });

  it('a 5xx that outlasts the retries is a network error that says it was retried, not bad input', async () => {
    seen.length = 0;
    const e = await errorOf(() => httpSource(`${base}/500`, { token: TOKEN, retryDelayMs: 1, retries: 2 }));
    expect(seen).toHaveLength(3); // the first try and two retries
    expect(e.kind).toBe('network');
    expect(e.details?.status).toBe(500);
    expect(e.message).toMatch(new RegExp(`^${base}/500: the server answered HTTP 500 to 3 attempts over \\d+(\\.\\d+)? s; the server is failing, try again later\\.$`));
    expect(JSON.stringify({ m: e.message, d: e.details })).not.toContain(TOKEN);
  });

  it("says which Hub repository was not found when the Hub's 401 carries X-Error-Code: RepoNotFound, and how to give a token", async () => {
    const anon = await errorOf(() => hubSource('someone/no-such-repo', 'config.json', { fetch: localHubFetch }));
    expect(anon.kind).toBe('bad-input');
    expect(anon.details?.reason).toBe('repo-not-found');
    // The model is named (not the file), with what the Hub means: no such repository, or one this request cannot see.
    expect(anon.message).toBe(
      'someone/no-such-repo@main: the Hub has no repository someone/no-such-repo that this request can see (HTTP 401, RepoNotFound): check the id; if it is private or gated, give an access token that has access to it. Model page: https://huggingface.co/someone/no-such-repo',
    );
    expect(anon.message).not.toMatch(/licence/);
    const cli = await errorOf(() => hubSource('someone/no-such-repo', 'config.json', { fetch: localHubFetch, tokenSource: 'HF_TOKEN' }));
    expect(cli.message).toMatch(/: check the id; if it is private or gated, set HF_TOKEN to a token that has access to it\. Model page: /);
    const withToken = await errorOf(() => hubSource('someone/no-such-repo', 'config.json', { token: TOKEN, fetch: localHubFetch, tokenSource: 'HF_TOKEN' }));
    expect(withToken.message).toMatch(/^someone\/no-such-repo@main: the Hub has no repository someone\/no-such-repo that this request can see \(HTTP 401, RepoNotFound\): check the id; if it is private or gated, the token given \(HF_TOKEN\) has no access to it\./);
    expect(withToken.message).not.toContain(TOKEN);
    // Not a missing file: a checkpoint must not fall back to another file name for it.
    expect(isNotFound(withToken)).toBe(false);
  });

  it("says a revision does not exist when the Hub's 404 carries X-Error-Code: RevisionNotFound (it said the file was missing)", async () => {
    const e = await errorOf(() => hubSource('someone/model', 'config.json', { revision: 'no-such-branch', token: TOKEN, fetch: localHubFetch }));
    expect(e.kind).toBe('bad-input');
    expect(e.details?.reason).toBe('revision-not-found');
    expect(e.message).toBe('someone/model@no-such-branch: the repository someone/model has no revision no-such-branch (HTTP 404, RevisionNotFound): check the branch, tag or commit id.');
    expect(e.message).not.toContain(TOKEN);
    // Not a missing file: a checkpoint says this, not "no config.json".
    expect(isNotFound(e)).toBe(false);
    const { openBaseCheckpoint } = await import('../../../src/model/checkpoint.ts');
    const opened = await errorOf(() => openBaseCheckpoint(hubFileSet('someone/model', { revision: 'no-such-branch', fetch: localHubFetch })));
    expect(opened.message).toMatch(/has no revision no-such-branch/);
  });

  it("says which model and revision lacks a file when the Hub's 404 carries X-Error-Code: EntryNotFound", async () => {
    const e = await errorOf(() => hubSource('someone/model', 'missing.json', { token: TOKEN, fetch: localHubFetch }));
    expect(e.message).toBe('someone/model@main: the repository has no file missing.json at revision main (HTTP 404, EntryNotFound).');
    // A missing file still: a checkpoint falls back to another layout, or says which file it lacks.
    expect(isNotFound(e)).toBe(true);
    const at = await errorOf(() => hubSource('someone/model', 'missing.json', { revision: 'v2', fetch: localHubFetch }));
    expect(at.message).toBe('someone/model@v2: the repository has no file missing.json at revision v2 (HTTP 404, EntryNotFound).');
  });

  it('reports a network failure as such, without the token', async () => {
    const closed = createServer();
    await new Promise<void>((ok) => closed.listen(0, '127.0.0.1', ok));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((ok) => closed.close(() => ok()));
    const e = await errorOf(() => httpSource(`http://127.0.0.1:${port}/x`, { token: TOKEN }));
    expect(e.details?.reason).toBe('network');
    expect(e.message).toMatch(/network failure/);
    expect(e.message).not.toContain(TOKEN);
  });

  it('handles a server that ignores Range: small files whole, big files refused', async () => {
    seen.length = 0;
    const small = await httpSource(`${base}/norange-small`);
    expect(small.size).toBe(300);
    expect(await small.read(100, 5)).toEqual(FILE.subarray(100, 105));
    expect(seen.length).toBe(1); // downloaded once, served from memory afterwards
    const e = await errorOf(() => httpSource(`${base}/norange-big`, { fullDownloadLimit: 1000 }));
    expect(e.details?.reason).toBe('no-range');
    expect(e.message).toMatch(/ignores HTTP Range requests \(answered 200 instead of 206\).*5000 bytes/);
    const e2 = await errorOf(() => httpSource(`${base}/no-content-range`));
    expect(e2.details?.reason).toBe('no-range');
  });

  it('refuses a range whose Content-Range gives another file size than the probe did: the file was replaced, and a server without ETag or Last-Modified cannot say so otherwise', async () => {
    // A folder served by a server that sends no validators; the file is rewritten (a longer one) after the probe.
    let file = FILE;
    const plain = createServer((req, res) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!m) return void res.writeHead(400).end();
      const [start, end] = [Number(m[1]), Math.min(Number(m[2]), file.length - 1)];
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${file.length}`, 'content-length': end - start + 1 });
      res.end(Buffer.from(file.subarray(start, end + 1)));
    });
    await new Promise<void>((ok) => plain.listen(0, '127.0.0.1', ok));
    try {
      const src = await httpSource(`http://127.0.0.1:${(plain.address() as AddressInfo).port}/model.safetensors`, { retryDelayMs: 1 });
      expect(src.size).toBe(FILE.length);
      expect(src.version).toBeUndefined();
      file = new Uint8Array(FILE.length + 1000).map((_, i) => (i * 13 + 5) & 0xff);
      // Its bytes at the same offsets are another file's: they were returned as the tensor's.
      const e = await errorOf(() => src.read(1000, 37));
      expect(e.details?.reason).toBe('changed');
      expect(e.message).toBe(
        `http://127.0.0.1:${(plain.address() as AddressInfo).port}/model.safetensors: the server now gives the file as ${FILE.length + 1000} bytes, and gave it as ${FILE.length} when it was opened: the file changed on the server while it was being read; load it again.`,
      );
    } finally {
      plain.closeAllConnections();
      await new Promise<void>((ok) => plain.close(() => ok()));
    }
  });

  it('a server that ignores Range without a Content-Length (chunked, or compressed) is read whole up to the limit, never past it', async () => {
    // Such a server streams the file with chunked encoding, or compresses it (Content-Length is then the compressed
    // size, and fetch hands over the inflated bytes).
    const CONFIG = '{"model_type": "mistral"}';
    let sent = 0;
    const streaming = createServer((req, res) => {
      if (req.url === '/config.json') return void res.writeHead(200, { 'content-type': 'application/json' }).end(CONFIG);
      if (req.url === '/endless.safetensors') {
        res.writeHead(200);
        const chunk = Buffer.alloc(64 * 1024);
        const more = (): void => {
          while (sent < 64 * 1024 * 1024 && !res.destroyed) {
            sent += chunk.byteLength;
            if (!res.write(chunk)) return void res.once('drain', more);
          }
          res.end();
        };
        return more();
      }
      // 40 MiB of zeros in 40 KiB of gzip.
      const gz = gzipSync(new Uint8Array(40 * 1024 * 1024));
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': gz.byteLength });
      res.end(gz);
    });
    await new Promise<void>((ok) => streaming.listen(0, '127.0.0.1', ok));
    const at = `http://127.0.0.1:${(streaming.address() as AddressInfo).port}`;
    try {
      const config = await httpSource(`${at}/config.json`);
      expect(config.size).toBe(CONFIG.length);
      expect(await readJson(config)).toEqual({ model_type: 'mistral' });
      // A big file is refused once the limit is passed (a few chunks past it at most, not the 64 MiB).
      const e = await errorOf(() => httpSource(`${at}/endless.safetensors`, { fullDownloadLimit: 1024 * 1024 }));
      expect(e.details?.reason).toBe('no-range');
      expect(e.message).toBe(`${at}/endless.safetensors: the server ignores HTTP Range requests (answered 200 instead of 206), and the file is bigger than 1048576 bytes, too big to download whole; serve it from a server that supports Range.`);
      expect(sent).toBeLessThan(32 * 1024 * 1024);
      const inflated = await errorOf(() => httpSource(`${at}/inflates.bin`, { fullDownloadLimit: 1024 * 1024 }));
      expect(inflated.message).toBe(`${at}/inflates.bin: the server ignores HTTP Range requests (answered 200 instead of 206), and the file is bigger than 1048576 bytes, too big to download whole; serve it from a server that supports Range.`);
    } finally {
      streaming.closeAllConnections();
      await new Promise<void>((ok) => streaming.close(() => ok()));
    }
  });

  it('builds Hub URLs and sends the token to the Hub only as a header', async () => {
    expect(hubFileUrl('mistralai/Mistral-7B-Instruct-v0.2', 'model-00001-of-00003.safetensors')).toBe(
      'https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.2/resolve/main/model-00001-of-00003.safetensors',
    );
    expect(hubFileUrl('org/repo', 'sub dir/a.json', 'refs/pr/1')).toBe('https://huggingface.co/org/repo/resolve/refs%2Fpr%2F1/sub%20dir/a.json');
    expect((await errorOf(() => hubFileUrl('../etc', 'x'))).details?.reason).toBe('bad-name');
    expect((await errorOf(() => hubFileUrl('a/b', '../../x'))).details?.reason).toBe('bad-name');

    seen.length = 0;
    const src = await hubSource('someone/model', 'weights.bin', { token: TOKEN, fetch: localHubFetch });
    expect(src.name).toBe('someone/model/weights.bin');
    expect(await src.read(3, 3)).toEqual(FILE.subarray(3, 6));
    expect(seen[0].url).toBe('/someone/model/resolve/main/weights.bin');
    expect(seen.every((s) => s.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);

    const gated = await errorOf(() => hubSource('mistralai/403', '403', { token: TOKEN, fetch: localHubFetch }));
    expect(gated.message).toMatch(/accept the licence on the model page.*https:\/\/huggingface\.co\/mistralai\/403/);
    expect(gated.message).not.toContain(TOKEN);

    const files = hubFileSet('someone/model', { fetch: localHubFetch });
    expect(await readJson(await files.open('config.json'))).toEqual({ r: 4 });
    expect(isNotFound(await errorOf(() => files.open('missing.json')))).toBe(true);
  });

  it("pins a Hub load to the commit its first file came from (X-Repo-Commit): later files are read at that commit", async () => {
    const C1 = '1111111111111111111111111111111111111111';
    const C2 = '2222222222222222222222222222222222222222';
    const urls: string[] = [];
    let firstDone = false;
    // The repository moves once config.json has answered: `main` resolves to C2 from then on; C1 stays C1.
    const moving: typeof fetch = async (input, init) => {
      const url = String(input);
      urls.push(url);
      const commit = url.includes(`/resolve/${C1}/`) || !firstDone ? C1 : C2;
      const res = await localHubFetch(url.replace(`/resolve/${C1}/`, '/resolve/main/'), init);
      const headers = new Headers(res.headers);
      headers.set('x-repo-commit', commit);
      return new Response(res.body, { status: res.status, headers });
    };
    const files = hubFileSet('someone/model', { fetch: moving });
    expect(await readJson(await files.open('config.json'))).toEqual({ r: 4 });
    firstDone = true;
    const weights = await files.open('weights.bin');
    expect(weights.name).toBe('someone/model/weights.bin'); // named by the revision asked for, not the commit
    expect(await weights.read(3, 3)).toEqual(FILE.subarray(3, 6));
    expect(urls.filter((u) => u.endsWith('/weights.bin'))).toEqual([
      `https://huggingface.co/someone/model/resolve/${C1}/weights.bin`,
      `https://huggingface.co/someone/model/resolve/${C1}/weights.bin`,
    ]);
  });

  it('refuses a Hub file that answers another commit than the files before it, with a clear error', async () => {
    const C1 = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    const C2 = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    const twoCommits: typeof fetch = async (input, init) => {
      const url = String(input);
      const res = await localHubFetch(url.replace(/\/resolve\/[^/]+\//, '/resolve/main/'), init);
      const headers = new Headers(res.headers);
      headers.set('x-repo-commit', url.endsWith('config.json') ? C1 : C2);
      return new Response(res.body, { status: res.status, headers });
    };
    const files = hubFileSet('someone/model', { fetch: twoCommits, revision: 'v1' });
    await files.open('config.json');
    const e = await errorOf(() => files.open('weights.bin'));
    expect(e.kind).toBe('bad-input');
    expect(e.details?.reason).toBe('changed');
    expect(e.message).toBe(
      `someone/model/weights.bin@v1: the Hub answered commit ${C2} for this file, and ${C1} for the files before it: the repository changed while the model was loading; load it again, or give the revision as a commit id`,
    );
  });

  it("refuses a Hub config.json past 16 MiB by the size the server reports, naming it, without downloading it", async () => {
    seen.length = 0;
    const files = hubFileSet('o/huge-config', { fetch: localHubFetch, redirects: 'here' });
    const e = await errorOf(async () => readJson(await files.open('config.json')));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe(`o/huge-config/config.json is ${HUGE_JSON} bytes, more than the 16 MiB (16777216-byte) limit for a JSON file; it is not a config or index this program reads`);
    // Only the size probe: no read of the body was asked for.
    expect(seen.map((s) => s.headers.range)).toEqual(['bytes=0-0']);
  });

  it('serves a FileSet from a base URL', async () => {
    const files = urlFileSet(`${base}/models/demo`);
    const src = await files.open('adapter_model.safetensors');
    expect(src.size).toBe(ADAPTER.length);
    expect((await errorOf(() => files.open('../secret'))).details?.reason).toBe('bad-name');
  });

  it("resolves files inside a folder URL that carries a query, and keeps the query on each file's URL", async () => {
    seen.length = 0;
    const files = urlFileSet(`${base}/models/demo?download=true`);
    expect((await files.open('adapter_model.safetensors')).size).toBe(ADAPTER.length);
    expect(seen.map((s) => s.url)).toContain('/models/demo/adapter_model.safetensors?download=true');
  });

  it('--model owner/name with a revision is named owner/name@revision, as the page names it', async () => {
    expect(modelSpec('someone/model', { revision: 'v1.0' })).toMatchObject({ kind: 'hub', label: 'someone/model@v1.0' });
    expect(modelSpec('someone/model')).toMatchObject({ kind: 'hub', label: 'someone/model' });
    // The weight cache names it with its revision either way: --revision main and no --revision are one model to it.
    expect(modelSpec('someone/model').cacheSource).toBe('someone/model@main');
    expect(modelSpec('someone/model', { revision: 'main' }).cacheSource).toBe('someone/model@main');
    expect(modelSpec('someone/model', { revision: 'v1.0' }).cacheSource).toBe('someone/model@v1.0');
    expect((await errorOf(async () => modelSpec(`${base}/models/demo`, { revision: 'v1.0' }))).message).toBe(`--revision "v1.0" is for a Hugging Face id (owner/name); --model "${base}/models/demo" is a URL`);
  });

  it('sends HF_TOKEN with --model URL only to Hugging Face over https, never to another server', async () => {
    seen.length = 0;
    const spec = modelSpec(`${base}/models/demo`, { token: TOKEN });
    expect(await readJson(await spec.files.open('config.json'))).toEqual({ r: 4 });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.headers.authorization === undefined)).toBe(true);
    expect(isHuggingFaceUrl('https://huggingface.co/mistralai/Mistral-7B-Instruct-v0.2/resolve/main')).toBe(true);
    expect(isHuggingFaceUrl('https://cdn-lfs.huggingface.co/x')).toBe(true);
    expect(isHuggingFaceUrl('http://huggingface.co/x')).toBe(false);
    expect(isHuggingFaceUrl('https://huggingface.co.evil.example/x')).toBe(false);
    expect(isHuggingFaceUrl('https://evilhuggingface.co/x')).toBe(false);
  });
});

describe('memory, Blob and File sources', () => {
  it('bytesSource reads exact slices and checks ranges', async () => {
    const src = bytesSource(FILE, 'mem');
    expect(await src.read(7, 3)).toEqual(FILE.subarray(7, 10));
    for (const [o, l] of [
      [-1, 2],
      [0, 5001],
      [4999, 2],
      [1.5, 1],
      [0, -1],
    ]) {
      expect((await errorOf(() => src.read(o, l))).details?.reason).toBe('out-of-range');
    }
  });

  it('blobSource and blobFileSet read through slice().arrayBuffer()', async () => {
    const file = new File([FILE], 'weights.bin');
    const src = blobSource(file);
    expect(src.name).toBe('weights.bin');
    expect(src.size).toBe(5000);
    expect(await src.read(4000, 100)).toEqual(FILE.subarray(4000, 4100));
    expect((await errorOf(() => src.read(4999, 5))).details?.reason).toBe('out-of-range');

    const cfg = new File(['{"a":1}'], 'config.json');
    Object.defineProperty(cfg, 'webkitRelativePath', { value: 'my-model/config.json' });
    const nested = new File(['x'], 'b.txt');
    Object.defineProperty(nested, 'webkitRelativePath', { value: 'my-model/sub/b.txt' });
    const set = blobFileSet([file, cfg, nested]);
    // One name per file: a nested file is its path below the picked folder only, not also its bare name ("b.txt" and
    // "sub/b.txt" once named the same file).
    expect(set.list?.()).toEqual(['config.json', 'sub/b.txt', 'weights.bin']);
    expect(await readJson(await set.open('config.json'))).toEqual({ a: 1 });
    expect((await (await set.open('sub/b.txt')).read(0, 1))[0]).toBe(0x78);
    expect(isNotFound(await errorOf(() => set.open('b.txt')))).toBe(true);
    expect(isNotFound(await errorOf(() => set.open('nope.json')))).toBe(true);
  });

  it('pickedFolderName: the folder the user picked, from the files’ relative paths', () => {
    const inFolder = (path: string): File => {
      const f = new File(['x'], path.split('/').pop()!);
      Object.defineProperty(f, 'webkitRelativePath', { value: path });
      return f;
    };
    expect(pickedFolderName([inFolder('my-adapter/adapter_config.json'), inFolder('my-adapter/checkpoint-10/adapter_config.json')])).toBe('my-adapter');
    // Loose files (no folder picked) have no folder name.
    expect(pickedFolderName([new File(['x'], 'adapter_config.json')])).toBeNull();
    expect(pickedFolderName([])).toBeNull();
  });

  it('memoryFileSet and readJson', async () => {
    const set = memoryFileSet({ 'a.json': '{"x": [1, 2]}', 'bad.json': '{x', 'bin.json': new Uint8Array([0xff, 0xfe]) }, 'mem');
    expect(set.list?.()).toEqual(['a.json', 'bad.json', 'bin.json']);
    expect(await readJson(await set.open('a.json'))).toEqual({ x: [1, 2] });
    expect((await errorOf(async () => readJson(await set.open('bad.json')))).message).toMatch(/bad\.json is not valid JSON/);
    expect((await errorOf(async () => readJson(await set.open('bin.json')))).message).toMatch(/not UTF-8/);
    expect(isNotFound(await errorOf(() => set.open('c.json')))).toBe(true);
  });

  it('readJson refuses a file past 16 MiB by its size before reading a byte, and reads one of 16 MiB', async () => {
    // 10 GB: read whole, Node could not even decode it (past ~512 MiB a string cannot hold it), and said "not UTF-8 text".
    const reads: number[] = [];
    const huge: ByteSource = {
      name: 'someone/model/config.json',
      size: 10e9,
      async read(_offset, length) {
        reads.push(length);
        throw new RangeError('must not be read');
      },
    };
    const e = await errorOf(() => readJson(huge));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe('someone/model/config.json is 10000000000 bytes, more than the 16 MiB (16777216-byte) limit for a JSON file; it is not a config or index this program reads');
    expect(reads).toEqual([]);
    // At the limit exactly: a valid JSON text padded with spaces is read.
    const atLimit = new Uint8Array(MAX_JSON_FILE_BYTES).fill(0x20);
    atLimit.set(new TextEncoder().encode('{"ok": 1}'));
    expect(await readJson(bytesSource(atLimit, 'big.json'))).toEqual({ ok: 1 });
    expect(MAX_JSON_FILE_BYTES).toBe(16 * 1024 * 1024);
  });

  it('checkFileName refuses names that could escape a directory', async () => {
    for (const ok of ['model.safetensors', 'a/b.json', 'x..y']) expect(checkFileName(ok)).toBe(ok);
    for (const badName of ['', '/etc/passwd', '../x', 'a/../b', 'a//b', 'a\\b', './a', 'a/', 'x\u0000']) {
      expect((await errorOf(() => checkFileName(badName))).details?.reason).toBe('bad-name');
    }
  });
});

describe('Node file source', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'node-source-'));
    writeFileSync(join(dir, 'w.bin'), FILE);
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'c.json'), '{"ok":true}');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads at offsets without loading the file, and checks ranges', async () => {
    const src = await nodeFileSource(join(dir, 'w.bin'));
    expect(src.size).toBe(5000);
    expect(await src.read(2500, 1000)).toEqual(FILE.subarray(2500, 3500));
    expect(await src.read(0, 5000)).toEqual(FILE);
    expect((await errorOf(() => src.read(4000, 1001))).details?.reason).toBe('out-of-range');
    expect(isNotFound(await errorOf(() => nodeFileSource(join(dir, 'nope.bin'))))).toBe(true);
  });

  it('nodeDirectory lists, opens and refuses escapes', async () => {
    const set = nodeDirectory(dir);
    expect(set.list?.()).toEqual(['sub/c.json', 'w.bin']);
    expect(await readJson(await set.open('sub/c.json'))).toEqual({ ok: true });
    expect(isNotFound(await errorOf(() => set.open('missing.json')))).toBe(true);
    expect(isNotFound(await errorOf(() => set.open('sub')))).toBe(true); // a directory is not a file
    expect((await errorOf(() => set.open('../w.bin'))).details?.reason).toBe('bad-name');
  });
});

describe("--model DIR's name in the weight cache", () => {
  // One folder is one model to the cache however it is reached: a second name was a second ≈ 4 GB entry, and prune
  // called one of the two superseded. test/gpu/weight-cache-names.test.ts loads through a link to the folder itself.
  it('is the real path through a symbolic link to a parent folder, the label as given, the path as given a former name', () => {
    const root = realpathSync(mkdtempSync(join(tmpdir(), 'finetune-spec-')));
    try {
      const real = join(root, 'models', 'mistral');
      mkdirSync(real, { recursive: true });
      symlinkSync(join(root, 'models'), join(root, 'linked'), 'dir');
      const viaParent = modelSpec(join(root, 'linked', 'mistral'));
      expect(viaParent).toMatchObject({ kind: 'directory', label: 'mistral', cacheSource: real, formerCacheSources: [join(root, 'linked', 'mistral')] });
      // Reached by its own path, or by one with `..` in it: one name, and nothing to move.
      expect(modelSpec(real)).toMatchObject({ cacheSource: real, formerCacheSources: [] });
      expect(modelSpec(join(root, 'models', '..', 'models', 'mistral'))).toMatchObject({ cacheSource: real, formerCacheSources: [] });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
