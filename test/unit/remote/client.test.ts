// The token's shape is judged before any request: a character a header cannot carry is refused at once, unechoed.
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { checkTokenShape, createRemoteClient } from '../../../src/remote/client.ts';

const GOOD = 'r8_clienttesttoken0123456789abcdefghijklm';

describe('checkTokenShape', () => {
  it('takes printable ASCII', () => {
    expect(() => checkTokenShape(GOOD)).not.toThrow();
    expect(() => checkTokenShape('proxy-token_!~')).not.toThrow();
  });

  it('refuses a control character, DEL or a non-ASCII letter at once, without echoing the token', () => {
    for (const bad of [`${GOOD}\u0007`, `r8_\u0000${GOOD.slice(3)}`, `${GOOD}\u007f`, `${GOOD.slice(0, 10)}é${GOOD.slice(10)}`, `${GOOD}\u200b`]) {
      let calls = 0;
      let err: unknown;
      try {
        createRemoteClient({ token: bad, apiBase: 'http://127.0.0.1:9/v1', fetch: (async () => (calls++, new Response('{}'))) as typeof fetch });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FinetuneError);
      const fe = err as FinetuneError;
      expect(fe.kind).toBe('bad-input');
      expect(fe.message).toMatch(/token/);
      expect(fe.message).not.toContain(GOOD.slice(3, 11));
      expect(JSON.stringify(fe.details ?? {})).not.toContain(GOOD.slice(3, 11));
      expect(calls).toBe(0);
    }
  });
});

describe('API calls time out', () => {
  it('a server that accepts and never answers: a GET is retried like a lost connection, then a network error naming the wait', async () => {
    const { listen } = await import('../../helpers/loopback.ts');
    const { getTraining } = await import('../../../src/remote/flow.ts');
    let seen = 0;
    const hang = await listen(() => void seen++); // never answers
    try {
      const retries: string[] = [];
      const c = createRemoteClient({ token: GOOD, apiBase: `${hang.url}/v1`, timeoutMs: 150, retry: { baseDelayMs: 1, maxRetries: 1 }, onRetry: (r) => retries.push(String(r.status)) });
      const t0 = Date.now();
      const err = await getTraining(c, 'abc123').then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(FinetuneError);
      expect((err as FinetuneError).kind).toBe('network');
      expect((err as FinetuneError).message).toMatch(/no answer within 0\.15 s/);
      expect((err as FinetuneError).message).not.toContain(GOOD.slice(3, 11));
      expect(Date.now() - t0).toBeLessThan(3000);
      expect(retries).toEqual(['network']);
      expect(seen).toBe(2);
    } finally {
      await hang.close();
    }
  });

  it('a download that stalls mid-body ends on its idle timeout', async () => {
    const { listen } = await import('../../helpers/loopback.ts');
    const { downloadOutput } = await import('../../../src/remote/flow.ts');
    const stall = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/zip', 'content-length': '1000' });
      res.write(new Uint8Array(10)); // then nothing more
    });
    try {
      const c = createRemoteClient({ token: GOOD, apiBase: `${stall.url}/v1`, idleTimeoutMs: 150, retry: { baseDelayMs: 1, maxRetries: 0 } });
      const t0 = Date.now();
      const err = await downloadOutput(c, `${stall.url}/delivery/x/training_output.zip`).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(FinetuneError);
      expect((err as FinetuneError).message).toMatch(/no data for 0\.15 s/);
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      await stall.close();
    }
  });
});

describe('uploads have a deadline', () => {
  it('an upload whose answer never comes ends after the idle wait plus its size at the slowest rate waited for, naming both', async () => {
    const { listen } = await import('../../helpers/loopback.ts');
    const { uploadFile } = await import('../../../src/remote/flow.ts');
    let received = 0;
    // Reads the whole upload, then never answers.
    const hang = await listen((req) => req.on('data', (c: Buffer) => void (received += c.byteLength)));
    try {
      const c = createRemoteClient({ token: GOOD, apiBase: `${hang.url}/v1`, idleTimeoutMs: 150, uploadBytesPerSecond: 100_000, retry: { baseDelayMs: 1, maxRetries: 0 } });
      const t0 = Date.now();
      const err = await uploadFile(c, new Uint8Array(20_000).fill(0x61), 'train.jsonl').then(() => null, (e: unknown) => e);
      const took = Date.now() - t0;
      expect(err).toBeInstanceOf(FinetuneError);
      expect((err as FinetuneError).kind).toBe('network');
      // 0.15 s + 20 kB (and the form's metadata part) at 100 kB/s = 0.35 s.
      expect((err as FinetuneError).message).toMatch(/uploading the training data \(no answer to the upload of 19\.[5-6] KiB within 0\.35\d? s\)/);
      expect(received).toBeGreaterThan(20_000);
      expect(took).toBeGreaterThanOrEqual(300);
      expect(took).toBeLessThan(3000);
    } finally {
      await hang.close();
    }
  });

  it('an API call that answered leaves no timer behind (a finished CLI command exits at once)', async () => {
    const { listen } = await import('../../helpers/loopback.ts');
    const { getTraining } = await import('../../../src/remote/flow.ts');
    const api = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'abc123', status: 'succeeded', model: 'o/m', version: 'v', input: {}, output: null, error: null, logs: '', created_at: '2026-01-01T00:00:00Z', urls: { get: 'x', cancel: 'y' } }));
    });
    const aborted: unknown[] = [];
    const realFetch = globalThis.fetch;
    const spy = (async (input: RequestInfo | URL, init?: RequestInit) => {
      init?.signal?.addEventListener('abort', () => aborted.push(init.signal?.reason));
      return realFetch(input, init);
    }) as typeof fetch;
    try {
      const c = createRemoteClient({ token: GOOD, apiBase: `${api.url}/v1`, timeoutMs: 100, fetch: spy });
      await getTraining(c, 'abc123').catch(() => null);
      await new Promise((r) => setTimeout(r, 300));
      expect(aborted).toEqual([]);
    } finally {
      await api.close();
    }
  });
});

