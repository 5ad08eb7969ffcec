// Which weight-cache entries a prune removes. An entry is made for exact files at exact settings, so once a model's
// files change (a new revision, a re-downloaded or edited folder) its older entries can never be loaded again, yet each
// holds the whole quantised model (≈ 4 GB for Mistral-7B). A prune keeps the newest entry of each source and
// quantisation, and removes the older ones and those whose footer cannot be read (damaged, or another format, which a
// load would rebuild anyway). An entry named by a folder's name alone (the command line's names until 2026-12-03) is
// kept: two folders of that name share it, so "the newest of that source" could be another folder's entry.

import { formatBytes } from '../core/units.ts';
import type { WeightCacheEntryInfo } from './weight-cache.ts';

export interface PruneChoice {
  entry: WeightCacheEntryInfo;
  /** Why it goes, in words. */
  why: string;
}

/**
 * True when `source` names one model: a folder's path, a URL, a Hub id (owner/name, with its revision) all hold a '/'
 * (or a Windows path's '\\'). A name without one is a folder's (or a URL's last segment) alone, which two models can
 * share: the command line named entries so until 2026-12-03, and moves such an entry to its path at the folder's next load.
 */
export function attributableSource(source: string): boolean {
  return /[/\\]/.test(source);
}

/** The readable entries prune keeps whatever their age because their name could be two models' (see attributableSource). */
export function unattributedEntries(entries: readonly WeightCacheEntryInfo[]): WeightCacheEntryInfo[] {
  return entries.filter((e) => e.source !== undefined && e.quantization !== undefined && !attributableSource(e.source));
}

export function entriesToPrune(entries: readonly WeightCacheEntryInfo[]): PruneChoice[] {
  const newestFirst = [...entries].sort((a, b) => (b.writtenAt ?? 0) - (a.writtenAt ?? 0));
  const seen = new Set<string>();
  const out: PruneChoice[] = [];
  for (const e of newestFirst) {
    if (e.source === undefined || e.quantization === undefined) {
      out.push({ entry: e, why: 'unreadable (damaged, or from another version of finetune)' });
      continue;
    }
    if (!attributableSource(e.source)) continue;
    const model = `${e.source}\u0000${e.quantization}`;
    if (seen.has(model)) out.push({ entry: e, why: `an older entry of ${e.source} (${e.quantization}): the newest is kept` });
    else seen.add(model);
  }
  return out;
}

/**
 * After a load of `source`: a note when the cache holds entries of it that no load can use again (its files have
 * changed since they were written), so that ≈ 4 GB entries do not pile up unseen; null when there are none.
 */
export function supersededNote(entries: readonly WeightCacheEntryInfo[], source: string, quantization: string, pruneHint: string): string | null {
  const old = entriesToPrune(entries).filter((c) => c.entry.source === source && c.entry.quantization === quantization);
  if (old.length === 0) return null;
  const bytes = old.reduce((a, c) => a + c.entry.bytes, 0);
  return `the weight cache also holds ${old.length === 1 ? 'an older entry' : `${old.length} older entries`} of ${source} (${quantization}), ${formatBytes(bytes)}, made from earlier versions of its files, which no load can use again: ${pruneHint} removes ${old.length === 1 ? 'it' : 'them'}`;
}
