import { describe, expect, it } from 'vitest';
import { encodeRow, exampleLabels, IGNORE_INDEX, layoutIds, lossTokensIn, samplePromptIds } from '../../../src/data/layout.ts';
import type { DataRow } from '../../../src/data/rows.ts';
import { golden, mistralTokenizer } from './helpers.ts';

function rowOf(x: { text: string } | { prompt: string; completion: string }, line = 1): DataRow {
  return 'text' in x ? { line, shape: 'text', text: x.text } : { line, shape: 'prompt_completion', prompt: x.prompt, completion: x.completion };
}

describe('layouts (golden examples decide)', () => {
  it('replicate: <s> + text + </s>, or <s> + prompt + "\\n" + completion + </s>, loss on every token', async () => {
    const tok = await mistralTokenizer();
    const examples = golden().formats.replicate.examples;
    expect(examples.length).toBe(3);
    for (const ex of examples) {
      const { ids, lossStart } = layoutIds(tok, rowOf(ex), 'replicate');
      expect(ids).toEqual(ex.ids);
      expect(lossStart).toBe(0);
    }
  });

  it('instruct: <s> + enc("[INST] " + prompt + " [/INST]") + enc(completion) + </s>, loss on the completion only', async () => {
    const tok = await mistralTokenizer();
    const examples = golden().formats.instruct.examples;
    expect(examples.length).toBe(2);
    for (const ex of examples) {
      const { ids, lossStart } = layoutIds(tok, rowOf(ex), 'instruct');
      expect(ids).toEqual([...ex.prompt_ids, ...ex.completion_ids]);
      expect(lossStart).toBe(ex.prompt_ids.length);
      const labels = Array.from(exampleLabels(encodeRow(tok, rowOf(ex), 'instruct', 4096)));
      expect(labels).toEqual([...ex.prompt_ids.map(() => IGNORE_INDEX), ...ex.completion_ids]);
    }
  });

  it('the instruct layout refuses text rows', async () => {
    const tok = await mistralTokenizer();
    expect(() => layoutIds(tok, { line: 1, shape: 'text', text: 'x' }, 'instruct')).toThrow(/prompt\/completion/);
  });

  it('truncates to max_seq_len keeping the head and counts what was lost', async () => {
    const tok = await mistralTokenizer();
    const ex = golden().formats.replicate.examples[1];
    const full = encodeRow(tok, rowOf(ex), 'replicate', 4096);
    expect(full.truncated).toBe(0);
    expect(Array.from(full.ids)).toEqual(ex.ids);
    const cut = encodeRow(tok, rowOf(ex, 7), 'replicate', 10);
    expect(Array.from(cut.ids)).toEqual(ex.ids.slice(0, 10));
    expect(cut.truncated).toBe(ex.ids.length - 10);
    expect(cut.line).toBe(7);
  });

  it('counts the loss positions of a token range after the shift', async () => {
    const tok = await mistralTokenizer();
    const ex = golden().formats.instruct.examples[0];
    const e = encodeRow(tok, rowOf(ex), 'instruct', 4096);
    const labels = exampleLabels(e);
    // Brute force: position t counts when labels[t+1] is not ignored and t+1 is inside the range.
    for (let start = 0; start < e.ids.length; start++) {
      for (let end = start + 1; end <= e.ids.length; end++) {
        let n = 0;
        for (let t = start; t + 1 < end; t++) if (labels[t + 1] !== IGNORE_INDEX) n++;
        expect(lossTokensIn(e, start, end)).toBe(n);
      }
    }
    expect(lossTokensIn(e, 0, e.ids.length)).toBe(ex.completion_ids.length);
  });
});

describe('samplePromptIds (what a validation_prompt sample continues)', () => {
  it("instruct: the golden rows' prompt part (<s> [INST] … [/INST]), as training laid it out; replicate: as written", async () => {
    const tok = await mistralTokenizer();
    for (const ex of golden().formats.instruct.examples) {
      if (!('prompt' in ex)) continue;
      expect(samplePromptIds(tok, ex.prompt, 'instruct')).toEqual(ex.prompt_ids);
      expect(samplePromptIds(tok, ex.prompt, 'replicate')).toEqual([tok.bosId, ...tok.encode(ex.prompt)]);
    }
  });

  it('takes a prompt that already holds its [INST] tags as written, not wrapped twice', async () => {
    const tok = await mistralTokenizer();
    expect(samplePromptIds(tok, '[INST] Add two numbers. [/INST]', 'instruct')).toEqual(samplePromptIds(tok, 'Add two numbers.', 'instruct'));
  });
});