describe('output downloads (the CLI, without the proxy)', () => {
  it('follow a redirect to an allowed host with the token, and refuse one to a path under the API base', async () => {
    const { listen } = await import('../../helpers/loopback.ts');
    const { downloadOutput } = await import('../../../src/remote/flow.ts');
    const seen: { url: string; auth: string | undefined }[] = [];
    const srv = await listen((req, res) => {
      seen.push({ url: req.url ?? '', auth: req.headers.authorization });
      if (req.url === '/delivery/moved.zip') return void res.writeHead(302, { location: '/delivery/here/training_output.zip' }).end();
      if (req.url === '/delivery/sneaky.zip') return void res.writeHead(302, { location: '/v1/webhooks/default/secret' }).end();
      res.writeHead(200, { 'content-type': 'application/zip' });
      res.end('zip bytes');
    });
    try {
      const c = createRemoteClient({ token: GOOD, apiBase: `${srv.url}/v1`, retry: { baseDelayMs: 1, maxRetries: 0 } });
      const bytes = await downloadOutput(c, `${srv.url}/delivery/moved.zip`);
      expect(new TextDecoder().decode(bytes)).toBe('zip bytes');
      expect(seen).toEqual([
        { url: '/delivery/moved.zip', auth: `Bearer ${GOOD}` },
        { url: '/delivery/here/training_output.zip', auth: `Bearer ${GOOD}` },
      ]);
      const err = await downloadOutput(c, `${srv.url}/delivery/sneaky.zip`).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(FinetuneError);
      expect((err as FinetuneError).message).toMatch(/^refusing to download the output from http:\/\/127\.0\.0\.1:\d+/);
      expect(seen.map((s) => s.url)).not.toContain('/v1/webhooks/default/secret');
    } finally {
      await srv.close();
    }
  });
});

describe('an output past the size limit', () => {
  it('is refused as it streams in (the proxy sends outputs without a Content-Length), not after all of it is read', async () => {
    const { listen } = await import('../../helpers/loopback.ts');
    const { downloadOutput } = await import('../../../src/remote/flow.ts');
    let sent = 0;
    const total = 64 * 1024 * 1024;
    const srv = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/zip' }); // chunked: no size said up front
      const more = (): void => {
        if (res.destroyed || sent >= total) return void res.end();
        sent += 64 * 1024;
        res.write(new Uint8Array(64 * 1024), more);
      };
      more();
    });
    const aborted: unknown[] = [];
    const spy = (async (input: RequestInfo | URL, init?: RequestInit) => {
      init?.signal?.addEventListener('abort', () => aborted.push(init.signal?.reason));
      return globalThis.fetch(input, init);
    }) as typeof fetch;
    try {
      const c = createRemoteClient({ token: GOOD, apiBase: `${srv.url}/v1`, idleTimeoutMs: 150, retry: { baseDelayMs: 1, maxRetries: 0 }, fetch: spy });
      const err = await downloadOutput(c, `${srv.url}/delivery/x/training_output.zip`, { maxBytes: 256 * 1024 }).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(FinetuneError);
      expect((err as FinetuneError).message).toBe('the output is more than the 262144-byte limit');
      await new Promise((r) => setTimeout(r, 400));
      // The server was stopped early (what sits in socket buffers aside), and no idle timer fired after the refusal.
      expect(sent).toBeLessThan(total / 4);
      expect(aborted.filter((r) => String(r).includes('no data'))).toEqual([]);
    } finally {
      await srv.close();
    }
  });
});
