// What every `finetune` subcommand looks like. Each lives in src/cli/commands/<name>.ts and is listed in
// src/cli/commands/index.ts. A command returns its exit code; it prints results to stdout (JSON where a program
// reads it) and problems to stderr.

export interface CliIO {
  out: (line: string) => void;
  err: (line: string) => void;
}

export interface Command {
  name: string;
  /** One line for `finetune help`. */
  summary: string;
  /** Full usage text for `finetune help <name>`. */
  usage: string;
  run(args: string[], io: CliIO): Promise<number>;
}
