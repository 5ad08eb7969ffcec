// httpError never lets the token, or any part of it, into a message: bodies are scrubbed before they are cut short.
import { describe, expect, it } from 'vitest';
import { httpError } from '../../../src/remote/errors.ts';

const TOKEN = 'r8_errtesttoken0123456789abcdefghijklmnopq';

/** Every 8-character piece of the token. */
const pieces = Array.from({ length: TOKEN.length - 7 }, (_, i) => TOKEN.slice(i, i + 8));

function leaks(text: string): string[] {
  return pieces.filter((p) => text.includes(p));
}

describe('httpError', () => {
  it('scrubs a token that crosses the 300-character cut of a non-JSON body', () => {
    const body = `${'x'.repeat(262)}${TOKEN}${'y'.repeat(100)}`;
    const e = httpError(500, body, 'reading training abc', { token: TOKEN });
    expect(leaks(e.message)).toEqual([]);
    expect(leaks(JSON.stringify(e.details))).toEqual([]);
    expect(e.message).toContain('x'.repeat(50));
  });

  it('scrubs the token wherever it crosses the cut', () => {
    for (let at = 250; at < 300; at++) {
      const e = httpError(502, `${'x'.repeat(at)}${TOKEN}`, 'reading training abc', { token: TOKEN });
      expect({ at, leaks: leaks(e.message + JSON.stringify(e.details)) }).toEqual({ at, leaks: [] });
    }
  });

  it('scrubs the field names of a 422 as well as their descriptions', () => {
    const body = JSON.stringify({ detail: 'bad', status: 422, invalid_fields: [{ field: `input.${TOKEN}`, description: `echo ${TOKEN}` }] });
    const e = httpError(422, body, 'starting a training', { token: TOKEN });
    expect(leaks(e.message)).toEqual([]);
    expect(leaks(JSON.stringify(e.details))).toEqual([]);
    expect(e.message).toContain('[token]: echo [token]');
  });

  // Replicate's words go into the message shown on the terminal and the page: a line break in them started a line
  // that finetune never wrote, and a bidirectional control reordered the words after it. Escaped there, as names are.
  it("writes Replicate's detail and a 422's fields with their line breaks and bidi controls escaped", () => {
    const forged = 'bad input\nfinetune remote: training abc succeeded\u202e';
    const e = httpError(500, JSON.stringify({ detail: forged }), 'reading training abc');
    expect(e.message).toBe('Replicate had a server error (500) while reading training abc; this is not your input, try again in a few minutes. Replicate said: bad input\\nfinetune remote: training abc succeeded\\u202e');
    const text = httpError(403, `line one\r\nline two\u2066`, 'reading training abc');
    expect(text.message).toBe('Replicate refused reading training abc (403 Forbidden). Replicate said: line one\\r\\nline two\\u2066');
    const fields = httpError(422, JSON.stringify({ invalid_fields: [{ field: 'input.lr\u202e', description: 'must be\nsmall' }] }), 'starting a training');
    expect(fields.message).toBe('Replicate refused the request while starting a training (422 validation failed): lr\\u202e: must be\\nsmall');
  });

  it('reads a 422 whose invalid_fields is not a list of objects as one without them, instead of a TypeError', () => {
    // Found by answers-fuzz.test.ts: "(body.invalid_fields ?? []).filter is not a function".
    for (const invalid of [0, 'lora_rank', { field: 'x' }, [null], [3, 'x'], [{ field: { a: 1 } }]]) {
      const e = httpError(422, JSON.stringify({ detail: 'validation failed', invalid_fields: invalid }), 'starting a training of a/b:c', { token: TOKEN });
      expect({ invalid, message: e.message }).toEqual({ invalid, message: 'Replicate refused the request while starting a training of a/b:c (422 validation failed): validation failed' });
    }
  });
});
