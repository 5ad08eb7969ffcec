import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { DATA, FIXTURES, golden } from './helpers.ts';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

const dir = mkdtempSync(join(tmpdir(), 'finetune-cli-'));

/** A folder whose tokenizer.model is 64 bytes of protobuf nonsense. */
function brokenTokenizer(): string {
  const folder = join(dir, 'broken-tok');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'tokenizer.model'), new Uint8Array(64).fill(0xff));
  return folder;
}
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('finetune validate', () => {
  it('prints a JSON summary with token counts and exits 0 for a good file', async () => {
    const c = capture();
    expect(await main(['validate', `${DATA}/prompt_completion.jsonl`], c.io)).toBe(0);
    const s = JSON.parse(c.out.join('\n'));
    const ids = golden().formats.replicate.examples.map((e) => e.ids.length); // rows 1 and 2 are the golden ones
    expect(s).toMatchObject({ rows: 3, shape: 'prompt_completion', layout: 'replicate', max_seq_len: 4096, rows_truncated: 0, tokens_lost: 0, warnings: 1 });
    expect(s.tokens.max).toBe(ids[1]);
    expect(s.tokens.median).toBe(ids[0]);
    expect(s.warning_lines).toEqual(['line 3: warning: unknown field "source" ignored (rows use "prompt" and "completion")']);
    expect(c.err).toEqual(s.warning_lines);
  });

  it('says on stderr how far a large file is read (an 81 MB file once took 16 s in silence)', async () => {
    const line = `${JSON.stringify({ prompt: `Question: ${'lorem ipsum dolor sit amet '.repeat(8)}`, completion: 'answer '.repeat(20) })}\n`;
    const file = join(dir, 'big.jsonl');
    writeFileSync(file, line.repeat(Math.ceil(24e6 / line.length)));
    const c = capture();
    expect(await main(['validate', file], c.io)).toBe(0);
    const progress = c.err.filter((l) => l.startsWith('reading '));
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0]).toMatch(/^reading ".+big\.jsonl": [\d.]+ MiB \/ 22\.9 MiB \(\d+ %\) · [\d.]+ MB\/s/);
    expect(progress.at(-1)).toMatch(/: 22\.9 MiB \/ 22\.9 MiB \(100 %\)/);
    expect(JSON.parse(c.out.join('\n')).rows).toBe(Math.ceil(24e6 / line.length));
  }, 120_000);

  it('prints one line per problem and exits 1 for a bad file', async () => {
    const c = capture();
    expect(await main(['validate', `${DATA}/problems.jsonl`], c.io)).toBe(1);
    expect(c.out).toEqual([]);
    expect(c.err.slice(0, 3)).toEqual([
      "line 2, column 48: invalid JSON: the line ends inside an object: expected ',' or '}'",
      'line 3: a row must be a JSON object like {"text": "..."} or {"prompt": "...", "completion": "..."}, got an array',
      'line 4: missing "completion" (a row with "prompt" needs "completion")',
    ]);
    expect(c.err).toHaveLength(12);
    expect(c.err[11]).toBe(`${DATA}/problems.jsonl: 10 errors, 1 warning: not usable for training`);
  });

  it('takes --layout instruct, --max_seq_len and --max-problems', async () => {
    let c = capture();
    expect(await main(['validate', `${DATA}/prompt_completion.jsonl`, '--layout', 'instruct', '--max_seq_len=12'], c.io)).toBe(0);
    const s = JSON.parse(c.out.join('\n'));
    expect(s).toMatchObject({ layout: 'instruct', max_seq_len: 12, rows_truncated: 3 });
    expect(s.tokens.max).toBe(12);
    c = capture();
    expect(await main(['validate', `${DATA}/text_crlf_bom.jsonl`, '--layout', 'instruct'], c.io)).toBe(1);
    expect(c.err[0]).toMatch(/^line 1: the instruct layout needs rows with "prompt" and "completion"/);
    c = capture();
    expect(await main(['validate', `${DATA}/problems.jsonl`, '--max-problems', '2'], c.io)).toBe(1);
    expect(c.err).toEqual([expect.stringMatching(/^line 2, column 48/), expect.stringMatching(/^line 3:/), '… and 9 more problems not shown (10 errors, 1 warning in all)', expect.stringMatching(/10 errors/)]);
  });

  it('calls an empty file an error', async () => {
    const c = capture();
    expect(await main(['validate', `${DATA}/empty.jsonl`], c.io)).toBe(1);
    expect(c.err[0]).toBe('file: the file has no rows (it is empty or holds only blank lines); expected one JSON object per line');
  });

  it('explains bad usage with exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [['validate'], /exactly one FILE\.jsonl/],
      [['validate', `${DATA}/nope.jsonl`], /nope\.jsonl" does not exist/],
      [['validate', `${DATA}/empty.jsonl`, '--layout', 'chat'], /layout must be one of replicate, instruct, got "chat"/],
      [['validate', `${DATA}/empty.jsonl`, '--max_seq_len', '0'], /max_seq_len must be an integer from 1 to 32768, got 0/],
      [['validate', `${DATA}/empty.jsonl`, '--lora_rank', '4'], /only --layout and --max_seq_len/],
      [['validate', `${DATA}/empty.jsonl`, '--frobnicate'], /unknown option --frobnicate/],
      [['validate', `${DATA}/empty.jsonl`, '--tokenizer', `${dir}/none`], /--tokenizer: .* does not exist/],
      // A damaged tokenizer.model is named, not only called "not a SentencePiece model file".
      [['validate', `${DATA}/empty.jsonl`, '--tokenizer', brokenTokenizer()], /--tokenizer: ".*broken-tok\/tokenizer\.model" is not a SentencePiece model file: /],
    ];
    for (const [args, message] of cases) {
      const c = capture();
      expect(await main(args, c.io), args.join(' ')).toBe(2);
      expect(c.err.join('\n')).toMatch(message);
    }
  });
});

