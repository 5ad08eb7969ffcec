// `finetune remote train|status|cancel|fetch`: the same job on Replicate's trainer, from the command line, one JSON line
// per event. The token comes from REPLICATE_API_TOKEN only (never a flag: flags end up in shell history and process
// lists) and is never printed.

import { existsSync, readdirSync, statSync } from 'node:fs';
import type { Training } from 'replicate';
import { readFile } from 'node:fs/promises';
import { makeFolder } from '../make-folder.ts';
import { join } from 'node:path';
import { HYPERPARAM_FLAG_NAMES, HYPERPARAM_VALUE_FLAGS, hyperparamsFromArgs, hyperparamUsage } from '../../config/flags.ts';
import { FIELD_BY_NAME, HYPERPARAM_NAMES } from '../../config/hyperparams.ts';
import { FinetuneError } from '../../core/errors.ts';
import { displayUrl } from '../../model/source.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from '../../model/lora-adapter.ts';
import { peftFiles, README_FILE } from '../../export/peft.ts';
import { remoteTrainingSummary } from '../../remote/provenance.ts';
import { writeFileAtomic, writeFilesAtomic } from '../node-store.ts';
import { createRemoteClient, validateToken, type RemoteClient } from '../../remote/client.ts';
import { REPLICATE_API_BASE } from '../../remote/endpoints.ts';
import { estimateRemoteCost } from '../../remote/estimate.ts';
import {
  BASE_MODEL,
  BASE_VERSION,
  DEFAULT_HARDWARE,
  cancelTraining,
  checkTrainingId,
  checkUploadSize,
  downloadOutput,
  ensureDestination,
  followTraining,
  getTraining,
  listTrainings,
  parseDestination,
  startTraining,
  trainingInput,
  uploadFile,
  viewTraining,
  type TrainingView,
} from '../../remote/flow.ts';
import { checkTrainingFile } from '../../remote/check-data.ts';
import { isKnownStatus } from '../../remote/answers.ts';
import { remoteSplit, trainedTokens } from '../../remote/split.ts';
import { importTrainingOutput } from '../../remote/import.ts';
import { UsageError, parseCommandArgs, type CliIO, type Command } from '../command.ts';
import { checkDirectory, checkOutputPath, checkReadableFile } from '../input-file.ts';
import { timeLeft } from '../load-progress.ts';
import { loadTokenizerFrom } from './tokenize.ts';
import { firstFew, quote, visibleText } from '../../core/quote.ts';

const USAGE = `finetune remote train --data FILE.jsonl [--validation FILE.jsonl] --destination OWNER/NAME [--follow]
                      [--visibility private|public] [--hardware SKU] [--base-version ID] [--tokenizer DIR]
                      [--poll-interval S] [--api-base URL] [--<hyperparameter> VALUE …]
finetune remote status ID [--follow] [--poll-interval S] [--api-base URL]
finetune remote list [--api-base URL]
finetune remote cancel ID [--api-base URL]
finetune remote fetch ID --out DIR [--api-base URL]

Trains on Replicate's trainer for ${BASE_MODEL} (A100 80 GB, $0.0014/s) with the same data and hyperparameters as
\`finetune train\`. The token is read from REPLICATE_API_TOKEN (https://replicate.com/account/api-tokens) and checked
first; it is never printed.

train    checks the data here (every problem by line), estimates the cost, uploads the data with Replicate's files
         API (under 100 MB), creates the destination model if it does not exist (private unless --visibility public;
         --hardware, default ${DEFAULT_HARDWARE}), starts the training and prints its id. Our extra hyperparameters
         are left out when Replicate's trainer does the same anyway, and refused (with the reason) when it cannot.
         --follow then prints its status, logs, elapsed time and cost until it ends (Ctrl-C stops following, not the
         training: \`finetune remote status ID\` picks it up again). Lost connections, 5xx and 429 do not end the
         following: each is a note on stderr and the next poll comes after a bounded back-off (a 429's Retry-After as
         asked); after 30 min without a good answer it stops, saying the training goes on.
         If the answer to starting the training is lost (connection dropped, 5xx), the recent trainings are looked
         through for it and it is adopted; if it cannot be found, the error says it may have started: check with
         \`finetune remote list\` or https://replicate.com/trainings before sending again.
status   one JSON line: status, elapsed time, cost, error, output, the logs so far.
list     your recent trainings (Replicate's first page, newest first), one JSON line each: id, status, model,
         destination (once known), created_at.
cancel   cancels a training that is still running; one that has already ended is left as it is (exit 1, with why).
         Its JSON line's type: canceled, cancel-requested (Replicate still reports it running), or not-canceled.
fetch    downloads a succeeded training's weights, imports them, and writes the PEFT adapter (adapter_config.json,
         adapter_model.safetensors, a README with the training's inputs) into DIR, with Replicate's
         training_output.zip beside them. DIR is new, empty or an earlier fetch's: a folder holding other files
         is refused before any request.

options:
  --api-base URL        Replicate-compatible API base (default $REPLICATE_API_BASE_URL or ${REPLICATE_API_BASE})
  --base-version ID     the base version to train (default ${BASE_VERSION})
  --tokenizer DIR       tokenizer for the token count of the estimate (default: the project's public/tokenizer)
  --poll-interval S     seconds between polls while following (default 2; longer while nothing changes)

hyperparameters (train; the data go as --data and --validation FILE, uploaded for train_data and validation_data):
${hyperparamUsage(HYPERPARAM_NAMES.filter((n) => FIELD_BY_NAME[n].type !== 'file'))}`;

