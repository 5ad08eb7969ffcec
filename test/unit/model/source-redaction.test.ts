// Messages about a URL never repeat its credentials or its query string (signed URLs carry tokens there).
import { describe, expect, it } from 'vitest';
import { displayUrl, httpSource, redactUrls } from '../../../src/model/source.ts';
import { errorOf } from './helpers.ts';

const SECRET = 'hunter2-s3cr3t';

describe('URLs in error messages', () => {
  it('a URL with user:password@ is refused without quoting the password', async () => {
    const e = await errorOf(() => httpSource(`http://alice:${SECRET}@127.0.0.1:9/model.safetensors`));
    expect(e.message).not.toContain(SECRET);
    expect(e.message).not.toContain('alice');
    expect(e.message).toMatch(/a URL with a user name or password in it is not accepted/);
  });

  it('a network failure quoting the whole URL (as undici does) is redacted', async () => {
    const url = `https://cdn.example.org/model.safetensors?X-Amz-Signature=${SECRET}&token=${SECRET}`;
    const fetch = async (u: string | URL | Request): Promise<Response> => {
      throw new TypeError('fetch failed', { cause: new Error(`connect ECONNREFUSED while fetching ${String(u)} (see ${String(u).replace('https', 'http')})`) });
    };
    const e = await errorOf(() => httpSource(url, { fetch: fetch as typeof globalThis.fetch }));
    expect(e.message).not.toContain(SECRET);
    expect(e.message).not.toContain('X-Amz-Signature');
    expect(e.message).toContain('https://cdn.example.org/model.safetensors');
    expect(e.message).toMatch(/network failure \(connect ECONNREFUSED/);
  });

  it('the real fetch on a closed port with a token in the query string says nothing of the token', async () => {
    const e = await errorOf(() => httpSource(`http://127.0.0.1:9/x.bin?access_token=${SECRET}`));
    expect(e.message).not.toContain(SECRET);
    expect(e.message).toMatch(/^http:\/\/127\.0\.0\.1:9\/x\.bin: network failure/);
  });

  it('displayUrl and redactUrls cut userinfo, query and fragment, parseable or not', () => {
    expect(displayUrl(`https://u:${SECRET}@h.example/a/b?q=${SECRET}#f`)).toBe('https://h.example/a/b');
    expect(displayUrl(`ht tp://u:${SECRET}@h/a?q=${SECRET}`)).not.toContain(SECRET);
    expect(redactUrls(`failed: https://u:${SECRET}@h.example/x?sig=${SECRET} and ${SECRET}`, `https://u:${SECRET}@h.example/x?sig=${SECRET}`)).toBe('failed: https://h.example/x and ***');
  });
});
