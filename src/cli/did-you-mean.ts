// "Did you mean --learning_rate?" for a mistyped flag or command. A usage text lists forty flags; the one a person
// meant is usually a letter or two away from what they typed (`--lerning_rate`, `--formt`, `trian`), or the same
// name in the other spelling or case (`--Learning-Rate`), which the line should name rather than leave to a search.

import { closestMatch } from 'leven';

/** Case, dashes and underscores do not tell names apart: `Learning-Rate` is `learning_rate`. */
const loose = (name: string): string => name.toLowerCase().replace(/-/g, '_');

/**
 * The one of `names` that `word` most likely meant, or undefined where none is close: the same name loosely (case,
 * `-` for `_`), else the nearest by edit distance within about a third of the word's length (1 for up to 3 letters, 2 up
 * to 8, 3 beyond; a swap of two letters counts 2), so a short word does not "mean" every other short name.
 */
export function closestName(word: string, names: readonly string[]): string | undefined {
  const w = loose(word);
  if (w.length === 0 || names.length === 0) return undefined;
  const byLoose = new Map<string, string>();
  for (const n of names) if (!byLoose.has(loose(n))) byLoose.set(loose(n), n);
  const same = byLoose.get(w);
  if (same !== undefined) return same;
  const maxDistance = w.length <= 3 ? 1 : w.length <= 8 ? 2 : 3;
  const match = closestMatch(w, [...byLoose.keys()], { maxDistance });
  return match === undefined ? undefined : byLoose.get(match);
}

/** ` Did you mean --NAME?` for an unknown flag `--word` (`=value` ignored), or '' where no flag is close. */
export function flagSuggestion(flag: string, flags: readonly string[]): string {
  const bare = flag.replace(/^-+/, '').replace(/=.*$/s, '');
  const name = closestName(bare, flags);
  return name === undefined ? '' : ` Did you mean --${name}?`;
}
