// Fuzzing how the remote flow reads Replicate's answers (src/remote/http.ts, errors.ts, answers.ts, flow.ts): every
// call of the flow, against a fake fetch whose answers are generated — any status, Retry-After and Content-Type
// garbage, bodies of random bytes, truncated JSON, JSON of the wrong shape at every field read, huge strings, deep
// nesting, and the token echoed back in every place a server could put it. The contract: each call yields its typed
// result or throws FinetuneError of kind 'remote' or 'network' with a message that says something (no "undefined",
// "[object Object]", NaN or Infinity in our words, no raw control character); never a TypeError or RangeError; and the
// token is in no message, no details, nothing told to onRetry or onTrouble. (What following hands to onUpdate is the
// training's own contents — its logs, error, output URLs — shown as the server's data: its types are checked, not
// its text.)
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { createRemoteClient, validateToken, type RemoteClient } from '../../../src/remote/client.ts';
import { BASE_VERSION, cancelTraining, downloadOutput, ensureDestination, followTraining, getTraining, listTrainings, startTraining, uploadFile, type TrainingView } from '../../../src/remote/flow.ts';

const API = 'https://api.replicate.com/v1';
const alnum = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'];
const tokenArb = fc.string({ unit: fc.constantFrom(...alnum), minLength: 37, maxLength: 37 }).map((s) => `r8_${s}`);

/** The placeholder for the run's token, in generated answers: where a server could echo it. */
const TOKEN = '<TOKEN>';

const OPERATIONS = ['validateToken', 'getTraining', 'cancelTraining', 'listTrainings', 'uploadFile', 'ensureDestination', 'startTraining', 'followTraining', 'downloadOutput'] as const;
type Operation = (typeof OPERATIONS)[number];

const TRAINING = {
  id: 'zz4ibbonubfz7carwiefibzgga',
  version: BASE_VERSION,
  status: 'processing',
  logs: 'step 1\n',
  input: { train_data: 'https://replicate.delivery/pbxt/data.jsonl' },
  output: { weights: 'https://replicate.delivery/pbxt/weights.zip', version: 'alice/m:abc' },
  metrics: { predict_time: 12.5 },
  created_at: '2026-12-06T12:00:00Z',
  started_at: '2026-12-06T12:00:01Z',
  completed_at: null,
  error: null,
};
const VALID_BODIES: Record<string, unknown> = {
  training: TRAINING,
  done: { ...TRAINING, status: 'succeeded', completed_at: '2026-12-06T12:30:00Z' },
  list: { results: [TRAINING], next: null, previous: null },
  file: { id: 'file1', urls: { get: 'https://api.replicate.com/v1/files/file1/download' }, size: 3 },
  account: { type: 'user', username: 'alice' },
  model: { owner: 'alice', name: 'm', visibility: 'private' },
  problem: { title: 'Bad', detail: 'it went wrong', status: 422, invalid_fields: [{ field: 'input.lora_rank', description: 'must be > 0' }] },
};

/** Paths of fields to replace in each valid body: every field the flow reads, and the containers around them. */
const FIELD_PATHS: Record<string, string[]> = {
  done: ['status', 'output', 'output.weights', 'metrics.predict_time', 'completed_at', 'error', 'logs'],
  training: ['id', 'status', 'logs', 'output', 'output.weights', 'output.version', 'metrics', 'metrics.predict_time', 'started_at', 'completed_at', 'created_at', 'error', 'input', 'input.train_data', 'version'],
  list: ['results', 'results.0', 'results.0.id', 'results.0.status', 'results.0.created_at', 'results.0.input', 'results.0.input.train_data', 'results.0.version', 'results.0.logs'],
  file: ['id', 'urls', 'urls.get'],
  account: ['username', 'type'],
  model: ['owner', 'name'],
  problem: ['title', 'detail', 'status', 'invalid_fields', 'invalid_fields.0', 'invalid_fields.0.field', 'invalid_fields.0.description'],
};

