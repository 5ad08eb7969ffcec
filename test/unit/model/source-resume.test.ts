// Streaming that survives the network: a real loopback server with Range support serves tiny-mistral (three shards +
// index); connections cut mid-shard resume from the last byte received, 503s are retried, and the bytes are those of
// an uninterrupted read.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import { openBaseCheckpoint } from '../../../src/model/checkpoint.ts';
import { httpSource, urlFileSet } from '../../../src/model/source.ts';
import { startRangeServer, type RangeServer } from '../../helpers/range-server.ts';
import { errorOf, TINY_MISTRAL } from './helpers.ts';

const SHARD1 = 'model-00001-of-00003.safetensors';
const SHARD3 = 'model-00003-of-00003.safetensors';

describe('resumable HTTP reads', () => {
  let server: RangeServer;
  beforeAll(async () => {
    server = await startRangeServer(TINY_MISTRAL);
  });
  afterAll(() => server.close());

  it('a checkpoint read over HTTP with connections cut in the middle of two shards equals the local files, byte for byte', async () => {
    server.cutOnce(SHARD1, 3_000_001);
    server.cutOnce(SHARD3, 400_003);
    server.requests.length = 0;
    let arrived = 0;
    const remote = await openBaseCheckpoint(urlFileSet(server.base, { retryDelayMs: 5, onBytes: (n) => (arrived += n) }));
    const local = await openBaseCheckpoint(nodeDirectory(TINY_MISTRAL));
    const names = local.tensorNames;
    expect(names.length).toBeGreaterThan(20);
    let bytes = 0;
    for (const name of names) {
      const [a, b] = [await remote.read(name), await local.read(name)];
      expect(a.dtype).toBe(b.dtype);
      expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
      bytes += b.bytes.byteLength;
    }
    // Both cuts happened and each was resumed by a Range request starting exactly at the first missing byte.
    expect(server.requests.some((r) => r.startsWith(`${SHARD1} bytes=3000001-`))).toBe(true);
    expect(server.requests.some((r) => r.startsWith(`${SHARD3} bytes=400003-`))).toBe(true);
    // Every body byte was reported, the bytes sent before each cut included.
    expect(arrived).toBeGreaterThanOrEqual(bytes);
  });

  it('retries 503 answers with backoff, then reads', async () => {
    server.failNext('config.json', 2);
    const src = await httpSource(`${server.base}config.json`, { retryDelayMs: 5 });
    expect(new TextDecoder().decode(await src.read(0, src.size))).toMatch(/"model_type": "mistral"/);
  });

  it('a connection that keeps dropping without delivering gives up with a network error (not bad input)', async () => {
    let calls = 0;
    // Every body breaks: the first after 10 bytes, the later ones before any.
    const fetch = async (_u: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const range = new Headers(init?.headers).get('range') ?? '';
      const [, a, b] = /bytes=(\d+)-(\d+)/.exec(range) ?? [];
      const headers = { 'content-range': `bytes ${a}-${b}/10000` };
      if (range === 'bytes=0-0') return new Response(new Uint8Array(1), { status: 206, headers });
      const first = calls++ === 0;
      let delivered = false;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (first && !delivered) {
            delivered = true;
            c.enqueue(new Uint8Array(10));
          } else c.error(new Error('socket hang up'));
        },
      });
      return new Response(body, { status: 206, headers });
    };
    const src = await httpSource('http://loopback.invalid/f', { fetch: fetch as typeof globalThis.fetch, retryDelayMs: 1, retries: 2 });
    const e = await errorOf(() => src.read(0, 100));
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(/connection lost while downloading \(socket hang up\); 10 of 100 bytes/);
    expect(calls).toBe(3); // the first try, then two retries (the counter restarts only when bytes arrive)
  });

  it('a first connection that fails is reported at once as a network error', async () => {
    const t0 = Date.now();
    const e = await errorOf(() => httpSource('http://127.0.0.1:9/none', { retryDelayMs: 1000 }));
    expect(e.kind).toBe('network');
    expect(Date.now() - t0).toBeLessThan(900);
  });
});

