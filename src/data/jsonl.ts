// Streaming JSONL reader: bytes in, one parsed JSON value per non-blank line out, problems into a ProblemLog.
// It never holds more than one line of the file as a string, so a 1 GB file is read in constant memory (apart from
// what the caller keeps). It runs unchanged in a browser worker (File/Blob.stream()) and in Node (a file stream):
// the source is a ReadableStream of bytes or any (async) iterable of Uint8Array chunks.
//
// Rules: UTF-8 with or without a byte-order mark; LF or CRLF line ends; blank (whitespace-only) lines are skipped but
// counted, so line numbers match an editor's; invalid UTF-8 and JSON syntax errors are reported with the line and
// column and the line is skipped; a line longer than `maxLineBytes` is reported and skipped without being buffered.
// A file whose first kilobyte is plainly not text (a NUL byte, or the signature of an image or archive) is reported
// once as 'not-text' and not read further: a PNG would otherwise give one UTF-8 error per "line". A file whose first
// line with content shows a common wrong format (a JSON array, CSV, TSV) gets one note saying so, before that line's
// own problem; every line keeps its own problems.

import { concatBytes } from '../core/bytes.ts';
import { FinetuneError, thrownMessage } from '../core/errors.ts';
import { formatCount } from '../core/units.ts';
import { columnOf, findJsonSyntaxError } from './json-syntax.ts';
import type { ProblemCode, ProblemLog } from './problems.ts';

export type ByteSource = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> | Iterable<Uint8Array> | Uint8Array;

export interface JsonlLine {
  /** 1-based line number in the file. */
  line: number;
  value: unknown;
}

export interface ReadOptions {
  /** Longest line accepted, in bytes (default 64 MiB). Longer lines are reported and skipped. */
  maxLineBytes?: number;
  /** Called after each chunk with the number of bytes read so far (for a progress bar). */
  onProgress?: (bytesRead: number) => void;
  /** Filled in while reading: lines seen, lines with content (blank ones excluded), bytes. */
  counters?: ReadCounters;
}

export interface ReadCounters {
  lines: number;
  contentLines: number;
  bytes: number;
  /** Set when the file was refused as binary ('not-text'): nothing of it was read as lines. */
  notText?: boolean;
}

export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;