/** `o` with the value at the dotted `path` set to `v` (containers that are not objects left as they are). */
function withField(o: unknown, path: string, v: unknown): unknown {
  const copy = structuredClone(o) as Record<string, unknown>;
  const keys = path.split('.');
  let at: unknown = copy;
  for (const k of keys.slice(0, -1)) at = typeof at === 'object' && at !== null ? (at as Record<string, unknown>)[k] : undefined;
  if (typeof at === 'object' && at !== null) (at as Record<string, unknown>)[keys.at(-1)!] = v;
  return copy;
}

/** A value for a field: anything JSON holds, the token (alone or in text), huge or odd text, deep nesting. */
const fieldValueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: fc.constantFrom<unknown>(TOKEN, [TOKEN], `x ${TOKEN} y`, { detail: TOKEN }, `${TOKEN}${TOKEN}`) },
  fc.constantFrom<unknown>(TOKEN, [TOKEN], { detail: TOKEN }, `x ${TOKEN} y`, `line\n${TOKEN}`, '', null, 0, -1, 1e308, -0, true, 'queued', 'SUCCEEDED', 'succeeded\n', '\u202e', '\u001b[2J', 'input.lora_rank', 'succeeded', 'failed'),
  fc.integer({ min: 1000, max: 200_000 }).map((n) => 'a'.repeat(n)),
  fc.integer({ min: 10, max: 500 }).map((n) => JSON.parse('['.repeat(n) + ']'.repeat(n)) as unknown),
);

/** JSON nested far deeper than any answer, as text (JSON.stringify of it would overflow the stack here). */
const deepTextArb = fc.tuple(fc.integer({ min: 1000, max: 100_000 }), fc.constantFrom(['[', ']'], ['{"id":', '}'], ['{"results":[', ']}'])).map(([n, [open, close]]) => `${open!.repeat(n)}1${close!.repeat(n)}`);

/** The bodies each call reads (a problem body is what any call may get instead). */
const BODY_KINDS: Record<Operation, string[]> = {
  validateToken: ['account'],
  getTraining: ['training', 'done'],
  cancelTraining: ['training', 'done'],
  followTraining: ['training', 'done'],
  listTrainings: ['list'],
  uploadFile: ['file'],
  ensureDestination: ['model'],
  startTraining: ['training', 'done', 'list'],
  downloadOutput: ['training'],
};

/** A body as text for `op`: valid, a field replaced, truncated, random bytes, huge, deeply nested, or odd. */
function bodyArb(op: Operation): fc.Arbitrary<Uint8Array | string> {
  const kind = fc.constantFrom(...BODY_KINDS[op], 'problem');
  return fc.oneof(
    { weight: 2, arbitrary: kind.map((k) => JSON.stringify(VALID_BODIES[k])) },
    { weight: 5, arbitrary: kind.chain((k) => fc.tuple(fc.constantFrom(...FIELD_PATHS[k]!), fieldValueArb).map(([p, v]) => JSON.stringify(withField(VALID_BODIES[k], p, v)))) },
    {
      weight: 1,
      arbitrary: fc.tuple(kind, fc.nat()).map(([k, n]) => {
        const text = JSON.stringify(VALID_BODIES[k]);
        return text.slice(0, n % text.length);
      }),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 1, arbitrary: deepTextArb },
    { weight: 1, arbitrary: fieldValueArb.map((v) => JSON.stringify(v) ?? '') },
    {
      weight: 1,
      arbitrary: fc.constantFrom('', '<!doctype html><title>Portal</title>', 'null', '[]', '"text"', '1', `{"detail":"${TOKEN}"}`, `Bearer ${TOKEN}`, `{"title":"Refused by the finetune proxy","detail":"${TOKEN}","status":502}`, '\u001b[2J\u001b[31mred', '{"detail":"line\\nbreak"}'),
    },
  );
}

