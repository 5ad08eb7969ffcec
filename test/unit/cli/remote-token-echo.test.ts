// `finetune remote …` against a server that echoes the API token back in a training's fields (its error, its logs,
// its model, its output) and in the account's and the upload's answers: the token is printed by no subcommand, in no
// form (after "Bearer ", after "Token ", bare), on stdout or stderr.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { listen, type Loopback } from '../../helpers/loopback.ts';

const TOKEN = 'r8_SECRETxyz789echo0123456789abcdefghijk';
/** The token in the forms a server could echo it in. */
const ECHOED = `bad Bearer ${TOKEN}; Token ${TOKEN}; bare ${TOKEN}`;

let answer: (req: IncomingMessage, res: ServerResponse) => void = () => {};
let server: Loopback;
let base = '';
let dir = '';

const json = (res: ServerResponse, body: unknown): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));

/** A training whose every text field holds the token. */
function echoingTraining(status: string): Record<string, unknown> {
  return {
    id: 't1',
    status,
    error: status === 'failed' ? ECHOED : null,
    logs: `log Bearer ${TOKEN}\nstep 1 Token ${TOKEN}\n${TOKEN}`,
    model: `alice/${TOKEN}`,
    version: TOKEN,
    input: { learning_rate: 0.0001, [TOKEN]: TOKEN },
    destination: `alice/${TOKEN}`,
    created_at: TOKEN,
    ...(status === 'succeeded' ? { output: { weights: `https://replicate.delivery/${TOKEN}/training_output.zip`, version: `alice/${TOKEN}:1` } } : {}),
  };
}

async function run(...argv: string[]): Promise<{ code: number; all: string }> {
  const lines: string[] = [];
  const code = await main(['remote', ...argv, '--api-base', base], { out: (l) => lines.push(l), err: (l) => lines.push(l) });
  return { code, all: lines.join('\n') };
}

beforeAll(async () => {
  server = await listen((req, res) => {
    req.resume();
    req.on('end', () => answer(req, res));
  });
  base = `${server.url}/v1`;
  dir = mkdtempSync(join(tmpdir(), 'finetune-token-echo-'));
  process.env.REPLICATE_API_TOKEN = TOKEN;
});
afterAll(async () => {
  delete process.env.REPLICATE_API_TOKEN;
  rmSync(dir, { recursive: true, force: true });
  await server.close();
});

describe('a server that echoes the token', () => {
  it('status prints the training without the token, in its error, its logs or elsewhere', async () => {
    answer = (_req, res) => json(res, echoingTraining('failed'));
    const r = await run('status', 't1');
    expect(r.code).toBe(0);
    expect(r.all).toContain('bad Bearer [token]; Token [token]; bare [token]');
    expect(r.all).toContain('log Bearer [token]');
    expect(r.all).not.toContain(TOKEN);
    expect(r.all).not.toContain(TOKEN.slice(3));
  });

  it('status --follow prints the logs, the status lines and the end without the token', async () => {
    let polls = 0;
    answer = (_req, res) => json(res, echoingTraining(++polls < 2 ? 'processing' : 'failed'));
    const r = await run('status', 't1', '--follow', '--poll-interval', '0.001');
    expect(r.code).toBe(1);
    expect(r.all).toContain('step 1 Token [token]');
    expect(r.all).not.toContain(TOKEN.slice(3));
  });

  it('fetch of a failed training says why without the token', async () => {
    answer = (_req, res) => json(res, echoingTraining('failed'));
    const r = await run('fetch', 't1', '--out', join(dir, 'out'));
    expect(r.code).toBe(1);
    expect(r.all).toContain('training t1 is failed (bad Bearer [token]; Token [token]; bare [token]): there are no weights to fetch');
    expect(r.all).not.toContain(TOKEN.slice(3));
  });

  it('status of a succeeded training prints its output (weights URL, version) without the token', async () => {
    answer = (_req, res) => json(res, echoingTraining('succeeded'));
    const r = await run('status', 't1');
    expect(r.code).toBe(0);
    expect(r.all).toContain('alice/[token]:1');
    expect(r.all).not.toContain(TOKEN.slice(3));
  });

  it('list prints model, destination and created_at without the token', async () => {
    answer = (_req, res) => json(res, { next: null, previous: null, results: [echoingTraining('succeeded'), echoingTraining('failed')] });
    const r = await run('list');
    expect(r.code).toBe(0);
    expect(r.all).toContain('"model":"alice/[token]"');
    expect(r.all).not.toContain(TOKEN.slice(3));
  });

  it('train prints the account, the upload and the training without the token', async () => {
    answer = (req, res) => {
      if (req.url === '/v1/account') return json(res, { type: 'user', username: `alice ${TOKEN}`, name: 'Alice' });
      if (req.url === '/v1/models/alice/bot') return json(res, { owner: 'alice', name: 'bot' });
      if (req.url === '/v1/files') return json(res, { id: `f-${TOKEN}`, size: 10, urls: { get: `${server.url}/files/f1` } });
      return json(res, echoingTraining('starting'));
    };
    const r = await run('train', '--data', 'public/datasets/sample.jsonl', '--destination', 'alice/bot', '--num_validation_samples', '5');
    expect(r.code).toBe(0);
    expect(r.all).toContain('"username":"alice [token]"');
    expect(r.all).not.toContain(TOKEN.slice(3));
  });
});
