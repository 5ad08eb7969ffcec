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
