// A load says when a request failed and will be tried again (HttpOptions.onRetry): the retries of an unreachable
// server once took 15 s under the page's "Reading the header…" and the command line's silence.
import { describe, expect, it } from 'vitest';
import { httpSource, retryNoteText, type RetryNote } from '../../../src/model/source.ts';

const FILE = new Uint8Array(256).map((_, i) => i);

/** Fails the first `failures` requests as a browser does without a network, then serves FILE by Range. */
function flakyFetch(failures: number): typeof fetch {
  let calls = 0;
  return (async (_url: string | URL | Request, init?: RequestInit) => {
    if (calls++ < failures) throw new TypeError('Failed to fetch');
    const range = new Headers(init?.headers).get('range') ?? 'bytes=0-255';
    const [, a, b] = /bytes=(\d+)-(\d+)/.exec(range) ?? [];
    const [start, end] = [Number(a), Math.min(Number(b), FILE.length - 1)];
    return new Response(FILE.slice(start, end + 1), { status: 206, headers: { 'content-range': `bytes ${start}-${end}/${FILE.length}`, etag: '"v1"' } });
  }) as typeof fetch;
}

describe('retries said as they happen', () => {
  it('tells each failed attempt, its reason and the wait before the next, then reads the file', async () => {
    const notes: RetryNote[] = [];
    const waits: number[] = [];
    const src = await httpSource('https://models.example/m/config.json', { fetch: flakyFetch(2), sleep: async (ms) => void waits.push(ms), onRetry: (r) => notes.push(r) });
    expect(Array.from(await src.read(0, 4))).toEqual([0, 1, 2, 3]);
    expect(notes.map((n) => [n.attempt, n.retries, n.waitMs])).toEqual([
      [1, 5, 500],
      [2, 5, 1000],
    ]);
    expect(waits).toEqual([500, 1000]);
    expect(notes[0].reason).toMatch(/network failure/);
    expect(retryNoteText(notes[1])).toMatch(/^.*network failure.*\. Trying again in 1 s \(retry 2 of 5\)\.$/);
  });

  it('says nothing when nothing fails', async () => {
    const notes: RetryNote[] = [];
    const src = await httpSource('https://models.example/m/config.json', { fetch: flakyFetch(0), onRetry: (r) => notes.push(r) });
    await src.read(0, 4);
    expect(notes).toEqual([]);
  });
});
