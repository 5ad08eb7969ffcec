// A row of megabytes of text: SentencePiece's WASM build aborted on 20–32 MB of text, and the aborted module then failed
// every later call (on the page, every file picked after it, the sample too, until a reload); a 16 MB row took 22 s
// to encode though only max_seq_len tokens are kept. A long row is encoded from a prefix, as far as its cut needs, with
// the same first ids as the whole encoding (checked here against SentencePiece's whole encoding), and an encode past
// the tokenizer's bound is refused with a message.
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../../src/data/dataset.ts';
import { encodeAtLeast, MAX_ENCODE_CHARS } from '../../../src/data/tokenizer.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { fixtureBytes, mistralTokenizer, utf8 } from './helpers.ts';

const tokenizer = await mistralTokenizer();
const hello = tokenizer.encode('Hello'); // before anything long was asked of it

/** The sample rows' words, repeated past `chars` characters: prose of every kind of piece. */
function prose(chars: number): string {
  const words = new TextDecoder().decode(fixtureBytes('prompt_completion.jsonl')).replace(/[{}"]/g, ' ').split(/\s+/).filter(Boolean);
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < chars; i++) {
    const w = words[i % words.length];
    parts.push(w);
    n += w.length + 1;
  }
  return parts.join(' ');
}

describe('encodeAtLeast: the first ids of a long text without encoding all of it', () => {
  it('gives exactly the whole encoding’s first ids, cut at a word boundary', () => {
    const text = prose(1_300_000);
    const whole = tokenizer.encode(text);
    for (const atLeast of [1, 2049, 32_769]) {
      const r = encodeAtLeast(tokenizer, text, atLeast);
      expect(r.whole).toBe(false);
      expect(r.ids.length).toBeGreaterThanOrEqual(atLeast);
      expect(r.ids.length).toBeLessThan(whole.length);
      expect(r.ids).toEqual(whole.slice(0, r.ids.length));
    }
  }, 60_000);

  it('gives exactly the whole encoding’s first ids for a text without a space to cut at', () => {
    // Letters, digits and punctuation with no whitespace: the cut falls inside a "word", and the ids near it are dropped.
    let text = '';
    for (let i = 0; text.length < 1_200_000; i++) text += `${(i * 7919).toString(36)}-${String.fromCharCode(97 + (i % 26))}.`;
    const whole = tokenizer.encode(text);
    const r = encodeAtLeast(tokenizer, text, 4097);
    expect(r.whole).toBe(false);
    expect(r.ids.length).toBeGreaterThanOrEqual(4097);
    expect(r.ids).toEqual(whole.slice(0, r.ids.length));
  }, 60_000);

  it('encodes a text of up to a million characters whole', () => {
    const text = prose(200_000);
    expect(encodeAtLeast(tokenizer, text, 10)).toEqual({ ids: tokenizer.encode(text), whole: true });
  }, 60_000);

  it('refuses to encode a text past its bound, with a message, and the tokenizer goes on working', () => {
    const e = (() => {
      try {
        tokenizer.encode('a '.repeat(MAX_ENCODE_CHARS / 2 + 1));
      } catch (x) {
        return x;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(FinetuneError);
    expect((e as FinetuneError).message).toMatch(/^a text of 4,194,306 characters is more than the tokenizer takes at once \(4,194,304\): shorten it$/);
    expect(tokenizer.encode('Hello')).toEqual(hello);
  }, 60_000);
});

describe('a dataset with a row of 32 MB (it aborted the encoder)', () => {
  it('reads it, cuts it at max_seq_len with a warning that its length is a lower bound, and goes on with the next rows', async () => {
    const huge = prose(32 * 1024 * 1024);
    const file = utf8(`${JSON.stringify({ text: huge })}\n{"text": "a short row"}\n`);
    const d = await loadDataset(file, { tokenizer, maxSeqLen: 256 });
    expect(d.ok).toBe(true);
    expect(d.summary.rows).toBe(2);
    const lines = d.problems.lines();
    expect(lines).toContainEqual(expect.stringMatching(/^line 1: warning: more than [\d,]+ tokens \(tokenised only as far as the cut needs\), longer than max_seq_len 256: truncated, all but the first 256 tokens lost$/));
    // The kept ids are the whole encoding's first 256: <s> and the text's first 255.
    expect(Array.from(d.examples[0].ids)).toEqual([tokenizer.bosId, ...tokenizer.encode(huge.slice(0, 20_000)).slice(0, 255)]);
    expect(Array.from(d.examples[1].ids)).toEqual([tokenizer.bosId, ...tokenizer.encode('a short row'), tokenizer.eosId]);
    // The tokenizer still works after it (an abort had broken every later call).
    expect(tokenizer.encode('Hello')).toEqual(hello);
  }, 120_000);

  it('instruct: a prompt of megabytes leaves nothing to learn (said), a completion of megabytes keeps the loss on its start', async () => {
    const long = prose(3 * 1024 * 1024);
    const file = utf8(`${JSON.stringify({ prompt: long, completion: 'yes' })}\n${JSON.stringify({ prompt: 'Say it.', completion: long })}\n`);
    const d = await loadDataset(file, { tokenizer, maxSeqLen: 128, layout: 'instruct' });
    const lines = d.problems.lines();
    expect(lines).toContainEqual(expect.stringMatching(/^line 1: warning: more than [\d,]+ tokens .*truncated, all but the first 128 tokens lost$/));
    expect(lines).toContainEqual(expect.stringMatching(/^line 1: warning: after truncation nothing of the completion is left to learn from/));
    expect(lines).toContainEqual(expect.stringMatching(/^line 2: warning: more than [\d,]+ tokens .*truncated/));
    const second = d.examples.find((x) => x.line === 2)!;
    const prompt = [tokenizer.bosId, ...tokenizer.encode('[INST] Say it. [/INST]')];
    expect(second.lossStart).toBe(prompt.length);
    expect(Array.from(second.ids)).toEqual([...prompt, ...tokenizer.encode(long.slice(0, 20_000))].slice(0, 128));
  }, 120_000);
});
