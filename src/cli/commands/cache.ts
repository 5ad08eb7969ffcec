// `finetune cache list | rm | prune`: the weight cache of train and generate (one file per quantised model in
// ~/.cache/finetune, or --cache-dir) seen and emptied from the command line. Without it, every changed model folder
// or new revision left another ≈ 4 GB entry (Mistral-7B) that nothing removed.

import { formatBytes } from '../../core/units.ts';
import { FinetuneError } from '../../core/errors.ts';
import { entriesToPrune, unattributedEntries } from '../../run/weight-cache-prune.ts';
import type { WeightCacheEntryInfo } from '../../run/weight-cache.ts';
import { parseCommandArgs, UsageError, type CliIO, type Command } from '../command.ts';
import { checkCacheFolder } from '../cache-dir.ts';
import { defaultCacheDir, nodeWeightCache, removeLeftoverPartials } from '../node-weight-cache.ts';
import { quote } from '../../core/quote.ts';
import { removeOrphanCopies } from '../../model/offline-copy.ts';
import { folderStoreFiles } from '../node-store.ts';

const USAGE = `finetune cache list [--cache-dir DIR]
finetune cache rm KEY… | --all [--cache-dir DIR]
finetune cache prune [--dry-run] [--cache-dir DIR]

The weight cache of train and generate: each model as loaded (NF4-quantised or not) is kept in one file per source,
quantisation and version of its files, so the next load of the same files reads neither the model nor quantises it
again. An entry of Mistral-7B is ≈ 4 GB.

  list     one JSON line per entry, newest first: key, source, quantization, bytes, writtenAt; the total on stderr
  rm       removes the entries named by their key (or a unique prefix of at least 8 hex digits), or every entry with
           --all; an unknown or ambiguous key removes nothing. rm and prune also remove the offline copy of a Hub or
           URL model's file descriptions (what lets a cached model load without the network) once no entry of that
           model is left
  prune    removes what no load can use again: the older entries of each source and quantisation (its files have
           changed since: a new revision, an edited folder) and unreadable ones; one JSON line per entry removed
           (--dry-run: per entry that would be). Entries named by a folder's name alone (written before entries
           were named by the folder's path) are kept: two folders of that name share it

options:
  --cache-dir DIR  the cache folder (default ~/.cache/finetune, or $XDG_CACHE_HOME/finetune)`;

const count = (n: number): string => `${n} ${n === 1 ? 'entry' : 'entries'}`;

function entryLine(type: string, e: WeightCacheEntryInfo, extra: Record<string, string> = {}): string {
  return JSON.stringify({ type, key: e.key, source: e.source ?? null, quantization: e.quantization ?? null, bytes: e.bytes, writtenAt: e.writtenAt === undefined ? null : new Date(e.writtenAt).toISOString(), ...extra });
}

async function removeAll(dir: string, doomed: readonly WeightCacheEntryInfo[], entries: readonly WeightCacheEntryInfo[], io: CliIO): Promise<void> {
  const store = nodeWeightCache(dir);
  for (const e of doomed) await store.remove(e.key);
  const freed = doomed.reduce((a, e) => a + e.bytes, 0);
  const left = entries.filter((e) => !doomed.includes(e));
  const copies = await removeOrphanCopies(folderStoreFiles(dir), left.flatMap((e) => (e.source === undefined ? [] : [e.source])));
  const also = copies > 0 ? ` (and the offline ${copies === 1 ? "copy of a model's" : `copies of ${copies} models'`} file descriptions no entry is left for)` : '';
  io.err(`removed ${count(doomed.length)}, freeing ${formatBytes(freed)}${also}; ${left.length} kept`);
}


/** The entries `keys` name: each a whole key or a unique prefix of at least 8 hex digits. */
function named(entries: readonly WeightCacheEntryInfo[], keys: readonly string[], dir: string): WeightCacheEntryInfo[] {
  return keys.map((k) => {
    if (!/^[0-9a-f]{8,40}$/.test(k)) throw new UsageError(`a key is at least 8 hex digits (finetune cache list shows them), got ${quote(k)}`);
    const hits = entries.filter((e) => e.key.startsWith(k));
    if (hits.length === 0) throw new FinetuneError('bad-input', `no entry ${k} in ${quote(dir)}: nothing was removed`);
    if (hits.length > 1) throw new FinetuneError('bad-input', `${k} names ${hits.length} entries; give more of the key: nothing was removed`);
    return hits[0];
  });
}

export const cacheCommand: Command = {
  name: 'cache',
  summary: 'list, remove or prune the quantised weights train and generate keep between runs',
  usage: USAGE,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { 'cache-dir': { type: 'string' }, all: { type: 'boolean', default: false }, 'dry-run': { type: 'boolean', default: false } }, true);
    const [sub, ...rest] = positionals;
    const dir = values['cache-dir'] ?? defaultCacheDir();
    if (sub !== 'list' && sub !== 'rm' && sub !== 'prune') throw new UsageError(sub === undefined ? 'say what to do: list, rm or prune' : `unknown subcommand ${quote(sub)}: list, rm or prune`);
    if (sub !== 'rm' && (values.all || rest.length > 0)) throw new UsageError(`${sub} takes no ${values.all ? '--all' : 'keys'}`);
    if (sub !== 'prune' && values['dry-run']) throw new UsageError('--dry-run is for prune');
    await checkCacheFolder(dir, { given: values['cache-dir'] !== undefined });
    await removeLeftoverPartials(dir);
    const entries = await nodeWeightCache(dir).list();
    switch (sub) {
      case 'list': {
        if (entries.length === 0) {
          io.err(`no cached weights in ${quote(dir)}`);
          return 0;
        }
        for (const e of entries) io.out(entryLine('cache-entry', e));
        io.err(`${count(entries.length)}, ${formatBytes(entries.reduce((a, e) => a + e.bytes, 0))}, in ${quote(dir)}`);
        return 0;
      }
      case 'rm': {
        if (values.all === rest.length > 0) throw new UsageError('give the keys of the entries to remove, or --all');
        const doomed = values.all ? entries : [...new Set(named(entries, rest, dir))];
        for (const e of doomed) io.out(entryLine('removed', e));
        await removeAll(dir, doomed, entries, io);
        return 0;
      }
      case 'prune': {
        const choices = entriesToPrune(entries);
        const bare = unattributedEntries(entries);
        if (bare.length > 0) {
          const names = [...new Set(bare.map((e) => e.source))].join(', ');
          io.err(
            `kept ${count(bare.length)} named only by a folder's name (${names}), ${formatBytes(bare.reduce((a, e) => a + e.bytes, 0))}: written before entries were named by the folder's path, they cannot be told apart from another folder's of that name; each moves to its folder's path at that folder's next load (finetune cache rm KEY removes one)`,
          );
        }
        for (const c of choices) io.out(entryLine(values['dry-run'] ? 'would-remove' : 'removed', c.entry, { why: c.why }));
        if (values['dry-run']) {
          io.err(`would remove ${count(choices.length)}, freeing ${formatBytes(choices.reduce((a, c) => a + c.entry.bytes, 0))}; ${entries.length - choices.length} kept`);
          return 0;
        }
        await removeAll(
          dir,
          choices.map((c) => c.entry),
          entries,
          io,
        );
        return 0;
      }
    }
  },
};
