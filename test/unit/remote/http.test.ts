// The client's fetch: Retry-After read both ways, waits recorded (not slept), and what is and is not retried.
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { remoteFetch } from '../../../src/remote/http.ts';
import { retryAfterMs } from '../../../src/core/retry-after.ts';
import { createRemoteClient } from '../../../src/remote/client.ts';
import { getTraining } from '../../../src/remote/flow.ts';

const API = 'https://api.example/v1';

function scripted(answers: (Response | Error)[]): { fetch: typeof fetch; calls: () => number } {
  let i = 0;
  const f = (async () => {
    const a = answers[Math.min(i++, answers.length - 1)];
    if (a instanceof Error) throw a;
    return a.clone();
  }) as unknown as typeof fetch;
  return { fetch: f, calls: () => i };
}

const problem = (status: number, headers: Record<string, string> = {}) => new Response(JSON.stringify({ detail: `status ${status}`, status }), { status, headers: { 'content-type': 'application/problem+json', ...headers } });

describe('retryAfterMs', () => {
  it('reads delta-seconds and HTTP dates', () => {
    expect(retryAfterMs('5')).toBe(5000);
    expect(retryAfterMs(' 0 ')).toBe(0);
    const now = Date.parse('2026-11-29T12:00:00Z');
    expect(retryAfterMs('Sun, 29 Nov 2026 12:00:07 GMT', now)).toBe(7000);
    expect(retryAfterMs('Sun, 29 Nov 2026 11:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('soon')).toBeNull();
    // Found by answers-fuzz.test.ts: 400 digits were Infinity ms, and a 429 said "Try again in Infinity s."
    expect(retryAfterMs('9'.repeat(400))).toBeNull();
    expect(retryAfterMs(null)).toBeNull();
  });
});

describe('remoteFetch', () => {
  it('waits Retry-After on a 429 (also for a POST: it was not acted on)', async () => {
    const waits: number[] = [];
    const s = scripted([problem(429, { 'retry-after': '3' }), new Response('{}', { status: 201 })]);
    const f = remoteFetch({ apiBase: API, fetch: s.fetch, sleep: async (ms) => void waits.push(ms) });
    const res = await f(`${API}/files`, { method: 'POST' });
    expect(res.status).toBe(201);
    expect(waits).toEqual([3000]);
  });

  it('reports a Retry-After longer than it waits for, at once', async () => {
    const s = scripted([problem(429, { 'retry-after': '3600' })]);
    const f = remoteFetch({ apiBase: API, fetch: s.fetch, sleep: async () => {} });
    const e = await f(`${API}/trainings/abc`).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FinetuneError);
    expect((e as Error).message).toMatch(/rate limiting .* while reading training abc, still after 0 retries\. Try again in 60 min\./);
    expect(s.calls()).toBe(1);
  });

  it('says a Retry-After in hours as hours, and one of 20 digits as more than a day, not as so many seconds', async () => {
    const said = async (after: string): Promise<string> => {
      const s = scripted([problem(429, { 'retry-after': after })]);
      const f = remoteFetch({ apiBase: API, fetch: s.fetch, sleep: async () => {} });
      const e = (await f(`${API}/trainings/abc`).catch((x: unknown) => x)) as FinetuneError;
      return e.message.replace('Replicate is rate limiting these requests (429 Too Many Requests) while reading training abc, still after 0 retries. ', '');
    };
    expect(await said('7200')).toBe('Try again in 2 h.');
    // The seconds as a double holds them (20 digits, the last few rounded), without exponent or grouping.
    expect(await said('12345678901234567890')).toMatch(/^Try again in more than a day \(Retry-After: 123456789012345\d{5} s\)\.$/);
  });

  it('backs off (doubling) on 5xx for GETs, never re-sends a POST after a 5xx or a lost connection', async () => {
    const waits: number[] = [];
    const get = scripted([problem(502), problem(503), new Response('{"ok":1}')]);
    const f = remoteFetch({ apiBase: API, fetch: get.fetch, retry: { baseDelayMs: 100 }, sleep: async (ms) => void waits.push(ms) });
    expect((await f(`${API}/account`)).status).toBe(200);
    expect(waits).toEqual([100, 200]);
    const post = scripted([new TypeError('fetch failed')]);
    const g = remoteFetch({ apiBase: API, fetch: post.fetch, sleep: async () => {} });
    const e = (await g(`${API}/models`, { method: 'POST' }).catch((x: unknown) => x)) as FinetuneError;
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(/Could not reach api\.example while creating the destination model/);
    expect(post.calls()).toBe(1);
  });

  it('throws the same error again at once for the same request (the client\'s own retry loop)', async () => {
    const s = scripted([problem(404)]);
    const f = remoteFetch({ apiBase: API, fetch: s.fetch });
    const init: RequestInit = { method: 'GET' };
    const first = await f(`${API}/trainings/x`, init).catch((x: unknown) => x);
    const again = await f(`${API}/trainings/x`, init).catch((x: unknown) => x);
    expect(again).toBe(first);
    expect(s.calls()).toBe(1);
  });

  it('keeps the token out of messages, even when a server echoes it', async () => {
    const token = 'r8_secretsecretsecret';
    const s = scripted([new Response(JSON.stringify({ detail: `bad header Bearer ${token}` }), { status: 400 })]);
    const f = remoteFetch({ apiBase: API, fetch: s.fetch, token });
    const e = (await f(`${API}/account`).catch((x: unknown) => x)) as FinetuneError;
    expect(e.message).toContain('Bearer [token]');
    expect(JSON.stringify(e.details) + e.message).not.toContain(token);
  });

  it('refuses an API answer that is not JSON, naming the call; output downloads pass untouched', async () => {
    const page = () => new Response('<html>portal</html>', { status: 200, headers: { 'content-type': 'text/html' } });
    const proxied = remoteFetch({ apiBase: 'https://app.example/replicate/v1', proxied: true, fetch: (async () => page()) as unknown as typeof fetch });
    const e = await proxied('https://app.example/replicate/v1/files', { method: 'POST' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FinetuneError);
    expect((e as FinetuneError).kind).toBe('remote');
    expect((e as Error).message).toBe("The answer to POST /replicate/v1/files (uploading the training data) is not JSON (an HTML page, 19 bytes): is the proxy address right? Replicate's API answers JSON.");
    const empty = remoteFetch({ apiBase: API, fetch: (async () => new Response('', { status: 200 })) as unknown as typeof fetch });
    expect(((await empty(`${API}/account`).catch((x: unknown) => x)) as Error).message).toMatch(/GET \/v1\/account \(checking the API token\) is not JSON \(an empty body\): is --api-base right\?/);
    const zip = new Uint8Array([0x50, 0x4b, 3, 4, 0xff]);
    const downloads = remoteFetch({ apiBase: API, fetch: (async () => new Response(zip, { status: 200 })) as unknown as typeof fetch });
    expect(new Uint8Array(await (await downloads('https://api.example/delivery/x/training_output.zip')).arrayBuffer())).toEqual(zip);
    const ok = remoteFetch({ apiBase: API, fetch: (async () => new Response('{"id":"a"}', { status: 200 })) as unknown as typeof fetch });
    expect(await (await ok(`${API}/trainings/a`)).json()).toEqual({ id: 'a' });
  });

  it('names the host actually contacted when it cannot be reached (the delivery host of a download, not the API)', async () => {
    const lost = Object.assign(new TypeError('fetch failed'), { cause: new Error('getaddrinfo ENOTFOUND replicate.delivery') });
    const f = remoteFetch({ apiBase: 'http://127.0.0.1:18406/v1', retry: { maxRetries: 0 }, fetch: (async () => Promise.reject(lost)) as unknown as typeof fetch });
    const e = (await f('https://replicate.delivery/x/training_output.zip').catch((x: unknown) => x)) as FinetuneError;
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(/^Could not reach replicate\.delivery while downloading the training's output \(getaddrinfo ENOTFOUND replicate\.delivery\)\. Check the network connection, then try again\.$/);
    const api = (await f('http://127.0.0.1:18406/v1/trainings/abc').catch((x: unknown) => x)) as FinetuneError;
    expect(api.message).toMatch(/^Could not reach 127\.0\.0\.1:18406 while reading training abc .* and that the server is running/);
  });

  it('does not retry an unknown host or a refused connection before the host has answered: a wrong --api-base is said at once', async () => {
    const unknown = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('getaddrinfo ENOTFOUND api.exmaple'), { code: 'ENOTFOUND' }) });
    const retries: string[] = [];
    const first = scripted([unknown, new Response('{"ok":1}')]);
    const f = remoteFetch({ apiBase: API, fetch: first.fetch, sleep: async () => {}, onRetry: (r) => void retries.push(String(r.status)) });
    const e = (await f(`${API}/trainings/abc`).catch((x: unknown) => x)) as FinetuneError;
    expect(e.kind).toBe('network');
    expect(e.message).toMatch(/^Could not reach api\.example while reading training abc \(getaddrinfo ENOTFOUND api\.exmaple\)/);
    expect([first.calls(), retries]).toEqual([1, []]);
  });

  it('retries a lost connection, and an unknown host once the host has answered (a network that comes back), saying why', async () => {
    const reset = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) });
    const unknown = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('getaddrinfo EAI_AGAIN api.example'), { code: 'ENOTFOUND' }) });
    const why: (string | undefined)[] = [];
    const s = scripted([new Response('{"ok":1}'), reset, unknown, new Response('{"ok":2}')]);
    const f = remoteFetch({ apiBase: API, fetch: s.fetch, sleep: async () => {}, onRetry: (r) => void why.push(r.detail) });
    expect((await f(`${API}/account`)).status).toBe(200);
    expect(await (await f(`${API}/trainings/abc`)).json()).toEqual({ ok: 2 });
    expect(why).toEqual(['read ECONNRESET', 'getaddrinfo EAI_AGAIN api.example']);
  });

  it('says a 429 with a Retry-After of no readable size like one without, not "Try again in Infinity s."', async () => {
    // Found by answers-fuzz.test.ts.
    const s = scripted([problem(429, { 'retry-after': '9'.repeat(400) })]);
    const f = remoteFetch({ apiBase: API, fetch: s.fetch, retry: { maxRetries: 0 }, sleep: async () => {} });
    const e = (await f(`${API}/trainings/abc`).catch((x: unknown) => x)) as FinetuneError;
    expect(e.message).toBe('Replicate is rate limiting these requests (429 Too Many Requests) while reading training abc, still after 0 retries. Try again in a minute.');
  });

  it('refuses a 204 (no body) to a call that answers JSON as "not JSON", instead of the client\'s SyntaxError', async () => {
    // Found by answers-fuzz.test.ts: getTraining threw "SyntaxError: Unexpected end of JSON input".
    const c = createRemoteClient({ token: 'r8_httptesttoken0123456789abcdefghijklmno', apiBase: API, fetch: (async () => new Response(null, { status: 204 })) as unknown as typeof fetch });
    const e = await getTraining(c, 'abc').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FinetuneError);
    expect((e as FinetuneError).message).toBe("The answer to GET /v1/trainings/abc (reading training abc) is not JSON (an empty body): is --api-base right? Replicate's API answers JSON.");
  });

  it('names the content type of an answer that is not JSON with its control characters escaped, and never the token', async () => {
    // Found by answers-fuzz.test.ts: the Content-Type header went into the message as it came.
    const token = 'r8_httptesttoken0123456789abcdefghijklmno';
    const answering = (contentType: string) => remoteFetch({ apiBase: API, token, fetch: (async () => new Response('x', { status: 200, headers: { 'content-type': contentType } })) as unknown as typeof fetch });
    const escaped = (await answering('text/x\u001b[2J')(`${API}/account`).catch((x: unknown) => x)) as FinetuneError;
    expect(escaped.message).toBe("The answer to GET /v1/account (checking the API token) is not JSON (text/x\\u001b[2J, 1 byte): is --api-base right? Replicate's API answers JSON.");
    const echoed = (await answering(`text/${token}`)(`${API}/account`).catch((x: unknown) => x)) as FinetuneError;
    expect(echoed.message).toBe("The answer to GET /v1/account (checking the API token) is not JSON (text/[token], 1 byte): is --api-base right? Replicate's API answers JSON.");
  });

  it('says why a connection was lost with the token scrubbed and control characters escaped, in the message, its details and onRetry', async () => {
    // Found by answers-fuzz.test.ts: a fetch's reason (its cause's message) went everywhere as it came.
    const token = 'r8_httptesttoken0123456789abcdefghijklmno';
    const lost = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(`other side closed\n\u001b[2J Bearer ${token}`), { code: 'ECONNRESET' }) });
    const told: (string | undefined)[] = [];
    const f = remoteFetch({ apiBase: API, token, retry: { maxRetries: 1 }, fetch: (async () => Promise.reject(lost)) as unknown as typeof fetch, sleep: async () => {}, onRetry: (r) => void told.push(r.detail) });
    const e = (await f(`${API}/trainings/abc`).catch((x: unknown) => x)) as FinetuneError;
    expect(e.kind).toBe('network');
    expect(told).toEqual(['other side closed\\n\\u001b[2J Bearer [token]']);
    expect(e.message).toContain('while reading training abc (other side closed\\n\\u001b[2J Bearer [token]).');
    expect(e.details?.reason).toBe('other side closed\n\u001b[2J Bearer [token]');
  });
});
