import { describe, expect, it } from 'vitest';
import { preprocessWgsl } from '../../../src/engine/preprocess.ts';

const SRC = ['a', '//#if X', 'x-only', '//#else', 'not-x', '//#endif', '//#if !Y', 'not-y', '//#endif', 'z'].join('\n');

describe('WGSL preprocessor', () => {
  it('keeps the chosen branch and blanks the rest, preserving line numbers', () => {
    const out = preprocessWgsl(SRC, { X: true, Y: true }).split('\n');
    expect(out).toHaveLength(10);
    expect(out[0]).toBe('a');
    expect(out[2]).toBe('x-only');
    expect(out[4]).toBe('//');
    expect(out[7]).toBe('//');
    expect(out[9]).toBe('z');
  });

  it('takes the else branch and negations', () => {
    const out = preprocessWgsl(SRC, {}).split('\n');
    expect(out[2]).toBe('//');
    expect(out[4]).toBe('not-x');
    expect(out[7]).toBe('not-y');
  });

  it('handles nesting', () => {
    const src = ['//#if A', '//#if B', 'ab', '//#else', 'a-not-b', '//#endif', '//#else', 'not-a', '//#endif'].join('\n');
    expect(preprocessWgsl(src, { A: true, B: false }).split('\n')[4]).toBe('a-not-b');
    expect(preprocessWgsl(src, { A: false, B: true }).split('\n').filter((l) => l !== '//')).toEqual(['not-a']);
  });

  it('reports unbalanced blocks with the file and line', () => {
    expect(() => preprocessWgsl('//#if A\nx', {}, 'foo')).toThrow('foo.wgsl:1: //#if is never closed');
    expect(() => preprocessWgsl('x\n//#endif', {}, 'foo')).toThrow('foo.wgsl:2: //#endif without //#if');
    expect(() => preprocessWgsl('//#else', {}, 'foo')).toThrow('foo.wgsl:1: //#else without //#if');
  });
});
