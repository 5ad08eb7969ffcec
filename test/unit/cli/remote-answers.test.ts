// `finetune remote …` against a server that answers 200 with something that is not Replicate's API: an HTML page (a
// captive portal, a wrong --api-base) or JSON without the fields read. Each is one clear `remote` line naming the
// call and what came back, exit 1, no stack trace, no token.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';

const TOKEN = 'r8_answerstesttoken0123456789abcdefghijk';
const HTML = '<!doctype html><html><head><title>Sign in to the Wi-Fi</title></head><body>Welcome</body></html>';
let answer: (req: IncomingMessage, res: ServerResponse) => void = () => {};
let server: Server;
let base = '';
let dir = '';

async function run(...argv: string[]): Promise<{ code: number; out: string[]; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['remote', ...argv, '--api-base', base], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err: err.join('\n') };
}

const json = (res: ServerResponse, body: unknown): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(req, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  dir = mkdtempSync(join(tmpdir(), 'finetune-answers-'));
  process.env.REPLICATE_API_TOKEN = TOKEN;
});
afterAll(async () => {
  delete process.env.REPLICATE_API_TOKEN;
  rmSync(dir, { recursive: true, force: true });
  await new Promise((r) => server.close(r));
});

function expectClear(r: { code: number; err: string }): void {
  expect(r.code).toBe(1);
  expect(r.err).not.toMatch(/internal error|SyntaxError|TypeError|\n\s+at /);
  expect(r.err).not.toContain(TOKEN.slice(3));
}

describe('answers that are not Replicate API answers', () => {
  it('an HTML page answered with 200: every subcommand names the call and says it is not JSON', async () => {
    answer = (_req, res) => void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(HTML);
    const bytes = Buffer.byteLength(HTML);
    for (const argv of [['status', 'abc'], ['cancel', 'abc'], ['fetch', 'abc', '--out', join(dir, 'out')]]) {
      const r = await run(...argv);
      expectClear(r);
      const call = argv[0] === 'cancel' ? 'POST /v1/trainings/abc/cancel' : 'GET /v1/trainings/abc';
      expect(r.err).toContain(`finetune remote: remote: The answer to ${call} (${argv[0] === 'cancel' ? 'canceling' : 'reading'} training abc) is not JSON (an HTML page, ${bytes} bytes): is --api-base right?`);
    }
    const t = await run('train', '--data', 'public/datasets/sample.jsonl', '--destination', 'alice/bot', '--num_validation_samples', '5');
    expectClear(t);
    expect(t.err).toContain('The answer to GET /v1/account (checking the API token) is not JSON (an HTML page');
  });

  it('{} answered with 200: the missing field is named, and fetch does not say "is undefined"', async () => {
    answer = (_req, res) => json(res, {});
    for (const argv of [['status', 'abc'], ['cancel', 'abc'], ['fetch', 'abc', '--out', join(dir, 'out')]]) {
      const r = await run(...argv);
      expectClear(r);
      expect(r.err).toMatch(/The answer to (GET|POST) \/v1\/trainings\/abc(\/cancel)? \(\w+ training abc\) lacks the field id: is --api-base right\?/);
      expect(r.err).not.toContain('undefined');
    }
    answer = (req, res) => json(res, req.url === '/v1/trainings/abc' ? { id: 'abc', logs: '' } : {});
    const s = await run('fetch', 'abc', '--out', join(dir, 'out'));
    expectClear(s);
    expect(s.err).toContain('lacks the field status');
  });

  it('an upload answered without urls.get is named, before a training is started', async () => {
    const seen: string[] = [];
    answer = (req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (req.url === '/v1/account') return json(res, { type: 'user', username: 'alice', name: 'Alice' });
      if (req.url === '/v1/models/alice/bot') return json(res, { owner: 'alice', name: 'bot' });
      return json(res, { id: 'f1', size: 10 });
    };
    const r = await run('train', '--data', 'public/datasets/sample.jsonl', '--destination', 'alice/bot', '--num_validation_samples', '5');
    expectClear(r);
    expect(r.err).toContain('The answer to POST /v1/files (uploading the training data) lacks the field urls.get: is --api-base right?');
    expect(seen.filter((s) => s.includes('trainings'))).toEqual([]);
  });

  it('cancel answered with a training still processing: a note, exit 0 (the request was taken)', async () => {
    answer = (_req, res) => json(res, { id: 'abc', status: 'processing', logs: '' });
    const r = await run('cancel', 'abc');
    expect(r.code).toBe(0);
    expect(r.err).toBe('note: cancel requested; Replicate still reports training abc as processing (finetune remote status abc --follow shows it end)');
  });

  it('a status this version does not know ("queued"): following goes on, the status is named as unknown, no blame on --api-base', async () => {
    let polls = 0;
    answer = (_req, res) => json(res, { id: 'abc', status: ++polls < 3 ? 'queued' : 'succeeded', logs: '', output: { weights: 'https://example.com/w.zip', version: 'alice/bot:1' } });
    const r = await run('status', 'abc', '--follow', '--poll-interval', '0.001');
    expect(r.code).toBe(0);
    expect(polls).toBe(3);
    expect(r.err).toContain('training abc: "queued" (a status this version does not know: taken as not finished, still following)');
    expect(r.err).toContain('training abc: succeeded');
    expect(r.err).not.toMatch(/api-base|proxy/);
  });
});