/** Retry-After values: none, numbers of any size, dates, garbage. */
const retryAfterArb = fc.constantFrom<string | null>(null, null, '0', '1', '3', '61', '-1', '1.5', '1e3', ' 5 ', '9'.repeat(20), '9'.repeat(400), 'Fri, 31 Dec 9999 23:59:59 GMT', 'Thu, 01 Jan 1970 00:00:00 GMT', 'soon', TOKEN, '');

const contentTypeArb = fc.constantFrom<string | null>(null, 'application/json', 'application/problem+json', 'text/html; charset=utf-8', 'text/plain', `text/${TOKEN}`, TOKEN, 'x\u001b[31m', 'application/json\u00ff');

const STATUSES = [200, 200, 200, 200, 200, 200, 201, 204, 206, 302, 400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 429, 500, 502, 503, 504, 599];
const answerArb = (op: Operation) => fc.record({
  status: fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...STATUSES) }, { weight: 1, arbitrary: fc.integer({ min: 200, max: 599 }) }),
  body: bodyArb(op),
  retryAfter: retryAfterArb,
  contentType: contentTypeArb,
  /**
   * The connection is lost instead of an answer: a TypeError as fetch throws it, with a cause whose message says why
   * (in a fetch implementation's or a proxy's words: a line break, an escape, the request's header echoed).
   */
  lost: fc.oneof({ weight: 5, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom('read ECONNRESET', 'socket hang up', 'other side closed\n\u001b[2Jdone', `invalid header Bearer ${TOKEN}`) }),
});
type Answer = ReturnType<typeof answerArb> extends fc.Arbitrary<infer T> ? T : never;

/** The body of an answer with the token put where the placeholder is. */
function realBody(body: Uint8Array | string, token: string): Uint8Array | string {
  return typeof body === 'string' ? body.split(TOKEN).join(token) : body;
}

/** A fetch that gives the answers in order, then 404s (so that following and retrying come to an end). */
function scriptedFetch(answers: Answer[], token: string): typeof fetch {
  let i = 0;
  return (async () => {
    const a = answers[i++];
    if (a === undefined) return new Response('{"detail":"Not found."}', { status: 404 });
    if (a.lost !== null) throw new TypeError('fetch failed', { cause: Object.assign(new Error(a.lost.split(TOKEN).join(token)), { code: 'ECONNRESET' }) });
    const headers = new Headers();
    const put = (name: string, v: string | null): void => {
      if (v === null) return;
      try {
        headers.set(name, v.split(TOKEN).join(token));
      } catch {
        // A value Headers refuses (a control character) is one no server could send: left out.
      }
    };
    put('content-type', a.contentType);
    put('retry-after', a.retryAfter);
    // 204, 205 and 304 have no body by definition: Response refuses one.
    const body = a.status === 204 || a.status === 205 || a.status === 304 ? null : realBody(a.body, token);
    return new Response(body as BodyInit | null, { status: a.status, headers });
  }) as typeof fetch;
}

/** A view handed to onUpdate holds what its type says. */
function checkView(v: TrainingView): void {
  expect([typeof v.id, typeof v.status, typeof v.logs, typeof v.elapsedS, typeof v.costUsd, typeof v.done]).toEqual(['string', 'string', 'string', 'number', 'number', 'boolean']);
  for (const x of [v.error, v.weights, v.version]) expect(x === null || typeof x === 'string').toBe(true);
}

