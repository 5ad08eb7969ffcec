// Which weight-cache entries a prune removes. An entry is made for exact files at exact settings, so once a model's
// files change (a new revision, a re-downloaded or edited folder) its older entries can never be loaded again, yet each
// holds the whole quantised model (≈ 4 GB for Mistral-7B). A prune keeps the newest entry of each source and
// quantisation, and removes the older ones and those whose footer cannot be read (damaged, or another format, which a
// load would rebuild anyway).

import type { WeightCacheEntryInfo } from './weight-cache.ts';

export interface PruneChoice {
  entry: WeightCacheEntryInfo;
  /** Why it goes, in words. */
  why: string;
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
    const model = `${e.source}\u0000${e.quantization}`;
    if (seen.has(model)) out.push({ entry: e, why: `an older entry of ${e.source} (${e.quantization}): the newest is kept` });
    else seen.add(model);
  }
  return out;
}