/** The Range a loopback server was asked for, and its first and last byte within a body of `size`. */
function askedRange(req: IncomingMessage, size: number): { range: string; start: number; end: number } {
  const range = req.headers.range ?? '';
  const [, a, b] = /bytes=(\d+)-(\d+)/.exec(range) ?? [];
  return { range, start: Number(a), end: Math.min(Number(b), size - 1) };
}

describe('stalled downloads', () => {
  // A loopback server whose bodies stop: a stalled answer sends `stallAfter` bytes of its range and then nothing,
  // keeping the connection open (as a dead proxy or a wedged CDN node does). undici would wait 300 s for the next byte.
  const BODY = new Uint8Array(100_000).map((_, i) => (i * 31 + 7) & 0xff);
  let server: Server;
  let base = '';
  const ranges: string[] = [];
  /** How many answers to stall (-1: all), and after how many body bytes; 'headers': never answer at all. */
  let stall: { count: number; after: number | 'headers' } = { count: 0, after: 0 };
  const open = new Set<ServerResponse>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      const { range, start, end } = askedRange(req, BODY.length);
      ranges.push(range);
      const probe = range === 'bytes=0-0';
      if (!probe && stall.count !== 0) {
        stall.count--;
        open.add(res);
        if (stall.after === 'headers') return;
        res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${BODY.length}`, 'content-length': end - start + 1, etag: '"v1"' });
        res.write(Buffer.from(BODY.subarray(start, start + stall.after)));
        return; // and never end
      }
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${BODY.length}`, 'content-length': end - start + 1, etag: '"v1"' });
      res.end(Buffer.from(BODY.subarray(start, end + 1)));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  });

  it('a body that stops mid-way is abandoned after the idle timeout and resumed from the first missing byte', async () => {
    ranges.length = 0;
    stall = { count: 1, after: 1000 };
    const src = await httpSource(`${base}/f`, { idleTimeoutMs: 100, retryDelayMs: 1 });
    const t0 = Date.now();
    const got = await src.read(0, BODY.length);
    expect(Buffer.from(got).equals(Buffer.from(BODY))).toBe(true);
    expect(ranges).toEqual(['bytes=0-0', 'bytes=0-99999', 'bytes=1000-99999']);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('a server that answers nothing at all is given up on after the idle timeout too', async () => {
    ranges.length = 0;
    stall = { count: 1, after: 'headers' };
    const src = await httpSource(`${base}/f`, { idleTimeoutMs: 100, retryDelayMs: 1 });
    expect(await src.read(10, 5)).toEqual(BODY.subarray(10, 15));
    expect(ranges).toEqual(['bytes=0-0', 'bytes=10-14', 'bytes=10-14']);
  });

  it('a body that keeps stalling (a few bytes each time) ends in a network error naming the file and the bytes received', async () => {
    ranges.length = 0;
    stall = { count: -1, after: 10 };
    const src = await httpSource(`${base}/f`, { idleTimeoutMs: 50, retryDelayMs: 1, retries: 2 });
    const e = await errorOf(() => src.read(0, BODY.length));
    stall = { count: 0, after: 0 };
    expect(e.kind).toBe('network');
    expect(e.message).toBe(`${base}/f: the download stalled (no data for 0.05 s) 3 times in a row; 30 of 100000 bytes at offset 0 arrived: check the connection, then load the model again.`);
    // The first try and two more, each from the first missing byte (a few bytes each time are no progress).
    expect(ranges).toEqual(['bytes=0-0', 'bytes=0-99999', 'bytes=10-99999', 'bytes=20-99999']);
  });
});

