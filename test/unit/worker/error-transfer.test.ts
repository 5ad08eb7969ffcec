// An error thrown in the worker reaches the page through comlink over a real MessageChannel (Node's, whose
// postMessage clones as a browser's does). An error whose details cannot be cloned must still arrive with its kind and
// message: the page picks what it offers (a smaller model, a new device, a corrected file) from the kind alone.
import * as Comlink from 'comlink';
import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { FinetuneError, serializeError, type ErrorKind } from '../../../src/core/errors.ts';
import { installErrorTransfer } from '../../../src/worker/error-transfer.ts';

installErrorTransfer();

const ports: { close(): void }[] = [];
afterEach(() => {
  for (const p of ports.splice(0)) p.close();
});

/** Throws `err` on the exposed side of a channel and returns what the calling side caught. */
async function caughtAcross(err: unknown): Promise<unknown> {
  const { port1, port2 } = new MessageChannel();
  ports.push(port1, port2);
  Comlink.expose({ fail: () => Promise.reject(err) }, port1 as unknown as Comlink.Endpoint);
  const remote = Comlink.wrap<{ fail(): Promise<void> }>(port2 as unknown as Comlink.Endpoint);
  try {
    await remote.fail();
  } catch (e) {
    return e;
  }
  throw new Error('the call did not fail');
}

describe('errors across the worker boundary', () => {
  it('keeps kind, message and clonable details', async () => {
    const back = await caughtAcross(new FinetuneError('out-of-memory', 'buffer too big', { bytes: 5 }));
    expect(back).toBeInstanceOf(FinetuneError);
    expect(back).toMatchObject({ kind: 'out-of-memory', message: 'buffer too big', details: { bytes: 5 } });
  });

  const cyclic: Record<string, unknown> = { name: 'a' };
  cyclic.self = cyclic;
  const cases: [string, ErrorKind, Record<string, unknown>][] = [
    ['a function', 'bad-input', { errors: ['x'], retry: () => 1 }],
    ['a function nested in an object', 'device-lost', { lost: { at: () => 1 } }],
    ['a symbol', 'out-of-memory', { bytes: 5, tag: Symbol('t') }],
  ];
  for (const [what, kind, details] of cases) {
    it(`keeps kind and message when the details hold ${what}`, async () => {
      const back = await caughtAcross(new FinetuneError(kind, `failed: ${what}`, details));
      expect(back).toBeInstanceOf(FinetuneError);
      expect(back).toMatchObject({ kind, message: `failed: ${what}` });
    });
  }

  it('keeps the details that clone beside one that does not', async () => {
    const back = await caughtAcross(new FinetuneError('bad-input', 'bad file', { errors: ['line 2'], reader: () => 0 }));
    expect((back as FinetuneError).details?.errors).toEqual(['line 2']);
    expect((back as FinetuneError).details).not.toHaveProperty('reader', expect.any(Function));
  });

  // A cycle and a BigInt clone as they are (structured clone is not JSON): they stay; only the function goes.
  it('serializes to something structuredClone accepts, whatever the details hold', () => {
    const e = new FinetuneError('mismatch', 'loss differs', { cyclic, big: 10n, f: () => 0, n: 1 });
    const s = structuredClone(serializeError(e));
    expect(s).toMatchObject({ kind: 'mismatch', message: 'loss differs' });
    expect(s.details?.n).toBe(1);
    expect(s.details?.big).toBe(10n);
    expect(s.details).not.toHaveProperty('f');
  });
});
