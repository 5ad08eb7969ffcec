// Reading zip archives we did not write (adapter zips, Replicate's training_output.zip, torch.save files) with fflate,
// with bounds: nothing is inflated before its claimed size has been checked, so a small hostile zip cannot make us
// allocate gigabytes. Entries are listed first (no decompression), then only the wanted ones are extracted, and each is
// checked against the CRC-32 the archive recorded for it (fflate checks none). Entry names in messages are quoted as
// JSON strings: they are the archive's, and a control character in one is escaped rather than printed.

import { unzipSync } from 'fflate';
import { FinetuneError, thrownMessage } from '../core/errors.ts';
import { quote, visibleText } from '../core/quote.ts';
import { crc32 } from '../core/bytes.ts';

export interface ZipEntryInfo {
  name: string;
  /** Bytes stored in the archive. */
  size: number;
  /** Bytes once extracted, as the archive claims. */
  originalSize: number;
  /** 0 = stored, 8 = deflate (the only two fflate and we accept). */
  compression: number;
}

export interface ZipLimits {
  /** Largest extracted size of one entry (default 2 GiB − 1, the most one Uint8Array may hold everywhere). */
  maxEntryBytes?: number;
  /** Largest extracted size of everything extracted by one call (default 4 GiB). */
  maxTotalBytes?: number;
}

const DEFAULT_MAX_ENTRY = 2 ** 31 - 1;
const DEFAULT_MAX_TOTAL = 2 ** 32;
/** Deflate cannot expand by more than about 1032:1; a bigger claim is a lie (a zip bomb or a corrupt header). */
const MAX_DEFLATE_RATIO = 1032;

/** The four bytes every zip's first local header starts with ("PK\x03\x04"); an empty zip starts "PK\x05\x06". */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));
}

// `where` names the input as it was given (a picked file or folder, a path, a Hub file): a path label, written with
// visibleText's escapes (no quotes, so it reads as a path) so that a bidirectional control in it cannot reorder the message.
function badZip(where: string, message: string): FinetuneError {
  return new FinetuneError('bad-input', `${visibleText(where)}: ${message}`);
}

/** The signature every central-directory record starts with ("PK\x01\x02"). */
const CENTRAL_RECORD = 0x02014b50;
/** A central-directory record's fixed part; its name, extra field and comment follow. */
const CENTRAL_RECORD_BYTES = 46;

/**
 * The CRC-32 of every central-directory record, in the directory's order: the records fflate's unzipSync walks, in
 * the same order and found the same way (zip64 included), but whose CRC it never hands its filter nor checks. Each
 * record must lie whole inside the file where the one before ends: fflate reads past the end as zeros and walks
 * whatever count the end record claims, so an empty zip counting 33,920 entries listed 33,920 phantom ones, and a zip64
 * record counting 2^32 − 1 kept it walking (and the listing growing) without end. Run before unzipSync, this refuses
 * such a directory at its first missing record.
 */
function centralCrcs(bytes: Uint8Array, where: string): number[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const in4 = (at: number): boolean => at >= 0 && at + 4 <= bytes.byteLength;
  const u16 = (at: number): number => dv.getUint16(at, true);
  const u32 = (at: number): number => dv.getUint32(at, true);
  try {
    let e = bytes.byteLength - 22;
    while (!in4(e) || u32(e) !== 0x06054b50) if (--e < 0 || bytes.byteLength - e > 65558) throw new RangeError('no end of central directory');
    let count = u16(e + 8);
    let at = u32(e + 16);
    if (in4(e - 20) && u32(e - 20) === 0x07064b50) {
      const z = u32(e - 12);
      if (in4(z) && u32(z) === 0x06064b50) {
        count = u32(z + 32);
        at = u32(z + 48);
      }
    }
    const crcs: number[] = [];
    for (let i = 0; i < count; i++) {
      const whole = at >= 0 && at + CENTRAL_RECORD_BYTES <= bytes.byteLength && u32(at) === CENTRAL_RECORD;
      if (!whole) throw new RangeError(`it counts ${count} entries, and record ${i + 1} is not in the file`);
      const next = at + CENTRAL_RECORD_BYTES + u16(at + 28) + u16(at + 30) + u16(at + 32);
      if (next > bytes.byteLength) throw new RangeError(`it counts ${count} entries, and record ${i + 1} runs past the end of the file`);
      crcs.push(u32(at + 16));
      at = next;
    }
    return crcs;
  } catch (e) {
    throw badZip(where, `not a readable zip archive (its central directory: ${thrownMessage(e)})`);
  }
}

/**
 * The entry names of a zip of `fileSize` bytes (directories included, with their trailing '/') from its last bytes,
 * `tail`: the end-of-central-directory record and the central directory must both lie in it. Null when they do not,
 * for a zip64 archive, or when a record is not where the directory says; nothing is inflated or read but `tail`. For
 * telling an archive apart by its entries without reading the whole of it (a multi-gigabyte zip).
 */
export function zipNamesFromTail(tail: Uint8Array, fileSize: number): string[] | null {
  const dv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  const fits = (at: number, n: number): boolean => at >= 0 && at + n <= tail.byteLength;
  let e = tail.byteLength - 22;
  while (e >= 0 && dv.getUint32(e, true) !== 0x06054b50) {
    if (tail.byteLength - e > 65557) return null; // the comment is at most 65,535 bytes
    e--;
  }
  if (e < 0) return null;
  const count = dv.getUint16(e + 10, true);
  const size = dv.getUint32(e + 12, true);
  const offset = dv.getUint32(e + 16, true);
  if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) return null; // zip64: none of ours
  let at = offset - (fileSize - tail.byteLength);
  if (at < 0 || at + size > e) return null;
  const decoder = new TextDecoder('utf-8', { fatal: false });
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    if (!fits(at, 46) || dv.getUint32(at, true) !== 0x02014b50) return null;
    const nameLength = dv.getUint16(at + 28, true);
    const next = at + 46 + nameLength + dv.getUint16(at + 30, true) + dv.getUint16(at + 32, true);
    if (next > e) return null;
    names.push(decoder.decode(tail.subarray(at + 46, at + 46 + nameLength)));
    at = next;
  }
  return names;
}

