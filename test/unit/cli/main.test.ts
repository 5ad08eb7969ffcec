import { describe, expect, it } from 'vitest';
import { main, terminalLine } from '../../../src/cli/main.ts';

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
  it('escapes control characters and bidirectional overrides, keeps tabs, newlines and other text', () => {
    expect(terminalLine('a\u001b[2Jb\u0007c\rd\u009be\u202ef\u2066g')).toBe('a\\u001b[2Jb\\u0007c\\u000dd\\u009be\\u202ef\\u2066g');
    expect(terminalLine('tab\there\nnext line, ünïcödé, 日本語 ✓')).toBe('tab\there\nnext line, ünïcödé, 日本語 ✓');
  });
});
