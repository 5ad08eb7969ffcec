import { describe, expect, it } from 'vitest';
import { deserializeError, FinetuneError, isFinetuneError, serializeError } from '../../../src/core/errors.ts';

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
