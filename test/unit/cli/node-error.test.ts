// Node's messages of its file errors carry the path as it is ("ENOENT: no such file or directory, open 'a\nb'"): a
// line break in it started a line finetune never wrote, and a bidirectional control reordered the words after it.
// What the command line says of them: the code and Node's description, the paths quoted as ours are.
import { mkdirSync, mkdtempSync, renameSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeErrorMessage, nodeErrorReason } from '../../../src/cli/node-error.ts';
import { writeFileAtomic } from '../../../src/cli/node-store.ts';
import { checkReadableFile } from '../../../src/cli/input-file.ts';
import { reportCommandError } from '../../../src/cli/main.ts';

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('did not throw');
}

describe("Node's file errors in our messages", () => {
  const dir = mkdtempSync(join(tmpdir(), 'finetune-node-error-'));
  const odd = join(dir, 'a\nfinetune train: done \u202eb');
  const shown = JSON.stringify(odd).slice(1, -1).replace('\u202e', '\\u202e');

  it('nodeErrorMessage: Node\'s message with its paths quoted', () => {
    expect(nodeErrorMessage(thrown(() => statSync(odd)))).toBe(`ENOENT: no such file or directory, stat "${shown}"`);
    expect(nodeErrorMessage(thrown(() => renameSync(odd, `${odd}2`)))).toBe(`ENOENT: no such file or directory, rename "${shown}" -> "${shown}2"`);
  });

  it('nodeErrorReason: the code and its description alone, for a message that names the path itself', () => {
    expect(nodeErrorReason(thrown(() => statSync(odd)))).toBe('ENOENT: no such file or directory');
  });

  it('an error that names no path (a write on a file handle, a made-up one) is its message, escaped', () => {
    const synthetic = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    expect(nodeErrorMessage(synthetic)).toBe('ENOSPC: no space left on device, write');
    expect(nodeErrorReason(synthetic)).toBe('ENOSPC: no space left on device, write');
    expect(nodeErrorReason(new Error('two\nlines \u2066'))).toBe('two\\nlines \\u2066');
    expect(nodeErrorReason(null)).toBe('null');
  });

  it("writeFileAtomic's and checkReadableFile's messages carry Node's error with its path quoted", async () => {
    // A real Node error from inside the write (a rename onto a folder of the odd name), whose own message holds the
    // temporary file's path as it is: the message names the file asked for, quoted, and Node's reason without its path.
    const target = `${odd}.bin`;
    mkdirSync(target);
    const e = await writeFileAtomic(target, new Uint8Array(4)).then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toBe(`could not write "${shown}.bin": EISDIR: illegal operation on a directory; the folder there is kept as it was`);
    expect(e?.message).not.toContain('\n');
    // The command line's last resort for an error with a file code (main.ts) prints this prepared message whole: it
    // carries code and path (kernel-tuning.ts reads them) but is not Node's, so it is not rebuilt from those fields
    // (which printed a bare `EISDIR, "…"`, losing the reason and what was kept).
    expect(nodeErrorMessage(e)).toBe(e?.message);
    const lines: string[] = [];
    expect(reportCommandError('export', 'usage', e, { out: () => {}, err: (l) => lines.push(l) })).toBe(2);
    expect(lines).toEqual([`finetune export: ${e?.message}`]);
    // A path that is a broken link: statSync fails with ELOOP or ENOENT; a loop of links gives ELOOP, named by its code.
    const loop = join(dir, 'loop\n');
    (await import('node:fs')).symlinkSync(loop, loop);
    expect(() => checkReadableFile(loop, '--data')).toThrow(`--data: cannot read "${loop.replace('\n', '\\n')}" (ELOOP: too many symbolic links encountered)`);
  });
});
