// A local stand-in for Replicate's API: a real HTTP server on 127.0.0.1 that speaks the calls remote training makes.
// Every request it receives and every answer it gives is checked against Replicate's OpenAPI description
// (test/fixtures/replicate/openapi.json); a mismatch is recorded in `violations` (tests assert it stays empty) and a
// bad request is answered 400, so drift between our client, this fake and the real API shows up as a failing test.
//
// Trainings move starting → processing → succeeded | failed | canceled one step per GET of the training (not by the
// clock), so tests are fast and deterministic; logs grow by a line per poll while processing. Errors are injected with
// failNext (401/402/404/422/429 with Retry-After/500, or a dropped connection), before the request is acted on, or
// after it (afterActing: the training is created, its answer lost). Error bodies have the shape Replicate
// answers with (problem+json: title, detail, status; 422 adds invalid_fields), which its description does not spell out.

import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { OpenApiValidator } from './openapi-validator.ts';

const OPENAPI = fileURLToPath(new URL('../fixtures/replicate/openapi.json', import.meta.url));
export const BASE_MODEL = 'mistralai/mistral-7b-instruct-v0.2';
export const BASE_VERSION = '79052a3adbba8116ebc6697dcba67ad0d58feff23e7aeb2f103fc9aa545f9269';
const HARDWARE = ['cpu', 'gpu-t4', 'gpu-l40s', 'gpu-a40-small', 'gpu-a40-large', 'gpu-a100-large', 'gpu-h100'];

/** The trainer's inputs (docs/replicate-trainer.md) and their JSON types: anything else is refused with 422, as the real version's schema would. */
const TRAINER_INPUTS: Record<string, 'string' | 'integer' | 'number' | 'boolean'> = {
  train_data: 'string',
  num_train_epochs: 'integer',
  train_batch_size: 'integer',
  micro_batch_size: 'integer',
  num_validation_samples: 'integer',
  validation_data: 'string',
  validation_batch_size: 'integer',
  run_validation: 'boolean',
  validation_prompt: 'string',
  learning_rate: 'number',
  pack_sequences: 'boolean',
  wrap_packed_sequences: 'boolean',
  chunk_size: 'integer',
  peft_method: 'string',
  seed: 'integer',
  lora_rank: 'integer',
  lora_alpha: 'integer',
  lora_dropout: 'number',
};

const PROBLEM_SCHEMA = {
  type: 'object',
  required: ['detail', 'status'],
  properties: {
    title: { type: 'string' },
    detail: { type: 'string' },
    status: { type: 'integer' },
    invalid_fields: { type: 'array', items: { type: 'object', required: ['field', 'description'], properties: { type: { type: 'string' }, field: { type: 'string' }, description: { type: 'string' } } } },
  },
};

export type TrainingStatus = 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled';

export interface FakeTraining {
  id: string;
  destination: string;
  input: Record<string, unknown>;
  status: TrainingStatus;
  logs: string[];
  error: string | null;
  polls: number;
  createdAt: Date;
  startedAt?: Date;
  completedAt?: Date;
  script: TrainingScript;
}

export interface TrainingScript {
  /** GETs spent in 'processing' before the outcome (default 3). */
  processingPolls: number;
  outcome: 'succeeded' | 'failed';
  /** The error text of a failed training. */
  error?: string;
  /** Stay in processing until canceled or released (for cancel tests). */
  hold?: boolean;
}

export interface Fault {
  method: string;
  path: RegExp;
  status: number | 'drop';
  detail?: string;
  retryAfter?: number;
  invalidFields?: { field: string; description: string }[];
  times: number;
  /** Matching requests let through before this fault applies (default 0). */
  skip?: number;
  /**
   * The request is carried out first (a training is created…) and only its answer is replaced by this fault: the case of
   * an answer lost on the way back, or a 5xx from a gateway after the server acted.
   */
  afterActing?: boolean;
}

export interface SeenRequest {
  method: string;
  path: string;
  status: number;
  /** Whether the request carried the right bearer token (the token itself is never kept). */
  authorized: boolean;
  /** Names of the request headers (lowercase). */
  headerNames: string[];
}

