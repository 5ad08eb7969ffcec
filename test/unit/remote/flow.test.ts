// The remote flow against the fake Replicate (loopback only): token check, upload, destination, training, following,
// cancel, download and import — and every refusal as an error a person understands.
import { readFileSync } from 'node:fs';
import type { Training } from 'replicate';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { defaultHyperparams, parseHyperparams } from '../../../src/config/hyperparams.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { createRemoteClient, validateToken, type RemoteClient } from '../../../src/remote/client.ts';
import {
  cancelTraining,
  checkUploadSize,
  downloadOutput,
  ensureDestination,
  followTraining,
  getTraining,
  parseDestination,
  startTraining,
  uploadFile,
  viewTraining,
  type TrainingView,
} from '../../../src/remote/flow.ts';
import { checkTrainingFile } from '../../../src/remote/check-data.ts';
import { estimateRemoteCost } from '../../../src/remote/estimate.ts';
import { importTrainingOutput } from '../../../src/remote/import.ts';
import { FakeReplicate } from '../../helpers/fake-replicate.ts';
import { listen } from '../../helpers/loopback.ts';
import { trainedAdapter, trainerOutputZip } from '../../helpers/trainer-output.ts';

const TOKEN = 'r8_flowtesttoken0123456789abcdefghijklmnop';
const base = parseMistralConfig(JSON.parse(readFileSync('test/fixtures/tiny-mistral/config.json', 'utf8')));
const adapter = trainedAdapter(base);
const data = readFileSync('public/datasets/sample.jsonl');
const fast = { baseDelayMs: 5 };
const noWait = { minDelayMs: 1, maxDelayMs: 4 };

let fake: FakeReplicate;
let client: RemoteClient;

beforeAll(async () => {
  fake = await FakeReplicate.start({ token: TOKEN, outputZip: trainerOutputZip(adapter) });
  client = createRemoteClient({ token: TOKEN, apiBase: fake.apiBase, retry: fast });
});
afterAll(() => fake.close());
afterEach(() => {
  fake.clearFaults();
  expect(fake.violations).toEqual([]);
  fake.script = { processingPolls: 3, outcome: 'succeeded' };
});

async function caught(p: Promise<unknown>): Promise<FinetuneError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FinetuneError);
  const fe = e as FinetuneError;
  expect(JSON.stringify({ m: fe.message, d: fe.details })).not.toContain(TOKEN);
  return fe;
}

async function started(destination = 'alice/flow-model'): Promise<string> {
  const dest = parseDestination(destination);
  await ensureDestination(client, dest);
  const file = await uploadFile(client, new Uint8Array(data), 'train.jsonl');
  const { training } = await startTraining(client, { destination: dest, hp: defaultHyperparams(), files: { train_data: file.urls.get } });
  return training.id;
}

