// The CLI's kernel-tuning cache (CACHE/kernels/kernel-tuning.json) when it cannot be used: a `kernels` that is a file,
// an entry that is a folder, an entry that is not JSON. A run is never stopped by it (the kernels are measured again),
// and it is never a raw ENOTDIR or SyntaxError; a choice that cannot be remembered is said, naming the path, since
// every later run would measure again without a word.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { folderStoreFiles } from '../../../src/cli/node-store.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import { decideKernels, fileKernelTuningCache, type DecideInputs, type KernelChoice, type KernelTrial } from '../../../src/run/kernel-tuning.ts';
import { opfsStoreFiles } from '../../../src/worker/opfs-store.ts';
import { FakeOpfs } from '../../helpers/fake-opfs.ts';

const DEFAULTS: KernelChoice = { gemm: 'basic', attention: 'rows', lora: 'general' };
const RAW = /ENOTDIR|EISDIR|SyntaxError|not a directory, mkdir|illegal operation/;

/** A decision over the folder `dir`, every combination measured at once, the first the slowest. */
function inputs(dir: string, measure?: DecideInputs['measure']): DecideInputs {
  return {
    request: {},
    current: DEFAULTS,
    software: false,
    saved: null,
    cache: fileKernelTuningCache(folderStoreFiles(dir), dir),
    key: 'k',
    measure: measure ?? (async (first) => first.map((kernels, n): KernelTrial => ({ kernels, ms: 100 - n, reps: 3, relDiff: 1e-7, agrees: true }))),
  };
}

const scratch = (): string => mkdtempSync(join(tmpdir(), 'finetune-kernels-'));

describe('a kernel cache that cannot be written', () => {
  it('a `kernels` that is a file: measured again, and the decision says the choice is not remembered, naming the path', async () => {
    const root = scratch();
    const dir = join(root, 'kernels');
    writeFileSync(dir, 'not a folder');
    const d = await decideKernels(inputs(dir));
    expect(d.source).toBe('measured');
    expect(d.text).toContain(`; not remembered for the next run: the kernel choices cannot be written in "${dir}": "${dir}" is a file, not a folder`);
    expect(d.text).not.toMatch(RAW);
  });

  it('a kernel-tuning.json that is a folder: the same, naming it', async () => {
    const dir = join(scratch(), 'kernels');
    mkdirSync(join(dir, 'kernel-tuning.json'), { recursive: true });
    const d = await decideKernels(inputs(dir));
    expect(d.source).toBe('measured');
    expect(d.text).toContain(`"${join(dir, 'kernel-tuning.json')}" is a folder, not a file`);
    expect(d.text).not.toMatch(RAW);
  });

  it('a device lost while measuring does not promise that the next run leaves the combination out when it cannot be remembered', async () => {
    const dir = join(scratch(), 'kernels');
    writeFileSync(dir, 'not a folder');
    const lost = inputs(dir, async (first) => Promise.reject(new FinetuneError('device-lost', 'gone', { lostWhileMeasuring: first[0] })));
    const e = await decideKernels(lost).then(() => null, (x: unknown) => x as FinetuneError);
    expect(e?.kind).toBe('device-lost');
    expect(e?.message).not.toContain('the next run on this GPU leaves that combination out');
    expect(e?.message).toContain(`it could not be remembered (the kernel choices cannot be written in "${dir}": "${dir}" is a file, not a folder): pass the kernels to use (--gemm, --attention, --lora-kernel) to train without it`);
  });
});

describe('a kernel cache whose file is not JSON', () => {
  it('reads as empty: measured again, and the file rewritten with the new choice, which the next run takes', async () => {
    const dir = join(scratch(), 'kernels');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'kernel-tuning.json'), '{"format": "finetune-kern');
    const first = await decideKernels(inputs(dir));
    expect(first.source).toBe('measured');
    expect(first.text).not.toMatch(/not remembered/);
    expect(JSON.parse(readFileSync(join(dir, 'kernel-tuning.json'), 'utf8'))).toMatchObject({ format: 'finetune-kernel-tuning' });
    expect((await decideKernels(inputs(dir))).source).toBe('cached');
  });
});

// "Forget them" (the page's GPU panel → worker forgetRememberedKernels → clear()): a store that cannot remove the file
// passed its raw error on ("ENOTDIR: not a directory, lstat …", "Path is a directory: rm returned EISDIR", a
// DOMException's words), which said neither what was being done nor which file.
describe('forgetting the kernel choices of a cache that cannot be changed', () => {
  const forget = (files: Parameters<typeof fileKernelTuningCache>[0], where?: string): Promise<Error | null> =>
    fileKernelTuningCache(files, where).clear().then(() => null, (e: unknown) => e as Error);

  it('a `kernels` that is a file, or a kernel-tuning.json that is a folder: a FinetuneError naming the path', async () => {
    const dir = join(scratch(), 'kernels');
    writeFileSync(dir, 'not a folder');
    const e = await forget(folderStoreFiles(dir), dir);
    expect(e).toBeInstanceOf(FinetuneError);
    expect(e?.message).toBe(`the kernel choices cannot be forgotten in "${dir}": part of "${join(dir, 'kernel-tuning.json')}" is a file, not a folder`);
    const other = join(scratch(), 'kernels');
    mkdirSync(join(other, 'kernel-tuning.json', 'inside'), { recursive: true });
    const f = await forget(folderStoreFiles(other), other);
    expect(f?.message).toBe(`the kernel choices cannot be forgotten in "${other}": "${join(other, 'kernel-tuning.json')}" is a folder, not a file`);
    expect(`${e?.message} ${f?.message}`).not.toMatch(RAW);
  });

  it("the browser's storage refusing the removal: said with the file's name and the browser's words", async () => {
    const opfs = new FakeOpfs();
    const dir = opfs.dir();
    const locked = { ...dir, removeEntry: async () => Promise.reject(new DOMException('An attempt was made to modify an object where modifications are not allowed.', 'NoModificationAllowedError')) };
    const e = await forget(opfsStoreFiles(locked));
    expect(e).toBeInstanceOf(FinetuneError);
    expect(e?.message).toBe("the kernel choices cannot be forgotten: could not remove kernel-tuning.json from this browser's storage: An attempt was made to modify an object where modifications are not allowed.");
  });

  it('nothing to forget is not an error', async () => {
    expect(await forget(folderStoreFiles(join(scratch(), 'kernels')))).toBeNull();
    expect(await forget(opfsStoreFiles(new FakeOpfs().dir()))).toBeNull();
  });
});