/** The entries of a zip (directories left out), without extracting anything. */
export function listZip(bytes: Uint8Array, where: string): ZipEntryInfo[] {
  // The directory's records checked first, so that unzipSync walks only records the file holds.
  centralCrcs(bytes, where);
  const infos: ZipEntryInfo[] = [];
  try {
    unzipSync(bytes, {
      filter: (f) => {
        if (!f.name.endsWith('/')) infos.push({ name: f.name, size: f.size, originalSize: f.originalSize, compression: f.compression });
        return false;
      },
    });
  } catch (e) {
    throw badZip(where, `not a readable zip archive (${thrownMessage(e)})`);
  }
  return infos;
}

/**
 * Extracts the entries whose names `want` accepts. Each entry's claimed size is checked against the limits and, for
 * deflated data, against what its compressed size can possibly expand to, before anything is inflated; a wanted name
 * that appears twice is refused.
 */
export function extractZip(bytes: Uint8Array, where: string, want: (name: string) => boolean, limits: ZipLimits = {}): Map<string, Uint8Array> {
  const maxEntry = limits.maxEntryBytes ?? DEFAULT_MAX_ENTRY;
  const maxTotal = limits.maxTotalBytes ?? DEFAULT_MAX_TOTAL;
  let total = 0;
  let refusal: FinetuneError | null = null;
  let files: Record<string, Uint8Array>;
  // Each extracted entry's index in the central directory and claimed size (a name is extracted once: see below).
  let index = -1;
  const claims = new Map<string, { index: number; originalSize: number }>();
  // Before unzipSync, so that it walks only records the file holds (see centralCrcs).
  const crcs = centralCrcs(bytes, where);
  try {
    files = unzipSync(bytes, {
      filter: (f) => {
        index++;
        if (refusal || f.name.endsWith('/') || !want(f.name)) return false;
        // unzipSync keeps the last of two entries of one name without a word (a second adapter_model.safetensors
        // replaced the first); neither can be told to be the one meant.
        if (claims.has(f.name)) {
          refusal = badZip(where, `holds ${quote(f.name)} twice; which one is meant cannot be told: make the zip again with one of them`);
        } else if (f.compression !== 0 && f.compression !== 8) {
          refusal = badZip(where, `${quote(f.name)} uses compression method ${f.compression}; only stored and deflate entries are read`);
        } else if (f.size > bytes.byteLength) {
          // Checked before the claims below: a size the file cannot hold would pass them (2,000,000 compressed bytes
          // "may" deflate to 2,000,000,000), and fflate allocates the claimed extracted size before inflating.
          refusal = badZip(where, `${quote(f.name)} claims ${f.size} compressed bytes, more than the whole archive's ${bytes.byteLength}: the archive is damaged or cut short; get it again`);
        } else if (f.originalSize > maxEntry) {
          refusal = badZip(where, `${quote(f.name)} claims ${f.originalSize} bytes once extracted, more than the ${maxEntry}-byte limit`);
        } else if (f.compression === 8 && f.originalSize > f.size * MAX_DEFLATE_RATIO + 1024) {
          refusal = badZip(where, `${quote(f.name)} claims ${f.originalSize} bytes from ${f.size} compressed bytes, more than deflate can produce`);
        } else if (f.compression === 0 && f.originalSize !== f.size) {
          refusal = badZip(where, `${quote(f.name)} is stored uncompressed but claims ${f.originalSize} bytes extracted from ${f.size} stored`);
        } else if ((total += f.originalSize) > maxTotal) {
          refusal = badZip(where, `the entries to extract add up to more than the ${maxTotal}-byte limit`);
        }
        if (refusal === null) claims.set(f.name, { index, originalSize: f.originalSize });
        return refusal === null;
      },
    });
  } catch (e) {
    if (e instanceof FinetuneError) throw e;
    throw badZip(where, `not a readable zip archive (${thrownMessage(e)})`);
  }
  if (refusal) throw refusal;
  const out = new Map<string, Uint8Array>();
  for (const [name, data] of Object.entries(files)) {
    if (data.byteLength > maxEntry) throw badZip(where, `${quote(name)} extracts to more than the ${maxEntry}-byte limit`);
    // A byte changed by a broken download or disk inflates without an error (or is stored as it is): the entry's
    // CRC-32 is the one thing that tells, and a weight read from it would be another number without a word.
    const claim = claims.get(name);
    const recorded = claim === undefined ? undefined : crcs[claim.index];
    if (claim === undefined || recorded === undefined) throw badZip(where, `${quote(name)} has no central directory record to check it against`);
    if (data.byteLength !== claim.originalSize) throw badZip(where, `${quote(name)} is damaged: it extracts to ${data.byteLength} bytes, the archive recorded ${claim.originalSize} (a broken download or copy?); get the file again`);
    const actual = crc32(data);
    if (actual !== recorded) {
      const hex = (n: number): string => n.toString(16).padStart(8, '0');
      throw badZip(where, `${quote(name)} is damaged: its CRC-32 is ${hex(actual)}, the archive recorded ${hex(recorded)} (a broken download or copy?); get the file again`);
    }
    out.set(name, data);
  }
  return out;
}
