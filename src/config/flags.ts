// The hyperparameters as command-line flags: `--learning_rate 2e-4`, `--learning_rate=2e-4`, `--pack_sequences`
// (true), `--pack_sequences false`, `--no-pack_sequences`. Names are the schema's (snake_case; kebab-case is accepted
// too). Flags that are not hyperparameters are left to the command.

import { FinetuneError } from '../core/errors.ts';
import { FIELDS, FIELD_BY_NAME, HYPERPARAM_NAMES, describeRule, safeParseHyperparams, type HyperparamName, type Hyperparams } from './hyperparams.ts';
import { quote } from '../core/quote.ts';

export interface SplitArgs {
  /** Raw hyperparameter values by name (strings, or true for a bare boolean flag). */
  values: Partial<Record<HyperparamName, string | boolean>>;
  /** Every argument that is not a hyperparameter flag, in order (the command's own flags and positionals). */
  rest: string[];
}

function hyperparamName(flag: string): HyperparamName | null {
  const n = flag.replace(/-/g, '_');
  return (HYPERPARAM_NAMES as readonly string[]).includes(n) ? (n as HyperparamName) : null;
}

/**
 * Takes the hyperparameter flags out of an argument list. `positionals`: whether the command takes words of its own
 * (validate FILE); where it takes none (train, plan, remote train), a word after a bare boolean flag can only be that
 * flag's value, written wrong, and is said so instead of "Unexpected argument".
 */
export function splitHyperparamFlags(args: readonly string[], { positionals = true }: { positionals?: boolean } = {}): SplitArgs {
  const values: Partial<Record<HyperparamName, string | boolean>> = {};
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      rest.push(...args.slice(i));
      break;
    }
    if (!a.startsWith('--')) {
      rest.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const flag = a.slice(2, eq < 0 ? undefined : eq);
    const negated = flag.startsWith('no-') ? hyperparamName(flag.slice(3)) : null;
    if (negated && FIELD_BY_NAME[negated].type === 'bool' && eq < 0) {
      values[negated] = false;
      continue;
    }
    const name = hyperparamName(flag);
    if (!name) {
      rest.push(a);
      continue;
    }
    if (eq >= 0) {
      values[name] = a.slice(eq + 1);
    } else if (FIELD_BY_NAME[name].type === 'bool') {
      const next = args[i + 1]?.toLowerCase();
      if (next === 'true' || next === 'false') {
        values[name] = next;
        i++;
      } else if (next !== undefined && (/^(0|1|yes|no|y|n|on|off|t|f)$/.test(next) || (!positionals && !next.startsWith('-')))) {
        // `--run_validation 0` or `yes` once left the word behind as a stray argument, and the message was about that.
        // (Other words stay the command's where it takes any: `validate --pack_sequences rows.jsonl` names its file.)
        throw new FinetuneError('bad-input', `--${flag} takes true or false, got ${quote(args[i + 1])} (alone it means true; --no-${flag} means false)`, { usage: true });
      } else values[name] = true;
    } else {
      // details.usage: the command line answers this mistake with the command's usage (src/cli/command.ts).
      if (i + 1 >= args.length) throw new FinetuneError('bad-input', `--${flag} needs a value (${describeRule(FIELD_BY_NAME[name])})`, { usage: true });
      values[name] = args[++i];
    }
  }
  return { values, rest };
}

/**
 * The hyperparameter flags splitHyperparamFlags reads the next word of as their value, whatever it is (every one but
 * the booleans), in both spellings: `--validation_prompt -h` is that prompt, not a request for help.
 */
export const HYPERPARAM_VALUE_FLAGS: readonly string[] = FIELDS.filter((f) => f.type !== 'bool').flatMap((f) => [...new Set([f.name, f.name.replace(/_/g, '-')])]);

/** The hyperparameters that are flags of train, plan and remote train (the data files are --data and --validation). */
export const HYPERPARAM_FLAG_NAMES: readonly HyperparamName[] = FIELDS.filter((f) => f.type !== 'file').map((f) => f.name);

/** The command-line flag that names each data file (the hyperparameters' file fields). */
const DATA_FLAGS: Partial<Record<HyperparamName, string>> = { train_data: '--data', validation_data: '--validation' };

/**
 * The hyperparameters of a command line: every hyperparameter flag validated against the one schema, missing ones
 * at their defaults, and the warnings about legal but doubtful values. Throws FinetuneError('bad-input') listing every
 * problem. `o.noData`: the command reads no data files (plan), and this says why, in place of naming --data.
 */
export function hyperparamsFromArgs(
  args: readonly string[],
  base: Readonly<Record<string, unknown>> = {},
  o: { noData?: string } = {},
): { hp: Hyperparams; rest: string[]; warnings: string[]; given: HyperparamName[] } {
  // Its commands (train, plan, remote train) take no positional argument.
  const { values, rest } = splitHyperparamFlags(args, { positionals: false });
  // The data files are flags of their own here (--data, --validation; plan takes none): --validation_data was taken as
  // a hyperparameter and never read, so a run given it held its validation rows out of the training data without a word.
  for (const name of Object.keys(values) as HyperparamName[]) {
    if (FIELD_BY_NAME[name].type !== 'file') continue;
    const advice = o.noData ?? `give the file as ${DATA_FLAGS[name] ?? `--${name}`} FILE`;
    throw new FinetuneError('bad-input', `--${name} is not a flag: ${advice}`, { usage: true });
  }
  const r = safeParseHyperparams({ ...base, ...values });
  if (!r.ok) throw new FinetuneError('bad-input', r.errors.join('; '), { errors: r.errors });
  // The names given on the command line (the rest are defaults): a resume compares these with the saved run's.
  return { hp: r.value, rest, warnings: r.warnings, given: Object.keys(values) as HyperparamName[] };
}

/** The flags section of a usage text, one line per hyperparameter, grouped. */
export function hyperparamUsage(names: readonly HyperparamName[] = HYPERPARAM_NAMES): string {
  const chosen = FIELDS.filter((f) => names.includes(f.name));
  const width = Math.max(...chosen.map((f) => f.name.length)) + 2;
  const lines: string[] = [];
  for (const group of ['replicate', 'extra'] as const) {
    const fs = chosen.filter((f) => f.group === group);
    if (fs.length === 0) continue;
    lines.push(group === 'replicate' ? "Replicate's training inputs:" : 'ours (stripped or refused when sent to Replicate):');
    for (const f of fs) {
      const def = f.default === undefined ? '' : `; default ${String(f.default)}`;
      lines.push(`  --${f.name.padEnd(width)}${describeRule(f)}${def}. ${f.help}`);
    }
  }
  return lines.join('\n');
}