describe('the happy path', () => {
  it('refuses a destination that is not owner/name, and never echoes one that looks like a token', () => {
    expect(() => parseDestination('alice')).toThrow('destination "alice" must be owner/name');
    const token = 'r8_FAKEtoken1234567890abcdefXYZ0123456789';
    for (const pasted of [token, `alice/${token}`, 'hf_abcdefghijklmnopqrstuvwxyz012345']) {
      let message = '';
      try {
        parseDestination(pasted);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toBe('the destination looks like an API token, not owner/name: give the model to train into, e.g. alice/mistral-support-bot, and the token in its own field');
    }
    expect(parseDestination('alice/r8_bot')).toEqual({ owner: 'alice', name: 'r8_bot' });
  });

  it('validates the token, uploads, creates the destination, trains, follows the logs and imports the adapter exactly', async () => {
    expect((await validateToken(client)).username).toBe('alice');
    const checked = await checkTrainingFile(new Uint8Array(data), 'sample.jsonl');
    expect(checked.summary.rows).toBe(62);

    const dest = parseDestination('alice/support-bot');
    expect(await ensureDestination(client, dest, { visibility: 'private', hardware: 'gpu-a100-large' })).toEqual({ created: true });
    expect(await ensureDestination(client, dest)).toEqual({ created: false });
    expect(fake.models.get('alice/support-bot')).toMatchObject({ visibility: 'private', hardware: 'gpu-a100-large' });

    const file = await uploadFile(client, new Uint8Array(data), 'train.jsonl');
    expect(fake.files.get(file.id)?.bytes).toEqual(new Uint8Array(data));

    const hp = parseHyperparams({ learning_rate: 2e-4, lora_rank: 16, num_train_epochs: 2 });
    const { training, notes } = await startTraining(client, { destination: dest, hp, files: { train_data: file.urls.get } });
    expect(notes.length).toBeGreaterThan(0);
    const sent = fake.trainings.get(training.id)!.input;
    expect(sent).toMatchObject({ train_data: file.urls.get, learning_rate: 2e-4, lora_rank: 16, num_train_epochs: 2 });
    expect(Object.keys(sent)).not.toContain('layout'); // our extras are stripped

    const views: TrainingView[] = [];
    let logged = '';
    const end = await followTraining(client, training.id, { ...noWait, onUpdate: (v, more) => (views.push(v), (logged += more)) });
    expect(end.status).toBe('succeeded');
    expect(views.map((v) => v.status)).toEqual(['processing', 'processing', 'processing', 'succeeded']);
    expect(logged).toBe(end.logs);
    expect(logged).toContain('step 3: loss');
    const last = views.at(-1)!;
    expect(last.costUsd).toBeCloseTo(last.elapsedS * 0.0014, 12);

    const zip = await downloadOutput(client, last.weights!);
    const imported = await importTrainingOutput(zip);
    expect(imported.config.r).toBe(8);
    for (let l = 0; l < adapter.layers; l++) {
      for (const m of ['q_proj', 'v_proj'] as const) {
        expect(imported.tensors[l][m]!.A).toEqual(adapter.tensors[l][m]!.A);
        expect(imported.tensors[l][m]!.B).toEqual(adapter.tensors[l][m]!.B);
      }
    }
  });

  it('cancels a running training', async () => {
    fake.script = { processingPolls: 3, outcome: 'succeeded', hold: true };
    const id = await started();
    const ac = new AbortController();
    let polls = 0;
    const following = followTraining(client, id, {
      ...noWait,
      onUpdate: (v) => {
        if (++polls === 2) void cancelTraining(client, id);
        if (polls > 50) ac.abort();
      },
      signal: ac.signal,
    });
    const end = await following;
    expect(end.status).toBe('canceled');
    expect(end.logs).toContain('canceled');
    expect(fake.requests.some((r) => r.method === 'POST' && r.path === `/v1/trainings/${id}/cancel`)).toBe(true);
  });

  it('shows a failed training\'s error text', async () => {
    fake.script = { processingPolls: 1, outcome: 'failed', error: 'ValueError: train_data rows need "text"' };
    const id = await started();
    const end = await followTraining(client, id, { ...noWait, onUpdate: () => {} });
    expect(viewTraining(end)).toMatchObject({ status: 'failed', error: 'ValueError: train_data rows need "text"', done: true });
  });
});

describe('rate limiting and retries', () => {
  it('waits for Retry-After on 429 and then goes on', async () => {
    const id = await started();
    fake.failNext({ method: 'GET', path: new RegExp(`^/trainings/${id}$`), status: 429, retryAfter: 1 });
    const waits: number[] = [];
    const c = createRemoteClient({ token: TOKEN, apiBase: fake.apiBase, retry: fast, onRetry: (i) => waits.push(i.waitMs) });
    const t0 = Date.now();
    const end = await followTraining(c, id, { ...noWait, onUpdate: () => {} });
    expect(end.status).toBe('succeeded');
    expect(waits).toEqual([1000]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(990);
    const gets = fake.requests.filter((r) => r.path === `/v1/trainings/${id}`).map((r) => r.status);
    expect(gets[0]).toBe(429);
    expect(gets.slice(1).every((s) => s === 200)).toBe(true);
  });

  it('retries a GET after a server error and after a dropped connection', async () => {
    fake.failNext({ method: 'GET', path: /^\/account$/, status: 500 });
    fake.failNext({ method: 'GET', path: /^\/account$/, status: 'drop' });
    expect((await validateToken(client)).username).toBe('alice');
  });

  it('does not re-send a POST after a server error', async () => {
    fake.failNext({ method: 'POST', path: /^\/models$/, status: 500 });
    const before = fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/models').length;
    const e = await caught(ensureDestination(client, parseDestination('alice/once')));
    expect(e.message).toMatch(/server error \(500\)/);
    expect(fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/models').length).toBe(before + 1);
  });

  it('reports a 429 that lasts longer than the retries', async () => {
    fake.failNext({ method: 'GET', path: /^\/account$/, status: 429, retryAfter: 0, times: 10 });
    const c = createRemoteClient({ token: TOKEN, apiBase: fake.apiBase, retry: { baseDelayMs: 1, maxRetries: 2 } });
    const before = fake.requests.filter((r) => r.path === '/v1/account' && r.status === 429).length;
    const e = await caught(validateToken(c));
    expect(e.kind).toBe('remote');
    expect(e.message).toMatch(/rate limiting.*429.*after 2 retries/);
    expect(fake.requests.filter((r) => r.path === '/v1/account' && r.status === 429).length - before).toBe(3);
  });
});

describe('errors a person understands', () => {
  it('401: a bad token', async () => {
    const bad = createRemoteClient({ token: 'r8_wrong', apiBase: fake.apiBase, retry: fast });
    const e = await caught(validateToken(bad));
    expect(e.kind).toBe('remote');
    expect(e.message).toMatch(/refused the API token while checking the API token \(401/);
  });

  it('402: billing', async () => {
    fake.failNext({ method: 'POST', path: /trainings$/, status: 402 });
    const e = await caught(started());
    expect(e.message).toMatch(/billing.*402 Payment Required/);
    expect(e.details?.status).toBe(402);
  });

  it('404: an unknown training, and a destination that does not exist', async () => {
    const e = await caught(cancelTraining(client, 'doesnotexist'));
    expect(e.message).toMatch(/Not found while canceling training doesnotexist \(404\)/);
    const file = await uploadFile(client, new Uint8Array(data), 'train.jsonl');
    const e2 = await caught(startTraining(client, { destination: parseDestination('alice/never-made'), hp: defaultHyperparams(), files: { train_data: file.urls.get } }));
    expect(e2.message).toContain('alice/never-made does not exist');
  });

  it('422: names the field', async () => {
    fake.failNext({ method: 'POST', path: /trainings$/, status: 422, invalidFields: [{ field: 'input.lora_rank', description: 'Must be less than or equal to 128' }] });
    const e = await caught(started());
    expect(e.message).toContain('(422 validation failed): lora_rank: Must be less than or equal to 128');
    expect(e.details?.fields).toEqual(['lora_rank']);
  });

  it('5xx on a POST', async () => {
    fake.failNext({ method: 'POST', path: /^\/files$/, status: 503 });
    const e = await caught(uploadFile(client, new Uint8Array(data), 'train.jsonl'));
    expect(e.message).toMatch(/server error \(503\) while uploading the training data/);
  });

  it('network loss', async () => {
    // A port that was just free: nothing listens there.
    const closed = await listen(() => {});
    await closed.close();
    const gone = createRemoteClient({ token: TOKEN, apiBase: `${closed.url}/v1`, retry: { baseDelayMs: 1, maxRetries: 1 } });
    const e = await caught(validateToken(gone));
    expect(e.kind).toBe('network');
    expect(e.message).toContain(`Could not reach ${new URL(closed.url).host} while checking the API token`);
  });

  it('refuses a file of 100 MB before sending it, and extras Replicate cannot honour', async () => {
    expect(() => checkUploadSize(100_000_000, 'big.jsonl')).toThrow(/under 100 MB/);
    expect(() => checkUploadSize(99_999_999, 'ok.jsonl')).not.toThrow();
    const hp = parseHyperparams({ lora_target_modules: 'all-linear' });
    const e = await caught(startTraining(client, { destination: parseDestination('alice/flow-model'), hp, files: { train_data: 'https://example.com/x.jsonl' } }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toContain('lora_target_modules all-linear');
  });

  it('estimates the cost from tokens, epochs and method before sending', () => {
    const lora = estimateRemoteCost({ tokens: 33_000, epochs: 3, peftMethod: 'lora' });
    expect(lora.seconds).toBe(240 + 30);
    expect(lora.costUsd).toBeCloseTo(270 * 0.0014, 12);
    expect(estimateRemoteCost({ tokens: 33_000, epochs: 3, peftMethod: 'qlora' }).seconds).toBeGreaterThan(lora.seconds);
    expect(lora.basis).toBe('240 s start-up + 33,000 tokens × 3 epochs at ~3,300 tokens/s (lora, A100 80 GB), at $0.0014/s; a rough estimate, Replicate bills the real time');
    expect(estimateRemoteCost({ tokens: 3134, epochs: 1, peftMethod: 'lora' }).basis).toMatch(/^240 s start-up \+ 3,134 tokens × 1 epoch at/);
  });

  it('refuses a JSONL that would fail on Replicate, with its lines', async () => {
    const e = await caught(checkTrainingFile(new TextEncoder().encode('{"text": "ok"}\n{"prompt": 3}\nnot json\n'), 'bad.jsonl'));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(/line 2/);
    expect(e.message).toMatch(/line 3/);
  });

  it('refuses output downloads from other hosts', async () => {
    const e = await caught(downloadOutput(client, 'https://evil.example/training_output.zip'));
    expect(e.message).toMatch(/refusing to download the output from https:\/\/evil\.example/);
  });

  it('refuses an "output" under the API base on its own origin, however spelled (the token would go to any API GET)', async () => {
    const before = fake.requests.length;
    for (const u of [`${fake.apiBase}/webhooks/default/secret`, `${fake.url}/delivery/..%2Fv1/account`, `${fake.url}/V1/account`]) {
      const e = await caught(downloadOutput(client, u));
      expect(e.message).toMatch(/refusing to download the output/);
    }
    expect(fake.requests.length).toBe(before);
  });
});

describe('a training created but its answer lost', () => {
  async function send(destination: string, c: RemoteClient = client) {
    const dest = parseDestination(destination);
    await ensureDestination(c, dest);
    const file = await uploadFile(c, new Uint8Array(data), 'train.jsonl');
    return startTraining(c, { destination: dest, hp: defaultHyperparams(), files: { train_data: file.urls.get } });
  }
  const creates = () => fake.requests.filter((r) => r.method === 'POST' && /\/trainings$/.test(r.path)).length;

  it('adopts the training Replicate created when the connection dropped before the answer', async () => {
    fake.failNext({ method: 'POST', path: /trainings$/, status: 'drop', afterActing: true });
    const before = creates();
    const count = fake.trainings.size;
    const { training, adopted } = await send('alice/lost-answer');
    expect(adopted).toBe(true);
    expect(creates()).toBe(before + 1); // never sent twice
    expect(fake.trainings.size).toBe(count + 1);
    expect(fake.trainings.get(training.id)?.destination).toBe('alice/lost-answer');
    expect(fake.requests.some((r) => r.method === 'GET' && r.path === '/v1/trainings')).toBe(true);
  });

  it('adopts it after a 5xx answer too', async () => {
    fake.failNext({ method: 'POST', path: /trainings$/, status: 502, afterActing: true });
    const { training, adopted } = await send('alice/lost-502');
    expect(adopted).toBe(true);
    expect(fake.trainings.get(training.id)?.destination).toBe('alice/lost-502');
  });

  it('does not adopt an older training of the same destination', async () => {
    await send('alice/older'); // an earlier training of this model, with other data
    fake.failNext({ method: 'POST', path: /trainings$/, status: 500 }); // refused before acting: nothing created
    const e = await caught(send('alice/older'));
    expect(e.details?.maybeStarted).toBe(true);
    expect(e.message).toMatch(/may have started/i);
    expect(e.message).toContain('finetune remote list');
    expect(e.message).toContain('https://replicate.com/trainings');
    expect(e.message).not.toMatch(/try again/i);
  });

  it('says the training may have started when the list cannot be read either', async () => {
    fake.failNext({ method: 'POST', path: /trainings$/, status: 'drop', afterActing: true });
    fake.failNext({ method: 'GET', path: /^\/trainings$/, status: 500, times: 10 });
    const e = await caught(send('alice/lost-list'));
    expect(e.details?.maybeStarted).toBe(true);
    expect(e.message).toMatch(/may have started/i);
    expect(e.message).toContain('finetune remote list');
    expect(e.message).not.toMatch(/try again/i);
  });

  it("names the page's place to check where the page sent it (its user may have no command line)", async () => {
    fake.failNext({ method: 'POST', path: /trainings$/, status: 500 });
    const dest = parseDestination('alice/from-page');
    await ensureDestination(client, dest);
    const file = await uploadFile(client, new Uint8Array(data), 'train.jsonl');
    const e = await caught(startTraining(client, { destination: dest, hp: defaultHyperparams(), files: { train_data: file.urls.get }, checkWhere: 'https://replicate.com/trainings' }));
    expect(e.details?.maybeStarted).toBe(true);
    expect(e.message).toMatch(/Before sending it again, check whether it runs: https:\/\/replicate\.com\/trainings\.$/);
    expect(e.message).not.toContain('finetune remote list');
  });

  it('says Replicate\'s words in "may have started" with their line breaks and terminal escapes escaped', async () => {
    // Found by answers-fuzz.test.ts: the 5xx's detail went into the message as it came (details keep it as said).
    const answers = [new Response(JSON.stringify({ detail: 'upstream\n\u001b[2Jdown' }), { status: 502 }), new Response('{"results":[]}')];
    const c = createRemoteClient({ token: TOKEN, apiBase: 'https://api.example/v1', retry: { maxRetries: 0 }, fetch: (async () => answers.shift() ?? new Response('{}', { status: 404 })) as unknown as typeof fetch });
    const e = await caught(startTraining(c, { destination: parseDestination('alice/escaped'), hp: defaultHyperparams(), files: { train_data: 'https://replicate.delivery/x/data.jsonl' } }));
    expect(e.details?.maybeStarted).toBe(true);
    expect(e.message).toContain('Replicate answered 502 (upstream\\n\\u001b[2Jdown) while starting it');
    expect(e.details?.detail).toBe('upstream\n\u001b[2Jdown');
  });

  it('a clear refusal (422) is reported as it was, without a look at the list', async () => {
    fake.failNext({ method: 'POST', path: /trainings$/, status: 422 });
    const lists = fake.requests.filter((r) => r.path === '/v1/trainings').length;
    const e = await caught(send('alice/refused'));
    expect(e.details?.maybeStarted).toBeUndefined();
    expect(fake.requests.filter((r) => r.path === '/v1/trainings').length).toBe(lists);
  });
});

describe('following through trouble', () => {
  it('keeps following through 6 dropped GETs and a 503 mid-follow, with a note each time', async () => {
    const id = await started();
    // One retry per poll in the client: the drops outlast it three times over, so following itself must go on.
    const c = createRemoteClient({ token: TOKEN, apiBase: fake.apiBase, retry: { baseDelayMs: 1, maxRetries: 1 } });
    fake.failNext({ method: 'GET', path: new RegExp(`^/trainings/${id}$`), status: 'drop', times: 6, skip: 1 });
    fake.failNext({ method: 'GET', path: new RegExp(`^/trainings/${id}$`), status: 503, times: 2, skip: 1 });
    const notes: { waitMs: number; failures: number }[] = [];
    const end = await followTraining(c, id, { ...noWait, onUpdate: () => {}, onTrouble: (n) => notes.push({ waitMs: n.waitMs, failures: n.failures }) });
    expect(end.status).toBe('succeeded');
    expect(notes.length).toBeGreaterThanOrEqual(3);
    expect(notes.every((n) => n.waitMs > 0 && n.waitMs <= 4)).toBe(true); // bounded by maxDelayMs
    expect(fake.requests.filter((r) => r.path === `/v1/trainings/${id}` && r.status === 0)).toHaveLength(6);
  });

  it('waits out a 429 whose Retry-After is 300 s instead of giving up', async () => {
    const id = await started();
    fake.failNext({ method: 'GET', path: new RegExp(`^/trainings/${id}$`), status: 429, retryAfter: 300, skip: 1 });
    const slept: number[] = [];
    const end = await followTraining(client, id, { ...noWait, onUpdate: () => {}, sleep: async (ms) => void slept.push(ms) });
    expect(end.status).toBe('succeeded');
    expect(slept).toContain(300_000);
  });

  it('stops on an answer that will not change (401), saying the training goes on and how to follow it again', async () => {
    const id = await started();
    fake.failNext({ method: 'GET', path: new RegExp(`^/trainings/${id}$`), status: 401, skip: 1 });
    const e = await caught(followTraining(client, id, { ...noWait, onUpdate: () => {} }));
    expect(e.message).toContain(`the training goes on: finetune remote status ${id} --follow`);
  });

  it('a training never read (404: no such id) is said as it is: not that it "goes on"', async () => {
    const e = await caught(followTraining(client, 'nosuchtraining', { ...noWait, onUpdate: () => {} }));
    expect(e.message).toMatch(/^Not found while reading training nosuchtraining \(404\)/);
    expect(e.message).not.toMatch(/goes on|Stopped following/);
  });

  it('stops after maxOutageMs without an answer, saying the training goes on', async () => {
    const id = await started();
    fake.failNext({ method: 'GET', path: new RegExp(`^/trainings/${id}$`), status: 500, times: 1000, skip: 1 });
    const c = createRemoteClient({ token: TOKEN, apiBase: fake.apiBase, retry: { baseDelayMs: 1, maxRetries: 0 } });
    const e = await caught(followTraining(c, id, { ...noWait, maxOutageMs: 30, onUpdate: () => {} }));
    expect(e.message).toMatch(/stopped following/i);
    expect(e.message).toContain(`the training goes on: finetune remote status ${id} --follow`);
    expect(e.message).not.toMatch(/try again/i);
  });
});

describe('a status this version does not know', () => {
  /** A client whose GET /trainings/{id} answers these statuses in turn (the last one from then on). */
  function scripted(statuses: unknown[], proxied = true): { client: RemoteClient; polls: () => number } {
    let polls = 0;
    const answer = async (): Promise<Response> => {
      const status = statuses[Math.min(polls, statuses.length - 1)];
      polls++;
      const body = { id: 'abc123', status, logs: `poll ${polls}\n`, created_at: '2025-05-01T10:00:00Z', started_at: null, completed_at: null, error: null, output: null, metrics: {} };
      return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
    };
    const c = createRemoteClient({ token: TOKEN, apiBase: 'http://127.0.0.1:9/replicate/v1', proxied, retry: fast, fetch: answer });
    return { client: c, polls: () => polls };
  }

  it('keeps following through a status added later ("queued"), taken as not finished', async () => {
    const { client: c, polls } = scripted(['starting', 'queued', 'queued', 'processing', 'succeeded']);
    const seen: string[] = [];
    const end = await followTraining(c, 'abc123', { ...noWait, onUpdate: (v) => seen.push(`${v.status}${v.done ? ' (done)' : ''}`) });
    expect(end.status).toBe('succeeded');
    expect(seen).toEqual(['starting', 'queued', 'queued', 'processing', 'succeeded (done)']);
    expect(polls()).toBe(5);
  });

  it('refuses a status that is not a status word, quoted, without echoing control characters', async () => {
    const { client: c } = scripted(['\u001b[31m<b>oops</b>'], false);
    const e = await caught(followTraining(c, 'abc123', { ...noWait, onUpdate: () => {} }));
    expect(e.message).toContain('"\\u001b[31m<b>oops</b>"');
    expect(e.message).not.toContain('\u001b');
    expect(e.message).toContain('which this version does not know');
    expect(e.message).not.toMatch(/api-base|proxy/);
    expect(e.message).toContain('the training goes on: finetune remote status abc123 --follow');
  });
});

describe('a training whose status is not a status word', () => {
  it('is refused without the token, even when the status is the token (a server that echoes it)', async () => {
    // Found by answers-fuzz.test.ts: the status was quoted in the message as it came, up to 40 characters: a whole token.
    for (const status of [TOKEN, [TOKEN], { s: `x ${TOKEN}` }]) {
      const c = createRemoteClient({ token: TOKEN, apiBase: 'https://api.example/v1', fetch: (async () => new Response(JSON.stringify({ id: 'abc', status }))) as unknown as typeof fetch });
      const e = await caught(getTraining(c, 'abc'));
      expect(e.kind).toBe('remote');
      expect(e.message).toMatch(/^(Replicate answered GET \/v1\/trainings\/abc \(reading training abc\) with the status "\[token\]"|The answer to GET \/v1\/trainings\/abc \(reading training abc\) has status )/);
      expect(e.message + JSON.stringify(e.details)).not.toContain(TOKEN.slice(3, 20));
    }
  });
});

describe('viewTraining of a run time that is no duration', () => {
  it('times the training from its timestamps when metrics.predict_time is negative, not finite or not a number', () => {
    // A negative predict_time read as the run time made a negative elapsed time and cost; a huge one an absurd cost.
    const t = { id: 'abc', status: 'succeeded', logs: '', started_at: '2026-12-06T10:00:00Z', completed_at: '2026-12-06T10:10:00Z' } as unknown as Training;
    for (const odd of [-5, -0.001, Number.POSITIVE_INFINITY, Number.NaN, 1e300, '600', null]) {
      const v = viewTraining({ ...t, metrics: { predict_time: odd } } as unknown as Training);
      expect({ odd, elapsedS: v.elapsedS }).toEqual({ odd, elapsedS: 600 });
      expect(v.costUsd).toBeCloseTo(600 * 0.0014, 9);
    }
    expect(viewTraining({ ...t, metrics: { predict_time: 598.5 } } as unknown as Training).elapsedS).toBe(598.5);
  });
});

describe('viewTraining of an answer whose output is not Replicate\'s shape', () => {
  it('gives no weights or version for values that are not text (a TrainingView says string or null)', () => {
    // Found by answers-fuzz.test.ts: output.weights of ["x"] or {"detail":"x"} came out as the view's weights URL.
    const t = { id: 'abc', status: 'succeeded', logs: '', output: {} } as unknown as Training;
    for (const odd of [['https://replicate.delivery/x.zip'], { detail: 'x' }, 3, true]) {
      const v = viewTraining({ ...t, output: { weights: odd, version: odd } } as unknown as Training);
      expect({ odd, weights: v.weights, version: v.version }).toEqual({ odd, weights: null, version: null });
    }
    expect(viewTraining({ ...t, output: { weights: 'https://replicate.delivery/w.zip', version: 'alice/m:v' } } as unknown as Training)).toMatchObject({ weights: 'https://replicate.delivery/w.zip', version: 'alice/m:v' });
  });
});
