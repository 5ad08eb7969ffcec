// How a name or a value from outside (a file name, a model or adapter name, a key or a string from a file, a flag's
// argument) is quoted in a message, on the page and in the terminal alike.

/**
 * What a quoted value shows as a \uXXXX escape besides what JSON.stringify escapes (C0 controls, `"` and `\`): DEL and
 * the C1 controls, the line and paragraph separators, the bidirectional formatting characters (ALM, LRM, RLM, the
 * embeddings and overrides LRE…RLO, the isolates LRI…PDI) and the characters that show as nothing at all (the soft
 * hyphen, the Mongolian vowel separator, the zero-width space, the word joiner and the zero-width no-break space or
 * BOM). JSON.stringify leaves these as they are, and a page shows them as nothing: a U+202E (right-to-left override) in
 * a file name reverses the rest of its line, so a message about "report\u202Etxt.exe" reads as about "reportexe.txt",
 * and every word after the name is turned around with it; a U+200B makes "model\u200B.safetensors" read as another
 * file's name. ZWNJ and ZWJ (U+200C, U+200D) are not escaped: Persian and the Indic scripts write words with them, and
 * emoji sequences are joined by ZWJ, so escaped they would show such names broken.
 */
export const INVISIBLE_IN_QUOTES = /[\u007f-\u009f\u00ad\u061c\u180e\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]/g;

/** `c` as a \uXXXX escape, as JSON.stringify writes the ones it escapes (lowercase hex). */
export function unicodeEscape(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * `value` as JSON (a string in double quotes), with the characters of INVISIBLE_IN_QUOTES escaped too: what is quoted
 * is seen as it is, and cannot hide or reorder the words around it. Values JSON has no text for (undefined, a function)
 * are written by String().
 */
export function quote(value: unknown): string {
  return (JSON.stringify(value) ?? String(value)).replace(INVISIBLE_IN_QUOTES, unicodeEscape);
}

/**
 * quote(value) cut after `max` characters, then "…": for a value from a file anyone can edit (a config, an adapter's
 * config, a saved run's record), which can hold megabytes in one field; its start says what it is, and a message of
 * a megabyte says nothing more.
 */
export function quoteCut(value: unknown, max = 200): string {
  const text = quote(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * The first `max` of `items` (each written by `show`) joined by `separator`, then "… (N what)" after one more
 * separator when there are more: a list from a file or a folder, said in a message that stays short whatever its
 * length ("a; b; … (20000 problems)", "\"a\", \"b\", … (9 in all)").
 */
export function firstFew(items: readonly string[], max: number, separator: string, what: string, show: (item: string) => string = (item) => item): string {
  const head = items.slice(0, max).map(show).join(separator);
  return items.length > max ? `${head}${separator}… (${items.length} ${what})` : head;
}

/** The C0 control characters (a line break, a tab, a carriage return, the escape that starts a terminal's sequences). */
const C0_CONTROLS = /[\u0000-\u001f]/g;

/** `c`, a C0 control character, as JSON.stringify escapes it: \n, \t, \r as such, the others as \uXXXX. */
function jsonEscape(c: string): string {
  return JSON.stringify(c).slice(1, -1);
}

/**
 * `text` as it is, with the C0 controls escaped as quote() escapes them and the characters of INVISIBLE_IN_QUOTES
 * escaped: for a name shown where quotes would be noise (a file name in a sentence of the page, a path at the start of
 * a message), which must still not hide or reorder the words around it, nor end the line it is on and start another
 * (on a terminal, "a.jsonl\nfinetune train: done" made a line that finetune never wrote).
 */
export function visibleText(text: string): string {
  return text.replace(C0_CONTROLS, jsonEscape).replace(INVISIBLE_IN_QUOTES, unicodeEscape);
}
