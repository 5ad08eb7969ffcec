import { describe, expect, it } from 'vitest';
import { duplicateTopLevelKey, jsonTooDeepAt, parseBoundedJson } from '../../../src/core/bounded-json.ts';
import { FinetuneError } from '../../../src/core/errors.ts';

describe('bounded JSON', () => {
  it('counts nesting outside strings only (brackets and escaped quotes inside strings do not count)', () => {
    expect(jsonTooDeepAt('{"a":[[1]]}', 3)).toBe(-1);
    expect(jsonTooDeepAt('{"a":[[[1]]]}', 3)).toBe(7);
    expect(jsonTooDeepAt('{"a":"[[[[\\"[[[["}', 1)).toBe(-1);
    expect(jsonTooDeepAt('[1],[2],[3]', 1)).toBe(-1);
  });

  it('refuses 200 000 levels before parsing, as bad input', () => {
    const deep = '{"a":'.repeat(200_000) + '1' + '}'.repeat(200_000);
    expect(() => parseBoundedJson(deep, 'config.json')).toThrow(FinetuneError);
    expect(() => parseBoundedJson(deep, 'config.json')).toThrow('config.json nests JSON deeper than 64 levels (at character 321)');
    expect(parseBoundedJson('{"a":{"b":[1,2]}}', 'x')).toEqual({ a: { b: [1, 2] } });
    expect(() => parseBoundedJson('{"a":', 'x.json')).toThrow(/^x\.json is not valid JSON/);
  });

  it('finds duplicate keys of the top-level object after unescaping, ignoring nested keys and string values', () => {
    expect(duplicateTopLevelKey('{"a":1,"b":2}')).toBeNull();
    expect(duplicateTopLevelKey('{"a":1,"b":{"a":2},"c":"a"}')).toBeNull();
    expect(duplicateTopLevelKey('{"a":1,"b":2,"a":3}')).toBe('a');
    expect(duplicateTopLevelKey('{"\\u00e9":1, "é" : 2}')).toBe('é');
    expect(duplicateTopLevelKey('{"x\\"y":1,"x\\"y":2}')).toBe('x"y');
  });
});
