// Answers that are not what Replicate's API gives: a 200 with an HTML page (a captive portal, a wrong --api-base, a
// web server at the proxy's address) or JSON without the fields we read. The `replicate` client hands them on as a
// SyntaxError from response.json() or as an object whose fields are undefined, which surfaced as "internal error" with a
// stack trace, or as "training abc is undefined". Here each becomes FinetuneError('remote') naming the call and what
// came back, with where to look.

import type { Account, FileObject, Training } from 'replicate';
import { FinetuneError } from '../core/errors.ts';
import { formatCount } from '../core/units.ts';
import { describeCall, scrub, scrubAnswer } from './errors.ts';
import { quote, visibleText } from '../core/quote.ts';

/** "GET /v1/trainings/abc (reading training abc)": the call as sent (path of the API base included) and in words. */
export function answerName(apiBase: string, method: string, path: string): string {
  let basePath = '';
  try {
    basePath = new URL(apiBase).pathname.replace(/\/+$/, '');
  } catch {
    // An API base that is not a URL fails earlier; the path alone still names the call.
  }
  const p = path.split('?')[0];
  return `${method} ${basePath}${p} (${describeCall(method, p)})`;
}

/** Where to look when the answer is not Replicate's: the proxy of the page, or the CLI's API base. */
export function apiBaseHint(proxied: boolean | undefined): string {
  return proxied ? 'is the proxy address right?' : 'is --api-base right?';
}

/**
 * What an answer that is not JSON looks like, in a few words (never its content: it may echo anything). Its content
 * type is the server's text too: the token is scrubbed from it and its control characters are escaped (visibleText),
 * so that a header cannot end the message's line, rewrite the terminal, or print the token back.
 */
export function describeBody(text: string, contentType: string | null, token?: string): string {
  const bytes = new TextEncoder().encode(text).byteLength;
  const size = `${formatCount(bytes)} byte${bytes === 1 ? '' : 's'}`;
  if (bytes === 0) return 'an empty body';
  if (/html/i.test(contentType ?? '') || /^\s*</.test(text)) return `an HTML page, ${size}`;
  const type = contentType?.split(';')[0]!.trim();
  return `${type ? visibleText(scrub(type, token)) : 'no content type'}, ${size}`;
}

export function notJsonError(name: string, what: string, proxied: boolean | undefined): FinetuneError {
  return new FinetuneError('remote', `The answer to ${name} is not JSON (${what}): ${apiBaseHint(proxied)} Replicate's API answers JSON.`, { call: name, notJson: true });
}

export function lacksFieldError(name: string, field: string, proxied: boolean | undefined): FinetuneError {
  return new FinetuneError('remote', `The answer to ${name} lacks the field ${field}: ${apiBaseHint(proxied)}`, { call: name, field });
}

