// The official `replicate` client, pointed at Replicate itself (CLI default), at a private proxy or local fake
// (`--api-base`, REPLICATE_API_BASE_URL), or at the page's same-origin proxy (/replicate/v1). Its fetch is ours
// (./http.ts): waits that honour Retry-After, and errors a person understands.

import Replicate, { type Account } from 'replicate';
import { FinetuneError } from '../core/errors.ts';
import { REPLICATE_API_BASE } from './endpoints.ts';
import { answerName, checkAccount } from './answers.ts';
import { remoteFetch, type RemoteFetchOptions } from './http.ts';

export interface RemoteClientOptions {
  token: string;
  /** Default Replicate's own API. */
  apiBase?: string;
  proxied?: boolean;
  retry?: RemoteFetchOptions['retry'];
  fetch?: typeof fetch;
  sleep?: RemoteFetchOptions['sleep'];
  onRetry?: RemoteFetchOptions['onRetry'];
  /** See RemoteFetchOptions: API calls' deadline (default 30 s), uploads' and downloads' idle limit (default 120 s). */
  timeoutMs?: number;
  idleTimeoutMs?: number;
  /** See RemoteFetchOptions: the slowest upload waited for (default 32 KiB/s). */
  uploadBytesPerSecond?: number;
}

export interface RemoteClient {
  replicate: Replicate;
  apiBase: string;
  /** The fetch the client uses (retries, errors), for the output download too. */
  fetch: typeof fetch;
  /** Kept for the Authorization header of downloads only. */
  readonly token: string;
  /** Whether apiBase is the page's proxy: errors then point at the proxy address rather than --api-base. */
  proxied: boolean;
}

/**
 * Replicate tokens are "r8_" + 37 characters, but private proxies may use others: refused here are emptiness, spaces,
 * and any character outside printable ASCII (a control character, DEL, a non-ASCII letter): an Authorization header
 * cannot carry them, and fetch refused such a token on every call, which the retries took for a lost connection
 * (16 s, then a "network" error). Never echoed, not even in part.
 */
export function checkTokenShape(token: string): void {
  if (!token) throw new FinetuneError('bad-input', 'no Replicate API token: set REPLICATE_API_TOKEN (https://replicate.com/account/api-tokens)');
  if (/\s/.test(token)) throw new FinetuneError('bad-input', 'the Replicate API token contains spaces or line breaks: paste it again');
  const at = [...token].findIndex((ch) => !/^[\x21-\x7e]$/.test(ch));
  if (at >= 0) {
    throw new FinetuneError('bad-input', `the Replicate API token holds a character that is not printable ASCII (character ${at + 1}; a control character or a letter from a copy-paste?): paste it again (https://replicate.com/account/api-tokens)`);
  }
}

export function createRemoteClient(o: RemoteClientOptions): RemoteClient {
  checkTokenShape(o.token);
  const apiBase = (o.apiBase ?? REPLICATE_API_BASE).replace(/\/+$/, '');
  const f = remoteFetch({ token: o.token, apiBase, proxied: o.proxied, retry: o.retry, fetch: o.fetch, sleep: o.sleep, onRetry: o.onRetry, timeoutMs: o.timeoutMs, idleTimeoutMs: o.idleTimeoutMs, uploadBytesPerSecond: o.uploadBytesPerSecond });
  const replicate = new Replicate({ auth: o.token, baseUrl: apiBase, fetch: f as (input: Request | string, init?: RequestInit) => Promise<Response> });
  return { replicate, apiBase, fetch: f, token: o.token, proxied: o.proxied === true };
}

/** The account the token belongs to (GET /account): the check that the token works. */
export async function validateToken(c: RemoteClient): Promise<Account> {
  return checkAccount(await c.replicate.accounts.current(), answerOf(c, 'GET', '/account'));
}

/**
 * Names an answer of this client's API (for the shape checks of ./answers.ts), with the token that they scrub from
 * any value of the answer they quote (a server may echo it anywhere).
 */
export function answerOf(c: Pick<RemoteClient, 'apiBase' | 'proxied'> & { token?: string }, method: string, path: string): { name: string; proxied: boolean; token?: string } {
  return { name: answerName(c.apiBase, method, path), proxied: c.proxied, ...(c.token === undefined ? {} : { token: c.token }) };
}
