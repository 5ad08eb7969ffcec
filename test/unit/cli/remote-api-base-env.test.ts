// An API base that cannot be used, from REPLICATE_API_BASE_URL rather than --api-base: the error names the variable
// it came from (no flag was given), shows its value without a user or password, and prints no usage (which is for
// mistakes in the command line). From --api-base, the same refusal names the flag and shows the usage, as before.
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';

const TOKEN = 'r8_apibaseenvtoken0123456789abcdefghijklm';

async function run(argv: string[], apiBaseEnv: string | undefined): Promise<{ code: number; err: string }> {
  process.env.REPLICATE_API_TOKEN = TOKEN;
  if (apiBaseEnv === undefined) delete process.env.REPLICATE_API_BASE_URL;
  else process.env.REPLICATE_API_BASE_URL = apiBaseEnv;
  const lines: string[] = [];
  const code = await main(['remote', ...argv], { out: (l) => lines.push(l), err: (l) => lines.push(l) });
  return { code, err: lines.join('\n') };
}

afterEach(() => {
  delete process.env.REPLICATE_API_TOKEN;
  delete process.env.REPLICATE_API_BASE_URL;
});

describe('REPLICATE_API_BASE_URL refused', () => {
  it('with a user and password: names the variable, not --api-base, without the password or the usage', async () => {
    const r = await run(['list'], 'http://user:pw@example.com/v1');
    expect(r.err).toBe('finetune remote: bad-input: REPLICATE_API_BASE_URL "http://example.com/v1" must not carry a user or password: the API token goes in REPLICATE_API_TOKEN');
    expect(r.code).toBe(2);
  });

  it('not a URL, or not http(s): names the variable', async () => {
    expect((await run(['status', 'abc'], 'not a url')).err).toBe('finetune remote: bad-input: REPLICATE_API_BASE_URL "not a url" is not an http(s) URL');
    expect((await run(['list'], 'ftp://example.com/v1')).err).toBe('finetune remote: bad-input: REPLICATE_API_BASE_URL "ftp://example.com/v1" is not an http(s) URL');
  });

  it('plain http to another machine: names the variable', async () => {
    const r = await run(['list'], 'http://example.com/v1');
    expect(r.err).toMatch(/^finetune remote: bad-input: REPLICATE_API_BASE_URL "http:\/\/example\.com\/v1" is plain http to another machine/);
    expect(r.err).not.toContain('finetune remote train --data');
  });

  it('the same value from --api-base names the flag and shows the usage (a command-line mistake)', async () => {
    const r = await run(['list', '--api-base', 'http://user:pw@example.com/v1'], undefined);
    expect(r.err).toContain('finetune remote: --api-base "http://example.com/v1" must not carry a user or password');
    expect(r.err).toContain('finetune remote train --data');
    expect(r.err).not.toContain('pw');
    expect(r.code).toBe(2);
  });

  it('--api-base wins over the variable: a good flag is used even when the variable is refusable', async () => {
    const r = await run(['list', '--api-base', 'http://user:pw@example.com/v1'], 'not a url');
    expect(r.err).toContain('--api-base "http://example.com/v1"');
    expect(r.err).not.toContain('REPLICATE_API_BASE_URL "');
  });
});
