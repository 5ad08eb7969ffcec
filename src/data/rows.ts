// Which JSON values are training rows. As Replicate's trainer accepts: `{"text": "..."}` or
// `{"prompt": "...", "completion": "..."}`, one shape per file. Everything else is reported, never guessed at.

import { formatCount } from '../core/units.ts';
import type { ProblemLog } from './problems.ts';
import { quote } from '../core/quote.ts';


/** Texts that name a special token of Mistral's vocabulary; in a row they are only characters. */
const SPECIAL_TEXT = ['</s>', '<s>', '<unk>'] as const;

/**
 * Half of a UTF-16 surrogate pair without its other half: JSON's \uD800 escape can write one, JSON.parse keeps it, and
 * it is no Unicode character (TextEncoder writes U+FFFD for it; Python cannot encode it as UTF-8 at all).
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export type RowShape = 'text' | 'prompt_completion';

export type DataRow =
  | { line: number; shape: 'text'; text: string }
  | { line: number; shape: 'prompt_completion'; prompt: string; completion: string };

export const ROW_FIELDS: Readonly<Record<RowShape, readonly string[]>> = {
  text: ['text'],
  prompt_completion: ['prompt', 'completion'],
};

export function describeShape(shape: RowShape): string {
  return shape === 'text' ? '{"text"}' : '{"prompt", "completion"}';
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'an object';
    default:
      return typeof v;
  }
}

function isBlankText(s: string): boolean {
  return s.trim().length === 0;
}

/** Remembers the shape of the file (from its first good row) so rows of the other shape are caught. */
export class RowChecker {
  shape: RowShape | null = null;
  shapeLine = 0;

