// What every `finetune` subcommand looks like. Each lives in src/cli/commands/<name>.ts and is listed in
// src/cli/commands/index.ts. A command returns its exit code; it prints results to stdout (JSON where a program
// reads it) and problems to stderr.
//
// What main.ts does for every command, so a command need not: `--help`/`-h` anywhere before `--` (except as the value of
// one of its valueFlags) prints its `usage` and exits 0; a UsageError (or an error from node:util's parseArgs: unknown
// flag, missing or empty value, stray positional) prints the one-line reason, then the usage, and exits 2 — before the
// command touches a GPU or a model.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FinetuneError, thrownMessage } from '../core/errors.ts';
import { flagSuggestion } from './did-you-mean.ts';

export interface CliIO {
  out: (line: string) => void;
  err: (line: string) => void;
}

export interface Command {
  name: string;
  /** One line for `finetune help`. */
  summary: string;
  /** Full usage text for `finetune help <name>` and `finetune <name> --help`. */
  usage: string;
  run(args: string[], io: CliIO): Promise<number>;
  /**
   * Flags (without their dashes) whose value is always the next word, even one that starts with a dash: generate's
   * --prompt (free text: `--prompt -h` is the prompt "-h", not a request for help), and the hyperparameter flags of
   * the commands that take them (src/config/flags.ts reads the next word as their value).
   */
  valueFlags?: readonly string[];
}

/** A mistake on the command line: main.ts answers it with the reason, the command's usage and exit code 2. */
export class UsageError extends FinetuneError {
  constructor(message: string) {
    super('bad-input', message, { usage: true });
  }
}

export function isUsageError(e: unknown): boolean {
  if (e instanceof FinetuneError) return e.kind === 'bad-input' && e.details?.usage === true;
  // node:util parseArgs reports unknown options, missing values and unexpected positionals with these codes.
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** A value that starts with a dash yet is no flag: a negative number (`-1`, `-0.5`, `-.5`). */
const NEGATIVE_NUMBER = /^-\.?\d/;

/** The flag a word names when it is `--flag` without `=value`, else null. */
const bareFlag = (word: string): string | null => (word.startsWith('--') && !word.includes('=') ? word.slice(2) : null);

/**
 * `--flag -1` as `--flag=-1` for a flag that takes a value. parseArgs reads any dash after such a flag as a forgotten
 * value ("argument is ambiguous"), so `--temperature -1` never reached the flag's own range check, which says what the
 * flag accepts. Only a negative number is taken so: `--data --validation F` is still the mistake it looks like. A flag
 * of `valueFlags` (--prompt, free text) takes the next word whatever it is, as a hyperparameter flag does.
 */
export function joinNegativeValues(args: readonly string[], options: Options, valueFlags: readonly string[] = []): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      joined.push(...args.slice(i));
      break;
    }
    const name = bareFlag(a);
    const next = args[i + 1];
    if (name !== null && Object.hasOwn(options, name) && options[name].type === 'string' && next !== undefined && (NEGATIVE_NUMBER.test(next) || valueFlags.includes(name))) {
      joined.push(`${a}=${next}`);
      i++;
    } else joined.push(a);
  }
  return joined;
}

/**
 * node:util parseArgs (strict), its complaints turned into UsageErrors; `--flag -1` is the flag's value, and so is
 * any word after a flag of `o.valueFlags` (Command.valueFlags). A flag given an empty value (`--min-ms=`,
 * `--validation ""`) is refused, naming it: read as the flag left out, it once ran on the default without a word. Only
 * the flags of `o.emptyAllowed` take one (generate's --prompt "": `<s>` alone). An unknown flag is answered with the
 * nearest known one ("Did you mean --format?"), among `options` and `o.otherFlags`: flags the command takes that were
 * read before (the hyperparameters, which src/config/flags.ts takes out first).
 */
export function parseCommandArgs<O extends Options>(
  args: string[],
  options: O,
  allowPositionals = false,
  o: { valueFlags?: readonly string[]; emptyAllowed?: readonly string[]; otherFlags?: readonly string[] } = {},
) {
  let parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(args, options, o.valueFlags), options, allowPositionals, strict: true });
  } catch (e) {
    if (!isUsageError(e)) throw e;
    const message = thrownMessage(e);
    const unknown = (e as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /^Unknown option '(.*)'$/s.exec(message)?.[1] : undefined;
    const hint = unknown === undefined ? '' : flagSuggestion(unknown, [...Object.keys(options), ...(o.otherFlags ?? [])]);
    throw new UsageError(hint === '' ? message : `${message}.${hint}`);
  }
  for (const [name, value] of Object.entries(parsed.values)) {
    const empty = Array.isArray(value) ? value.includes('') : value === '';
    if (empty && !o.emptyAllowed?.includes(name)) throw new UsageError(`--${name} has an empty value: give it one, or leave the flag out`);
  }
  return parsed;
}

/**
 * True when the arguments ask for help (`--help` or `-h` before a `--`), not counting the word after a flag of
 * `valueFlags`, which is that flag's value.
 */
export function asksForHelp(args: readonly string[], valueFlags: readonly string[] = []): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
    const name = bareFlag(a);
    if (name !== null && valueFlags.includes(name)) i++;
  }
  return false;
}
