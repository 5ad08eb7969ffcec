import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFinetuneError } from '../../../src/core/errors.ts';
import { firstInvalidUtf8, readJsonl, type ByteSource, type JsonlLine, type ReadCounters } from '../../../src/data/jsonl.ts';
import { ProblemLog, type Problem } from '../../../src/data/problems.ts';
import { chunked, fixtureBytes, streamOf, utf8 } from './helpers.ts';

async function readAll(source: ByteSource, maxLineBytes?: number): Promise<{ rows: JsonlLine[]; problems: Problem[]; counters: ReadCounters }> {
  const log = new ProblemLog(10_000);
  const rows: JsonlLine[] = [];
  const counters: ReadCounters = { lines: 0, contentLines: 0, bytes: 0 };
  for await (const r of readJsonl(source, log, { maxLineBytes, counters })) rows.push(r);
  return { rows, problems: log.shown, counters };
}

describe('streaming JSONL reader', () => {
  it('reads UTF-8 with a BOM, CRLF line ends, blank lines and no final newline, with editor line numbers', async () => {
    const { rows, problems, counters } = await readAll(fixtureBytes('text_crlf_bom.jsonl'));
    expect(problems).toEqual([]);
    expect(rows).toEqual([
      { line: 1, value: { text: 'The quick brown fox.' } },
      { line: 3, value: { text: 'naïve café 東京' } },
      { line: 5, value: { text: 'def f(x):\n    return x' } },
    ]);
    expect(counters).toEqual({ lines: 5, contentLines: 3, bytes: 112 });
  });

  it('reports invalid JSON with its line and column and keeps reading', async () => {
    const { rows, problems } = await readAll(fixtureBytes('problems.jsonl'));
    const json = problems.filter((p) => p.code === 'invalid-json').map((p) => [p.line, p.column]);
    expect(json).toEqual([
      [2, 48],
      [11, 2],
      [13, 35],
    ]);
    expect(rows.map((r) => r.line)).toEqual([1, 3, 4, 5, 6, 8, 9, 10, 12]);
  });

  it('reports invalid UTF-8 with the line and the column of the first bad byte', async () => {
    const { rows, problems } = await readAll(fixtureBytes('bad_utf8.jsonl'));
    expect(rows.map((r) => r.line)).toEqual([1, 3]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ line: 2, column: 13, code: 'invalid-utf8', severity: 'error' });
    expect(problems[0].message).toMatch(/byte 13 .*0x80/);
  });

  it('strips a BOM only at the start of the file', async () => {
    const { rows, problems } = await readAll(utf8('{"a": 1}\n\ufeff{"b": 2}\n'));
    expect(rows).toEqual([{ line: 1, value: { a: 1 } }]);
    expect(problems[0]).toMatchObject({ line: 2, column: 1, code: 'invalid-json' });
  });

  it('skips a line longer than the limit without buffering it, and goes on', async () => {
    const long = `{"text": "${'x'.repeat(5000)}"}`;
    const bytes = utf8(`{"a": 1}\n${long}\n{"b": 2}\n${long}`);
    for (const size of [7, 100, 4096, bytes.length]) {
      const { rows, problems } = await readAll(streamOf(bytes, size), 1000);
      expect(rows).toEqual([
        { line: 1, value: { a: 1 } },
        { line: 3, value: { b: 2 } },
      ]);
      expect(problems.map((p) => [p.line, p.code])).toEqual([
        [2, 'line-too-long'],
        [4, 'line-too-long'],
      ]);
    }
  });

  it('reads a WHATWG ReadableStream, a sync iterable and a Uint8Array alike', async () => {
    const bytes = fixtureBytes('prompt_completion.jsonl');
    const a = await readAll(streamOf(bytes, 5));
    const b = await readAll([bytes.slice(0, 10), bytes.slice(10)]);
    const c = await readAll(bytes);
    expect(a.rows).toHaveLength(3);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it('turns a failing stream into bad-input, naming where it stopped', async () => {
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield utf8('{"a": 1}\n{"b"');
      throw new Error('disk on fire');
    }
    const err = await readAll(failing()).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isFinetuneError(err, 'bad-input')).toBe(true);
    expect((err as Error).message).toMatch(/byte 13 \(line 2\): disk on fire/);
  });

  it('streams: rows come out while the source is still producing (an endless source is fine)', async () => {
    let produced = 0;
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) {
        produced++;
        yield utf8(`{"text": "row ${produced}"}\n{"text": "more`); // each chunk ends mid-line
        yield utf8(` ${produced}"}\n`);
      }
    }
    const log = new ProblemLog();
    const seen: JsonlLine[] = [];
    for await (const r of readJsonl(endless(), log)) {
      seen.push(r);
      if (seen.length === 2000) break;
    }
    expect(log.total).toBe(0);
    expect(seen[1999]).toEqual({ line: 2000, value: { text: 'more 1000' } });
    expect(produced).toBeLessThanOrEqual(1001);
  });

  it('gives the same rows and problems however the bytes are cut into chunks (property)', async () => {
    const files = ['text_crlf_bom.jsonl', 'problems.jsonl', 'bad_utf8.jsonl', 'prompt_completion.jsonl'].map(fixtureBytes);
    const whole = await Promise.all(files.map((f) => readAll(f)));
    await fc.assert(
      fc.asyncProperty(fc.nat(files.length - 1), fc.array(fc.nat(500), { maxLength: 40 }), async (k, cuts) => {
        const r = await readAll(chunked(files[k], cuts));
        expect(r).toEqual(whole[k]);
      }),
      { numRuns: 200 },
    );
  });

  it('loses and duplicates no row, and every problem names the line it is on (property)', async () => {
    type Line = { kind: 'row'; value: Record<string, string> } | { kind: 'blank'; text: string } | { kind: 'bad'; text: string };
    const line: fc.Arbitrary<Line> = fc.oneof(
      fc.record({ kind: fc.constant('row' as const), value: fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 20 }), { maxKeys: 3 }) }),
      fc.record({ kind: fc.constant('blank' as const), text: fc.constantFrom('', ' ', '\t', '  \t ') }),
      fc.record({ kind: fc.constant('bad' as const), text: fc.constantFrom('{', '{"a":}', 'nope', "{'a': 1}", '[1,]', '{"a": "b"} x') }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 30 }), fc.boolean(), fc.array(fc.nat(2000), { maxLength: 10 }), async (lines, crlf, cuts) => {
        const eol = crlf ? '\r\n' : '\n';
        const text = lines.map((l) => (l.kind === 'row' ? JSON.stringify(l.value) : l.text)).join(eol);
        const { rows, problems } = await readAll(chunked(utf8(text), cuts));
        const expected = lines.flatMap((l, i) => (l.kind === 'row' ? [{ line: i + 1, value: l.value }] : []));
        expect(rows).toEqual(expected);
        const badLines = lines.flatMap((l, i) => (l.kind === 'bad' ? [i + 1] : []));
        expect(problems.filter((p) => p.severity !== 'note').map((p) => p.line)).toEqual(badLines);
        // A note (a first line like '[1,]' looks like a JSON array) is about the file, and said at most once.
        const notes = problems.filter((p) => p.severity === 'note');
        expect(notes.length).toBeLessThanOrEqual(1);
        for (const n of notes) expect(n.line).toBeNull();
      }),
      { numRuns: 300 },
    );
  });
});

