// How a row becomes token ids and loss labels (docs/tokenizer.md, docs/replicate-trainer.md):
//   replicate (default, Replicate's trainer): <s> + enc(text) + </s>, or <s> + enc(prompt + "\n" + completion) + </s>;
//             loss on every token.
//   instruct  (mistral-common's layout): <s> + enc("[INST] " + prompt + " [/INST]") + enc(completion) + </s>;
//             loss on the completion ids (and </s>) only. With a tokenizer that holds [INST] and [/INST] as control
//             tokens (mistral-common's v2 and v3: Mistral-7B-Instruct-v0.3), as that library encodes them:
//             <s> [INST] + enc(prompt) + [/INST] + enc(completion without trailing spaces) + </s>.
// Sequences longer than max_seq_len keep their first max_seq_len tokens (as Replicate's `truncation=True`); the
// caller reports how many were lost.

import { FinetuneError } from '../core/errors.ts';
import type { DataRow } from './rows.ts';
import { encodeAtLeast, type Tokenizer } from './tokenizer.ts';

export type Layout = 'replicate' | 'instruct';
export const LAYOUTS: readonly Layout[] = ['replicate', 'instruct'];

/** Token ids: 16 bits each when the vocabulary allows (Mistral's 32000 does), else 32. */
export type TokenIds = Uint16Array | Uint32Array;

/** One training example: its ids and where the loss starts. Labels are ids[i] for i >= lossStart, -100 before. */
export interface Example {
  /** Line of the row in its file (1-based). */
  line: number;
  /** (len) token ids, already truncated to max_seq_len; a loaded dataset's are views into one TokenArena. */
  ids: TokenIds;
  /** First index whose label counts in the loss (0 = every token; > ids.length possible after truncation). */
  lossStart: number;
  /** Tokens cut off by truncation (0 if none). */
  truncated: number;
}

export const IGNORE_INDEX = -100;

const tagsOf = new WeakMap<Tokenizer, { begin: number; end: number } | null>();

/**
 * The ids of [INST] and [/INST] when the tokenizer holds them as pieces of their own (mistral-common's v2 and v3
 * SentencePiece models: ids 3 and 4, control tokens that encode() never makes from text), else null (v1, the
 * tokenizer of Mistral-7B v0.1 and v0.2, spells them with ordinary pieces). Looked up once per tokenizer.
 */
export function instructTags(tok: Tokenizer): { begin: number; end: number } | null {
  let tags = tagsOf.get(tok);
  if (tags === undefined) {
    let begin = -1;
    let end = -1;
    for (let id = 0; id < tok.vocabSize && (begin < 0 || end < 0); id++) {
      const piece = tok.idToPiece(id);
      if (piece === '[INST]') begin = id;
      else if (piece === '[/INST]') end = id;
    }
    tags = begin >= 0 && end >= 0 ? { begin, end } : null;
    tagsOf.set(tok, tags);
  }
  return tags;
}

/**
 * The ids of a row in a layout, before truncation, and where its loss starts. With `budget`, a row past it (a text of
 * megabytes) may give only its first ids, at least `budget` of them (`whole` false): all that truncation keeps, without
 * encoding the rest (encodeAtLeast).
 */
export function layoutIds(tok: Tokenizer, row: DataRow, layout: Layout, budget = Infinity): { ids: number[]; lossStart: number; whole: boolean } {
  // Infinity: every text encoded whole (encodeAtLeast encodes a text of fewer characters than asked tokens whole).
  const encode = (text: string, atLeast: number) => (Number.isFinite(atLeast) ? encodeAtLeast(tok, text, atLeast) : { ids: tok.encode(text), whole: true });
  if (layout === 'replicate') {
    const body = encode(row.shape === 'text' ? row.text : `${row.prompt}\n${row.completion}`, budget - 1);
    return { ids: [tok.bosId, ...body.ids, ...(body.whole ? [tok.eosId] : [])], lossStart: 0, whole: body.whole };
  }
  if (row.shape !== 'prompt_completion') {
    throw new Error('layoutIds: the instruct layout needs prompt/completion rows'); // the loader reports this first
  }
  const prompt = instructPromptIds(tok, row.prompt, budget, encode);
  // A prompt past the budget leaves nothing of the completion in what is kept: it is not encoded.
  if (!prompt.whole) return { ids: prompt.ids, lossStart: prompt.ids.length, whole: false };
  // mistral-common strips the answer's trailing spaces from v2 on; v1 encodes it as it is.
  const answer = instructTags(tok) ? row.completion.replace(/ +$/, '') : row.completion;
  const completion = encode(answer, Math.max(1, budget - prompt.ids.length));
  return { ids: prompt.ids.concat(completion.ids, completion.whole ? [tok.eosId] : []), lossStart: prompt.ids.length, whole: completion.whole };
}

type PrefixEncoder = (text: string, atLeast: number) => { ids: number[]; whole: boolean };