async function run(op: Operation, c: RemoteClient, told: string[]): Promise<unknown> {
  switch (op) {
    case 'validateToken':
      return validateToken(c);
    case 'getTraining':
      return getTraining(c, 'zz4ibbonubfz7carwiefibzgga');
    case 'cancelTraining':
      return cancelTraining(c, 'zz4ibbonubfz7carwiefibzgga');
    case 'listTrainings':
      return listTrainings(c);
    case 'uploadFile':
      return uploadFile(c, new TextEncoder().encode('{"text":"a"}\n'), 'data.jsonl');
    case 'ensureDestination':
      return ensureDestination(c, { owner: 'alice', name: 'm' });
    case 'startTraining':
      return startTraining(c, { destination: { owner: 'alice', name: 'm' }, hp: defaultHyperparams(), files: { train_data: 'https://replicate.delivery/pbxt/data.jsonl' } });
    case 'followTraining':
      return followTraining(c, 'zz4ibbonubfz7carwiefibzgga', {
        sleep: async () => {},
        // The view is the training's own contents (its logs, error, output URLs: the server's data, shown as such), so it
        // is not searched for the token; its types are checked.
        onUpdate: (v: TrainingView) => checkView(v),
        onTrouble: (t) => {
          expect(t.waitMs >= 0 && Number.isFinite(t.waitMs)).toBe(true); // a wait that ends
          told.push(t.error.message, JSON.stringify(t.error.details ?? {}));
        },
      });
    case 'downloadOutput':
      return downloadOutput(c, 'https://replicate.delivery/pbxt/weights.zip', { maxBytes: 1 << 16 });
  }
}

/** What a successful call returns, checked by its type. */
function checkResult(op: Operation, r: unknown): void {
  const isTraining = (t: unknown): boolean => typeof (t as { id?: unknown }).id === 'string' && typeof (t as { status?: unknown }).status === 'string';
  if (op === 'getTraining' || op === 'cancelTraining' || op === 'followTraining') expect(isTraining(r)).toBe(true);
  if (op === 'listTrainings') expect((r as unknown[]).every(isTraining)).toBe(true);
  if (op === 'startTraining') expect(isTraining((r as { training: unknown }).training)).toBe(true);
  if (op === 'uploadFile') expect(typeof (r as { urls: { get: unknown } }).urls.get).toBe('string');
  if (op === 'validateToken') expect(typeof (r as { username: unknown }).username).toBe('string');
  if (op === 'downloadOutput') expect(r).toBeInstanceOf(Uint8Array);
}

/** Words of ours that say nothing: a value printed that was not text. */
const EMPTY_WORDS = /undefined|\[object Object\]|NaN|Infinity/;

function checkError(e: unknown, token: string): void {
  if (!(e instanceof FinetuneError)) throw e; // a TypeError, a RangeError, a SyntaxError: the property fails with it
  expect(['remote', 'network']).toContain(e.kind);
  expect(e.message.length).toBeGreaterThan(10);
  expect(e.message).not.toContain(token);
  expect(JSON.stringify(e.details ?? {})).not.toContain(token);
  // Our words (before any quoted words of the server's) say something; nothing in the message can end its line.
  const ours = e.message.split(/ (?:Replicate|The proxy) said: /)[0]!;
  expect(ours).not.toMatch(EMPTY_WORDS);
  expect(e.message).not.toMatch(/[\u0000-\u001f\u007f]/);
}

describe('the remote flow, against generated answers', () => {
  it('gives a typed result or a FinetuneError that names the problem, never the token', async () => {
    const arb = fc.constantFrom(...OPERATIONS).chain((op) => fc.record({ op: fc.constant(op), answers: fc.array(answerArb(op), { minLength: 1, maxLength: 6 }), token: tokenArb, proxied: fc.boolean() }));
    await fc.assert(
      fc.asyncProperty(arb, async ({ op, answers, token, proxied }) => {
        const told: string[] = [];
        const c = createRemoteClient({
          token,
          apiBase: API,
          proxied,
          fetch: scriptedFetch(answers, token),
          sleep: async () => {},
          onRetry: (info) => {
            expect(info.waitMs >= 0 && Number.isFinite(info.waitMs)).toBe(true); // a wait that ends
            told.push(JSON.stringify(info));
          },
        });
        let result: unknown;
        try {
          result = await run(op, c, told);
        } catch (e) {
          checkError(e, token);
          for (const t of told) expect(t).not.toContain(token);
          return;
        }
        checkResult(op, result);
        for (const t of told) expect(t).not.toContain(token);
      }),
      { numRuns: 1500 },
    );
  }, 60_000);
});
