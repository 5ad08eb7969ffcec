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