/** <s> and the prompt in its tags: as text (v1), or between the tags' control ids. */
function instructPromptIds(tok: Tokenizer, prompt: string, budget = Infinity, encode: PrefixEncoder = (t) => ({ ids: tok.encode(t), whole: true })): { ids: number[]; whole: boolean } {
  const tags = instructTags(tok);
  const body = encode(tags ? prompt : `[INST] ${prompt} [/INST]`, budget);
  const ids = tags ? [tok.bosId, tags.begin, ...body.ids, ...(body.whole ? [tags.end] : [])] : [tok.bosId, ...body.ids];
  return { ids, whole: body.whole };
}

/**
 * The ids a run's validation_prompt sample continues: the prompt laid out as the run lays out a row's prompt, so that
 * the sample reads what training taught the model to answer. replicate: <s> + enc(prompt), continued as written (what
 * Replicate's trainer does with it); instruct: <s> + enc("[INST] " + prompt + " [/INST]"), the row's prompt part,
 * unless the prompt already holds "[INST]" (the template written by hand), which is taken as written. Sampled bare
 * under instruct, a model trained on the tags was asked a prompt it never saw in that form.
 */
export function samplePromptIds(tok: Tokenizer, prompt: string, layout: Layout, what = 'validation_prompt'): number[] {
  const tags = layout === 'instruct' ? instructTags(tok) : null;
  if (!tags) return [tok.bosId, ...tok.encode(samplePromptText(prompt, layout))];
  // Written out, the tags would be encoded as text, which this tokenizer never reads as the tags.
  if (prompt.includes('[INST]')) {
    throw new FinetuneError(
      'bad-input',
      `${what} holds "[INST]" written out: with this tokenizer [INST] and [/INST] are control tokens (ids ${tags.begin} and ${tags.end}, as in Mistral-7B-Instruct-v0.3), which the instruct layout adds itself and text cannot make. Give the bare prompt`,
    );
  }
  return instructPromptIds(tok, prompt).ids;
}

/**
 * The ids a generation continues (Try it, finetune generate): with a layout, the prompt laid out as samplePromptIds
 * lays out a run's validation_prompt; without one (or an empty prompt: <s> alone), <s> and the text as written.
 */
export function generationPromptIds(tok: Tokenizer, prompt: string, layout: Layout | undefined, what: string): number[] {
  return layout && prompt !== '' ? samplePromptIds(tok, prompt, layout, what) : [tok.bosId, ...tok.encode(prompt)];
}

/** The text samplePromptIds encodes: the prompt, in [INST] tags under instruct unless it holds them already. */
function samplePromptText(prompt: string, layout: Layout): string {
  return layout === 'instruct' && !prompt.includes('[INST]') ? `[INST] ${prompt} [/INST]` : prompt;
}

/** New tokens a run's validation_prompt sample writes at most (</s> may end it sooner). */
export const SAMPLE_MAX_TOKENS = 48;

/**
 * At least samplePromptIds' length, without a tokenizer (the memory plan from config.json alone): SentencePiece with
 * byte fallback and no normaliser (Mistral's) gives a UTF-8 byte at most one token, the dummy-prefix space one more,
 * and <s> one. The plan sizes the sample's KV cache from it when the prompt's real ids are not at hand.
 */
export function samplePromptTokenBound(prompt: string, layout: Layout): number {
  return new TextEncoder().encode(samplePromptText(prompt, layout)).length + 2;
}

/**
 * A row as a training example: laid out, then cut to maxSeqLen tokens. A row too long to be worth encoding whole (its
 * text past a million characters and far past maxSeqLen) is encoded only as far as maxSeqLen needs (`lengthAtLeast`:
 * its `truncated` counts the tokens encoded past the cut, a lower bound).
 */
export function encodeRow(tok: Tokenizer, row: DataRow, layout: Layout, maxSeqLen: number): Example & { lengthAtLeast?: true } {
  const { ids, lossStart, whole } = layoutIds(tok, row, layout, maxSeqLen + 1);
  const keep = Math.min(ids.length, maxSeqLen);
  return { line: row.line, ids: Uint32Array.from(ids.length > keep ? ids.slice(0, keep) : ids), lossStart, truncated: ids.length - keep, ...(whole ? {} : { lengthAtLeast: true as const }) };
}

/** (len) labels of an example: the id where the loss counts, -100 elsewhere (HF convention, unshifted). */
export function exampleLabels(ex: Example): Int32Array {
  const labels = new Int32Array(ex.ids.length);
  for (let i = 0; i < ex.ids.length; i++) labels[i] = i >= ex.lossStart ? ex.ids[i] : IGNORE_INDEX;
  return labels;
}

/** Number of positions t with a next-token target inside [start, end) of the example: labels[t+1] counted. */
export function lossTokensIn(ex: Example, start: number, end: number): number {
  return Math.max(0, end - Math.max(start + 1, ex.lossStart));
}
