// JSON.parse with a bound on nesting depth. V8's parser itself copes with deep nesting, but everything that walks
// the result afterwards (JSON.stringify in a message, structured clone across the worker boundary, recursive checks)
// overflows the stack at a few thousand levels. Files we read (configs, adapter configs, safetensors headers) are a
// handful of levels deep, so anything deeper is refused before it is parsed, by one linear scan that needs no stack.

import { FinetuneError } from './errors.ts';
import { visibleText } from './quote.ts';

/** Deeper than any config or header we read (they are 2–4 levels deep); far below what a walk of it can handle. */
export const MAX_JSON_DEPTH = 64;

/** Index of the bracket that opens level maxDepth + 1 (strings skipped), or -1 when the text stays within it. */
export function jsonTooDeepAt(text: string, maxDepth = MAX_JSON_DEPTH): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return -1;
}

/**
 * Parses JSON text named `where` for messages, refusing nesting deeper than maxDepth. Throws
 * FinetuneError('bad-input') for either problem.
 */
export function parseBoundedJson(text: string, named: string, maxDepth = MAX_JSON_DEPTH): unknown {
  // `named` is a file's name as it was given (a picked file, a Hub file, a zip's entry): a label, shown with
  // visibleText's escapes so that a bidirectional control in it cannot reorder the message.
  const where = visibleText(named);
  const at = jsonTooDeepAt(text, maxDepth);
  if (at >= 0) throw new FinetuneError('bad-input', `${where} nests JSON deeper than ${maxDepth} levels (at character ${at + 1}); it is not a file this program reads`);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new FinetuneError('bad-input', `${where} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * The first name that appears twice among the keys of the top-level object of a JSON text, or null. JSON.parse keeps
 * the last of duplicate keys silently; where a duplicate means a corrupt or forged file (two tensors of one name),
 * this finds it on the raw text, in one linear scan. Keys are compared after unescaping ("a" and "\u0061" are one).
 */
export function duplicateTopLevelKey(text: string): string | null {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const start = i;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
      if (depth !== 1) continue;
      let j = i + 1;
      while (j < text.length && (text[j] === ' ' || text[j] === '\t' || text[j] === '\n' || text[j] === '\r')) j++;
      if (text[j] !== ':') continue; // a string value, not a key
      let key: string;
      try {
        key = JSON.parse(text.slice(start, i + 1)) as string;
      } catch {
        return null; // not valid JSON: JSON.parse of the whole text reports it
      }
      if (seen.has(key)) return key;
      seen.add(key);
    } else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return null;
}