describe('UTF-8 validation', () => {
  it('agrees with a fatal TextDecoder on arbitrary bytes (property)', () => {
    const fatal = new TextDecoder('utf-8', { fatal: true });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        let valid = true;
        try {
          fatal.decode(bytes);
        } catch {
          valid = false;
        }
        const bad = firstInvalidUtf8(bytes);
        expect(bad === -1).toBe(valid);
        // Everything before the reported byte is well-formed.
        if (bad >= 0) expect(() => fatal.decode(bytes.subarray(0, bad))).not.toThrow();
      }),
      { numRuns: 5000 },
    );
  });

  it('rejects overlong forms, surrogates and code points above U+10FFFF', () => {
    expect(firstInvalidUtf8(new Uint8Array([0x41, 0xc0, 0x80]))).toBe(1);
    expect(firstInvalidUtf8(new Uint8Array([0xe0, 0x80, 0x80]))).toBe(0);
    expect(firstInvalidUtf8(new Uint8Array([0xed, 0xa0, 0x80]))).toBe(0);
    expect(firstInvalidUtf8(new Uint8Array([0xf4, 0x90, 0x80, 0x80]))).toBe(0);
    expect(firstInvalidUtf8(utf8('ok é 東 🤗'))).toBe(-1);
    expect(firstInvalidUtf8(new Uint8Array([0x61, 0xe6, 0x9d]))).toBe(1);
  });
});

