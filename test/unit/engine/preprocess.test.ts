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
  it('appends an included partial after the last line, once, so no line number moves', () => {
    const parts: Record<string, string> = { helpers: 'fn h() {}\nfn g() {}' };
    const src = ['a', '//#include helpers', 'b', '//#if X', '//#include helpers', '//#endif', 'c'].join('\n');
    const out = preprocessWgsl(src, { X: true }, 'k', (n) => parts[n]).split('\n');
    expect(out.slice(0, 7)).toEqual(['a', '//', 'b', '//', '//', '//', 'c']);
    expect(out.slice(7)).toEqual(['// ---- included from helpers.wgsl ----', 'fn h() {}', 'fn g() {}']);
  });

  it('ignores an include in an inactive block, and names the file and line of a missing one', () => {
    const src = ['//#if X', '//#include nothing', '//#endif', 'a'].join('\n');
    expect(preprocessWgsl(src, {}, 'k', () => undefined)).toBe(['//', '//', '//', 'a'].join('\n'));
    expect(() => preprocessWgsl('x\n//#include nothing', {}, 'k', () => undefined)).toThrow('k.wgsl:2: //#include nothing: no shaders/nothing.wgsl');
    expect(() => preprocessWgsl('//#include p', {}, 'k', () => '//#include q')).toThrow('p.wgsl: an included partial may not include another');
  });

  it("decides a partial's own blocks by the including file's defines, and names the partial in its errors", () => {
    const part = ['//#if X', 'fn x() {}', '//#else', 'fn notX() {}', '//#endif'].join('\n');
    const on = preprocessWgsl('a\n//#include p', { X: true }, 'k', () => part).split('\n');
    expect(on).toEqual(['a', '//', '// ---- included from p.wgsl ----', '//', 'fn x() {}', '//', '//', '//']);
    const off = preprocessWgsl('a\n//#include p', {}, 'k', () => part).split('\n');
    expect(off.filter((l) => l.startsWith('fn'))).toEqual(['fn notX() {}']);
    expect(() => preprocessWgsl('//#include p', {}, 'k', () => '//#if X\n')).toThrow('p.wgsl:1: //#if is never closed');
  });

  it('writes an //#unroll block out once per index on its own line, so no other line moves', () => {
    const src = ['a', '//#unroll k 3', '  acc$(k) = acc$(k) + x[$(k)u]; // a comment that must not swallow the next copy', '//#if X', '  y$(k) = 1;', '//#endif', '//#endunroll', 'b'].join('\n');
    const out = preprocessWgsl(src, { X: true }, 'k').split('\n');
    expect(out).toHaveLength(8);
    expect(out[0]).toBe('a');
    expect(out[1]).toBe('acc0 = acc0 + x[0u]; y0 = 1; acc1 = acc1 + x[1u]; y1 = 1; acc2 = acc2 + x[2u]; y2 = 1;');
    expect(out.slice(2, 7)).toEqual(['//', '//', '//', '//', '//']);
    expect(out[7]).toBe('b');
    // The //#if inside decides its lines before the copies are made.
    expect(preprocessWgsl(src, {}, 'k').split('\n')[1]).toBe('acc0 = acc0 + x[0u]; acc1 = acc1 + x[1u]; acc2 = acc2 + x[2u];');
    // In an inactive branch the whole block is blank.
    expect(preprocessWgsl(['//#if X', '//#unroll k 2', 'v$(k);', '//#endunroll', '//#endif'].join('\n'), {}, 'k')).toBe('//\n//\n//\n//\n//');
  });

  it('takes a second //#unroll count where its define is set', () => {
    const src = ['//#unroll k 2 DEEP 3', 'v$(k);', '//#endunroll'].join('\n');
    expect(preprocessWgsl(src, {}, 'd')).toBe('v0; v1;\n//\n//');
    expect(preprocessWgsl(src, { DEEP: true }, 'd')).toBe('v0; v1; v2;\n//\n//');
    expect(() => preprocessWgsl('//#unroll k 2 DEEP 99\nx\n//#endunroll', {}, 'd')).toThrow('d.wgsl:1: //#unroll k 99: the count must be 1 … 64');
    expect(() => preprocessWgsl('//#unroll k 2 DEEP\nx\n//#endunroll', {}, 'd')).toThrow('d.wgsl:1: //#unroll needs a name and a count');
  });

  it('refuses a malformed //#unroll with the file and line', () => {
    expect(() => preprocessWgsl('//#unroll k\nx\n//#endunroll', {}, 'm')).toThrow('m.wgsl:1: //#unroll needs a name and a count');
    expect(() => preprocessWgsl('//#unroll k 0\nx\n//#endunroll', {}, 'm')).toThrow('m.wgsl:1: //#unroll k 0: the count must be 1 … 64');
    expect(() => preprocessWgsl('//#unroll k 65\nx\n//#endunroll', {}, 'm')).toThrow('the count must be 1 … 64');
    expect(() => preprocessWgsl('//#unroll k 2\nx', {}, 'm')).toThrow('m.wgsl:1: //#unroll is never closed');
    expect(() => preprocessWgsl('x\n//#endunroll', {}, 'm')).toThrow('m.wgsl:2: //#endunroll without //#unroll');
    expect(() => preprocessWgsl('//#unroll k 2\n//#unroll j 2\n//#endunroll\n//#endunroll', {}, 'm')).toThrow('m.wgsl:2: //#unroll inside the //#unroll of line 1');
    expect(() => preprocessWgsl('//#unroll k 2\nv$(j);\n//#endunroll', {}, 'm')).toThrow('m.wgsl:1: $(j) inside //#unroll k');
    expect(() => preprocessWgsl('a\nv$(k);', {}, 'm')).toThrow('m.wgsl:2: $(k) outside any //#unroll');
  });
});
