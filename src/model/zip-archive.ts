// Reading zip archives we did not write (adapter zips, Replicate's training_output.zip, torch.save files) with fflate,
// with bounds: nothing is inflated before its claimed size has been checked, so a small hostile zip cannot make us
// allocate gigabytes. Entries are listed first (no decompression), then only the wanted ones are extracted.

import { unzipSync } from 'fflate';
import { FinetuneError } from '../core/errors.ts';

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

function badZip(where: string, message: string): FinetuneError {
  return new FinetuneError('bad-input', `${where}: ${message}`);
}

/** The entries of a zip (directories left out), without extracting anything. */
export function listZip(bytes: Uint8Array, where: string): ZipEntryInfo[] {
  const infos: ZipEntryInfo[] = [];
  try {
    unzipSync(bytes, {
      filter: (f) => {
        if (!f.name.endsWith('/')) infos.push({ name: f.name, size: f.size, originalSize: f.originalSize, compression: f.compression });
        return false;
      },
    });
  } catch (e) {
    throw badZip(where, `not a readable zip archive (${(e as Error).message})`);
  }
  return infos;
}

/**
 * Extracts the entries whose names `want` accepts. Each entry's claimed size is checked against the limits and, for
 * deflated data, against what its compressed size can possibly expand to, before anything is inflated.
 */
export function extractZip(bytes: Uint8Array, where: string, want: (name: string) => boolean, limits: ZipLimits = {}): Map<string, Uint8Array> {
  const maxEntry = limits.maxEntryBytes ?? DEFAULT_MAX_ENTRY;
  const maxTotal = limits.maxTotalBytes ?? DEFAULT_MAX_TOTAL;
  let total = 0;
  let refusal: FinetuneError | null = null;
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter: (f) => {
        if (refusal || f.name.endsWith('/') || !want(f.name)) return false;
        if (f.compression !== 0 && f.compression !== 8) {
          refusal = badZip(where, `${f.name} uses compression method ${f.compression}; only stored and deflate entries are read`);
        } else if (f.originalSize > maxEntry) {
          refusal = badZip(where, `${f.name} claims ${f.originalSize} bytes once extracted, more than the ${maxEntry}-byte limit`);
        } else if (f.compression === 8 && f.originalSize > f.size * MAX_DEFLATE_RATIO + 1024) {
          refusal = badZip(where, `${f.name} claims ${f.originalSize} bytes from ${f.size} compressed bytes, more than deflate can produce`);
        } else if (f.compression === 0 && f.originalSize !== f.size) {
          refusal = badZip(where, `${f.name} is stored uncompressed but claims ${f.originalSize} bytes extracted from ${f.size} stored`);
        } else if ((total += f.originalSize) > maxTotal) {
          refusal = badZip(where, `the entries to extract add up to more than the ${maxTotal}-byte limit`);
        }
        return refusal === null;
      },
    });
  } catch (e) {
    if (e instanceof FinetuneError) throw e;
    throw badZip(where, `not a readable zip archive (${(e as Error).message})`);
  }
  if (refusal) throw refusal;
  const out = new Map<string, Uint8Array>();
  for (const [name, data] of Object.entries(files)) {
    if (data.byteLength > maxEntry) throw badZip(where, `${name} extracts to more than the ${maxEntry}-byte limit`);
    out.set(name, data);
  }
  return out;
}
