import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HISTOGRAM_MAX_BINS, lengthHistogram, loadDataset } from '../../../src/data/dataset.ts';
import { ProblemLog, formatProblem } from '../../../src/data/problems.ts';
import { RowChecker } from '../../../src/data/rows.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { chunked, fixtureBytes, golden, mistralTokenizer, utf8 } from './helpers.ts';

function check(values: unknown[]): { rows: unknown[]; problems: string[] } {
  const log = new ProblemLog();
  const checker = new RowChecker();
  const rows = values.map((v, i) => checker.check(v, i + 1, log));
  return { rows, problems: log.shown.map(formatProblem) };
}

describe('row rules', () => {
  it('accepts {"text"} and {"prompt","completion"} rows', () => {
    expect(check([{ text: 'a' }]).rows).toEqual([{ line: 1, shape: 'text', text: 'a' }]);
    expect(check([{ prompt: 'p', completion: 'c' }]).rows).toEqual([{ line: 1, shape: 'prompt_completion', prompt: 'p', completion: 'c' }]);
  });

  const errors: [unknown, RegExp][] = [
    [[1], /must be a JSON object.*got an array/],
    ['text', /must be a JSON object.*got a string/],
    [null, /got null/],
    [42, /got a number/],
    [{}, /needs "text", or "prompt" and "completion"; found an empty object/],
    [{ title: 'x' }, /found fields "title"$/],
    [{ messages: [{ role: 'user', content: 'hi' }] }, /found fields "messages" \(chat rows, "messages", are not read: write a single exchange as \{"prompt": the user's turn, "completion": the assistant's reply\}/],
    [{ conversations: [] }, /\(chat rows, "conversations", are not read/],
    [{ instruction: 'i', input: 'x', output: 'o' }, /\(an Alpaca-style row: put "instruction" and "input" into "prompt" and "output" into "completion"\)$/],
    [{ instruction: 'i', response: 'o' }, /put "instruction" into "prompt" and "response" into "completion"\)$/],
    [{ question: 'q', answer: 'a' }, /\(rename "question" to "prompt" and "answer" to "completion"\)$/],
    [{ input: 'q', output: 'a' }, /\(rename "input" to "prompt" and "output" to "completion"\)$/],
    [{ prompt: 'p' }, /missing "completion" \(a row with "prompt" needs "completion"\)$/],
    [{ prompt: 'p', response: 'r' }, /missing "completion" \(a row with "prompt" needs "completion"; rename "response" to "completion"\)$/],
    [{ completion: 'c' }, /missing "prompt"/],
    [{ text: 't', completion: 'c' }, /either "text" or "prompt" \+ "completion", not both/],
    [{ text: 5 }, /"text" must be a string, got a number/],
    [{ prompt: 'p', completion: ['c'] }, /"completion" must be a string, got an array/],
    [{ prompt: 'p', completion: null }, /"completion" must be a string, got null/],
    [{ text: '' }, /"text" is empty/],
    [{ prompt: 'p', completion: '' }, /"completion" is empty/],
  ];
  for (const [value, message] of errors) {
    it(`refuses ${JSON.stringify(value)}`, () => {
      const r = check([value]);
      expect(r.rows).toEqual([null]);
      expect(r.problems).toHaveLength(1);
      expect(r.problems[0]).toMatch(/^line 1: /);
      expect(r.problems[0]).toMatch(message);
    });
  }

  it('warns about unknown fields and whitespace-only strings but keeps the row', () => {
    const r = check([{ text: 'a', id: 1, meta: {} }, { text: '   ' }]);
    expect(r.rows.every((x) => x !== null)).toBe(true);
    expect(r.problems).toEqual([
      'line 1: warning: unknown fields "id", "meta" ignored (rows use "text")',
      'line 2: warning: "text" holds only whitespace',
    ]);
  });

  it('refuses rows of the other shape once the file has one', () => {
    const r = check([{ prompt: 'p', completion: 'c' }, { text: 't' }, { prompt: 'q', completion: 'd' }]);
    expect(r.rows[1]).toBeNull();
    expect(r.rows[2]).not.toBeNull();
    expect(r.problems).toEqual(['line 2: this row is {"text"} but the file\'s rows are {"prompt", "completion"} (since line 1); use one shape per file']);
  });
});

describe('length histogram', () => {
  it('bins lengths in 1, 2, 5 × 10^k tokens, a bin’s upper edge inside it, rows over max_seq_len apart', () => {
    // Longest 2,000: 2,000 / 40 = 50 a bin, 40 bins; 50 is bin 0's last length, 51 bin 1's first.
    const h = lengthHistogram([1, 50, 51, 100, 1024, 1025, 2000], 1024);
    expect(h.binWidth).toBe(50);
    expect(h.fits.length).toBe(40);
    expect(h.fits[0]).toBe(2);
    expect(h.fits[1]).toBe(2);
    // 1024 fits max_seq_len (bin 20: 1001–1050), 1025 in the same bin is truncated, 2000 the last bin's last length.
    expect(h.fits[20]).toBe(1);
    expect(h.truncated[20]).toBe(1);
    expect(h.truncated[39]).toBe(1);
    expect(h.fits.reduce((a, b) => a + b) + h.truncated.reduce((a, b) => a + b)).toBe(7);
    // Never more than HISTOGRAM_MAX_BINS, whatever the longest row.
    for (const longest of [1, 7, 39, 40, 41, 99, 401, 4096, 32_768, 1_000_003]) {
      const g = lengthHistogram([longest], 4096);
      expect(g.fits.length, `longest ${longest}`).toBeLessThanOrEqual(HISTOGRAM_MAX_BINS);
      expect(g.fits.length * g.binWidth).toBeGreaterThanOrEqual(longest);
      expect([1, 2, 5]).toContain(g.binWidth / 10 ** Math.floor(Math.log10(g.binWidth)));
    }
    // No rows: one empty bin.
    expect(lengthHistogram([], 16)).toEqual({ binWidth: 1, fits: [0], truncated: [0] });
  });
});

describe('loadDataset', () => {
  it('tokenises a valid file in the replicate layout and summarises it', async () => {
    const tokenizer = await mistralTokenizer();
    const g = golden().formats.replicate.examples;
    const d = await loadDataset(fixtureBytes('prompt_completion.jsonl'), { tokenizer });
    expect(d.ok).toBe(true);
    expect(d.examples.map((e) => e.line)).toEqual([1, 2, 3]);
    expect(Array.from(d.examples[0].ids)).toEqual(g[0].ids);
    expect(Array.from(d.examples[1].ids)).toEqual(g[1].ids);
    const lengths = d.examples.map((e) => e.ids.length);
    const sorted = [...lengths].sort((a, b) => a - b);
    expect(d.summary).toMatchObject({
      rows: 3,
      rejectedRows: 0,
      shape: 'prompt_completion',
      layout: 'replicate',
      maxSeqLen: 4096,
      rowsTruncated: 0,
      tokensLost: 0,
      errors: 0,
      warnings: 1,
      tokens: { total: lengths.reduce((a, b) => a + b), min: sorted[0], median: sorted[1], max: sorted[2], lossTokens: lengths.reduce((a, b) => a + b - 1, 0) },
    });
    expect(d.problems.shown[0]).toMatchObject({ line: 3, code: 'unknown-fields', severity: 'warning' });
  });

  it('uses the instruct layout: loss on the completion only', async () => {
    const tokenizer = await mistralTokenizer();
    const g = golden().formats.instruct.examples;
    const d = await loadDataset(fixtureBytes('prompt_completion.jsonl'), { tokenizer, layout: 'instruct' });
    expect(Array.from(d.examples[0].ids)).toEqual([...g[0].prompt_ids, ...g[0].completion_ids]);
    expect(d.examples[0].lossStart).toBe(g[0].prompt_ids.length);
    expect(d.summary.tokens?.lossTokens).toBe(d.examples.reduce((a, e) => a + e.ids.length - e.lossStart, 0));
  });

  it('refuses the instruct layout on text rows, once, at the first row', async () => {
    const tokenizer = await mistralTokenizer();
    const d = await loadDataset(fixtureBytes('text_crlf_bom.jsonl'), { tokenizer, layout: 'instruct' });
    expect(d.ok).toBe(false);
    expect(d.problems.shown.map(formatProblem)).toEqual([
      'line 1: the instruct layout needs rows with "prompt" and "completion"; this file has "text" rows (use the replicate layout)',
      // Not "every row has an error": the one refusal stands for the file's text rows.
      'file: note: no usable rows: the instruct layout takes prompt/completion rows only',
    ]);
    expect(d.summary.errors).toBe(1);
  });

  it('warns about rows longer than max_seq_len: truncated, how many tokens lost', async () => {
    const tokenizer = await mistralTokenizer();
    const full = await loadDataset(fixtureBytes('prompt_completion.jsonl'), { tokenizer });
    const lengths = full.examples.map((e) => e.ids.length); // 13, 29, 8
    const d = await loadDataset(fixtureBytes('prompt_completion.jsonl'), { tokenizer, maxSeqLen: 12 });
    expect(d.ok).toBe(true);
    expect(d.examples.map((e) => e.ids.length)).toEqual(lengths.map((n) => Math.min(n, 12)));
    expect(d.summary.rowsTruncated).toBe(lengths.filter((n) => n > 12).length);
    expect(d.summary.tokensLost).toBe(lengths.reduce((a, n) => a + Math.max(0, n - 12), 0));
    // Each row's length before truncation, whatever max_seq_len cut (the remote estimate cuts them at 4096 itself).
    expect([...d.lengths]).toEqual(lengths);
    expect([...full.lengths]).toEqual(lengths);
    // The histogram counts the rows by their length before truncation, the truncated ones apart: 13 and 29 tokens
    // over max_seq_len 12 in bins of 1 token (29 / 40 rounds up to 1).
    const hist = d.summary.tokens!.histogram;
    expect(hist.binWidth).toBe(1);
    expect(hist.fits.length).toBe(Math.max(...lengths));
    lengths.forEach((n) => expect((n > 12 ? hist.truncated : hist.fits)[n - 1]).toBeGreaterThan(0));
    expect(hist.truncated.reduce((a, b) => a + b)).toBe(d.summary.rowsTruncated);
    expect(hist.fits.reduce((a, b) => a + b) + hist.truncated.reduce((a, b) => a + b)).toBe(d.summary.rows);
    const truncated = d.problems.shown.filter((p) => p.code === 'truncated').map(formatProblem);
    expect(truncated).toEqual([
      `line 1: warning: ${lengths[0]} tokens, longer than max_seq_len 12: truncated, ${lengths[0] - 12} tokens lost`,
      `line 2: warning: ${lengths[1]} tokens, longer than max_seq_len 12: truncated, ${lengths[1] - 12} tokens lost`,
    ]);
  });

  it('warns when truncation leaves nothing of an instruct completion', async () => {
    const tokenizer = await mistralTokenizer();
    const d = await loadDataset(fixtureBytes('prompt_completion.jsonl'), { tokenizer, layout: 'instruct', maxSeqLen: 10 });
    expect(d.problems.shown.filter((p) => p.code === 'no-loss-tokens').map((p) => p.line)).toEqual([1, 2, 3]);
  });

  it('says why a row cut to one token has nothing to learn from (it said "its prompt alone takes 0 tokens")', async () => {
    const d = await loadDataset(utf8('{"text": "hello world"}\n'), { tokenizer: await mistralTokenizer(), maxSeqLen: 1 });
    expect(d.problems.shown.filter((p) => p.code === 'no-loss-tokens').map(formatProblem)).toEqual([
      'line 1: warning: after truncation at 1 token nothing is left to learn from (a token is learned from the one before it)',
    ]);
  });

  it('warns that the text "<s>" or "</s>" in a row is trained as characters, not as the special token', async () => {
    const rows = ['{"text": "<s>[INST] hi [/INST] yo</s>"}', '{"text": "plain"}', '{"text": "a <unk> b"}'].join('\n');
    const d = await loadDataset(utf8(rows), { tokenizer: await mistralTokenizer() });
    expect(d.ok).toBe(true);
    expect(d.problems.shown.filter((p) => p.code === 'special-token-text').map(formatProblem)).toEqual([
      // Every one the field holds, in one warning (it named </s> alone, and the next run warned of <s>).
      'line 1: warning: "text" holds the texts </s> and <s>: they are trained as those characters, not as the end-of-sequence and beginning-of-sequence tokens (the layout adds <s> and </s> itself); remove them',
      'line 3: warning: "text" holds the text <unk>: it is trained as those characters, not as the unknown token (the layout adds <s> and </s> itself); remove it',
    ]);
  });

  it('refuses a string holding half of a UTF-16 surrogate pair: no Unicode character, no UTF-8 form (it was trained as U+FFFD)', async () => {
    // JSON can escape one half of a pair alone; JSON.parse keeps it, TextEncoder writes it as U+FFFD, and Python's
    // tokenizer (Replicate's trainer) fails to encode it. A whole pair (an emoji) is a character like any other.
    const rows = ['{"text": "ok \\ud83d\\ude00 pair"}', '{"prompt": "a\\ud800b", "completion": "c"}', '{"text": "tail \\udfff"}'].join('\n');
    const d = await loadDataset(utf8(rows), { tokenizer: await mistralTokenizer() });
    expect(d.problems.shown.filter((p) => p.code === 'unpaired-surrogate').map(formatProblem)).toEqual([
      'line 2: "prompt" holds \\ud800 at character 2, half of a UTF-16 surrogate pair without its other half: it is no Unicode character and has no UTF-8 form (Python\'s tokenizer, as Replicate\'s trainer runs it, fails on it); remove it or write the whole character',
      'line 3: "text" holds \\udfff at character 6, half of a UTF-16 surrogate pair without its other half: it is no Unicode character and has no UTF-8 form (Python\'s tokenizer, as Replicate\'s trainer runs it, fails on it); remove it or write the whole character',
    ]);
    expect(d.summary).toMatchObject({ rejectedRows: 2, errors: 2 });
    expect(d.examples.map((e) => e.line)).toEqual([1]);
  });

  it('reports every problem of a bad file with its line, and counts rejected rows', async () => {
    const d = await loadDataset(fixtureBytes('problems.jsonl'), { tokenizer: await mistralTokenizer() });
    expect(d.ok).toBe(false);
    expect(d.problems.shown.map((p) => [p.line, p.code, p.severity])).toEqual([
      [2, 'invalid-json', 'error'],
      [3, 'not-object', 'error'],
      [4, 'missing-field', 'error'],
      [5, 'not-string', 'error'],
      [6, 'empty-string', 'error'],
      [8, 'mixed-shapes', 'error'],
      [9, 'both-shapes', 'error'],
      [10, 'no-fields', 'error'],
      [11, 'invalid-json', 'error'],
      [12, 'unknown-fields', 'warning'],
      [13, 'invalid-json', 'error'],
    ]);
    expect(d.summary).toMatchObject({ rows: 2, rejectedRows: 10, lines: 13, errors: 10, warnings: 1 });
    expect(d.examples.map((e) => e.line)).toEqual([1, 12]);
  });

  it('caps the problems it keeps and counts the rest', async () => {
    const text = Array.from({ length: 250 }, (_, i) => (i % 2 ? '{"text": "ok"}' : 'not json')).join('\n');
    const d = await loadDataset(utf8(text), { maxProblems: 20 });
    expect(d.problems.shown).toHaveLength(20);
    expect(d.problems.errorCount).toBe(125);
    expect(d.problems.omitted).toBe(105);
    const lines = d.problems.lines();
    expect(lines).toHaveLength(21);
    expect(lines[20]).toBe('… and 105 more problems not shown (125 errors, 0 warnings in all)');
    expect(d.summary.rows).toBe(125);
  });

  it('calls an empty file or one of blank lines an error, about the file', async () => {
    for (const f of ['empty.jsonl', 'blank_lines.jsonl']) {
      const d = await loadDataset(fixtureBytes(f));
      expect(d.ok).toBe(false);
      expect(d.problems.shown.map(formatProblem)).toEqual(['file: the file has no rows (it is empty or holds only blank lines); expected one JSON object per line']);
    }
  });

  it('refuses a max_seq_len that is not a positive integer', async () => {
    await expect(loadDataset(utf8('{"text": "a"}'), { maxSeqLen: 0 })).rejects.toThrow(/max_seq_len must be a positive integer, got 0/);
  });

  it('validates without a tokenizer (no token counts) and can keep the rows', async () => {
    const d = await loadDataset(fixtureBytes('text_crlf_bom.jsonl'), { keepRows: true });
    expect(d.ok).toBe(true);
    expect(d.summary.tokens).toBeNull();
    expect(d.examples).toEqual([]);
    expect(d.lengths).toEqual(new Uint32Array(0));
    expect(d.rows.map((r) => r.line)).toEqual([1, 3, 5]);
  });

  it('never throws anything but bad-input on random bytes or mutated valid files, and names only real lines (fuzz)', async () => {
    const tokenizer = await mistralTokenizer();
    const valid = [fixtureBytes('prompt_completion.jsonl'), fixtureBytes('text_crlf_bom.jsonl'), fixtureBytes('problems.jsonl')];
    const mutated = fc
      .tuple(fc.nat(valid.length - 1), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 8 }))
      .map(([k, edits]) => {
        const bytes = Array.from(valid[k]);
        for (const [at, b, op] of edits) {
          const i = at % (bytes.length + 1);
          if (op === 'set' && i < bytes.length) bytes[i] = b;
          else if (op === 'insert') bytes.splice(i, 0, b);
          else bytes.splice(i, 1);
        }
        return Uint8Array.from(bytes);
      });
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated), fc.array(fc.nat(400), { maxLength: 5 }), fc.integer({ min: 1, max: 64 }), async (bytes, cuts, maxSeqLen) => {
        let lineCount = 1;
        for (const b of bytes) if (b === 0x0a) lineCount++;
        try {
          const d = await loadDataset(chunked(bytes, cuts), { tokenizer, maxSeqLen, layout: maxSeqLen % 2 ? 'replicate' : 'instruct', maxProblems: 1000 });
          for (const p of d.problems.shown) {
            if (p.line !== null) {
              expect(p.line).toBeGreaterThanOrEqual(1);
              expect(p.line).toBeLessThanOrEqual(lineCount);
            } else expect(['empty-file', 'not-text', 'looks-like-json-array', 'looks-like-csv']).toContain(p.code);
            if (p.column !== undefined) expect(p.column).toBeGreaterThanOrEqual(1);
          }
          for (const e of d.examples) {
            expect(e.ids.length).toBeGreaterThan(0);
            expect(e.ids.length).toBeLessThanOrEqual(maxSeqLen);
          }
          expect(d.ok).toBe(d.problems.errorCount === 0);
        } catch (e) {
          expect(e).toBeInstanceOf(FinetuneError);
          expect((e as FinetuneError).kind).toBe('bad-input');
        }
      }),
      { numRuns: 400 },
    );
  });
});