/** Chunks of a byte source, whatever its kind. */
export async function* chunksOf(source: ByteSource): AsyncGenerator<Uint8Array> {
  if (source instanceof Uint8Array) {
    yield source;
    return;
  }
  if (typeof (source as ReadableStream<Uint8Array>).getReader === 'function') {
    // A WHATWG stream: read it through a reader (async iteration of ReadableStream is not in every browser).
    const reader = (source as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  }
  if (Symbol.asyncIterator in source) {
    for await (const chunk of source as AsyncIterable<Uint8Array>) yield chunk;
    return;
  }
  for (const chunk of source as Iterable<Uint8Array>) yield chunk;
}

/**
 * Index of the first byte that is not part of well-formed UTF-8 (overlong forms, surrogates and code points above
 * U+10FFFF are ill-formed, as in the WHATWG decoder), or -1 if all of `bytes` is well-formed.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0; // no overlongs
      if (b === 0xed) hi = 0x9f; // no surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90; // no overlongs
      if (b === 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else return i;
    for (let k = 1; k <= need; k++) {
      if (i + k >= n) return i;
      const c = bytes[i + k];
      if (k === 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** How much of the start of a file is looked at to tell binary data from text. */
const SNIFF_BYTES = 1024;

/** Signatures of common binary formats people pick by mistake: PNG, JPEG, GIF, PDF, zip, gzip, 7z, xz, bzip2. */
const BINARY_SIGNATURES: readonly number[][] = [
  [0x89, 0x50, 0x4e, 0x47],
  [0xff, 0xd8, 0xff],
  [0x47, 0x49, 0x46, 0x38],
  [0x25, 0x50, 0x44, 0x46, 0x2d],
  [0x50, 0x4b, 0x03, 0x04],
  [0x1f, 0x8b],
  [0x37, 0x7a, 0xbc, 0xaf],
  [0xfd, 0x37, 0x7a, 0x58, 0x5a],
  [0x42, 0x5a, 0x68],
];

/**
 * NUL bytes in the first kilobyte that make a file binary. JSON never holds a raw NUL, but UTF-16 text has one in every
 * other byte and most binary formats dozens; a stray one or two in a text file (a bad copy, an exporter's bug) is that
 * line's error, with its line and column: with any NUL taken for binary, such a file was "an image, an archive…".
 */
const BINARY_NULS = 4;

/**
 * True when the start of a file is plainly not UTF-8 JSONL: a known binary signature, a UTF-16 byte-order mark, or
 * NUL bytes in its first kilobyte (BINARY_NULS of them).
 */
export function looksBinary(start: Uint8Array): boolean {
  if (BINARY_SIGNATURES.some((sig) => sig.length <= start.length && sig.every((b, i) => start[i] === b))) return true;
  if (start.length >= 2 && ((start[0] === 0xff && start[1] === 0xfe) || (start[0] === 0xfe && start[1] === 0xff))) return true;
  let nuls = 0;
  for (const b of start.subarray(0, SNIFF_BYTES)) if (b === 0 && ++nuls >= BINARY_NULS) return true;
  return false;
}

/** The chunks of `source` unchanged, after a look at its first SNIFF_BYTES; `onStart` gets that prefix once. */
async function* sniffed(source: ByteSource, onStart: (start: Uint8Array) => boolean): AsyncGenerator<Uint8Array> {
  const it = chunksOf(source);
  const held: Uint8Array[] = [];
  let heldBytes = 0;
  let ended = false;
  let failure: { error: unknown } | null = null;
  while (heldBytes < SNIFF_BYTES) {
    let r: IteratorResult<Uint8Array>;
    try {
      r = await it.next();
    } catch (error) {
      // Raised after the chunks before it are passed on, so the reader reports where the stream really failed.
      failure = { error };
      break;
    }
    if (r.done) {
      ended = true;
      break;
    }
    // Copies: the producer may reuse its buffer before we pass the chunk on.
    held.push(r.value instanceof Uint8Array ? r.value.slice() : r.value);
    heldBytes += r.value instanceof Uint8Array ? r.value.length : 0;
  }
  const bytesOnly = held.every((c) => c instanceof Uint8Array);
  if (bytesOnly && !onStart(concatBytes(held, heldBytes).subarray(0, SNIFF_BYTES))) {
    await it.return?.(undefined);
    return;
  }
  yield* held;
  if (failure) throw failure.error;
  if (!ended) yield* it;
}

const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a && c !== 0xfeff) return false;
  }
  return true;
}

/**
 * What a file is instead of JSONL, judged from its first line with content (`text`, and whether it parsed as JSON), or
 * null. Only the two common mistakes, cheaply: a JSON array (the picker takes .json files) and CSV/TSV. Valid JSONL
 * never gets one: its first line is an object, so it neither starts with '[' nor fails to parse.
 */
export function wrongFormatHint(text: string, parsed: boolean): { code: ProblemCode; message: string } | null {
  if (text.trimStart().startsWith('[')) {
    return { code: 'looks-like-json-array', message: "this looks like a JSON array, not JSONL: write one JSON object per line (jq -c '.[]' file.json turns an array into JSONL)" };
  }
  // Lone carriage returns between objects: lines ended as classic Mac OS ended them, which JSONL does not (the whole
  // file is then one "line 1", whose error after its first object points nowhere near the real one).
  if (!parsed && /\}\s*\r(?!\n)\s*\{/.test(text)) {
    return { code: 'cr-line-ends', message: 'this file ends its lines with a lone carriage return (CR, as classic Mac OS did), so it reads as one line: save it with LF (or CRLF) line ends' };
  }
  if (!parsed && !text.includes('{') && (text.includes(',') || text.includes('\t'))) {
    return { code: 'looks-like-csv', message: 'this looks like CSV/TSV, not JSONL: write one JSON object per line, like {"prompt": "...", "completion": "..."} or {"text": "..."}' };
  }
  return null;
}