export interface FakeOptions {
  token: string;
  username?: string;
  /** The bytes served as a succeeded training's output.weights. */
  outputZip: Uint8Array;
  script?: Partial<TrainingScript>;
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

function problem(status: number, title: string, detail: string, extra: Record<string, unknown> = {}): Answer {
  return { status, body: { title, detail, status, ...extra } };
}

export class FakeReplicate {
  readonly violations: string[] = [];
  readonly requests: SeenRequest[] = [];
  readonly trainings = new Map<string, FakeTraining>();
  readonly files = new Map<string, { bytes: Uint8Array; filename: string; metadata: unknown }>();
  readonly models = new Map<string, { owner: string; name: string; visibility: 'public' | 'private'; hardware: string }>();
  script: TrainingScript;
  /** A succeeded training's output.weights URL (by default served here, at /delivery/ID/training_output.zip). */
  weightsUrl = (id: string): string => `${this.url}/delivery/${id}/training_output.zip`;
  /** Where set, an output download sends its headers (the whole length) and this many bytes, then drops the connection. */
  cutDeliveryAt: number | null = null;
  private readonly faults: Fault[] = [];
  private readonly validator = new OpenApiValidator(OPENAPI);
  private readonly problemSchema = this.validator.compile(PROBLEM_SCHEMA);
  private server!: Server;
  url = '';

  private constructor(readonly options: FakeOptions) {
    this.script = { processingPolls: 3, outcome: 'succeeded', ...options.script };
  }

  static async start(options: FakeOptions): Promise<FakeReplicate> {
    const fake = new FakeReplicate(options);
    fake.server = createServer((req, res) => void fake.handle(req, res));
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
    return fake;
  }

  /** Replicate's API base on this fake. */
  get apiBase(): string {
    return `${this.url}/v1`;
  }

