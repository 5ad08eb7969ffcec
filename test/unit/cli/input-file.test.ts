import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkJsonlFile, checkOutputPath } from '../../../src/cli/input-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'finetune-input-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('checkJsonlFile bounds a file by streaming it', () => {
  it('counts lines and bytes of a file within bounds (a last line without LF counts)', async () => {
    const p = join(dir, 'ok.jsonl');
    writeFileSync(p, '{"text":"a"}\n{"text":"b"}\n{"text":"c"}');
    expect(await checkJsonlFile(p, '--data')).toEqual({ lines: 3, bytes: 38 });
  });

  it('stops at the first line longer than the bound, naming it', async () => {
    const p = join(dir, 'long.jsonl');
    writeFileSync(p, `{"text":"a"}\n{"text":"${'x'.repeat(5000)}"}\n`);
    await expect(checkJsonlFile(p, '--data', { maxLineBytes: 4096 })).rejects.toThrow(`--data: line 2 of "${p}" is longer than 4.0 KiB; a JSONL file holds one JSON object per line`);
  });

  it('stops past the line-count bound', async () => {
    const p = join(dir, 'many.jsonl');
    writeFileSync(p, '{"text":"a"}\n'.repeat(11));
    await expect(checkJsonlFile(p, '--validation', { maxLines: 10 })).rejects.toThrow(`--validation: "${p}" has more than 10 lines; split it or keep fewer rows`);
    await expect(checkJsonlFile(p, '--validation', { maxLines: 11 })).resolves.toEqual({ lines: 11, bytes: 143 });
  });

  it('refuses a file larger than the size bound before reading it', async () => {
    const p = join(dir, 'big.jsonl');
    writeFileSync(p, '{"text":"a"}\n'.repeat(100));
    await expect(checkJsonlFile(p, '--data', { maxBytes: 1024 })).rejects.toThrow(`--data: "${p}" is 1.3 KiB, more than the 1.0 KiB a training file may have`);
  });

  it('refuses a UTF-16 file (NUL bytes) as not text', async () => {
    const p = join(dir, 'utf16.jsonl');
    writeFileSync(p, Buffer.from('{"text":"a"}\n', 'utf16le'));
    await expect(checkJsonlFile(p, '--data')).rejects.toThrow('is not a JSONL text file');
  });
});

describe('checkOutputPath', () => {
  const root = mkdtempSync(join(tmpdir(), 'out-path-'));
  writeFileSync(join(root, 'afile'), 'x');
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('refuses, naming the flag, what train would find unwritable only at its end (Node said a bare ENOTDIR or EACCES)', () => {
    expect(() => checkOutputPath(join(root, 'afile', 'sub'), '--out', 'folder')).toThrow(`--out: "${join(root, 'afile', 'sub')}" cannot be made: "${join(root, 'afile')}" is a file`);
    expect(() => checkOutputPath(join(root, 'afile', 'sub', 'deeper'), '--out', 'folder')).toThrow(`is a file`);
    expect(() => checkOutputPath(join(root, 'afile'), '--out', 'folder')).toThrow(`--out: "${join(root, 'afile')}" is a file; give a folder`);
    expect(() => checkOutputPath(root, '--out', 'file')).toThrow('is a folder; give a file name to write');
    // Permissions as a user without root sees them (root may write anywhere, so the check is handed in here).
    const noWrite = (p: string) => p === '/';
    expect(() => checkOutputPath(root, '--out', 'folder', noWrite)).toThrow(`--out: cannot write in "${root}" (permission denied, or a read-only disk): give another folder`);
    expect(() => checkOutputPath(join(root, 'new', 'deep'), '--out', 'folder', noWrite)).toThrow(`--out: "${join(root, 'new', 'deep')}" cannot be made: cannot write in "${root}" (permission denied, or a read-only disk)`);
    expect(() => checkOutputPath(join(root, 'afile'), '--out', 'file', (p) => p !== join(root, 'afile'))).toThrow(`--out: cannot write "${join(root, 'afile')}"`);
    // What is fine: a new folder in a writable one, an existing one, a new file.
    checkOutputPath(join(root, 'new', 'deep'), '--out', 'folder');
    checkOutputPath(root, '--out', 'folder');
    checkOutputPath(join(root, 'x.gguf'), '--out', 'file');
  });
});
