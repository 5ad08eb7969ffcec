// Replicate's refusals as errors a person understands. Every message says what happened and what to do; none carries
// the token (messages are built from the status, the call and Replicate's own `detail`, which is scrubbed anyway).

import { FinetuneError } from '../core/errors.ts';
import { networkReason } from '../core/network-errors.ts';
import { PROXY_PROBLEM_TITLE } from './endpoints.ts';
import { visibleText } from '../core/quote.ts';
import { formatWait } from '../core/units.ts';

/** The call of an output download in messages: the only request this client sends outside the API's routes. */
export const OUTPUT_DOWNLOAD_CALL = "downloading the training's output";

/** What a failed call was doing, in words, from its method and path (after /v1). */
export function describeCall(method: string, path: string): string {
  const p = path.split('?')[0];
  let m: RegExpExecArray | null;
  if (p === '/account') return 'checking the API token';
  if (p === '/files') return 'uploading the training data';
  if ((m = /^\/models\/([^/]+)\/([^/]+)\/versions\/([^/]+)\/trainings$/.exec(p))) return `starting a training of ${m[1]}/${m[2]}:${m[3]}`;
  if ((m = /^\/models\/([^/]+)\/([^/]+)$/.exec(p))) return `looking up the model ${m[1]}/${m[2]}`;
  if (p === '/models' && method === 'POST') return 'creating the destination model';
  if (p === '/trainings' && method === 'GET') return 'listing your recent trainings';
  if ((m = /^\/trainings\/([^/]+)\/cancel$/.exec(p))) return `canceling training ${m[1]}`;
  if ((m = /^\/trainings\/([^/]+)$/.exec(p))) return `reading training ${m[1]}`;
  return `${method} ${p}`;
}

interface ProblemBody {
  title?: unknown;
  detail?: unknown;
  invalid_fields?: unknown;
}

interface InvalidField {
  field: string;
  description: string;
}

/**
 * A 422's invalid_fields, as far as they are Replicate's shape (a list of objects with a text `field`, a text
 * `description` or none): anything else in their place is left out, as a server's answer that is not the documented
 * one must not turn into a TypeError or an "[object Object]" in the message.
 */
function invalidFields(body: ProblemBody): InvalidField[] {
  if (!Array.isArray(body.invalid_fields)) return [];
  const fields: InvalidField[] = [];
  for (const f of body.invalid_fields as unknown[]) {
    if (typeof f !== 'object' || f === null) continue;
    const { field, description } = f as { field?: unknown; description?: unknown };
    if (typeof field === 'string' && field !== '') fields.push({ field, description: typeof description === 'string' ? description : 'invalid' });
  }
  return fields;
}

function parseProblem(text: string): ProblemBody {
  try {
    const j = JSON.parse(text) as unknown;
    return typeof j === 'object' && j !== null ? (j as ProblemBody) : {};
  } catch {
    return {};
  }
}

/** The token never appears in a message, even if a server echoed it back. */
export function scrub(text: string, token: string | undefined): string {
  return token && token.length >= 4 ? text.split(token).join('[token]') : text;
}

/**
 * A JSON answer with `scrub` applied to every string in it, object keys included: a server that echoes the token may
 * put it in any field (a training's error or logs, a model name, an output URL, an input's name), and every field is
 * printed or shown somewhere (the CLI's JSON lines, the page's job list, an adapter's README). Scrubbed once, where the
 * answer comes in, no printer has to remember to. Returns a copy; the answer is left as it came.
 */
export function scrubAnswer<T>(answer: T, token: string | undefined): T {
  if (!token || token.length < 4) return answer;
  return scrubValue(answer, token) as T;
}

function scrubValue(v: unknown, token: string): unknown {
  if (typeof v === 'string') return scrub(v, token);
  if (Array.isArray(v)) return v.map((x) => scrubValue(x, token));
  if (typeof v !== 'object' || v === null) return v;
  // Object.fromEntries defines each key as an own property: a "__proto__" key in the answer stays a plain field.
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [scrub(k, token), scrubValue(x, token)]));
}

