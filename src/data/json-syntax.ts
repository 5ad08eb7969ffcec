// Where and why a line is not valid JSON. JSON.parse is the fast path for every line; when it fails, this scanner
// walks the line once more to find the first offending character and say what was expected. Engines word their
// JSON.parse errors differently (and some give no position), so the column and the message come from here, the same
// in Node and every browser. The scanner is iterative (an explicit stack), so deep nesting cannot overflow the call
// stack, and it accepts exactly the grammar of RFC 8259 that JSON.parse accepts.

export interface JsonSyntaxError {
  /** Index (UTF-16 code units) of the offending character in the line; the line's length for "ended too early". */
  index: number;
  message: string;
}

function describeChar(text: string, i: number): string {
  const cp = text.codePointAt(i) ?? 0;
  if (cp < 0x20 || cp === 0x7f || (cp >= 0x80 && cp < 0xa0) || cp === 0xfeff) return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return `'${String.fromCodePoint(cp)}'`;
}

const isWs = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isHex = (c: number) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

const ESCAPE_HINT: Record<number, string> = { 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t', 0x08: '\\b', 0x0c: '\\f' };

/** Scans a string literal starting at the opening quote; returns the index after the closing quote, or an error. */
function scanString(text: string, start: number): number | JsonSyntaxError {
  let i = start + 1;
  for (;;) {
    if (i >= text.length) return { index: text.length, message: `the string that starts at column ${start + 1} is never closed (missing '"')` };
    const c = text.charCodeAt(i);
    if (c === 0x22) return i + 1;
    if (c < 0x20) {
      const hint = ESCAPE_HINT[c] ? `; write it as ${ESCAPE_HINT[c]}` : '';
      return { index: i, message: `control character ${describeChar(text, i)} inside a string${hint}` };
    }
    if (c === 0x5c) {
      const e = text.charCodeAt(i + 1);
      if (i + 1 >= text.length) return { index: text.length, message: 'the line ends inside an escape sequence' };
      if (e === 0x75) {
        for (let k = 2; k < 6; k++) {
          if (i + k >= text.length || !isHex(text.charCodeAt(i + k))) return { index: Math.min(i + k, text.length), message: 'invalid \\u escape: expected 4 hexadecimal digits' };
        }
        i += 6;
        continue;
      }
      if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        i += 2;
        continue;
      }
      return { index: i, message: `invalid escape \\${String.fromCodePoint(text.codePointAt(i + 1) ?? 0)} in a string` };
    }
    i++;
  }
}

function scanNumber(text: string, start: number): number | JsonSyntaxError {
  let i = start;
  if (text.charCodeAt(i) === 0x2d) i++;
  if (text.charCodeAt(i) === 0x30) {
    i++;
    if (isDigit(text.charCodeAt(i))) return { index: i, message: 'numbers cannot have leading zeros' };
  } else if (isDigit(text.charCodeAt(i))) {
    while (isDigit(text.charCodeAt(i))) i++;
  } else {
    return { index: Math.min(i, text.length), message: "invalid number: expected a digit after '-'" };
  }
  if (text.charCodeAt(i) === 0x2e) {
    i++;
    if (!isDigit(text.charCodeAt(i))) return { index: Math.min(i, text.length), message: "invalid number: expected a digit after '.'" };
    while (isDigit(text.charCodeAt(i))) i++;
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    const s = text.charCodeAt(i);
    if (s === 0x2b || s === 0x2d) i++;
    if (!isDigit(text.charCodeAt(i))) return { index: Math.min(i, text.length), message: 'invalid number: expected a digit in the exponent' };
    while (isDigit(text.charCodeAt(i))) i++;
  }
  return i;
}

