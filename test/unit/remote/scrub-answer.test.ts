// scrubAnswer (src/remote/errors.ts): the token out of every string of a JSON answer, keys included, with scrub's rules.
import { describe, expect, it } from 'vitest';
import { scrubAnswer } from '../../../src/remote/errors.ts';

const TOKEN = 'r8_scrubanswertoken0123456789abcdefghijk';

describe('scrubAnswer', () => {
  it('scrubs every string, however deep, and every key, leaving the answer as it came', () => {
    const answer = { a: `Bearer ${TOKEN}`, n: 3, b: null, t: true, list: [TOKEN, { [`k${TOKEN}`]: `Token ${TOKEN}` }] };
    const before = JSON.stringify(answer);
    expect(scrubAnswer(answer, TOKEN)).toEqual({ a: 'Bearer [token]', n: 3, b: null, t: true, list: ['[token]', { 'k[token]': 'Token [token]' }] });
    expect(JSON.stringify(answer)).toBe(before);
  });

  it('a "__proto__" key stays a plain field, not a prototype', () => {
    const answer = JSON.parse(`{"__proto__": {"polluted": "${TOKEN}"}}`) as Record<string, unknown>;
    const out = scrubAnswer(answer, TOKEN);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(out, '__proto__')?.value).toEqual({ polluted: '[token]' });
  });

  it('with no token, or one too short to scrub (as scrub), the answer itself comes back', () => {
    const answer = { a: 'abc' };
    expect(scrubAnswer(answer, undefined)).toBe(answer);
    expect(scrubAnswer(answer, 'abc')).toBe(answer);
  });
});
