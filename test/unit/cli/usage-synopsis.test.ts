// Each command's usage starts with its synopsis (the lines up to the first blank one): every flag its usage explains
// further down is named there too, so that the first lines a person reads are the whole command line. train's and
// check's left out --no-robustness, --tiled-stages, --tokenizer and the cache flags their own option lists explain.
import { describe, expect, it } from 'vitest';
import { commands } from '../../../src/cli/commands/index.ts';
import { HYPERPARAM_NAMES } from '../../../src/config/hyperparams.ts';

const hyperparameter = (flag: string): boolean => (HYPERPARAM_NAMES as readonly string[]).includes(flag.replace(/^no-/, '').replace(/-/g, '_'));

describe('every command usage names each of its flags in its synopsis', () => {
  for (const c of commands) {
    it(`finetune ${c.name}`, () => {
      const [synopsis, ...rest] = c.usage.split(/\n\s*\n/);
      // A synopsis that says "[options]" (bench, whose options depend on what it measures) defers to the list below.
      if (synopsis.includes('[options]')) return;
      const named = new Set([...synopsis.matchAll(/--([a-z][a-z0-9_-]*)/g)].map((m) => m[1]));
      // Flags the rest of the usage explains as options (at a line's start, as an option list has them); the
      // hyperparameters are named together as --<hyperparameter> VALUE.
      const explained = new Set([...rest.join('\n').matchAll(/^\s+--([a-z][a-z0-9_-]*)/gm)].map((m) => m[1]).filter((f) => !hyperparameter(f)));
      const missing = [...explained].filter((f) => !named.has(f));
      expect(missing, `flags explained below ${c.name}'s synopsis but not in it`).toEqual([]);
    });
  }
});