/** The value at a dotted path of a JSON answer, or undefined. */
function at(o: unknown, path: string): unknown {
  let v: unknown = o;
  for (const k of path.split('.')) v = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

interface Where {
  name: string;
  proxied?: boolean;
  /** Scrubbed from any value of the answer that a message quotes, and from every string of an answer let through. */
  token?: string;
}

function requireString(o: unknown, field: string, w: Where): void {
  const v = at(o, field);
  if (typeof v !== 'string' || v === '') throw lacksFieldError(w.name, field, w.proxied);
}

const STATUSES: readonly string[] = ['starting', 'processing', 'succeeded', 'failed', 'canceled', 'aborted'];

/**
 * A training's status: one of Replicate's documented ones, or a word this version does not know (one Replicate added
 * later, "queued" say), which is taken as not finished: following goes on until a finished status comes.
 */
export type TrainingStatus = Training['status'] | (string & {});

/** Whether this version knows `status` (the `replicate` client's Status). */
export function isKnownStatus(status: string): status is Training['status'] {
  return STATUSES.includes(status);
}

/** A training id as Replicate writes them (src/remote/flow.ts checkTrainingId holds a typed one to the same). */
export const TRAINING_ID = /^[A-Za-z0-9]{1,64}$/;

/** A status word as Replicate spells them: lowercase letters, digits, `_` (never text to print as it came). */
const STATUS_WORD = /^[a-z][a-z0-9_]{0,31}$/;

/** `text` as a JSON string of at most `max` of its characters (control characters escaped, so it prints safely). */
function quoted(text: string, max = 40): string {
  const chars = [...text];
  return chars.length > max ? `${quote(chars.slice(0, max).join(''))}…` : quote(text);
}

/**
 * A training as read by viewTraining: an id, a status, logs as text (or none). A status word this version does not know
 * is let through (see TrainingStatus); a status that is not a word at all (not text, or text with other characters)
 * is refused, naming it quoted. What is let through has the token scrubbed from every string (scrubAnswer): its error,
 * logs, model, output and inputs are printed by the CLI and shown by the page, and a server may echo the token in any.
 */
export function checkTraining(t: unknown, w: Where, asked?: string): Training {
  requireString(t, 'id', w);
  // The id is printed ("training abc: processing") and put into the next request's path: a line break in it forged a
  // line on the terminal that finetune never wrote. Replicate's ids are letters and digits, as checkTrainingId takes.
  const id = at(t, 'id') as string;
  if (!TRAINING_ID.test(id)) {
    throw new FinetuneError('remote', `The answer to ${w.name} has the training id ${quoted(scrub(id, w.token))}, which is not a Replicate training id (letters and digits): ${apiBaseHint(w.proxied)}`, { call: w.name, field: 'id' });
  }
  // An answer about another training than the one asked for (reading or canceling abc) is not taken for abc's.
  if (asked !== undefined && id !== asked) {
    throw new FinetuneError('remote', `The answer to ${w.name} is about training ${id}, not ${asked}: ${apiBaseHint(w.proxied)}`, { call: w.name, field: 'id' });
  }
  const status = at(t, 'status');
  if (status === undefined) throw lacksFieldError(w.name, 'status', w.proxied);
  // The status is quoted scrubbed, before it is cut short: a server that echoes the token may put it there, and a
  // token is 40 characters, as many as are quoted.
  if (typeof status !== 'string') throw new FinetuneError('remote', `The answer to ${w.name} has status ${quoted(scrub(JSON.stringify(status) ?? String(status), w.token))}, not text: ${apiBaseHint(w.proxied)}`, { call: w.name, field: 'status' });
  if (!isKnownStatus(status) && !STATUS_WORD.test(status)) {
    throw new FinetuneError('remote', `Replicate answered ${w.name} with the status ${quoted(scrub(status, w.token))}, which this version does not know and which is not a status word (Replicate's are lowercase words: ${STATUSES.join(', ')}).`, { call: w.name, field: 'status' });
  }
  const logs = at(t, 'logs');
  if (logs !== undefined && logs !== null && typeof logs !== 'string') throw lacksFieldError(w.name, 'logs (as text)', w.proxied);
  return scrubAnswer(t as Training, w.token);
}

/**
 * The trainings of a page of GET /trainings (its `results` list, each still to be checked). An answer without such a
 * list (a single training, an object of another kind, a bare list) is not taken for an empty list: that made
 * `finetune remote list` print nothing and succeed against a wrong --api-base.
 */
export function checkTrainingPage(page: unknown, w: Where): unknown[] {
  const results = at(page, 'results');
  if (!Array.isArray(results)) throw new FinetuneError('remote', `The answer to ${w.name} is not a list of trainings (it lacks the list results): ${apiBaseHint(w.proxied)}`, { call: w.name, field: 'results' });
  return results as unknown[];
}

/** An uploaded file: its id and the URL the trainer fetches it from (scrubbed as checkTraining's: its id is printed). */
export function checkFileObject(f: unknown, w: Where): FileObject {
  requireString(f, 'id', w);
  requireString(f, 'urls.get', w);
  return scrubAnswer(f as FileObject, w.token);
}

/** The token's account (scrubbed as checkTraining's: its username is printed and shown). */
export function checkAccount(a: unknown, w: Where): Account {
  requireString(a, 'username', w);
  return scrubAnswer(a as Account, w.token);
}

/** A year: no training on Replicate's trainer runs that long; a longer run time is a broken answer, not a duration. */
const MOST_RUN_SECONDS = 365 * 24 * 3600;

/**
 * How long Replicate says the training ran (metrics.predict_time), when that is a duration: a number from 0 to a year;
 * null otherwise. A negative one made a negative elapsed time and cost, a huge one an absurd cost.
 */
export function predictSeconds(t: Training): number | null {
  const s: unknown = t.metrics?.predict_time;
  return typeof s === 'number' && Number.isFinite(s) && s >= 0 && s <= MOST_RUN_SECONDS ? s : null;
}