interface Env {
  token: string;
  apiBase: string;
}

/** This machine by name or address: localhost, 127.0.0.0/8, ::1. */
function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * The API base and where it came from. A refusal names its source: `--api-base` is a command-line mistake (a
 * UsageError, with the usage); REPLICATE_API_BASE_URL is the environment's (bad-input, no usage), and naming the flag
 * then sent a person looking for a flag they never gave.
 */
function apiBaseFrom(apiBaseFlag: string | undefined): { apiBase: string; refuse: (message: string) => Error } {
  if (apiBaseFlag !== undefined) return { apiBase: apiBaseFlag, refuse: (m) => new UsageError(`--api-base ${m}`) };
  // Replicate's own base, the default, is never refused: only a value from the variable can be.
  return { apiBase: process.env.REPLICATE_API_BASE_URL ?? REPLICATE_API_BASE, refuse: (m) => new FinetuneError('bad-input', `REPLICATE_API_BASE_URL ${m}`) };
}

function env(apiBaseFlag: string | undefined): Env {
  const token = process.env.REPLICATE_API_TOKEN?.trim() ?? '';
  if (!token) throw new FinetuneError('bad-input', 'REPLICATE_API_TOKEN is not set: create a token at https://replicate.com/account/api-tokens and export REPLICATE_API_TOKEN=…');
  const { apiBase, refuse } = apiBaseFrom(apiBaseFlag);
  // Said without what could be a secret in it: a user and password, a query.
  const shown = quote(displayUrl(apiBase));
  let u: URL;
  try {
    u = new URL(apiBase);
  } catch {
    throw refuse(`${shown} is not an http(s) URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw refuse(`${shown} is not an http(s) URL`);
  // fetch refuses such a URL on every call, which the retries once reported as four lost connections and the message
  // then printed with the password in it.
  if (u.username || u.password) throw refuse(`${shown} must not carry a user or password: the API token goes in REPLICATE_API_TOKEN`);
  // The token goes in every request's header: over plain http only to this machine (a local proxy or a test server).
  if (u.protocol === 'http:' && !isLoopbackHost(u.hostname)) {
    throw refuse(`${shown} is plain http to another machine, and the API token would cross the network unencrypted: use https (plain http is taken for this machine only: localhost, 127.0.0.1, ::1)`);
  }
  return { token, apiBase };
}

function client(e: Env, io: CliIO): RemoteClient {
  return createRemoteClient({
    token: e.token,
    apiBase: e.apiBase,
    onRetry: (r) => io.err(`note: ${r.status === 'network' ? `no answer (${r.detail ?? 'network failure'})` : `Replicate answered ${r.status}`} while ${r.call}; retrying in ${(r.waitMs / 1000).toFixed(1)} s`),
  });
}

/** A line of Replicate's text for the terminal: a control character in it (an escape sequence) cannot move the cursor. */
export function terminalSafe(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '\ufffd');
}

/** A training's status as Replicate said it: one this version does not know is quoted (it is Replicate's text). */
function statusText(status: string): string {
  return isKnownStatus(status) ? status : quote(status);
}

/** Where a followed training stands, for a person: "training ID: processing · 1 min 5 s · $0.0910". */
export function statusWords(v: TrainingView): string {
  const status = isKnownStatus(v.status) ? v.status : `${quote(v.status)} (a status this version does not know: taken as not finished, still following)`;
  const parts = [`training ${v.id}: ${status}`, timeLeft(v.elapsedS), `$${v.costUsd.toFixed(4)}`];
  // Replicate's words (the trainer's exception) on one line: a line break in them is written \n, so that they cannot
  // start a line finetune never wrote, and a bidirectional control or an invisible character as an escape.
  if (v.error) parts.push(visibleText(v.error));
  if (v.status === 'succeeded') parts.push(`its adapter: finetune remote fetch ${v.id} --out DIR`);
  return parts.join(' · ');
}

function viewLine(v: TrainingView): Record<string, unknown> {
  return { id: v.id, status: v.status, elapsed_s: Math.round(v.elapsedS * 10) / 10, cost_usd: Math.round(v.costUsd * 10000) / 10000, error: v.error, weights: v.weights, version: v.version };
}

const COMMON = { 'api-base': { type: 'string' } } as const;
const POLL = { follow: { type: 'boolean', default: false }, 'poll-interval': { type: 'string', default: '2' } } as const;

function pollMs(v: string | undefined): number {
  const s = Number(v);
  if (!Number.isFinite(s) || s < 0.001 || s > 600) throw new UsageError(`--poll-interval must be a number of seconds from 0.001 to 600, got ${quote(v)}`);
  return s * 1000;
}

async function train(args: string[], io: CliIO): Promise<number> {
  const { hp, rest, warnings } = hyperparamsFromArgs(args);
  // The same doubtful-but-legal values local `train` warns about (a learning rate above 0.1…): Replicate runs them too.
  for (const w of warnings) io.err(`warning: ${w}`);
  const { values } = parseCommandArgs(rest, {
    ...COMMON,
    data: { type: 'string' },
    validation: { type: 'string' },
    destination: { type: 'string' },
    ...POLL,
    visibility: { type: 'string', default: 'private' },
    hardware: { type: 'string', default: DEFAULT_HARDWARE },
    'base-version': { type: 'string', default: BASE_VERSION },
    tokenizer: { type: 'string' },
  }, false, { otherFlags: HYPERPARAM_FLAG_NAMES });
  if (!values.data) throw new UsageError('--data FILE.jsonl is required');
  if (!values.destination) throw new UsageError('--destination OWNER/NAME is required (the Replicate model the adapter is pushed to)');
  if (values.visibility !== 'private' && values.visibility !== 'public') throw new UsageError(`--visibility must be private or public, got ${quote(values.visibility)}`);
  if (!/^[A-Za-z0-9]{8,128}$/.test(values['base-version'] as string)) throw new UsageError(`--base-version must be a version id (hex), got ${quote(values['base-version'])}`);
  const destination = parseDestination(values.destination);
  // Every flag is judged before the first request: a bad --poll-interval once surfaced only after the training started.
  const pollDelayMs = pollMs(values['poll-interval']);
  const e = env(values['api-base']);
  const print = (o: unknown): void => io.out(JSON.stringify(o));

  // Everything that can be refused here is refused before a request is made.
  const files: { flag: string; path: string; name: string }[] = [{ flag: '--data', path: values.data, name: 'train.jsonl' }];
  if (values.validation) files.push({ flag: '--validation', path: values.validation, name: 'validation.jsonl' });
  const bytes: Uint8Array[] = [];
  const tokenizer = await loadTokenizerFrom(values.tokenizer);
  let lengths: Uint32Array = new Uint32Array(0);
  let rows = 0;
  try {
    for (const f of files) {
      checkReadableFile(f.path, f.flag);
      checkUploadSize(statSync(f.path).size, f.path); // before reading it
      const b = new Uint8Array(await readFile(f.path));
      const checked = await checkTrainingFile(b, f.path, tokenizer);
      if (f.flag === '--data') {
        lengths = checked.lengths;
        rows = checked.summary.rows;
      }
      print({ type: 'data', file: f.path, rows: checked.summary.rows, tokens: checked.summary.tokens?.total ?? null, bytes: b.byteLength });
      bytes.push(b);
    }
  } finally {
    tokenizer.dispose();
  }
  // Refusals of our extras come before any upload, too (with placeholder URLs: only the hyperparameters are judged).
  const placeholder = 'https://example.invalid/data.jsonl';
  const { notes } = trainingInput(hp, { train_data: placeholder, ...(values.validation ? { validation_data: placeholder } : {}) });
  // Replicate's own validation split, which has no fallback for a small file: refused when nothing would be trained.
  const split = remoteSplit(rows, hp, files.length > 1);
  if (split.refusal) throw new FinetuneError('bad-input', split.refusal);
  if (split.warning) io.err(`warning: ${split.warning}`);
  const trained = trainedTokens(lengths, split);
  const estimate = estimateRemoteCost({ tokens: trained, epochs: hp.num_train_epochs, peftMethod: hp.peft_method });
  print({ type: 'estimate', seconds: estimate.seconds, cost_usd: Math.round(estimate.costUsd * 100) / 100, train_rows: split.trainRows, tokens: trained, basis: estimate.basis });

  const c = client(e, io);
  const account = await validateToken(c);
  print({ type: 'account', username: account.username });
  const { created } = await ensureDestination(c, destination, { visibility: values.visibility, hardware: values.hardware });
  print({ type: 'destination', model: `${destination.owner}/${destination.name}`, created, ...(created ? { visibility: values.visibility, hardware: values.hardware } : {}) });
  const urls: string[] = [];
  for (let i = 0; i < files.length; i++) {
    const file = await uploadFile(c, bytes[i], files[i].name);
    urls.push(file.urls.get);
    print({ type: 'upload', file: files[i].path, id: file.id, bytes: file.size });
  }
  for (const n of notes) print({ type: 'note', text: n });
  const { training, adopted } = await startTraining(c, {
    destination,
    hp,
    files: { train_data: urls[0], ...(urls[1] ? { validation_data: urls[1] } : {}) },
    base: { model: BASE_MODEL, version: values['base-version'] as string },
  });
  if (adopted) io.err(`note: Replicate's answer to starting the training was lost, but it had started it: ${training.id} is this send's training (not started twice)`);
  print({ type: 'training', id: training.id, status: training.status, destination: `${destination.owner}/${destination.name}`, ...(adopted ? { adopted: true } : {}) });
  if (!values.follow) return 0;
  return follow(c, training.id, io, pollDelayMs);
}

async function follow(c: RemoteClient, id: string, io: CliIO, minDelayMs: number): Promise<number> {
  const print = (o: unknown): void => io.out(JSON.stringify(o));
  const ac = new AbortController();
  const onSigint = (): void => {
    io.err(`stopped following; the training goes on (finetune remote status ${id}, finetune remote cancel ${id})`);
    ac.abort();
  };
  process.once('SIGINT', onSigint);
  let lastStatus = '';
  try {
    const end = await followTraining(c, id, {
      signal: ac.signal,
      minDelayMs,
      maxDelayMs: Math.max(minDelayMs, 30_000),
      onTrouble: ({ error, waitMs, failures }) => {
        const d = error.details ?? {};
        const what = typeof d.status === 'number' ? `Replicate answered ${d.status}` : `no answer${typeof d.reason === 'string' ? ` (${d.reason})` : ''}`;
        io.err(`note: ${what} while reading training ${id} (${failures} failed poll${failures === 1 ? '' : 's'} in a row); still following, next poll in ${(waitMs / 1000).toFixed(1)} s (the training goes on either way)`);
      },
      onUpdate: (v, newLogs) => {
        // JSON on stdout; the same for a person on stderr: the trainer's log lines, and each change of status.
        for (const line of newLogs.split('\n')) {
          if (!line.trim()) continue;
          print({ type: 'log', text: line });
          io.err(`  ${terminalSafe(line)}`);
        }
        if (v.status !== lastStatus || newLogs) print({ type: 'status', ...viewLine(v) });
        if (v.status !== lastStatus && !v.done) io.err(statusWords(v));
        lastStatus = v.status;
      },
    });
    const v = viewTraining(end);
    print({ type: 'done', ...viewLine(v) });
    io.err(statusWords(v));
    return v.status === 'succeeded' ? 0 : 1;
  } catch (err) {
    if (ac.signal.aborted) return 130;
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function oneId(positionals: string[], sub: string): string {
  if (positionals.length !== 1) throw new UsageError(`finetune remote ${sub} takes one training id (got ${positionals.length})`);
  try {
    return checkTrainingId(positionals[0]);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

async function status(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { ...COMMON, ...POLL }, true);
  const id = oneId(positionals, 'status');
  const pollDelayMs = pollMs(values['poll-interval']);
  const c = client(env(values['api-base']), io);
  if (values.follow) return follow(c, id, io, pollDelayMs);
  const v = viewTraining(await getTraining(c, id));
  io.out(JSON.stringify({ type: 'training', ...viewLine(v), logs: v.logs }));
  return 0;
}

async function cancel(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, COMMON, true);
  const id = oneId(positionals, 'cancel');
  const v = viewTraining(await cancelTraining(client(env(values['api-base']), io), id));
  // The line's type is what happened (a script reads it): canceled, asked and still running, or ended before the ask.
  const type = v.status === 'canceled' ? 'canceled' : v.done ? 'not-canceled' : 'cancel-requested';
  io.out(JSON.stringify({ type, ...viewLine(v) }));
  if (v.status === 'canceled') return 0;
  if (!v.done) {
    // Replicate took the request but has not stopped it yet: that is not a failure, only not finished.
    io.err(`note: cancel requested; Replicate still reports training ${id} as ${v.status} (finetune remote status ${id} --follow shows it end)`);
    return 0;
  }
  // Ended before the cancel came (Replicate answers 200 and leaves it as it was): nothing was canceled, so the command
  // failed, and says why, as \`fetch\` of an unfinished training does (a remote error, exit 1).
  const had = v.status === 'aborted' ? 'been aborted' : v.status;
  throw new FinetuneError('remote', `training ${id} had already ${had}: nothing to cancel${v.status === 'succeeded' ? ` (its adapter: finetune remote fetch ${id} --out DIR)` : ''}`, { status: v.status });
}

const OUTPUT_ZIP_NAME = 'training_output.zip';
/** Longest zip name kept (ASCII once made safe below): well within a file system's 255 bytes for a name. */
const MAX_OUTPUT_ZIP_NAME = 200;

/**
 * The file name Replicate's zip is saved under: the weights URL's last segment, decoded, made file-name safe. It is
 * worked out after the download, so it never throws: a segment that is not percent-encoded UTF-8 is taken as written,
 * and one too long for a file is replaced by the default name (a throw or a refused write here lost the paid-for zip).
 * So is one that is not a visible *.zip name: "README.md" or "adapter_model.safetensors" were overwritten by the adapter's
 * own files written beside it.
 */
function outputZipName(weightsUrl: string): string {
  const segment = new URL(weightsUrl).pathname.split('/').pop() || OUTPUT_ZIP_NAME;
  let name = segment;
  try {
    name = decodeURIComponent(segment);
  } catch {
    // Bad percent-encoding (%E0%A4%A): the segment as written still names the file.
  }
  name = name.replace(/[^A-Za-z0-9._-]/g, '_');
  return name.length > MAX_OUTPUT_ZIP_NAME || !/^[^.].*\.zip$/i.test(name) ? OUTPUT_ZIP_NAME : name;
}

/**
 * An --out fetch may write into: new, empty, or holding what a fetch writes (the PEFT files, their README, Replicate's
 * zip). Any other file says it is another folder, whose README.md the adapter's replaced (`--out .` in a project), as
 * export refuses such an --out. Checked before any request.
 */
function checkFetchOut(out: string): void {
  checkOutputPath(out, '--out', 'folder');
  if (!existsSync(out)) return;
  const own = new Set([ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, README_FILE]);
  const others = readdirSync(out).filter((f) => !f.startsWith('.') && !own.has(f) && !/\.zip$/i.test(f));
  if (others.length === 0) return;
  // The folder's file names are quoted: a comma or a control character in one is told from the list's own.
  const list = firstFew(others, 5, ', ', 'in all', quote);
  const readme = existsSync(join(out, README_FILE)) ? `, whose ${README_FILE} fetch would replace` : '';
  throw new FinetuneError('bad-input', `--out ${quote(out)} holds files fetch does not write (${list}): it looks like another folder${readme}; give --out an empty or new folder, or one an earlier fetch wrote`);
}

async function fetchOutput(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { ...COMMON, out: { type: 'string' } }, true);
  const id = oneId(positionals, 'fetch');
  if (!values.out) throw new UsageError('--out DIR is required (where the adapter is written)');
  checkFetchOut(values.out);
  const c = client(env(values['api-base']), io);
  const training = await getTraining(c, id);
  const v = viewTraining(training);
  if (v.status !== 'succeeded' || !v.weights) {
    throw new FinetuneError('remote', `training ${id} is ${statusText(v.status)}${v.error ? ` (${visibleText(v.error)})` : ''}: there are no weights to fetch${v.done ? '' : ' yet; wait for it to succeed (finetune remote status --follow ' + id + ')'}`);
  }
  // Downloaded before --out is made: a download that fails leaves no empty folder behind.
  const zip = await downloadOutput(c, v.weights);
  await makeFolder(values.out);
  checkDirectory(values.out, '--out');
  const zipName = outputZipName(v.weights);
  // The zip first: the paid-for output is kept even when it cannot be read as an adapter here.
  await writeFileAtomic(join(values.out, zipName), zip);
  const adapter = await importTrainingOutput(zip, { where: zipName });
  // The PEFT files as one set (config last: a kill never leaves one adapter's config beside another's weights), with a
  // README saying how to load it and what the training was.
  const files = peftFiles(adapter, { training: { kind: 'remote', training: remoteTrainingSummary(training) } });
  await writeFilesAtomic(values.out, files, undefined, ADAPTER_CONFIG_FILE);
  io.out(
    JSON.stringify({
      type: 'fetched',
      id,
      out: values.out,
      files: [...Object.keys(files), zipName],
      r: adapter.config.r,
      lora_alpha: adapter.config.loraAlpha,
      target_modules: adapter.config.targetModules,
      layers: adapter.layers,
      version: v.version,
    }),
  );
  return 0;
}

async function list(args: string[], io: CliIO): Promise<number> {
  const { values } = parseCommandArgs(args, COMMON);
  for (const t of await listTrainings(client(env(values['api-base']), io))) {
    // The training object names the base model; the destination shows in output.version (owner/name:id) once pushed.
    const named = (t as Training & { destination?: unknown }).destination;
    const destination = typeof named === 'string' ? named : t.output?.version ? t.output.version.split(':')[0] : null;
    io.out(JSON.stringify({ type: 'training', id: t.id, status: t.status, model: t.model ?? null, destination, created_at: t.created_at }));
  }
  return 0;
}

const SUBCOMMANDS: Record<string, (args: string[], io: CliIO) => Promise<number>> = { train, status, list, cancel, fetch: fetchOutput };

export const remoteCommand: Command = {
  name: 'remote',
  valueFlags: HYPERPARAM_VALUE_FLAGS,
  summary: 'train on Replicate (A100): train, status, list, cancel, fetch the adapter (JSON line per event)',
  usage: USAGE,
  async run(args, io) {
    const [sub, ...rest] = args;
    const run = sub === undefined ? undefined : SUBCOMMANDS[sub];
    if (!run) throw new UsageError(sub === undefined ? 'finetune remote needs a subcommand: train, status, list, cancel or fetch' : `unknown subcommand "${sub}" (train, status, list, cancel, fetch)`);
    return run(rest, io);
  },
};
