// A kill during train's adapter write left its temporary files in OUT/adapter for good (tens of MB of a GGUF each
// time); the next write of the set removes them, and only them.
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { removeLeftTemporaries } from '../../../src/cli/node-store.ts';

describe('removeLeftTemporaries', () => {
  it("removes the set's own temporary files left by a killed write, and nothing else", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'left-tmp-'));
    // What a kill between a write's temporary files and their renames leaves (temporaryName's names).
    for (const n of ['.adapter.gguf.0d70dd1dfcf5.tmp', '.README.md.f0d9482b1e36.tmp']) writeFileSync(join(dir, n), 'partial');
    const others = ['.notes.0d70dd1dfcf5.tmp', '.adapter.gguf.tmp', 'adapter.gguf.0d70dd1dfcf5.tmp', '.adapter.gguf.0D70DD1DFCF5.tmp', 'keep.txt'];
    for (const n of others) writeFileSync(join(dir, n), 'mine');
    const removed = await removeLeftTemporaries(dir, ['adapter.gguf', 'README.md', 'adapter_config.json']);
    expect(removed.sort()).toEqual(['.README.md.f0d9482b1e36.tmp', '.adapter.gguf.0d70dd1dfcf5.tmp']);
    expect(readdirSync(dir).sort()).toEqual([...others].sort());
  });

  it('says nothing of a folder that is not there', async () => {
    expect(await removeLeftTemporaries(join(tmpdir(), 'no-such-folder-here'), ['a'])).toEqual([]);
  });
});