/** The first syntax error in `text` as one JSON document, or null if JSON.parse would accept it. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | null {
  const n = text.length;
  const stack: number[] = []; // 0x7b '{' or 0x5b '['
  let expect: 'value' | 'key' | 'after' = 'value';
  let afterComma = false;
  let i = 0;
  const ws = () => {
    while (i < n && isWs(text.charCodeAt(i))) i++;
  };
  for (;;) {
    ws();
    if (expect === 'value') {
      if (i >= n) return { index: n, message: stack.length === 0 ? 'the line holds no JSON value' : 'the line ends where a value was expected' };
      const c = text.charCodeAt(i);
      if (c === 0x7b || c === 0x5b) {
        stack.push(c);
        i++;
        ws();
        const close = c === 0x7b ? 0x7d : 0x5d;
        if (text.charCodeAt(i) === close) {
          stack.pop();
          i++;
          expect = 'after';
        } else {
          expect = c === 0x7b ? 'key' : 'value';
        }
        afterComma = false;
        continue;
      }
      if (c === 0x22) {
        const r = scanString(text, i);
        if (typeof r !== 'number') return r;
        i = r;
      } else if (c === 0x2d || isDigit(c)) {
        const r = scanNumber(text, i);
        if (typeof r !== 'number') return r;
        i = r;
      } else if (c === 0x74 || c === 0x66 || c === 0x6e) {
        const word = c === 0x74 ? 'true' : c === 0x66 ? 'false' : 'null';
        for (let k = 0; k < word.length; k++) {
          if (text.charCodeAt(i + k) !== word.charCodeAt(k)) return { index: Math.min(i + k, n), message: `invalid literal: expected ${word} (JSON knows only true, false and null)` };
        }
        i += word.length;
      } else if (afterComma && (c === 0x5d || c === 0x7d)) {
        return { index: i, message: `trailing comma before ${describeChar(text, i)} (JSON allows none)` };
      } else if (c === 0x27) {
        return { index: i, message: "strings must use double quotes (\"), not single quotes (')" };
      } else {
        return { index: i, message: `unexpected ${describeChar(text, i)} where a value was expected` };
      }
      expect = 'after';
      afterComma = false;
      continue;
    }
    if (expect === 'key') {
      if (i >= n) return { index: n, message: 'the line ends where a property name was expected' };
      const c = text.charCodeAt(i);
      if (c !== 0x22) {
        if (afterComma && c === 0x7d) return { index: i, message: "trailing comma before '}' (JSON allows none)" };
        return { index: i, message: `expected a property name in double quotes, found ${describeChar(text, i)}` };
      }
      const r = scanString(text, i);
      if (typeof r !== 'number') return r;
      i = r;
      ws();
      if (i >= n) return { index: n, message: "the line ends where ':' was expected after a property name" };
      if (text.charCodeAt(i) !== 0x3a) return { index: i, message: `expected ':' after the property name, found ${describeChar(text, i)}` };
      i++;
      expect = 'value';
      afterComma = false;
      continue;
    }
    // expect === 'after': a complete value was just read.
    if (stack.length === 0) {
      if (i < n) return { index: i, message: `unexpected ${describeChar(text, i)} after the end of the JSON value (one object per line)` };
      return null;
    }
    const top = stack[stack.length - 1];
    const close = top === 0x7b ? 0x7d : 0x5d;
    const expected = top === 0x7b ? "',' or '}'" : "',' or ']'";
    if (i >= n) return { index: n, message: `the line ends inside ${top === 0x7b ? 'an object' : 'an array'}: expected ${expected}` };
    const c = text.charCodeAt(i);
    if (c === 0x2c) {
      i++;
      expect = top === 0x7b ? 'key' : 'value';
      afterComma = true;
    } else if (c === close) {
      stack.pop();
      i++;
    } else {
      return { index: i, message: `expected ${expected}, found ${describeChar(text, i)}` };
    }
  }
}

/** 1-based column in code points (what an editor shows) of a UTF-16 index. */
export function columnOf(text: string, index: number): number {
  let col = 1;
  for (let i = 0; i < index && i < text.length; i++) {
    const c = text.charCodeAt(i);
    // Count a surrogate pair once.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < index) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    col++;
  }
  return col;
}