  /** The row on `line`, or null when it cannot be used (its problems are in `log`). */
  check(value: unknown, line: number, log: ProblemLog): DataRow | null {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      log.error(line, 'not-object', `a row must be a JSON object like {"text": "..."} or {"prompt": "...", "completion": "..."}, got ${typeName(value)}`);
      return null;
    }
    const obj = value as Record<string, unknown>;
    const has = (k: string) => Object.prototype.hasOwnProperty.call(obj, k);
    const hasText = has('text');
    const hasPrompt = has('prompt');
    const hasCompletion = has('completion');
    if (hasText && (hasPrompt || hasCompletion)) {
      log.error(line, 'both-shapes', `a row has either "text" or "prompt" + "completion", not both (this one has "text" and "${hasPrompt ? 'prompt' : 'completion'}")`);
      return null;
    }
    if (!hasText && !hasPrompt && !hasCompletion) {
      const keys = Object.keys(obj);
      const found = keys.length === 0 ? 'an empty object' : `fields ${keys.slice(0, 5).map((k) => quote(k)).join(', ')}${keys.length > 5 ? ', …' : ''}`;
      log.error(line, 'no-fields', `a row needs "text", or "prompt" and "completion"; found ${found}${foreignShapeHint(keys)}`);
      return null;
    }
    if (hasPrompt !== hasCompletion) {
      const answer = hasPrompt ? ['response', 'output', 'answer', 'chosen'].find(has) : undefined;
      const rename = answer === undefined ? '' : `; rename "${answer}" to "completion"`;
      log.error(line, 'missing-field', hasPrompt ? `missing "completion" (a row with "prompt" needs "completion"${rename})` : 'missing "prompt" (a row with "completion" needs "prompt")');
      return null;
    }
    const shape: RowShape = hasText ? 'text' : 'prompt_completion';
    const fields = ROW_FIELDS[shape];
    let ok = true;
    for (const f of fields) {
      const v = obj[f];
      if (typeof v !== 'string') {
        log.error(line, 'not-string', `"${f}" must be a string, got ${typeName(v)}`);
        ok = false;
      } else if (v.length === 0) {
        log.error(line, 'empty-string', `"${f}" is empty`);
        ok = false;
      } else {
        const lone = LONE_SURROGATE.exec(v);
        if (lone) {
          const code = `\\u${lone[0].charCodeAt(0).toString(16)}`;
          log.error(line, 'unpaired-surrogate', `"${f}" holds ${code} at character ${lone.index + 1}, half of a UTF-16 surrogate pair without its other half: it is no Unicode character and has no UTF-8 form (Python's tokenizer, as Replicate's trainer runs it, fails on it); remove it or write the whole character`);
          ok = false;
        }
      }
    }
    if (!ok) return null;
    const unknown = Object.keys(obj).filter((k) => !fields.includes(k));
    if (unknown.length > 0) {
      const names = unknown.slice(0, 5).map((k) => quote(k)).join(', ') + (unknown.length > 5 ? `, … (${formatCount(unknown.length)} in all)` : '');
      log.warn(line, 'unknown-fields', `unknown field${unknown.length === 1 ? '' : 's'} ${names} ignored (rows use ${fields.map((f) => `"${f}"`).join(' and ')})`);
    }
    for (const f of fields) {
      const v = obj[f] as string;
      if (isBlankText(v)) log.warn(line, 'blank-string', `"${f}" holds only whitespace`);
      // Mistral's tokenizer (SentencePiece, as mistral-common encodes) reads these as characters, never as the special
      // tokens they name; the layout adds BOS and EOS itself. A row written in the chat format's text would teach the
      // model to write "</s>" before ending.
      // Every one the field holds, in one warning: naming the first alone, the next run warned of the next.
      const specials = SPECIAL_TEXT.filter((s) => v.includes(s));
      if (specials.length > 0) {
        const names = specials.map((s) => (s === '</s>' ? 'end-of-sequence' : s === '<s>' ? 'beginning-of-sequence' : 'unknown'));
        const list = (xs: string[]) => (xs.length === 1 ? xs[0] : `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)}`);
        const one = specials.length === 1;
        log.warn(line, 'special-token-text', `"${f}" holds the text${one ? '' : 's'} ${list([...specials])}: ${one ? 'it is' : 'they are'} trained as those characters, not as the ${list(names)} token${one ? '' : 's'} (the layout adds <s> and </s> itself); remove ${one ? 'it' : 'them'}`);
      }
    }
    if (this.shape === null) {
      this.shape = shape;
      this.shapeLine = line;
    } else if (this.shape !== shape) {
      log.error(
        line,
        'mixed-shapes',
        `this row is ${describeShape(shape)} but the file's rows are ${describeShape(this.shape)} (since line ${this.shapeLine}); use one shape per file`,
      );
      return null;
    }
    return shape === 'text'
      ? { line, shape, text: obj.text as string }
      : { line, shape, prompt: obj.prompt as string, completion: obj.completion as string };
  }
}

/**
 * What to do with a row of another trainer's well-known shape (chat messages, Alpaca, question/answer), said beside
 * the refusal: Replicate's trainer, whose inputs this app keeps, reads only text and prompt/completion rows.
 */
export function foreignShapeHint(keys: readonly string[]): string {
  const has = (k: string): boolean => keys.includes(k);
  if (has('messages') || has('conversations')) {
    const field = has('messages') ? 'messages' : 'conversations';
    return ` (chat rows, "${field}", are not read: write a single exchange as {"prompt": the user's turn, "completion": the assistant's reply}, and the layout extra "instruct" adds Mistral's [INST] tags; or a whole conversation as {"text"} with the tags written in)`;
  }
  if (has('instruction') && (has('output') || has('response'))) {
    const out = has('output') ? 'output' : 'response';
    return ` (an Alpaca-style row: put "instruction"${has('input') ? ' and "input"' : ''} into "prompt" and "${out}" into "completion")`;
  }
  const pairs: [string, string][] = [['question', 'answer'], ['input', 'output'], ['query', 'response'], ['source', 'target']];
  for (const [p, c] of pairs) {
    if (has(p) && has(c)) return ` (rename "${p}" to "prompt" and "${c}" to "completion")`;
  }
  return '';
}