  get username(): string {
    return this.options.username ?? 'alice';
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** The next `times` requests matching method and path get this answer instead. */
  failNext(fault: Omit<Fault, 'times'> & { times?: number }): void {
    this.faults.push({ times: 1, ...fault });
  }

  /** Forgets faults not yet used up. */
  clearFaults(): void {
    this.faults.length = 0;
    this.cutDeliveryAt = null;
  }

  /** Lets held trainings reach their outcome at the next poll. */
  release(): void {
    for (const t of this.trainings.values()) t.script = { ...t.script, hold: false, processingPolls: 0 };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    const authorized = req.headers.authorization === `Bearer ${this.options.token}`;
    const record = (status: number) => this.requests.push({ method, path: url.pathname, status, authorized, headerNames: Object.keys(req.headers) });
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    const raw = Buffer.concat(chunks);

    if (url.pathname.startsWith('/delivery/')) {
      // Output files: like replicate.delivery, they need the token.
      const id = url.pathname.split('/')[2];
      const t = this.trainings.get(id);
      const status = !authorized ? 401 : t?.status === 'succeeded' && method === 'GET' ? 200 : 404;
      record(status);
      if (status !== 200) return void res.writeHead(status).end();
      res.writeHead(200, { 'content-type': 'application/zip', 'content-length': this.options.outputZip.byteLength });
      if (this.cutDeliveryAt !== null) {
        res.write(this.options.outputZip.subarray(0, this.cutDeliveryAt));
        return void setTimeout(() => req.socket.destroy(), 50);
      }
      return void res.end(this.options.outputZip);
    }

    if (!url.pathname.startsWith('/v1/')) {
      record(404);
      return void res.writeHead(404).end();
    }
    const path = url.pathname.slice(3);
    let fault = this.faults.find((f) => f.times > 0 && f.method === method && f.path.test(path));
    if (fault?.skip) {
      fault.skip--;
      fault = undefined;
    }
    if (fault && !fault.afterActing) {
      fault.times--;
      if (fault.status === 'drop') {
        record(0);
        return void req.socket.destroy();
      }
      const a = this.faultAnswer(fault.status, fault);
      return this.send(res, method, path, a, record);
    }
    if (!authorized) return this.send(res, method, path, problem(401, 'Unauthenticated', 'You did not pass a valid authentication token'), record);

    let body: unknown;
    const contentType = req.headers['content-type'] ?? null;
    let fileUpload: { bytes: Uint8Array; filename: string; metadata: unknown } | null = null;
    if (raw.length > 0 && contentType?.startsWith('application/json')) {
      try {
        body = JSON.parse(raw.toString('utf8'));
      } catch {
        return this.send(res, method, path, problem(400, 'Bad request', 'the body is not JSON'), record);
      }
    } else if (raw.length > 0 && contentType?.startsWith('multipart/form-data')) {
      const form = await new Request('http://fake/', { method: 'POST', headers: { 'content-type': contentType }, body: raw }).formData();
      const content = form.get('content');
      const meta = form.get('metadata');
      const obj: Record<string, unknown> = {};
      if (content instanceof Blob) obj.content = '(binary)';
      if (meta !== null) {
        try {
          obj.metadata = JSON.parse(typeof meta === 'string' ? meta : await meta.text());
        } catch {
          obj.metadata = '(not JSON)';
        }
      }
      for (const k of ['filename', 'type']) if (typeof form.get(k) === 'string') obj[k] = form.get(k);
      body = obj;
      if (content instanceof Blob) fileUpload = { bytes: new Uint8Array(await content.arrayBuffer()), filename: (content as File).name ?? 'file', metadata: obj.metadata };
    }
    const problems = this.validator.checkRequest(method, path, url.searchParams, contentType, body);
    if (problems.length > 0) {
      this.violations.push(...problems.map((p) => `request ${method} ${path}: ${p}`));
      return this.send(res, method, path, problem(400, 'Bad request', problems.join('; ')), record, false);
    }
    const a = this.route(method, path, body, fileUpload);
    if (fault?.afterActing) {
      fault.times--;
      if (fault.status === 'drop') {
        record(0);
        return void req.socket.destroy();
      }
      return this.send(res, method, path, this.faultAnswer(fault.status, fault), record);
    }
    return this.send(res, method, path, a, record);
  }

  private faultAnswer(status: number, f: Partial<Fault>): Answer {
    switch (status) {
      case 401:
        return problem(401, 'Unauthenticated', f.detail ?? 'You did not pass a valid authentication token');
      case 402:
        return problem(402, 'Payment required', f.detail ?? 'You have reached the free time limit. To continue using Replicate, set up billing at https://replicate.com/account/billing#billing.');
      case 404:
        return problem(404, 'Not found', f.detail ?? 'Not found.');
      case 422: {
        const fields = f.invalidFields ?? [{ field: 'input.lora_rank', description: 'Must be less than or equal to 128' }];
        const detail = f.detail ?? fields.map((x) => `- ${x.field}: ${x.description}`).join('\n');
        return problem(422, 'Input validation failed', detail, { invalid_fields: fields.map((x) => ({ type: 'invalid', ...x })) });
      }
      case 429: {
        const a = problem(429, 'Too many requests', f.detail ?? 'Request was throttled. Your rate limit resets in ~1s.');
        a.headers = { 'retry-after': String(f.retryAfter ?? 1) };
        return a;
      }
      default:
        return problem(status, 'Internal server error', f.detail ?? 'Something went wrong on our side.');
    }
  }

  private route(method: string, path: string, body: unknown, upload: { bytes: Uint8Array; filename: string; metadata: unknown } | null): Answer {
    const seg = path.split('/').slice(1);
    if (method === 'GET' && path === '/account') return { status: 200, body: { type: 'user', username: this.username, name: 'Alice Example', github_url: 'https://github.com/alice' } };
    if (method === 'POST' && path === '/files' && upload) {
      if (upload.bytes.byteLength >= 100 * 1024 * 1024) return { status: 413, body: { detail: 'Files must be less than 100MB in size' }, headers: { 'content-type': 'application/problem+json' } };
      const id = randomBytes(13).toString('hex');
      this.files.set(id, upload);
      const now = new Date();
      return {
        status: 201,
        body: {
          id,
          urls: { get: `${this.apiBase}/files/${id}` },
          content_type: 'application/octet-stream',
          size: upload.bytes.byteLength,
          checksums: { sha256: createHash('sha256').update(upload.bytes).digest('hex') },
          metadata: upload.metadata ?? {},
          created_at: now.toISOString(),
          expires_at: new Date(now.getTime() + 86_400_000).toISOString(),
        },
      };
    }
    if (method === 'GET' && seg[0] === 'models' && seg.length === 3) {
      const m = this.models.get(`${seg[1]}/${seg[2]}`);
      return m ? { status: 200, body: this.modelBody(m) } : problem(404, 'Not found', 'Not found.');
    }
    if (method === 'POST' && path === '/models') {
      const b = body as { owner: string; name: string; visibility: 'public' | 'private'; hardware: string };
      if (b.owner !== this.username) return problem(403, 'Forbidden', `You cannot create models owned by ${b.owner}`);
      if (!HARDWARE.includes(b.hardware)) return problem(422, 'Invalid hardware', `hardware: ${b.hardware} is not a valid hardware SKU`, { invalid_fields: [{ type: 'invalid', field: 'hardware', description: `must be one of ${HARDWARE.join(', ')}` }] });
      const key = `${b.owner}/${b.name}`;
      if (this.models.has(key)) return problem(409, 'Conflict', `A model named ${key} already exists`);
      const m = { owner: b.owner, name: b.name, visibility: b.visibility, hardware: b.hardware };
      this.models.set(key, m);
      return { status: 201, body: this.modelBody(m) };
    }
    if (method === 'POST' && seg[0] === 'models' && seg[5] === 'trainings') {
      if (`${seg[1]}/${seg[2]}` !== BASE_MODEL || seg[4] !== BASE_VERSION) return problem(404, 'Not found', 'Not found.');
      const b = body as { destination: string; input: Record<string, unknown> };
      if (!this.models.has(b.destination)) return problem(404, 'Not found', `The destination model ${b.destination} does not exist.`);
      const invalid = this.invalidInputs(b.input);
      if (invalid.length > 0) {
        return problem(422, 'Input validation failed', invalid.map((x) => `- ${x.field}: ${x.description}`).join('\n'), { invalid_fields: invalid.map((x) => ({ type: 'invalid', ...x })) });
      }
      const id = randomBytes(13).toString('hex').slice(0, 26);
      const t: FakeTraining = { id, destination: b.destination, input: b.input, status: 'starting', logs: [], error: null, polls: 0, createdAt: new Date(), script: { ...this.script } };
      this.trainings.set(id, t);
      return { status: 201, body: this.trainingBody(t) };
    }
    if (method === 'GET' && path === '/trainings') return { status: 200, body: { next: null, previous: null, results: [...this.trainings.values()].reverse().map((t) => this.trainingBody(t)) } };
    if (seg[0] === 'trainings' && seg.length >= 2) {
      const t = this.trainings.get(seg[1]);
      if (!t) return problem(404, 'Not found', 'Not found.');
      if (method === 'GET' && seg.length === 2) {
        this.advance(t);
        return { status: 200, body: this.trainingBody(t) };
      }
      if (method === 'POST' && seg[2] === 'cancel') {
        if (t.status === 'starting' || t.status === 'processing') {
          t.status = 'canceled';
          t.completedAt = new Date();
          t.logs.push('Training canceled by its creator');
        }
        return { status: 200, body: this.trainingBody(t) };
      }
    }
    return problem(404, 'Not found', 'Not found.');
  }

  private invalidInputs(input: Record<string, unknown>): { field: string; description: string }[] {
    const out: { field: string; description: string }[] = [];
    for (const [k, v] of Object.entries(input)) {
      const want = TRAINER_INPUTS[k];
      if (!want) out.push({ field: `input.${k}`, description: 'Additional property is not allowed' });
      else if (want === 'integer' ? !Number.isInteger(v) : typeof v !== want) out.push({ field: `input.${k}`, description: `Must be of type ${want}` });
    }
    if (typeof input.train_data !== 'string') out.push({ field: 'input.train_data', description: 'This field is required' });
    else if (!/^https?:\/\//.test(input.train_data)) out.push({ field: 'input.train_data', description: 'Must be a URL' });
    else if (input.train_data.startsWith(`${this.apiBase}/files/`) && !this.files.has(input.train_data.split('/').pop() as string)) {
      out.push({ field: 'input.train_data', description: 'The file does not exist' });
    }
    return out;
  }

  /** One poll's worth of progress. */
  private advance(t: FakeTraining): void {
    if (t.status === 'starting') {
      t.status = 'processing';
      t.startedAt = new Date();
      t.logs.push('Loading mistral-7b-instruct-v0.2 and the training data');
      return;
    }
    if (t.status !== 'processing') return;
    t.polls++;
    t.logs.push(`step ${t.polls}: loss ${(2.5 / (1 + t.polls)).toFixed(4)}`);
    if (t.script.hold || t.polls < t.script.processingPolls) return;
    t.completedAt = new Date();
    if (t.script.outcome === 'failed') {
      t.status = 'failed';
      t.error = t.script.error ?? 'CUDA out of memory. Tried to allocate 2.00 GiB';
      t.logs.push(`Traceback (most recent call last): ${t.error}`);
    } else {
      t.status = 'succeeded';
      t.logs.push('Written training_output.zip');
    }
  }

  private modelBody(m: { owner: string; name: string; visibility: 'public' | 'private' }): Record<string, unknown> {
    return { url: `https://replicate.com/${m.owner}/${m.name}`, owner: m.owner, name: m.name, description: null, visibility: m.visibility, github_url: null, paper_url: null, license_url: null, run_count: 0, cover_image_url: null, default_example: null, latest_version: null };
  }

  private trainingBody(t: FakeTraining): Record<string, unknown> {
    const done = t.status === 'succeeded' || t.status === 'failed' || t.status === 'canceled';
    const body: Record<string, unknown> = {
      id: t.id,
      model: BASE_MODEL,
      version: BASE_VERSION,
      input: t.input,
      logs: t.logs.join('\n'),
      error: t.error,
      status: t.status,
      source: 'api',
      created_at: t.createdAt.toISOString(),
      urls: { get: `${this.apiBase}/trainings/${t.id}`, cancel: `${this.apiBase}/trainings/${t.id}/cancel` },
    };
    if (t.startedAt) body.started_at = t.startedAt.toISOString();
    if (t.completedAt) body.completed_at = t.completedAt.toISOString();
    if (done) {
      const predict = t.startedAt && t.completedAt ? (t.completedAt.getTime() - t.startedAt.getTime()) / 1000 : 0;
      body.metrics = { predict_time: predict, total_time: (t.completedAt!.getTime() - t.createdAt.getTime()) / 1000 };
    }
    if (t.status === 'succeeded') body.output = { version: `${t.destination}:${createHash('sha256').update(t.id).digest('hex')}`, weights: this.weightsUrl(t.id) };
    return body;
  }

  private send(res: ServerResponse, method: string, path: string, a: Answer, record: (s: number) => void, check = true): void {
    const type = a.status >= 400 ? 'application/problem+json' : 'application/json';
    if (check) {
      const problems = this.validator.checkResponse(method, path, a.status, (a.headers?.['content-type'] as string | undefined) ?? (a.status >= 400 ? 'application/problem+json' : 'application/json'), a.body, this.problemSchema);
      this.violations.push(...problems.map((p) => `response ${method} ${path}: ${p}`));
    }
    record(a.status);
    const text = JSON.stringify(a.body);
    res.writeHead(a.status, { 'content-type': type, 'content-length': Buffer.byteLength(text), ...a.headers });
    res.end(text);
  }
}
