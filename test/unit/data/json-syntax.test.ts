import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { columnOf, findJsonSyntaxError } from '../../../src/data/json-syntax.ts';

function parses(s: string): boolean {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
}

describe('JSON syntax errors: where and why', () => {
  const cases: [string, number, RegExp][] = [
    ['{"a": 1', 7, /ends inside an object/],
    ['{"a" 1}', 5, /expected ':'/],
    ["{'a': 1}", 1, /property name in double quotes/],
    ['{"a": 1,}', 8, /trailing comma/],
    ['[1, 2,]', 6, /trailing comma/],
    ['{"a": tru}', 9, /invalid literal: expected true/],
    ['{"a": 01}', 7, /leading zeros/],
    ['{"a": 1.}', 8, /digit after '\.'/],
    ['{"a": -}', 7, /digit after '-'/],
    ['{"a": 1e}', 8, /exponent/],
    ['{"a": "x\\q"}', 8, /invalid escape \\q/],
    ['{"a": "\\u12G4"}', 11, /4 hexadecimal digits/],
    ['{"a": "tab\there"}', 10, /control character U\+0009.*\\t/],
    ['{"a": "never closed}', 20, /never closed/],
    ['{"a": 1} {"b": 2}', 9, /after the end of the JSON value/],
    ['', 0, /no JSON value/],
    ['{"a": undefined}', 6, /unexpected 'u'/],
    ['{"a": NaN}', 6, /unexpected 'N'/],
    ['{"a" : [1 2]}', 10, /expected ',' or '\]'/],
    ['\ufeff{"a": 1}', 0, /U\+FEFF/],
  ];
  for (const [text, index, message] of cases) {
    it(`${JSON.stringify(text)} → index ${index}`, () => {
      expect(parses(text)).toBe(false);
      const e = findJsonSyntaxError(text);
      expect(e).not.toBeNull();
      expect(e?.index).toBe(index);
      expect(e?.message).toMatch(message);
    });
  }

  it('accepts what JSON.parse accepts', () => {
    for (const text of ['{}', '[]', '0', '-0.5e+10', '"\\u00e9\\n"', ' {"a": [true, false, null, {"b": "c"}]} ', '"\ud800"', '{"a":1,"a":2}']) {
      expect(findJsonSyntaxError(text)).toBeNull();
    }
  });

  it('survives nesting far deeper than any call stack', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    expect(findJsonSyntaxError(deep)).toBeNull();
    expect(findJsonSyntaxError('['.repeat(200_000))?.index).toBe(200_000);
  });

  it('agrees with JSON.parse on every valid document and on mutations of them (property)', () => {
    const mutated = fc
      .tuple(fc.json(), fc.nat(), fc.constantFrom('', ',', '"', '}', ']', '{', '[', ':', '\\', ' ', '0', '-', '.', 'e', 'x', '\n', '\u0001'), fc.nat(3))
      .map(([json, at, insert, del]) => {
        const i = at % (json.length + 1);
        return json.slice(0, i) + insert + json.slice(i + del);
      });
    fc.assert(
      fc.property(fc.oneof(fc.json(), mutated, fc.string({ unit: fc.constantFrom(...'{}[]":,0123456789-+.eE tfnrul\\aA \t'.split('')) })), (text) => {
        const e = findJsonSyntaxError(text);
        expect(e === null).toBe(parses(text));
        if (e) {
          expect(e.index).toBeGreaterThanOrEqual(0);
          expect(e.index).toBeLessThanOrEqual(text.length);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('counts columns in characters, a surrogate pair as one', () => {
    expect(columnOf('abc', 0)).toBe(1);
    expect(columnOf('abc', 2)).toBe(3);
    expect(columnOf('🤗x', 2)).toBe(2);
    expect(columnOf('é🤗é', 4)).toBe(4);
  });
});
