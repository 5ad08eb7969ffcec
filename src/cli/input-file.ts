// Checks on a file named on the command line, done before any GPU or model work: it must be a regular file we can
// read (not a directory, not a device such as /dev/zero, which never ends), and a JSONL file must keep within sane
// bounds of line length and line count. The bounds are checked by streaming the file (constant memory) and stopping
// at the first line past a bound, so a hostile file costs at most one pass up to that point.

import { accessSync, constants, createReadStream, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DEFAULT_MAX_LINE_BYTES, looksBinary } from '../data/jsonl.ts';
import { formatBytes } from '../core/units.ts';
import { FinetuneError } from '../core/errors.ts';
import { quote } from '../core/quote.ts';
import { nodeErrorReason } from './node-error.ts';

/** More lines than any fine-tuning set we expect to hold in memory at once (tokenised, ~10 M rows). */
export const MAX_DATA_LINES = 10_000_000;

/** Largest data file: training reads it whole once, and Node reads no file larger than 2 GiB into memory. */
export const MAX_DATA_BYTES = 2 ** 31 - 1;

/** "--data: " before a message about a flag's file; nothing for a positional argument (flag ''). */
function prefix(flag: string): string {
  return flag ? `${flag}: ` : '';
}

/** A regular, readable file, or FinetuneError('bad-input') in one line naming the flag. */
export function checkReadableFile(path: string, flag: string): number {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} does not exist`);
    throw new FinetuneError('bad-input', `${prefix(flag)}cannot read ${quote(path)} (${nodeErrorReason(e)})`);
  }
  if (st.isDirectory()) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} is a directory, not a file`);
  if (!st.isFile()) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} is not a regular file (a device, pipe or socket is not accepted)`);
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} is not readable (permission denied)`);
  }
  return st.size;
}

export interface JsonlBounds {
  maxLineBytes?: number;
  maxLines?: number;
  maxBytes?: number;
}

/**
 * A readable regular file within the line bounds, or FinetuneError('bad-input') naming the flag, the file and the
 * first line past a bound. Reads the file once, as a stream, and stops at that line. A file that is not text at all
 * (binary: NUL bytes or an image's signature at its start) is refused as such.
 */
export async function checkJsonlFile(path: string, flag: string, bounds: JsonlBounds = {}): Promise<{ lines: number; bytes: number }> {
  const size = checkReadableFile(path, flag);
  const maxBytes = bounds.maxBytes ?? MAX_DATA_BYTES;
  if (size > maxBytes) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} is ${formatBytes(size)}, more than the ${formatBytes(maxBytes)} a training file may have; split it or keep fewer rows`);
  const maxLineBytes = bounds.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const maxLines = bounds.maxLines ?? MAX_DATA_LINES;
  let lines = 0;
  let bytes = 0;
  let lineBytes = 0;
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (bytes === 0 && looksBinary(chunk)) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} is not a JSONL text file (it holds binary data)`);
      bytes += chunk.length;
      let pos = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, pos);
        lineBytes += (nl < 0 ? chunk.length : nl) - pos;
        if (lineBytes > maxLineBytes) {
          throw new FinetuneError('bad-input', `${prefix(flag)}line ${lines + 1} of ${quote(path)} is longer than ${formatBytes(maxLineBytes)}; a JSONL file holds one JSON object per line`);
        }
        if (nl < 0) break;
        lines++;
        lineBytes = 0;
        pos = nl + 1;
        if (lines > maxLines) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} has more than ${maxLines.toLocaleString('en-US')} lines; split it or keep fewer rows`);
      }
    }
  } finally {
    stream.destroy();
  }
  if (lineBytes > 0) lines++;
  if (lines > maxLines) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} has more than ${maxLines.toLocaleString('en-US')} lines; split it or keep fewer rows`);
  return { lines, bytes };
}

/**
 * Where an output goes: `kind` 'folder' (absent, or an existing directory) or 'file' (absent, or not a directory).
 * Checked before any work, so that a wrong --out is one line naming the flag, not Node's ENOTDIR/EISDIR at the end.
 */
export function checkOutputPath(path: string, flag: string, kind: 'folder' | 'file', writable: (p: string) => boolean = canWrite): void {
  const st = statOrNull(path);
  if (st) {
    if (kind === 'folder' && !st.isDirectory()) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} is a file; give a folder (it is made if missing)`);
    if (kind === 'file' && st.isDirectory()) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} is a folder; give a file name to write`);
    const where = kind === 'folder' ? path : dirname(resolve(path));
    if (!writable(where) || (kind === 'file' && !writable(path))) throw new FinetuneError('bad-input', `${prefix(flag)}cannot write ${kind === 'folder' ? 'in ' : ''}${quote(path)} (permission denied, or a read-only disk): give another ${kind}`);
    return;
  }
  // Made when written: its nearest existing folder must be a folder we may write in, or the run fails at its end
  // (train writes OUT/adapter last) with Node's bare ENOTDIR or EACCES.
  for (let p = dirname(resolve(path)); ; p = dirname(p)) {
    const up = statOrNull(p);
    if (up) {
      if (!up.isDirectory()) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} cannot be made: ${quote(p)} is a file`);
      if (!writable(p)) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} cannot be made: cannot write in ${quote(p)} (permission denied, or a read-only disk)`);
      return;
    }
    if (dirname(p) === p) return;
  }
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

function canWrite(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** An existing directory, or FinetuneError('bad-input') in one line naming the flag. */
export function checkDirectory(path: string, flag: string): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} does not exist`);
  }
  if (!st.isDirectory()) throw new FinetuneError('bad-input', `${prefix(flag)}${quote(path)} is not a directory`);
}