describe('finetune tokenize', () => {
  it('prints the canonical SentencePiece ids of a JSON array of strings', async () => {
    const g = golden();
    const file = join(dir, 'texts.json');
    writeFileSync(file, JSON.stringify(g.texts.map((t) => t.text)));
    const c = capture();
    expect(await main(['tokenize', '--tokenizer', `${FIXTURES}/mistral-tokenizer`, '--texts', file], c.io)).toBe(0);
    expect(JSON.parse(c.out.join('\n'))).toEqual(g.texts.map((t) => t.ids));
  });

  it("uses the project's tokenizer by default", async () => {
    const file = join(dir, 'hello.json');
    writeFileSync(file, '["Hello world"]');
    const c = capture();
    expect(await main(['tokenize', '--texts', file], c.io)).toBe(0);
    expect(c.out).toEqual(['[[22557,1526]]']);
  });

  it('refuses input that is not a JSON array of strings', async () => {
    const notArray = join(dir, 'obj.json');
    writeFileSync(notArray, '{"a": 1}');
    const mixed = join(dir, 'mixed.json');
    writeFileSync(mixed, '["a", 2]');
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '[\n  "one",\n  "two" "three"\n]');
    const cases: [string[], RegExp][] = [
      [['tokenize'], /--texts FILE\.json is required/],
      [['tokenize', '--texts', notArray], /must hold a JSON array of strings/],
      [['tokenize', '--texts', mixed], /element 1 .* is not a string/],
      [['tokenize', '--texts', join(dir, 'missing.json')], /--texts: ".*missing\.json" does not exist/],
      // Where a syntax error is, as validate says it (it said "Unexpected … at position 134", a count no editor shows).
      [['tokenize', '--texts', broken], /--texts: ".*broken\.json" is not valid JSON: line 3, column 9: .+$/],
    ];
    for (const [args, message] of cases) {
      const c = capture();
      expect(await main(args, c.io)).toBe(2);
      expect(c.err.join('\n')).toMatch(message);
    }
  });

  it('is listed by `finetune help`', async () => {
    const c = capture();
    expect(await main([], c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/validate .*\n.*tokenize/);
  });
});
