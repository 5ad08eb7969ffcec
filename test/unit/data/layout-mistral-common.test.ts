// The instruct layout against mistral-common's own test vectors (test/fixtures/mistral-common-no-tools.json: a
// conversation and the ids Mistral's library encodes it to, for its v1 and v3 SentencePiece tokenizers). Each
// complete turn is one prompt/completion row: its ids must be the library's ids of that turn, after <s>.
// v1 (Mistral-7B v0.1, v0.2) writes the tags as text; v3 (Mistral-7B-Instruct-v0.3) holds [INST] and [/INST] as
// control tokens that encode() never makes, so a layout that wrote them as text trained on another format, silently.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { instructTags, layoutIds, samplePromptIds, samplePromptTokenBound } from '../../../src/data/layout.ts';
import { loadTokenizer, type Tokenizer } from '../../../src/data/tokenizer.ts';
import type { DataRow } from '../../../src/data/rows.ts';
import { FIXTURES, mistralTokenizer } from './helpers.ts';

interface Vectors {
  messages: { role: 'user' | 'assistant'; content: string }[];
  tokens_v1: number[];
  tokens_v3: number[];
}
const vectors = JSON.parse(readFileSync(`${FIXTURES}/mistral-common-no-tools.json`, 'utf8')) as Vectors;
const v3Tokenizer = (): Promise<Tokenizer> => loadTokenizer(new Uint8Array(readFileSync(`${FIXTURES}/mistral-tokenizer-v3/tokenizer.model`)), 'tokenizer.model (v3)');

/** The conversation's complete turns as rows. */
type PromptRow = Extract<DataRow, { shape: 'prompt_completion' }>;
function rows(): PromptRow[] {
  const out: PromptRow[] = [];
  for (let i = 0; i + 1 < vectors.messages.length; i += 2) {
    out.push({ shape: 'prompt_completion', prompt: vectors.messages[i].content, completion: vectors.messages[i + 1].content, line: out.length + 1 });
  }
  return out;
}

/** Each turn's ids in the library's encoding, cut after each </s> (2), without the conversation's leading <s>. */
function turns(tokens: number[]): number[][] {
  const out: number[][] = [];
  let start = 1;
  for (let i = 1; i < tokens.length; i++) {
    if (tokens[i] === 2) {
      out.push(tokens.slice(start, i + 1));
      start = i + 1;
    }
  }
  return out;
}

describe("the instruct layout is mistral-common's, turn by turn", () => {
  it('v1 tokenizer (v0.1, v0.2): the tags as text', async () => {
    const tok = await mistralTokenizer();
    expect(instructTags(tok)).toBeNull();
    const expected = turns(vectors.tokens_v1);
    expect(expected).toHaveLength(3);
    rows().forEach((row, i) => {
      const { ids, lossStart } = layoutIds(tok, row, 'instruct');
      expect(ids).toEqual([1, ...expected[i]]);
      // The loss starts at the completion: the ids after [/INST] (its text pieces end with "]", 28793).
      expect(ids[lossStart - 1]).toBe(28793);
    });
  });

  it('v3 tokenizer (Mistral-7B-Instruct-v0.3): [INST] and [/INST] as their control ids', async () => {
    const tok = await v3Tokenizer();
    expect(tok.vocabSize).toBe(32768);
    expect(instructTags(tok)).toEqual({ begin: 3, end: 4 });
    const expected = turns(vectors.tokens_v3);
    expect(expected).toHaveLength(3);
    rows().forEach((row, i) => {
      const { ids, lossStart } = layoutIds(tok, row, 'instruct');
      expect(ids).toEqual([1, ...expected[i]]);
      expect(ids[lossStart - 1]).toBe(4);
      // A trailing space of the answer is not encoded (mistral-common strips it from v2 on).
      expect(layoutIds(tok, { ...row, completion: `${row.completion}  ` }, 'instruct').ids).toEqual(ids);
    });
    // The replicate layout is text in any tokenizer: no control ids.
    expect(layoutIds(tok, rows()[0], 'replicate').ids.slice(1, -1).some((id) => id === 3 || id === 4)).toBe(false);
  });

  it("v3: a validation_prompt sample is the row's prompt part; one with [INST] written by hand is refused, naming why", async () => {
    const tok = await v3Tokenizer();
    const prompt = vectors.messages[0].content;
    const first = turns(vectors.tokens_v3)[0];
    expect(samplePromptIds(tok, prompt, 'instruct')).toEqual([1, ...first.slice(0, first.indexOf(4) + 1)]);
    expect(samplePromptTokenBound(prompt, 'instruct')).toBeGreaterThanOrEqual(samplePromptIds(tok, prompt, 'instruct').length);
    expect(() => samplePromptIds(tok, `[INST] ${prompt} [/INST]`, 'instruct')).toThrow(
      'validation_prompt holds "[INST]" written out: with this tokenizer [INST] and [/INST] are control tokens (ids 3 and 4, as in Mistral-7B-Instruct-v0.3), which the instruct layout adds itself and text cannot make. Give the bare prompt',
    );
    // Under the replicate layout the prompt is text, taken as written.
    expect(samplePromptIds(tok, `[INST] ${prompt} [/INST]`, 'replicate')[0]).toBe(1);
  });
});