/** A FinetuneError for an HTTP answer that is not ok. `retryAfterS`: what Retry-After said on a final 429. */
export function httpError(status: number, bodyText: string, call: string, opts: { token?: string; retries?: number; retryAfterS?: number; proxied?: boolean } = {}): FinetuneError {
  const body = parseProblem(bodyText);
  // Scrubbed before it is cut short: a token crossing the cut would otherwise be printed in part.
  const detail = (typeof body.detail === 'string' ? scrub(body.detail, opts.token) : scrub(bodyText, opts.token).trim().slice(0, 300)).trim();
  // The proxy's own answers (Replicate unreachable, a refusal) carry its title: then the proxy said it, not Replicate.
  const fromProxy = body.title === PROXY_PROBLEM_TITLE;
  // Another party's words, shown on a terminal and the page: with visibleText's escapes, so that a line break in them
  // cannot start a line of its own and a bidirectional control cannot reorder the sentence (details keep them as said).
  const said = detail ? ` ${fromProxy ? 'The proxy said' : 'Replicate said'}: ${visibleText(detail)}` : '';
  const base = { status, call, ...(detail ? { detail } : {}) };
  switch (status) {
    case 401:
      return new FinetuneError('remote', `Replicate refused the API token while ${call} (401 Unauthenticated). Check the token (https://replicate.com/account/api-tokens); a token is "r8_" followed by 37 characters.`, base);
    case 402:
      return new FinetuneError('remote', `Replicate wants billing set up before ${call} (402 Payment Required): add a payment method at https://replicate.com/account/billing, then try again.${said}`, base);
    case 403:
      return new FinetuneError('remote', `${fromProxy ? 'The proxy' : 'Replicate'} refused ${call} (403 Forbidden).${said}`, base);
    case 404:
      // An output file gone is not a mistyped name: Replicate removes outputs some time after a training ends.
      if (call === OUTPUT_DOWNLOAD_CALL) return new FinetuneError('remote', `The training's output file is no longer there (404 while ${call}): Replicate removes output files some time after a training ends. Download it from the training's page on replicate.com while it is kept there.${said}`, base);
      return new FinetuneError('remote', `Not found while ${call} (404): check the owner/name, the version id or the training id.${said}`, base);
    case 413:
      return new FinetuneError('remote', `Too large for Replicate while ${call} (413).${said}`, base);
    case 422: {
      const fields = invalidFields(body).map((f) => `${scrub(f.field, opts.token).replace(/^input\./, '')}: ${scrub(f.description, opts.token)}`);
      const what = fields.length > 0 ? fields.map(visibleText).join('; ') : visibleText(detail) || 'no reason given';
      return new FinetuneError('remote', `Replicate refused the request while ${call} (422 validation failed): ${what}`, { ...base, fields: fields.map((f) => f.split(':')[0]) });
    }
    case 429: {
      const again = opts.retryAfterS !== undefined ? ` Try again in ${formatWait(opts.retryAfterS)}.` : ' Try again in a minute.';
      return new FinetuneError('remote', `Replicate is rate limiting these requests (429 Too Many Requests) while ${call}, still after ${opts.retries ?? 0} retries.${again}`, { ...base, ...(opts.retryAfterS !== undefined ? { retryAfterS: opts.retryAfterS } : {}) });
    }
    default:
      if (status >= 500) {
        const who = opts.proxied && (status === 502 || status === 504) && fromProxy ? 'The proxy could not get an answer from Replicate' : `Replicate had a server error (${status})`;
        return new FinetuneError('remote', `${who} while ${call}; this is not your input, try again in a few minutes.${said}`, base);
      }
      return new FinetuneError('remote', `Replicate answered ${status} while ${call}.${said}`, base);
  }
}

/**
 * Why a request got no answer, in the fetch's words (its cause's message), with the token scrubbed: a fetch or a proxy
 * may echo the request's headers. Kept as said (details); shown through visibleText.
 */
export function networkWhy(cause: unknown, token: string | undefined): string {
  return scrub(networkReason(cause), token);
}

/** A FinetuneError for a request that never got an answer. */
export function networkError(cause: unknown, call: string, host: string, token?: string): FinetuneError {
  const why = networkWhy(cause, token);
  return new FinetuneError('network', `Could not reach ${host} while ${call} (${visibleText(why)}). Check the network connection${host.includes('127.0.0.1') || host.includes('localhost') ? ' and that the server is running' : ''}, then try again.`, { call, host, reason: why });
}
