// Who answered a failed call: the page's proxy itself (Replicate unreachable) or Replicate behind it. Over real loopback
// sockets: the proxy of src/server in front of an upstream that is not there, and in front of the fake Replicate
// answering 502 itself; the page's client with its retries, as the remote panel builds it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteClient, validateToken } from '../../../src/remote/client.ts';
import { PROXY_API_PATH } from '../../../src/remote/endpoints.ts';
import { createReplicateProxy } from '../../../src/server/replicate-proxy.ts';
import { watchProxyAnswers } from '../../../src/ui/proxy-answers.ts';
import { retryLine } from '../../../src/ui/remote-text.ts';
import { FakeReplicate } from '../../helpers/fake-replicate.ts';
import { listen, type Loopback } from '../../helpers/loopback.ts';

const TOKEN = 'r8_answertesttoken0123456789abcdefghijklm';

let fake: FakeReplicate;
let toFake: Loopback; // proxy → fake Replicate
let toNowhere: Loopback; // proxy → a closed port

beforeAll(async () => {
  fake = await FakeReplicate.start({ token: TOKEN, outputZip: new Uint8Array([80, 75, 5, 6, ...new Array(18).fill(0)]) });
  const closed = await listen((_req, res) => res.end());
  const nowhere = `${closed.url}/v1`;
  await closed.close();
  const mount = (upstream: string) => listen((req, res) => createReplicateProxy({ upstream })(req, res, () => res.writeHead(404).end()));
  toFake = await mount(fake.apiBase);
  toNowhere = await mount(nowhere);
});

afterAll(async () => {
  await Promise.all([fake.close(), toFake.close(), toNowhere.close()]);
});

/** The status lines the panel shows while the token check is retried, and the error it ends with. */
async function checkThrough(proxy: Loopback): Promise<{ lines: string[]; error: Error }> {
  const watched = watchProxyAnswers();
  const lines: string[] = [];
  const c = createRemoteClient({
    token: TOKEN,
    apiBase: `${proxy.url}${PROXY_API_PATH}`,
    proxied: true,
    fetch: watched.fetch,
    sleep: async () => {},
    onRetry: (r) => lines.push(retryLine(r, watched.last(), TOKEN)),
  });
  const error = (await validateToken(c).then(
    () => new Error('the check passed'),
    (e: unknown) => e as Error,
  )) as Error;
  return { lines, error };
}

describe('watchProxyAnswers', () => {
  it('tells the proxy\'s own 502 (Replicate unreachable) from Replicate\'s', async () => {
    const { lines, error } = await checkThrough(toNowhere);
    expect(lines).toHaveLength(4);
    for (const l of lines) expect(l).toMatch(/^The proxy answered 502 while checking the API token: Replicate could not be reached \(.+\)\. Retrying in \d+ s…$/);
    expect(error.message).toMatch(/^The proxy could not get an answer from Replicate while checking the API token/);
    // Its detail is the proxy's word, not Replicate's.
    expect(error.message).toMatch(/ The proxy said: Replicate could not be reached/);
    expect(error.message).not.toMatch(/Replicate said/);
  });

  it('still says Replicate answered when it was Replicate', async () => {
    fake.failNext({ method: 'GET', path: /^\/account$/, status: 502, times: 5 });
    const { lines, error } = await checkThrough(toFake);
    expect(lines).toEqual(['1 s', '2 s', '4 s', '8 s'].map((w) => `Replicate answered 502 while checking the API token; retrying in ${w}…`));
    expect(error.message).toMatch(/^Replicate had a server error \(502\)/);
  });

  it('forgets a proxy answer once a later one comes from Replicate', async () => {
    const watched = watchProxyAnswers();
    await watched.fetch(`${toNowhere.url}${PROXY_API_PATH}/account`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.text());
    expect(watched.last()).toMatchObject({ status: 502 });
    await watched.fetch(`${toFake.url}${PROXY_API_PATH}/account`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.text());
    expect(watched.last()).toBeNull();
  });
});