describe('a file that is not text', () => {
  // A PNG: signature, IHDR, then compressed bytes with many LFs and much invalid UTF-8 — formerly one error per "line".
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, ...Array.from({ length: 20_000 }, (_, i) => (i * 37 + 0x80) & 0xff)]);

  it('is reported once as not-text, whatever the chunking, and nothing of it is read as lines', async () => {
    for (const source of [png, chunked(png, [3, 5, 7, 700, 1500]), streamOf(png, 100)]) {
      const { rows, problems, counters } = await readAll(source);
      expect(rows).toEqual([]);
      expect(problems).toEqual([{ line: null, severity: 'error', code: 'not-text', message: expect.stringContaining('this is not a JSONL text file') }]);
      expect(counters.notText).toBe(true);
    }
  });

  it('gives the dataset report one error, not one per line', async () => {
    const { loadDataset } = await import('../../../src/data/dataset.ts');
    const d = await loadDataset(png);
    expect(d.ok).toBe(false);
    expect(d.problems.lines()).toEqual(['file: this is not a JSONL text file: it holds binary data (an image, an archive, UTF-16 text…); expected UTF-8 text, one JSON object per line']);
  });

  it('a stray NUL byte in the first kilobyte is that line\'s error, with its column, not "binary data"', async () => {
    const text = `{"text":"a"}\n{"text":"b"}\n{"text":"c\u0000d"}\n{"text":"e"}\n`.replace('\\u0000', '\u0000');
    const { rows, problems } = await readAll(chunked(utf8(text), [5, 17]));
    expect(rows).toHaveLength(3);
    expect(problems).toEqual([expect.objectContaining({ line: 3, column: 11, code: 'invalid-json', message: 'invalid JSON: control character U+0000 inside a string' })]);
    // UTF-16 (a BOM, or NULs in every other byte without one) and binary data stay one not-text problem.
    const utf16 = (s: string, bom: boolean) => new Uint8Array([...(bom ? [0xff, 0xfe] : []), ...[...s].flatMap((c) => [c.charCodeAt(0), 0])]);
    for (const bytes of [utf16('{"text":"a"}\n', true), utf16('{"text":"a"}\n', false), new Uint8Array([0x7b, 0, 0, 0, 0, 0x7d])]) {
      expect((await readAll(bytes)).problems.map((p) => p.code)).toEqual(['not-text']);
    }
  });

  it('lone CR line ends (classic Mac OS) are said once, before the error of the one "line" they make', async () => {
    const { loadDataset } = await import('../../../src/data/dataset.ts');
    const d = await loadDataset(utf8('{"text":"a"}\r{"text":"b"}\r{"text": x}\r'));
    expect(d.problems.lines()).toEqual([
      'file: note: this file ends its lines with a lone carriage return (CR, as classic Mac OS did), so it reads as one line: save it with LF (or CRLF) line ends',
      "line 1, column 14: invalid JSON: unexpected '{' after the end of the JSON value (one object per line)",
      'file: note: no usable rows: every row has an error',
    ]);
    // CRLF is read as it always was.
    expect((await loadDataset(utf8('{"text":"a"}\r\n{"text":"b"}\r\n'))).ok).toBe(true);
  });

  it('text with a NUL byte past the first kilobyte is still read line by line', async () => {
    const text = utf8(`${'{"text":"a"}\n'.repeat(100)}{"text":"b"}\n`);
    const withNul = new Uint8Array([...text, 0, 0x0a]);
    const { rows, problems } = await readAll(chunked(withNul, [10, 20]));
    expect(rows).toHaveLength(101);
    expect(problems.map((p) => p.code)).toEqual(['invalid-json']);
  });
});
