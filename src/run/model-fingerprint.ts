// A local model file's content, sampled: the page names a picked folder by its name alone, and a local file's version
// (its size and modification time) is not compared on resume (a copy changes the time). Two folders of one name with
// files of the same names and sizes (two fine-tunes of one base) were then one model to a saved run, which went on
// training on the other base without a word. A hash of a few blocks of each file tells them apart: any two different
// trainings differ in every block of weights, while reading 256 KiB of a 5 GB shard costs nothing.

import type { FileSet } from '../model/source.ts';
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
  const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.byteLength;
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
  return `sampled-sha256:${[...digest].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
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
