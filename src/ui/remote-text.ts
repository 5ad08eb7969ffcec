// The remote panel's lines made of numbers and of other people's words: the cost estimate before sending, and the
// status line while a call to Replicate is retried (src/remote/http.ts onRetry).

import type { CostEstimate } from '../remote/estimate.ts';
import { scrub } from '../remote/errors.ts';
import { isFinetuneError, thrownMessage } from '../core/errors.ts';
import type { ProxyAnswer } from './proxy-answers.ts';
import { formatCounted } from '../core/units.ts';
import { roughDuration } from './format.ts';
import { INVISIBLE_IN_QUOTES, unicodeEscape } from '../core/quote.ts';
import { endSentence, joinSentences, startSentence } from './sentence.ts';

/**
 * "Estimated: about 5 min on an A100 80 GB, about $0.41 (3,134 tokens × 1 epoch; …)". The time is rounded as the
 * local estimate's is: rounded up, 243 s read "about 5 min" beside a cost of 4 min at the rate it quotes.
 */
export function estimateLine(est: Pick<CostEstimate, 'seconds' | 'costUsd'>, tokens: number, epochs: number): string {
  return `Estimated: ${roughDuration(est.seconds)} on an A100 80 GB, about $${est.costUsd.toFixed(2)} (${formatCounted(tokens, 'token')} × ${formatCounted(epochs, 'epoch')}; Replicate bills the real time at $0.0014/s).`;
}

export interface RetryInfo {
  status: number | 'network';
  waitMs: number;
  call: string;
}

/** A proxy's detail is quoted at most this long: it holds an error message from the proxy's own fetch. */
const MAX_DETAIL = 200;

/**
 * The status line while a call is retried. `fromProxy` is the proxy's own answer to the call (Replicate was not
 * reached, or answered something the proxy refuses to pass on): then it is the proxy that answered, not Replicate.
 */
export function retryLine(r: RetryInfo, fromProxy: ProxyAnswer | null, token: string): string {
  const seconds = Math.ceil(r.waitMs / 1000);
  if (r.status === 'network') return `Connection lost while ${r.call}; retrying in ${seconds} s…`;
  if (!fromProxy) return `Replicate answered ${r.status} while ${r.call}; retrying in ${seconds} s…`;
  const detail = scrub(fromProxy.detail, token).trim().slice(0, MAX_DETAIL);
  const what = endSentence(`The proxy answered ${r.status} while ${r.call}${detail ? `: ${detail}` : ''}`);
  return `${what} Retrying in ${seconds} s…`;
}

/** What Send and Check token wait for, in the order the page asks for it. */
export interface SendState {
  busy: boolean;
  proxyOk: boolean;
  token: boolean;
  hyperparams: boolean;
  dataOk: boolean;
  refused: boolean;
}

/**
 * Why "Train on Replicate" cannot be pressed now, said beside it (two disabled buttons and no word once left a
 * newcomer guessing), or null when it can, or while a call is going (the status line speaks then).
 */
export function sendBlockedReason(s: SendState): string | null {
  if (s.busy) return null;
  if (!s.proxyOk) return 'No proxy answers for this page (see above): without one the browser cannot reach Replicate.';
  if (!s.token) return 'Paste your Replicate API token (r8_…) to check it and to send the job.';
  if (!s.hyperparams) return 'Fix the hyperparameters in the form first.';
  if (!s.dataOk) return 'Choose a training file without errors first (Dataset panel).';
  if (s.refused) return 'Replicate’s trainer cannot run this form as it stands: see the reasons above.';
  return null;
}

/** Why a send failed, after "Not sent": the message as sentences of its own (it was "Not sent: The proxy refused …"). */
export function notSentLine(message: string): string {
  return joinSentences('Not sent', startSentence(message));
}

/**
 * The line for a send that failed: "Not sent. …" when nothing was started, but the error as it is when Replicate may have
 * started the training (its answer lost: details.maybeStarted), which says how to check before sending again.
 */
export function sendFailedLine(e: unknown): string {
  if (isFinetuneError(e) && e.details?.maybeStarted === true) return e.message;
  // What fetch or the proxy threw may be no Error at all: thrownMessage never throws (String() did, and the send's
  // failure went unsaid).
  return notSentLine(thrownMessage(e));
}

/**
 * A training's logs for the log view (a <pre>), as Replicate sent them but for what could mislead: line breaks and
 * tabs stay (logs are read as lines); a carriage return (a progress bar redrawing its line) ends a line, as a log file
 * shows it; the other control characters (an escape sequence's ESC, a bell, C1) show as U+FFFD, as the command line
 * shows them (cli/commands/remote.ts terminalSafe); a bidirectional control, an invisible character or a line or
 * paragraph separator is written as a \uXXXX escape (core/quote.ts), so that no line reorders or hides its words.
 */
export function logViewText(logs: string): string {
  return logs
    .replace(/\r\n?/g, '\n')
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '\ufffd')
    .replace(INVISIBLE_IN_QUOTES, unicodeEscape);
}
