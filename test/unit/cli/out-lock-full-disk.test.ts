// The --out lock on a full disk: "ENOSPC: no space left on device, write" named neither the file nor the folder, and
// the lock's temporary file stayed in OUT for good. Node's writeFileSync is made to fail as a full disk fails it,
// after the file was created, for the lock's temporary file alone.
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';

vi.mock('node:fs', async (original) => {
  const real = await original<typeof import('node:fs')>();
  return {
    ...real,
    writeFileSync: (path: fs.PathOrFileDescriptor, data: string | NodeJS.ArrayBufferView, options?: fs.WriteFileOptions) => {
      if (typeof path === 'string' && path.includes('.finetune-train.lock.')) {
        real.writeFileSync(path, ''); // created, then the write fails: what a full disk leaves
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
      }
      return real.writeFileSync(path, data, options);
    },
  };
});

const { lockOutFolder, OUT_LOCK_NAME } = await import('../../../src/cli/out-lock.ts');

describe('lockOutFolder on a full disk', () => {
  it('names the lock file and the reason, and leaves no temporary file', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'out-lock-full-')), 'out');
    fs.mkdirSync(out);
    expect(() => lockOutFolder(out)).toThrow(`could not write the lock file "${join(out, OUT_LOCK_NAME)}": ENOSPC: no space left on device`);
    expect(readdirSync(out)).toEqual([]);
    expect(existsSync(join(out, OUT_LOCK_NAME))).toBe(false);
  });
});
