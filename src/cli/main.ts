// Entry point of the `finetune` command line. Dispatches to the subcommands in ./commands and turns our typed
// errors into one clear line and a non-zero exit code.

import { isFinetuneError } from '../core/errors.ts';
import type { CliIO } from './command.ts';
import { commands } from './commands/index.ts';

const defaultIO: CliIO = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

function help(io: CliIO): void {
  io.out('usage: finetune <command> [options]\n');
  io.out('commands:');
  const width = Math.max(...commands.map((c) => c.name.length));
  for (const c of commands) io.out(`  ${c.name.padEnd(width)}  ${c.summary}`);
  io.out('\n`finetune help <command>` shows the options of one command.');
}

export async function main(argv: string[], io: CliIO = defaultIO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    const target = rest[0] && commands.find((c) => c.name === rest[0]);
    if (target) io.out(target.usage);
    else help(io);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    io.err(`finetune: unknown command "${name}"`);
    help(io);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    if (isFinetuneError(e)) {
      io.err(`finetune ${name}: ${e.kind}: ${e.message}`);
      return e.kind === 'bad-input' ? 2 : 1;
    }
    io.err(`finetune ${name}: internal error: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}
