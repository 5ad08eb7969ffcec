// A rate-limited server: a loopback server that answers 429 (or 503) with Retry-After until its limit is over, on a
// clock the source's injected sleep moves (Date is faked, timers are not), so minutes of waiting take milliseconds.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { httpSource } from '../../../src/model/source.ts';
import { errorOf } from './helpers.ts';

const FILE = new Uint8Array(64 * 1024).map((_, i) => (i * 7) % 251);

interface Limiter {
  base: string;
  /** Every request as its Range and what it was answered. */
  log: string[];
  close(): Promise<void>;
}

/**
 * Serves FILE with Range support. Reads (not the bytes=0-0 probe) are limited from the first one on for `limitMs` of
 * Date time: each is answered `status` with Retry-After `after` (a function of the time left, or a fixed header).
 * A 206 body goes in two chunks, so that a read can be dropped between them (the slow window's check).
 */
async function limiter(limitMs: number, after: (leftMs: number) => string, status = 429, onLimited?: () => void): Promise<Limiter> {
  const log: string[] = [];
  let until: number | null = null;
  const server: Server = createServer((req, res) => {
    const range = req.headers.range ?? '';
    const [, a, b] = /bytes=(\d+)-(\d+)/.exec(range) ?? [];
    const [start, end] = [Number(a), Number(b)];
    if (range !== 'bytes=0-0') {
      until ??= Date.now() + limitMs;
      if (Date.now() < until) {
        log.push(`${range} ${status}`);
        res.writeHead(status, { 'retry-after': after(until - Date.now()) }).end('slow down');
        onLimited?.();
        return;
      }
    }
    log.push(`${range} 206`);
    const body = FILE.subarray(start, end + 1);
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${FILE.length}`, 'content-length': String(body.length), etag: '"v1"' });
    const half = Math.floor(body.length / 2);
    res.write(body.subarray(0, half));
    setTimeout(() => res.end(body.subarray(half)), 5);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    log,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

describe('Retry-After on 429 / 503', () => {
  let waits: number[];
  /** The source's waits: recorded, and Date moved on by them instead of sleeping. */
  const fakeSleep = async (ms: number, signal?: AbortSignal): Promise<void> => {
    if (signal?.aborted) throw signal.reason;
    waits.push(ms);
    vi.setSystemTime(Date.now() + ms);
  };
  let server: Limiter | null = null;
  beforeEach(() => {
    waits = [];
    // A whole second: an HTTP date in Retry-After has no milliseconds.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-11-29T12:00:00Z') });
  });
  afterEach(async () => {
    vi.useRealTimers();
    await server?.close();
    server = null;
  });

  it('a rate limit of a minute is waited out as the server asks (Retry-After: 20, three times), and the read goes on', async () => {
    server = await limiter(60_000, () => '20');
    const src = await httpSource(`${server.base}/f`, { retryDelayMs: 1, sleep: fakeSleep });
    const got = await src.read(0, FILE.length);
    expect(Buffer.from(got).equals(Buffer.from(FILE))).toBe(true);
    expect(waits).toEqual([20_000, 20_000, 20_000]);
    expect(server.log.filter((l) => l.endsWith(' 429'))).toHaveLength(3);
  });

  it('an HTTP date in Retry-After (503) is waited for too', async () => {
    server = await limiter(30_000, (left) => new Date(Date.now() + left).toUTCString(), 503);
    const src = await httpSource(`${server.base}/f`, { retryDelayMs: 1, sleep: fakeSleep });
    expect((await src.read(100, 1000)).byteLength).toBe(1000);
    expect(waits).toEqual([30_000]);
  });

  it('the wait is not taken for a slow download: the read is not dropped by the slow window after it', async () => {
    server = await limiter(60_000, () => '20');
    const src = await httpSource(`${server.base}/f`, { retryDelayMs: 1, slowWindowMs: 30_000, sleep: fakeSleep });
    expect((await src.read(0, FILE.length)).byteLength).toBe(FILE.length);
    // One answer carried the whole range: no resume after a "too slow" window closed on the 60 s of asked waiting.
    expect(server.log.filter((l) => l.endsWith(' 206') && l !== 'bytes=0-0 206')).toEqual([`bytes=0-${FILE.length - 1} 206`]);
  });

  it('a Retry-After past what is waited for one answer fails at once, saying what the server asked', async () => {
    server = await limiter(3_600_000, () => '3600');
    const src = await httpSource(`${server.base}/f`, { retryDelayMs: 1, sleep: fakeSleep });
    const e = await errorOf(() => src.read(0, 10));
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(/HTTP 429.*asked to wait 60 min.*more than the 5 min waited for one answer/);
    expect(waits).toEqual([]);
  });

  it('a Retry-After of 20 digits is said as more than a day, with the seconds asked, not as so many minutes', async () => {
    server = await limiter(3_600_000, () => '12345678901234567890');
    const src = await httpSource(`${server.base}/f`, { retryDelayMs: 1, sleep: fakeSleep });
    const e = await errorOf(() => src.read(0, 10));
    expect(e.message).toMatch(/HTTP 429\) and asked to wait more than a day \(Retry-After: 12345678901234567000 s\) before trying again, more than the 5 min waited/);
    expect(waits).toEqual([]);
  });

  it('waits the server asks for add up to at most 10 minutes a read, then the read fails saying so', async () => {
    server = await limiter(3_600_000, () => '240');
    const src = await httpSource(`${server.base}/f`, { retryDelayMs: 1, sleep: fakeSleep });
    const e = await errorOf(() => src.read(0, 10));
    expect(waits).toEqual([240_000, 240_000]);
    expect(e.message).toMatch(/HTTP 429.*asked to wait 4 min more, after 8 min.*10 min/);
  });

  it('a Stop during the wait ends it at once', async () => {
    vi.useRealTimers();
    const stop = new AbortController();
    const stopped = new Error('stopped');
    // Real sleeps here: the abort must cut a 20 s wait short.
    server = await limiter(3_600_000, () => '20', 429, () => setTimeout(() => stop.abort(stopped), 50));
    const src = await httpSource(`${server.base}/f`, { retryDelayMs: 1, signal: stop.signal });
    const t0 = Date.now();
    const e = await src.read(0, 10).then(() => null, (x: unknown) => x);
    expect(e).toBe(stopped);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(server.log.filter((l) => l.endsWith(' 429'))).toHaveLength(1);
  });
});
