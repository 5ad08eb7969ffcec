import { describe, expect, it } from 'vitest';
import { deserializeError, FinetuneError, isFinetuneError, serializeError, thrownMessage, thrownName } from '../../../src/core/errors.ts';
import { errorParts } from '../../../src/ui/format.ts';

describe('typed errors across the worker boundary', () => {
  it('keeps kind, message and details through serialisation', () => {
    const e = new FinetuneError('out-of-memory', 'buffer too big', { bytes: 5 });
    const back = deserializeError(structuredClone(serializeError(e)));
    expect(back).toBeInstanceOf(FinetuneError);
    expect(back.kind).toBe('out-of-memory');
    expect(back.message).toBe('buffer too big');
    expect(back.details).toEqual({ bytes: 5 });
    expect(isFinetuneError(back, 'out-of-memory')).toBe(true);
    expect(isFinetuneError(back, 'bad-input')).toBe(false);
  });

  it('marks foreign errors as internal', () => {
    expect(serializeError(new TypeError('x')).kind).toBe('internal');
    expect(serializeError('plain string').message).toBe('plain string');
  });
});

// The worker's throw handler serialises whatever was thrown; a value String() cannot turn into text made
// serializeError itself throw inside comlink's handler, and the page got comlink's failure in place of an answer.
describe('serializeError of a value that has no text', () => {
  const noPrototype = Object.assign(Object.create(null) as object, { code: 1 });
  const throwingToString = {
    toString(): string {
      throw new Error('no text for you');
    },
  };
  const throwingMessage = Object.defineProperty(new Error('hidden'), 'message', {
    get(): string {
      throw new Error('no message either');
    },
  });

  it('never throws, and says what it was', () => {
    for (const thrown of [noPrototype, throwingToString]) {
      const s = serializeError(thrown);
      expect(s).toEqual({ name: 'Error', kind: 'internal', message: 'a thrown value that has no text' });
      expect(() => structuredClone(s)).not.toThrow();
    }
    expect(serializeError(throwingMessage)).toMatchObject({ name: 'Error', kind: 'internal', message: 'an error whose message cannot be read' });
  });

  it("keeps the text of what has one: a symbol's, a number's, null's", () => {
    expect(serializeError(Symbol('gone')).message).toBe('Symbol(gone)');
    expect(serializeError(42).message).toBe('42');
    expect(serializeError(null).message).toBe('null');
  });

  it('thrownMessage and thrownName (what a message about a failure quotes) never throw either', () => {
    for (const thrown of [noPrototype, throwingToString, throwingMessage]) {
      expect(thrownMessage(thrown)).toBe('a thrown value that has no text');
    }
    expect(thrownName(noPrototype)).toBeUndefined();
    expect(thrownName(throwingMessage)).toBe('Error');
    // What has words keeps them: an Error's or a DOMException's message and name, a plain object's, a primitive's text.
    expect([thrownMessage(new DOMException('quota', 'QuotaExceededError')), thrownName(new DOMException('quota', 'QuotaExceededError'))]).toEqual(['quota', 'QuotaExceededError']);
    expect([thrownMessage({ name: 'NotFoundError', message: 'gone' }), thrownName({ name: 'NotFoundError', message: 'gone' })]).toEqual(['gone', 'NotFoundError']);
    expect([thrownMessage({ message: 404 }), thrownMessage('plain'), thrownMessage(null), thrownName(null), thrownName({ name: 7 })]).toEqual(['404', 'plain', 'null', undefined, undefined]);
  });

  it("the page's errorParts says the same of it", () => {
    expect(errorParts(noPrototype)).toEqual({ kind: 'unexpected', message: 'a thrown value that has no text' });
    expect(errorParts(throwingToString).message).toBe('a thrown value that has no text');
  });
});