/** One complete line's bytes (without its LF) → a JsonlLine, or null when blank or bad (bad ones are logged). */
function parseLine(bytes: Uint8Array, line: number, log: ProblemLog, counters: ReadCounters): JsonlLine | null {
  counters.lines = line;
  if (line === 1 && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0d) end--; // CRLF
  bytes = bytes.subarray(0, end);
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) {
    const column = columnOf(decoder.decode(bytes.subarray(0, bad)), Infinity);
    counters.contentLines++;
    log.error(line, 'invalid-utf8', `invalid UTF-8 at byte ${bad + 1} of the line (0x${bytes[bad].toString(16).toUpperCase().padStart(2, '0')}…); save the file as UTF-8`, column);
    return null;
  }
  const text = decoder.decode(bytes);
  if (isBlank(text)) return null;
  counters.contentLines++;
  let value: unknown;
  let parsed = true;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    parsed = false;
  }
  // The first line with content tells a JSON array or CSV from JSONL: said once, before that line's own problem.
  if (counters.contentLines === 1) {
    const hint = wrongFormatHint(text, parsed);
    if (hint) log.note(null, hint.code, hint.message);
  }
  if (parsed) return { line, value };
  const e = findJsonSyntaxError(text);
  if (e) log.error(line, 'invalid-json', `invalid JSON: ${e.message}`, columnOf(text, e.index));
  // Valid per the grammar yet refused by the engine (e.g. nesting deeper than it supports).
  else log.error(line, 'invalid-json', 'invalid JSON: this JavaScript engine could not parse the line (nested too deeply?)');
  return null;
}

/**
 * The JSON values of the non-blank lines of a JSONL byte stream, in file order. Problems go into `log`; the generator
 * itself throws only FinetuneError('bad-input') when the stream fails to deliver its bytes.
 */
export async function* readJsonl(source: ByteSource, log: ProblemLog, options: ReadOptions = {}): AsyncGenerator<JsonlLine> {
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  let line = 1;
  let parts: Uint8Array[] = [];
  let partLen = 0;
  let overflow = false; // the current line passed maxLineBytes: count its bytes, keep none
  let bytesRead = 0;
  const counters = options.counters ?? { lines: 0, contentLines: 0, bytes: 0 };

  const tooLong = () => {
    counters.lines = line;
    counters.contentLines++;
    log.error(line, 'line-too-long', `line longer than ${formatCount(maxLineBytes)} bytes; skipped (is this really JSONL, one object per line?)`);
  };

  let binary = false;
  const iterator = sniffed(source, (start) => {
    if (!looksBinary(start)) return true;
    binary = true;
    counters.notText = true;
    log.error(null, 'not-text', 'this is not a JSONL text file: it holds binary data (an image, an archive, UTF-16 text…); expected UTF-8 text, one JSON object per line');
    return false;
  });
  for (;;) {
    let chunk: Uint8Array;
    try {
      const r = await iterator.next();
      if (r.done) break;
      chunk = r.value;
    } catch (e) {
      // What a file's reader throws is the browser's or the file system's: thrownMessage never throws (String() did for
      // an object with no prototype, and the failure lost the byte and line it happened at).
      throw new FinetuneError('bad-input', `reading the file failed at byte ${bytesRead} (line ${line}): ${thrownMessage(e)}`);
    }
    if (!(chunk instanceof Uint8Array)) throw new FinetuneError('bad-input', 'the data source delivered something other than bytes');
    bytesRead += chunk.length;
    counters.bytes = bytesRead;
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(0x0a, pos);
      const end = nl < 0 ? chunk.length : nl;
      if (!overflow) {
        if (partLen + (end - pos) > maxLineBytes) {
          overflow = true;
          parts = [];
          partLen = 0;
        } else if (end > pos) {
          parts.push(chunk.subarray(pos, end));
          partLen += end - pos;
        }
      }
      if (nl < 0) {
        // The line continues in the next chunk: keep a copy, the producer may reuse its buffer.
        if (!overflow && parts.length > 0) {
          const last = parts.length - 1;
          parts[last] = parts[last].slice();
        }
        break;
      }
      if (overflow) tooLong();
      else {
        const row = parseLine(concatBytes(parts, partLen), line, log, counters);
        if (row) yield row;
      }
      parts = [];
      partLen = 0;
      overflow = false;
      line++;
      pos = nl + 1;
    }
    options.onProgress?.(bytesRead);
  }
  if (binary) return;
  // The last line has no LF.
  if (overflow) tooLong();
  else if (partLen > 0) {
    const row = parseLine(concatBytes(parts, partLen), line, log, counters);
    if (row) yield row;
  }
}
