// Values thrown by outside code (fetch, a file being read, a store, the worker across comlink) are not always Errors:
// an object with no prototype has no message and no toString, and String() throws for it, as it does for an object
// whose toString throws. Each place below turned such a value into text with `e instanceof Error ? e.message :
// String(e)` (or `(e as Error)?.message ?? String(e)`), so the line that was to report the failure threw a TypeError of
// its own in its place. Each must report, in words, whatever it was handed.
import { describe, expect, it } from 'vitest';
import { isFinetuneError } from '../../../src/core/errors.ts';
import { networkReason } from '../../../src/core/network-errors.ts';
import { readJsonl } from '../../../src/data/jsonl.ts';
import { ProblemLog } from '../../../src/data/problems.ts';
import { httpSource } from '../../../src/model/source.ts';
import { fileKernelTuningCache } from '../../../src/run/kernel-tuning.ts';
import { planDtypeOptions } from '../../../src/run/plan-dtype.ts';
import { describeError } from '../../../src/ui/check-panel.ts';
import { sendFailedLine } from '../../../src/ui/remote-text.ts';

const NO_TEXT = 'a thrown value that has no text';
const thrownValues: [string, () => unknown][] = [
  ['an object with no prototype', () => Object.create(null) as object],
  [
    'an object whose toString throws',
    () => ({
      toString: () => {
        throw new Error('no text here');
      },
    }),
  ],
];

/** What `run` rejects with (it must reject). */
async function rejection(run: () => Promise<unknown>): Promise<unknown> {
  return run().then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe.each(thrownValues)('%s, thrown by outside code, is reported in words', (_what, thrown) => {
  it('readJsonl: a file whose reading fails says where', async () => {
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield new TextEncoder().encode('{"text": "a"}\n');
      throw thrown();
    }
    const e = await rejection(async () => {
      for await (const _ of readJsonl(failing(), new ProblemLog(10))) void _;
    });
    expect(isFinetuneError(e, 'bad-input')).toBe(true);
    expect((e as Error).message).toBe(`reading the file failed at byte 14 (line 2): ${NO_TEXT}`);
  });

  it("httpSource: fetch's rejection is a network failure", async () => {
    const fetch = async (): Promise<Response> => {
      throw thrown();
    };
    const e = await rejection(() => httpSource('https://cdn.example.org/model.safetensors', { fetch: fetch as typeof globalThis.fetch, retries: 0 }));
    expect(isFinetuneError(e, 'network')).toBe(true);
    expect((e as Error).message).toBe(`https://cdn.example.org/model.safetensors: network failure (${NO_TEXT}): check the connection and the URL.`);
  });

  it("httpSource: a TypeError's cause that is such a value still leaves the TypeError's words", async () => {
    const fetch = async (): Promise<Response> => {
      throw new TypeError('fetch failed', { cause: thrown() });
    };
    const e = await rejection(() => httpSource('https://cdn.example.org/model.safetensors', { fetch: fetch as typeof globalThis.fetch, retries: 0 }));
    expect((e as Error).message).toBe('https://cdn.example.org/model.safetensors: network failure (fetch failed): check the connection and the URL.');
  });

  it('httpSource: a body whose stream fails is a lost connection', async () => {
    const fetch = async (): Promise<Response> =>
      new Response(
        new ReadableStream<Uint8Array>({
          pull: (c) => c.error(thrown()),
        }),
        { status: 200 },
      );
    const e = await rejection(() => httpSource('https://cdn.example.org/config.json', { fetch: fetch as typeof globalThis.fetch, retries: 0 }));
    expect(isFinetuneError(e, 'network')).toBe(true);
    expect((e as Error).message).toBe(`https://cdn.example.org/config.json: connection lost while downloading (${NO_TEXT}).`);
  });

  it("networkReason: a failed request's reason", () => {
    expect(networkReason(thrown())).toBe(NO_TEXT);
  });

  it('planDtypeOptions: headers that cannot be read are a reason (and a warning), the plan still answers', async () => {
    const files = {
      list: () => ['config.json', 'model.safetensors'],
      open: () => Promise.reject(thrown()),
    };
    expect(await planDtypeOptions(files, true)).toEqual({ headersNotRead: `they could not be read (${NO_TEXT})`, weightsUnreadable: NO_TEXT });
  });

  it('fileKernelTuningCache: a store whose write fails names the folder', async () => {
    const files = {
      read: async () => null,
      write: () => Promise.reject(thrown()),
      remove: () => Promise.reject(thrown()),
      list: async () => [],
    };
    const cache = fileKernelTuningCache(files, 'the cache folder');
    const put = await rejection(() => cache.put('k', { gemm: 'basic', attention: 'rows', lora: 'general', speedup: 1, measuredAt: '2025-01-01T00:00:00Z' }));
    expect(isFinetuneError(put, 'bad-input')).toBe(true);
    expect((put as Error).message).toBe(`the kernel choices cannot be written in "the cache folder": ${NO_TEXT}`);
    const clear = await rejection(() => cache.clear());
    expect((clear as Error).message).toBe(`the kernel choices cannot be forgotten in "the cache folder": ${NO_TEXT}`);
  });

  it("the check panel's line for an unexpected error", () => {
    expect(describeError(thrown())).toBe(`The check could not run (unexpected error): ${NO_TEXT}`);
  });

  it("the remote panel's line for a failed send", () => {
    expect(sendFailedLine(thrown())).toBe(`Not sent. ${NO_TEXT[0].toUpperCase()}${NO_TEXT.slice(1)}.`);
  });
});
