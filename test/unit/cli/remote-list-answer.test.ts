// `finetune remote list` against a server whose answer to GET /trainings is not a page of trainings (a single training,
// an object without a `results` list, a list where the page should be): said as such, naming the call and where to
// look, exit 1 — as `remote status` says of an answer without an id — never taken for an empty list (exit 0, silence).
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { createRemoteClient } from '../../../src/remote/client.ts';
import { findStartedTraining, listTrainings } from '../../../src/remote/flow.ts';
import { listen, type Loopback } from '../../helpers/loopback.ts';

const TOKEN = 'r8_listanswertoken0123456789abcdefghijklm';
const TRAINING = { id: 't1', status: 'succeeded', logs: '', created_at: '2025-05-01T10:00:00Z', model: 'mistralai/mistral-7b-instruct-v0.2' };

let body: unknown = {};
let server: Loopback;

const json = (res: ServerResponse, b: unknown): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(b));

async function list(): Promise<{ code: number; out: string[]; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['remote', 'list', '--api-base', `${server.url}/v1`], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err: err.join('\n') };
}

beforeAll(async () => {
  server = await listen((req, res) => {
    req.resume();
    req.on('end', () => json(res, body));
  });
  process.env.REPLICATE_API_TOKEN = TOKEN;
});
afterAll(async () => {
  delete process.env.REPLICATE_API_TOKEN;
  await server.close();
});

describe('an answer to GET /trainings that is not a list of trainings', () => {
  for (const [what, answer] of [
    ['a single training', TRAINING],
    ['an object without results', {}],
    ['results that are not a list', { results: 'none' }],
    ['a bare list', [TRAINING]],
    ['null', null],
  ] as const) {
    it(`${what}: list says so and exits 1`, async () => {
      body = answer;
      const r = await list();
      expect(r.out).toEqual([]);
      expect(r.code).toBe(1);
      expect(r.err).toBe('finetune remote: remote: The answer to GET /v1/trainings (listing your recent trainings) is not a list of trainings (it lacks the list results): is --api-base right?');
    });
  }

  it('a page with an empty results list is an empty list (exit 0, nothing printed)', async () => {
    body = { next: null, previous: null, results: [] };
    expect(await list()).toEqual({ code: 0, out: [], err: '' });
  });

  it('through the page proxy, the error points at the proxy address', async () => {
    body = TRAINING;
    const c = createRemoteClient({ token: TOKEN, apiBase: `${server.url}/replicate/v1`, proxied: true });
    const e = await listTrainings(c).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(FinetuneError);
    expect((e as FinetuneError).message).toBe('The answer to GET /replicate/v1/trainings (listing your recent trainings) is not a list of trainings (it lacks the list results): is the proxy address right?');
  });

  it('looking for a training whose start answer was lost: an answer that is not a list is not "none found"', async () => {
    body = TRAINING;
    const c = createRemoteClient({ token: TOKEN, apiBase: `${server.url}/v1` });
    await expect(findStartedTraining(c, { version: 'v', trainData: 'https://x/d.jsonl', destination: 'alice/bot', since: 0 })).rejects.toThrow('is not a list of trainings');
  });
});
