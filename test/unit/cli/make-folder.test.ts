// mkdir -p without Node's endless retry: every missing parent made, existing folders fine, a file in the way and a
// place that takes no folders refused with a reason (Node's recursive mkdir never returned under /proc).
import { mkdtempSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeFolder, makeFolderSync } from '../../../src/cli/make-folder.ts';

const procHasNoNewFolders = existsSync('/proc/self') && process.platform === 'linux';

describe('makeFolder / makeFolderSync', () => {
  for (const [name, make] of [['makeFolder', makeFolder], ['makeFolderSync', async (p: string) => makeFolderSync(p)]] as const) {
    it(`${name} makes every missing parent, and an existing folder is no error`, async () => {
      const root = mkdtempSync(join(tmpdir(), 'make-folder-'));
      const deep = join(root, 'a', 'b', 'c');
      await make(deep);
      expect(statSync(deep).isDirectory()).toBe(true);
      await make(deep);
      await make(root);
    });

    it(`${name} refuses a path through a file, naming the file`, async () => {
      const root = mkdtempSync(join(tmpdir(), 'make-folder-'));
      writeFileSync(join(root, 'f'), 'x');
      await expect(make(join(root, 'f', 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR', message: expect.stringContaining(join(root, 'f')) });
    });

    it(`${name} says a folder under /proc cannot be made, and returns (Node's recursive mkdir never does)`, async () => {
      expect(procHasNoNewFolders, 'this test needs Linux /proc').toBe(true);
      await expect(make('/proc/finetune-no-such/x')).rejects.toThrow(/cannot make the folder "\/proc\/finetune-no-such\/x": "\/proc" takes no new folders/);
    });
  }
});
