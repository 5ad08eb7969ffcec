// What the dataset report says about a bad file, as the page and the CLI show it: error counts that match the
// problems listed, figures with thousands separators, and one hint for a file in a common wrong format.
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../../src/data/dataset.ts';
import { ProblemLog, formatProblem } from '../../../src/data/problems.ts';
import { mistralTokenizer, utf8 } from './helpers.ts';

const lines = (n: number, f: (i: number) => string): string => Array.from({ length: n }, (_, i) => f(i)).join('\n');
const en = (n: number): string => n.toLocaleString('en-US');

describe('error counts', () => {
  it('counts the 20 bad rows of a file without usable rows as 20 errors; "no usable rows" is a note, not a 21st', async () => {
    const d = await loadDataset(utf8(lines(20, (i) => JSON.stringify({ prompt: `p${i}` }))));
    expect(d.ok).toBe(false);
    expect(d.summary.errors).toBe(20);
    expect(d.problems.errorCount).toBe(20);
    expect(d.problems.shown.filter((p) => p.severity === 'error').map((p) => p.line)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(d.problems.shown.at(-1)).toMatchObject({ line: null, severity: 'note', code: 'empty-file' });
    expect(formatProblem(d.problems.shown.at(-1)!)).toBe('file: note: no usable rows: every row has an error');
  });

  it('still counts an empty file as one error, about the file', async () => {
    const d = await loadDataset(utf8('\n  \n'));
    expect(d.ok).toBe(false);
    expect(d.summary.errors).toBe(1);
    expect(d.problems.shown).toMatchObject([{ line: null, severity: 'error', code: 'empty-file' }]);
  });

  it('counts a note it could not keep among the problems left out, not among the errors', () => {
    const log = new ProblemLog(1);
    log.error(1, 'invalid-json', 'invalid JSON: x');
    log.note(null, 'empty-file', 'no usable rows: every row has an error');
    expect(log.errorCount).toBe(1);
    expect(log.omitted).toBe(1);
    expect(log.hasErrors).toBe(true);
    expect(log.lines().at(-1)).toBe('… and 1 more problem not shown (1 error, 0 warnings in all)');
  });
});

describe('figures in problem messages', () => {
  it('writes token counts in a truncation warning with thousands separators', async () => {
    const tokenizer = await mistralTokenizer();
    const text = JSON.stringify({ text: 'word '.repeat(3000) });
    const full = (await loadDataset(utf8(text), { tokenizer, maxSeqLen: 100_000 })).examples[0].ids.length;
    expect(full).toBeGreaterThan(2000);
    const d = await loadDataset(utf8(text), { tokenizer, maxSeqLen: 1000 });
    expect(d.problems.shown.map(formatProblem)).toEqual([
      `line 1: warning: ${en(full)} tokens, longer than max_seq_len 1,000: truncated, ${en(full - 1000)} tokens lost`,
    ]);
  });

  it('writes the prompt length of a row left with nothing to learn with thousands separators', async () => {
    const tokenizer = await mistralTokenizer();
    const d = await loadDataset(utf8(JSON.stringify({ prompt: 'word '.repeat(3000), completion: 'ok' })), { tokenizer, layout: 'instruct', maxSeqLen: 1000 });
    const note = d.problems.shown.find((p) => p.code === 'no-loss-tokens');
    expect(note?.message).toMatch(/its prompt alone takes \d{1,3}(,\d{3})+ tokens\)$/);
  });

  it('writes the number of unknown fields with thousands separators', async () => {
    const row: Record<string, string> = { text: 'a' };
    for (let i = 0; i < 1500; i++) row[`f${i}`] = 'x';
    const d = await loadDataset(utf8(JSON.stringify(row)));
    expect(d.problems.shown[0].message).toMatch(/^unknown fields "f0", "f1", "f2", "f3", "f4", … \(1,500 in all\) ignored/);
  });

  it('writes the line length limit with thousands separators', async () => {
    const d = await loadDataset(utf8(`{"text": "${'x'.repeat(6000)}"}\n{"text": "ok"}`), { maxLineBytes: 5000 });
    expect(d.problems.shown.map(formatProblem)).toEqual(['line 1: line longer than 5,000 bytes; skipped (is this really JSONL, one object per line?)']);
  });
});

describe('a file in a common wrong format', () => {
  const JSON_ARRAY = 'this looks like a JSON array, not JSONL: write one JSON object per line';
  const CSV = 'this looks like CSV/TSV, not JSONL';

  it('says once that a pretty-printed JSON array is not JSONL, first, and keeps every line\'s own error', async () => {
    const text = ['[', '  {"prompt": "a", "completion": "b"},', '  {"prompt": "c", "completion": "d"}', ']'].join('\n');
    const d = await loadDataset(utf8(text));
    const hints = d.problems.shown.filter((p) => p.code === 'looks-like-json-array');
    expect(hints).toHaveLength(1);
    expect(d.problems.shown[0]).toMatchObject({ line: null, severity: 'note', code: 'looks-like-json-array' });
    expect(d.problems.shown[0].message).toContain(JSON_ARRAY);
    // The last element has no trailing comma: a valid row on its own line.
    expect(d.problems.shown.filter((p) => p.severity === 'error').map((p) => p.line)).toEqual([1, 2, 4]);
    expect(d.summary).toMatchObject({ rows: 1, errors: 3 });
  });

  it('says it of a one-line array after blank lines too, whose row error keeps its line', async () => {
    const d = await loadDataset(utf8('\n   [{"text": "a"}, {"text": "b"}]\n'));
    expect(d.problems.shown.map((p) => [p.line, p.severity, p.code])).toEqual([
      [null, 'note', 'looks-like-json-array'],
      [2, 'error', 'not-object'],
      [null, 'note', 'empty-file'],
    ]);
  });

  it('says once that a CSV or TSV file is not JSONL, first, and keeps every line\'s own error', async () => {
    for (const text of ['prompt,completion\nhello,world\n"a, b",false', 'prompt\tcompletion\nhello\tworld\nfoo\tfalse']) {
      const d = await loadDataset(utf8(text));
      expect(d.problems.shown[0]).toMatchObject({ line: null, severity: 'note', code: 'looks-like-csv' });
      expect(d.problems.shown[0].message).toContain(CSV);
      expect(d.problems.shown.filter((p) => p.code === 'looks-like-csv')).toHaveLength(1);
      expect(d.problems.shown.filter((p) => p.severity === 'error').map((p) => [p.line, p.code])).toEqual([
        [1, 'invalid-json'],
        [2, 'invalid-json'],
        [3, 'invalid-json'],
      ]);
      expect(d.summary.errors).toBe(3);
    }
  });

  it('gives no hint for a valid file, or for broken JSONL that is neither', async () => {
    const cases = [
      '{"text": "a, b"}\n{"text": "c\\td"}', // valid, commas and tabs inside strings
      '{"text": "a", }\n{"text": "b"}', // a trailing comma in an object: broken JSONL, not CSV
      'hello world\n{"text": "b"}', // no comma, no tab
      '{"text": "a"}\n[1, 2]\nx,y', // the array and the commas are not on the first line
    ];
    for (const text of cases) {
      const d = await loadDataset(utf8(text));
      expect(d.problems.shown.filter((p) => p.code === 'looks-like-json-array' || p.code === 'looks-like-csv')).toEqual([]);
    }
    expect((await loadDataset(utf8(cases[0]))).problems.shown).toEqual([]);
  });
});
