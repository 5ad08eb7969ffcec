// A local model file's content, sampled: the page names a picked folder by its name alone, and a local file's version
// (its size and modification time) is not compared on resume (a copy changes the time). Two folders of one name with
// files of the same names and sizes (two fine-tunes of one base) were then one model to a saved run, which went on
// training on the other base without a word. A hash of a few blocks of each file tells them apart: any two different
// trainings differ in every block of weights, while reading 256 KiB of a 5 GB shard costs nothing.

import { concatBytes } from '../core/bytes.ts';
import type { FileSet } from '../model/source.ts';
import { stateChecksum } from './saved-run-check.ts';
import type { ModelFileVersion } from './saved-run.ts';

/** Bytes hashed at each sampled place. */
export const FINGERPRINT_BLOCK = 64 * 1024;
/** Sampled places: the start, two inner points, the end. */
const PLACES = [0, 1 / 3, 2 / 3, 1];

/** "sampled-sha256:<hex>" of the file's size and its blocks at PLACES (the whole file when it is that small). */
export async function contentFingerprint(read: (offset: number, length: number) => Promise<Uint8Array>, size: number): Promise<string> {
  const parts: Uint8Array[] = [new TextEncoder().encode(`${size}\n`)];
  const seen = new Set<number>();
  for (const place of PLACES) {
    const offset = Math.max(0, Math.min(size - FINGERPRINT_BLOCK, Math.floor(place * size)));
    if (seen.has(offset)) continue;
    seen.add(offset);
    parts.push(await read(offset, Math.min(FINGERPRINT_BLOCK, size - offset)));
  }
  // The saved files' checksum ("sha256:<hex>"), of these parts.
  return `sampled-${await stateChecksum(concatBytes(parts))}`;
}

/** The fingerprints of the local files (version "file …") among `names`; others have versions of their own (ETags). */
export async function localFingerprints(files: FileSet, names: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of names) {
    const src = await files.open(name);
    if (src.version?.startsWith('file ')) out.set(name, await contentFingerprint((o, n) => src.read(o, n), src.size));
  }
  return out;
}

/** `list` with each file's fingerprint from `prints`, where it has one. */
export function withFingerprints(list: readonly ModelFileVersion[], prints: ReadonlyMap<string, string>): ModelFileVersion[] {
  return list.map((f) => (prints.has(f.name) ? { ...f, fingerprint: prints.get(f.name) } : f));
}