describe('downloads that trickle', () => {
  // A loopback server whose first `trickling` answers send a few bytes every few milliseconds and never finish: never
  // idle long enough to be a stall, yet a 14.5 GB download at that rate would take weeks. Then it answers normally.
  const BODY = new Uint8Array(100_000).map((_, i) => (i * 17 + 3) & 0xff);
  let server: Server;
  let base = '';
  const ranges: string[] = [];
  let trickling = 0;
  const timers = new Set<ReturnType<typeof setInterval>>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      const { range, start, end } = askedRange(req, BODY.length);
      ranges.push(range);
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${BODY.length}`, 'content-length': end - start + 1, etag: '"v1"' });
      if (range !== 'bytes=0-0' && trickling !== 0) {
        trickling--;
        let at = start;
        const t = setInterval(() => {
          if (res.destroyed || at > end) {
            clearInterval(t);
            // Ended, so that the keep-alive connection serves the next request (a small read's body is all sent).
            if (!res.destroyed) res.end();
            return;
          }
          res.write(Buffer.from(BODY.subarray(at, Math.min(at + 10, end + 1))));
          at += 10;
        }, 10);
        timers.add(t);
        return;
      }
      res.end(Buffer.from(BODY.subarray(start, end + 1)));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const t of timers) clearInterval(t);
    server.closeAllConnections();
    await new Promise<void>((ok) => server.close(() => ok()));
  });

  it('a body that brings less than a MiB in the slow window is dropped and resumed from the first missing byte', async () => {
    ranges.length = 0;
    trickling = 1;
    const src = await httpSource(`${base}/f`, { idleTimeoutMs: 5000, slowWindowMs: 200, retryDelayMs: 1 });
    const got = await src.read(0, BODY.length);
    expect(Buffer.from(got).equals(Buffer.from(BODY))).toBe(true);
    expect(ranges.slice(0, 2)).toEqual(['bytes=0-0', 'bytes=0-99999']);
    expect(ranges).toHaveLength(3);
    const resumedAt = Number(/bytes=(\d+)-/.exec(ranges[2])?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt % 10).toBe(0);
  });

  it('a body that keeps trickling ends in a network error that says so, with the bytes received', async () => {
    ranges.length = 0;
    trickling = -1;
    const src = await httpSource(`${base}/f`, { idleTimeoutMs: 5000, slowWindowMs: 150, retryDelayMs: 1, retries: 2 });
    const e = await errorOf(() => src.read(0, BODY.length));
    trickling = 0;
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(
      new RegExp(`^${base}/f: the download is too slow \\(less than 1 MiB in 0\\.15 s, 3 times in a row: \\d+ bytes in 0\\.[45]\\d? s of waiting\\); \\d+ of 100000 bytes at offset 0 arrived: check the connection, then load the model again\\.$`),
    );
    expect(ranges).toHaveLength(4);
  });

  it('reads that each trickle for less than the slow window add up: the slow time counts across reads', async () => {
    // Every read is small and ends within the window (100 bytes at 10 bytes per 10 ms: 0.1 s), and the loader reads a
    // checkpoint in many such reads (a tensor each): the window started again at each one, and a model of small reads
    // at that rate was waited on for hours.
    ranges.length = 0;
    trickling = -1;
    const src = await httpSource(`${base}/f`, { idleTimeoutMs: 5000, slowWindowMs: 250, retryDelayMs: 1, retries: 1 });
    let reads = 0;
    const e = await errorOf(async () => {
      for (; reads < 100; reads++) await src.read(reads * 100, 100);
    });
    trickling = 0;
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(
      new RegExp(`^${base}/f: the download is too slow \\(less than 1 MiB in 0\\.25 s, 2 times in a row: \\d+ bytes in 0\\.[5-9]\\d? s of waiting\\); \\d+ of 100 bytes at offset \\d+ arrived: check the connection, then load the model again\\.$`),
    );
    // Two windows of 0.25 s and the backoff: about six reads, far from the hundred.
    expect(reads).toBeLessThan(12);
  });
});
