import { describe, expect, it } from 'vitest';
import { main, reportCommandError, terminalLine } from '../../../src/cli/main.ts';
import type { Command } from '../../../src/cli/command.ts';
import { commands } from '../../../src/cli/commands/index.ts';

function capture(): { io: { out: (l: string) => void; err: (l: string) => void }; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l) => out.push(l), err: (l) => err.push(l) }, out, err };
}

describe('finetune command line', () => {
  it('lists its commands', async () => {
    const c = capture();
    expect(await main([], c.io)).toBe(0);
    const text = c.out.join('\n');
    expect(text).toContain('gpu-info');
    expect(text).toContain('bench');
  });

  it('rejects an unknown command with exit code 2, the list of commands on stderr and nothing on stdout', async () => {
    for (const argv of [['frobnicate'], ['help', 'frobnicate'], ['--help', 'frobnicate']]) {
      const c = capture();
      expect(await main(argv, c.io)).toBe(2);
      // stdout is for what was asked (a program may read it): a mistake and its help go to stderr.
      expect(c.out).toEqual([]);
      expect(c.err[0]).toBe('finetune: unknown command "frobnicate"');
      expect(c.err.join('\n')).toContain('usage: finetune <command> [options]');
      expect(c.err.join('\n')).toContain('  train ');
    }
    // A command a letter or two off is named, in both places a command is asked for.
    for (const argv of [['trian'], ['help', 'trian'], ['TRAIN']]) {
      const c = capture();
      expect(await main(argv, c.io)).toBe(2);
      expect(c.err[0]).toBe(`finetune: unknown command "${argv.at(-1)}". Did you mean train?`);
    }
    // Asked for, the help goes to stdout with exit 0.
    const asked = capture();
    expect(await main(['help'], asked.io)).toBe(0);
    expect(asked.out.join('\n')).toContain('usage: finetune <command> [options]');
    expect(asked.err).toEqual([]);
  });

  it('explains a bad benchmark name as bad input', async () => {
    const c = capture();
    expect(await main(['bench', 'nothing'], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('unknown benchmark "nothing"');
  });

  it('shows usage of one command', async () => {
    const c = capture();
    expect(await main(['help', 'bench'], c.io)).toBe(0);
    expect(c.out.join('\n')).toContain('--sizes');
  });
});

describe('terminalLine', () => {
  it('escapes control characters and bidirectional overrides, keeps newlines and other text', () => {
    expect(terminalLine('a\u001b[2Jb\u0007c\rd\u009be\u202ef\u2066g')).toBe('a\\u001b[2Jb\\u0007c\\u000dd\\u009be\\u202ef\\u2066g');
    expect(terminalLine('first line\nnext line, ünïcödé, 日本語 ✓')).toBe('first line\nnext line, ünïcödé, 日本語 ✓');
  });

  // A tab in a name moves the words after it to a column of the terminal's choosing, and a carriage return writes
  // over the start of the line: "data.jsonl\rfinetune: ok" shows as the line "finetune: ok". No message of ours
  // carries either, so both are shown as escapes.
  it('escapes a tab and a carriage return', () => {
    expect(terminalLine('a\tb\rc')).toBe('a\\u0009b\\u000dc');
  });

  // What quote() escapes, the terminal escapes too: a message may carry a name that was not quoted (a path given on
  // the command line, a server's words).
  it("escapes what quote() escapes: the line and paragraph separators and the characters that show as nothing", () => {
    expect(terminalLine('a\u2028b\u2029c\u200bd\ufeffe\u2060f\u00adg\u180eh')).toBe('a\\u2028b\\u2029c\\u200bd\\ufeffe\\u2060f\\u00adg\\u180eh');
    // ZWNJ and ZWJ write words and emoji: left as they are, as quote() leaves them.
    expect(terminalLine('می\u200cخواهم \u{1F468}\u200d\u{1F469}')).toBe('می\u200cخواهم \u{1F468}\u200d\u{1F469}');
  });

  // stderr goes through terminalLine whatever a command writes: a name in a message cannot end the line and start a
  // fake one when it was quoted, and main quotes what it names.
  it('main writes a usage mistake on its lines, a tab in a flag quoted as an escape', async () => {
    const c = capture();
    expect(await main(['frob\tnicate'], c.io)).toBe(2);
    expect(c.err[0]).toBe('finetune: unknown command "frob\\tnicate"');
  });
});

// The last catch said `(e as Error).stack ?? String(e)`: a command that threw null or undefined threw a TypeError from
// there (reading .stack of null), out of main, instead of an internal error line and exit 1.
describe('a command that throws what is no Error', () => {
  it('says an internal error, with the value as text, for null, undefined, an object without a prototype and an Error whose stack cannot be read', async () => {
    const noStack = new Error('boom');
    Object.defineProperty(noStack, 'stack', {
      get() {
        throw new Error('no stack here');
      },
    });
    const cases: [unknown, string][] = [
      [null, 'null'],
      [undefined, 'undefined'],
      [Object.create(null), 'a thrown value that has no text'],
      [noStack, 'Error: boom'],
      ['plain words', 'plain words'],
    ];
    for (const [thrown, said] of cases) {
      const c = capture();
      expect(reportCommandError('train', 'usage text', thrown, c.io)).toBe(1);
      expect(c.err).toEqual([`finetune train: internal error: ${said}`]);
    }
    // Through main: a command that throws null ends in that line and exit 1 (main threw a TypeError).
    const thrower: Command = {
      name: 'throws-null',
      summary: 'throws null',
      usage: 'finetune throws-null',
      run: () => Promise.reject(null),
    };
    commands.push(thrower);
    try {
      const m = capture();
      expect(await main(['throws-null'], m.io)).toBe(1);
      expect(m.err).toEqual(['finetune throws-null: internal error: null']);
    } finally {
      commands.splice(commands.indexOf(thrower), 1);
    }
    // An Error still shows its stack (where the bug is).
    const c = capture();
    reportCommandError('train', 'usage text', new Error('kaput'), c.io);
    expect(c.err[0]).toMatch(/^finetune train: internal error: Error: kaput\n\s+at /);
  });
});

// Node's file errors were printed with Node's message, whose path is as it is: a line break in it made a line of its
// own, as if finetune had written it.
describe("a command that throws Node's file error", () => {
  it('says the error with its path quoted', async () => {
    const path = '/nonexistent-finetune-dir/a\nfinetune train: done';
    const thrower: Command = {
      name: 'throws-enoent',
      summary: 'throws ENOENT',
      usage: 'finetune throws-enoent',
      run: async () => {
        (await import('node:fs')).statSync(path);
        return 0;
      },
    };
    commands.push(thrower);
    try {
      const m = capture();
      expect(await main(['throws-enoent'], m.io)).toBe(2);
      expect(m.err).toEqual(['finetune throws-enoent: ENOENT: no such file or directory, stat "/nonexistent-finetune-dir/a\\nfinetune train: done"']);
    } finally {
      commands.splice(commands.indexOf(thrower), 1);
    }
  });
});
