// Entry point of the `finetune` command line. Dispatches to the subcommands in ./commands and turns our typed
// errors into one clear line and a non-zero exit code. Help, version and command-line mistakes are handled here for
// every command alike (see command.ts), so a new command gets them without code of its own.

import { readFileSync } from 'node:fs';
import { isFinetuneError, thrownMessage, thrownText } from '../core/errors.ts';
import { INVISIBLE_IN_QUOTES, quote, unicodeEscape } from '../core/quote.ts';
import { asksForHelp, isUsageError, type CliIO } from './command.ts';
import { nodeErrorMessage } from './node-error.ts';
import { closestName } from './did-you-mean.ts';
import { commands } from './commands/index.ts';

/**
 * A line for the terminal: the C0 control characters but the newline (a tab and a carriage return included), and what
 * quote() escapes (DEL, C1, the bidirectional formatting characters, the line and paragraph separators, the characters
 * that show as nothing; core/quote.ts) are written as \uXXXX escapes. Messages quote names from files with quote(),
 * which escapes these too; this holds for everything else a line may carry (a path given on the command line, a
 * server's words), so that no escape sequence of a file or a server clears the screen, retitles the window or hides
 * text, no carriage return writes over what the line said, and no name reorders the words after it.
 *
 * The newline is left as it is: what stderr is handed is text of several lines by design (a command's usage after a
 * mistake, a dataset's errors one per line, a shader's compile errors, a stack trace), which this function cannot tell
 * from a line break inside a name. That a name cannot start a line of its own is the messages' part: every name in
 * them is quoted (quote() writes a newline as \n).
 */
export function terminalLine(line: string): string {
  return line.replace(/[\u0000-\u0009\u000b-\u001f]/g, unicodeEscape).replace(INVISIBLE_IN_QUOTES, unicodeEscape);
}

const defaultIO: CliIO = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** The list of commands, through `say`: stdout when asked for, stderr after a mistake (an unknown command). */
function help(say: (line: string) => void): void {
  say('usage: finetune <command> [options]\n');
  say('commands:');
  const width = Math.max(...commands.map((c) => c.name.length));
  for (const c of commands) say(`  ${c.name.padEnd(width)}  ${c.summary}`);
  say('\n`finetune help <command>` or `finetune <command> --help` shows the options of one command;');
  say('`finetune --version` the version.');
}

/** The line for a word that names no command, with the command it most likely meant ("trian": train). */
function unknownCommandLine(name: string): string {
  const near = closestName(name, commands.map((c) => c.name));
  return `finetune: unknown command ${quote(name)}${near === undefined ? '' : `. Did you mean ${near}?`}`;
}

/** The version in package.json (two folders up from src/cli). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/**
 * Node's file errors (ENOENT, EISDIR, EACCES…) are the user's mistake, not ours: one line, no stack, and the path in it
 * quoted (Node's message holds it as it is, and a line break in it made a line of its own).
 */
function fileErrorLine(e: unknown): string | null {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code) || !(e instanceof Error)) return null;
  return nodeErrorMessage(e);
}

export async function main(argv: string[], given: CliIO = defaultIO): Promise<number> {
  // stderr is for a person (messages, notes, progress): made terminal-safe here, for every command. stdout is JSON
  // lines (escaped by JSON.stringify) or what a command produces (generated text), left as it is.
  const io: CliIO = { out: given.out, err: (line) => given.err(terminalLine(line)) };
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    io.out(packageVersion());
    return 0;
  }
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    const target = rest[0] && commands.find((c) => c.name === rest[0]);
    if (target) io.out(target.usage);
    else if (rest[0]) {
      io.err(unknownCommandLine(rest[0]));
      help(io.err);
      return 2;
    } else help(io.out);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    io.err(unknownCommandLine(name));
    help(io.err);
    return 2;
  }
  if (asksForHelp(rest, command.valueFlags)) {
    io.out(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    return reportCommandError(name, command.usage, e, io);
  }
}

/**
 * What a command's failure prints on `io` (already terminal-safe), and the exit code: 2 for the user's mistake, 1 for
 * ours. Never throws, whatever was thrown (null, undefined, an object without a prototype, an Error whose stack getter
 * throws): `(e as Error).stack` threw for null and undefined, out of main, in place of the line.
 */
export function reportCommandError(name: string, usage: string, e: unknown, io: CliIO): number {
  if (isUsageError(e)) {
    io.err(`finetune ${name}: ${thrownMessage(e)}\n`);
    io.err(usage);
    return 2;
  }
  if (isFinetuneError(e)) {
    io.err(`finetune ${name}: ${e.kind}: ${e.message}`);
    return e.kind === 'bad-input' ? 2 : 1;
  }
  const fileError = fileErrorLine(e);
  if (fileError) {
    io.err(`finetune ${name}: ${fileError}`);
    return 2;
  }
  io.err(`finetune ${name}: internal error: ${internalErrorText(e)}`);
  return 1;
}

/** An internal error as text: an Error's stack (where the bug is) when it has one that reads as text, else the value's text. */
function internalErrorText(e: unknown): string {
  let stack: unknown;
  try {
    stack = e instanceof Error ? e.stack : undefined;
  } catch {
    stack = undefined;
  }
  return typeof stack === 'string' ? stack : thrownText(e);
}
