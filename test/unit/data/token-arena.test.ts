// Loaded training data is held compactly: ids as 16-bit views into shared blocks, not one array per row.
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../../src/data/dataset.ts';
import { encodeRow } from '../../../src/data/layout.ts';
import { TokenArena } from '../../../src/data/token-arena.ts';
import { fixtureBytes, mistralTokenizer, utf8 } from './helpers.ts';

describe('TokenArena', () => {
  it('keeps Mistral ids in 16 bits and larger vocabularies in 32, as views of shared blocks', () => {
    const a = new TokenArena(32000);
    const x = a.hold([1, 2, 65535]);
    const y = a.hold(Uint32Array.of(7, 8));
    expect(x).toBeInstanceOf(Uint16Array);
    expect([...x, ...y]).toEqual([1, 2, 65535, 7, 8]);
    expect(x.buffer).toBe(y.buffer);
    const wide = new TokenArena(131072).hold([131071]);
    expect(wide).toBeInstanceOf(Uint32Array);
    expect([...wide]).toEqual([131071]);
  });

  it('starts a new block when one is full, and holds a row longer than any block whole', () => {
    const a = new TokenArena(32000);
    const rows = Array.from({ length: 300 }, (_, r) => Array.from({ length: 1000 }, (_, i) => (r * 7 + i) % 32000));
    const views = rows.map((r) => a.hold(r));
    views.forEach((v, r) => expect(Array.from(v)).toEqual(rows[r]));
    expect(new Set(views.map((v) => v.buffer)).size).toBeGreaterThan(1); // 300k tokens need more than the first block
    expect(new Set(views.map((v) => v.buffer)).size).toBeLessThan(10);
    const long = Array.from({ length: 3_000_000 }, (_, i) => i % 30000);
    expect(a.hold(long).length).toBe(3_000_000);
    expect(a.tokens).toBe(300_000 + 3_000_000);
  });
});

describe('loadDataset keeps examples compactly', () => {
  it('gives every example a 16-bit view into shared blocks, with the ids encodeRow computes', async () => {
    const tok = await mistralTokenizer();
    const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: `question ${i}`, completion: `answer number ${i}` })).join('\n');
    const d = await loadDataset(utf8(lines), { tokenizer: tok });
    expect(d.examples).toHaveLength(40);
    for (const ex of d.examples) expect(ex.ids).toBeInstanceOf(Uint16Array);
    expect(new Set(d.examples.map((e) => e.ids.buffer)).size).toBe(1);
    d.examples.forEach((ex, i) => {
      expect(Array.from(ex.ids)).toEqual(Array.from(encodeRow(tok, { line: i + 1, shape: 'prompt_completion', prompt: `question ${i}`, completion: `answer number ${i}` }, 'replicate', 4096).ids));
    });
    // The fixtures too (the layout of a real file, truncation included).
    const f = await loadDataset(fixtureBytes('prompt_completion.jsonl'), { tokenizer: tok, maxSeqLen: 12 });
    expect(f.examples.every((e) => e.ids instanceof Uint16Array && e.ids.length <= 12)).toBe(true);
  });
});
