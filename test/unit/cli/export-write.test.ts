// How `finetune export` writes: through a temporary file, fsynced and renamed over the target, so that a write that
// fails (a full disk, a kill) leaves the file that was there byte for byte and no partial one; and never over a file or
// folder that is not an export's own without --force. Failures are injected at the writer's probe points.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeExportCommand } from '../../../src/cli/commands/export.ts';
import { TINY_ADAPTER, TINY_MISTRAL } from '../model/helpers.ts';
import { folderRunStore, writeFileAtomic, writeFilesAtomic } from '../../../src/cli/node-store.ts';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { readAdapter } from '../../../src/model/lora-adapter.ts';
import { openSafetensors, toFloat32, writeSafetensors, type TensorToWrite } from '../../../src/model/safetensors.ts';
import { bytesSource } from '../../../src/model/source.ts';
import { checkpointFiles, type SavedRun } from '../../../src/run/saved-run.ts';
import { fakeRun } from '../../helpers/fake-checkpoint.ts';
import { readGguf } from '../../helpers/gguf-reader.ts';
import { strToU8, unzipSync, zipSync } from 'fflate';
import { GgmlType, GgufType, kvArray, kvString, writeGguf } from '../../../src/export/gguf-format.ts';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'finetune-export-write-'));
}

/** A write that runs out of space once the temporary file holds the bytes (before it is synced and renamed). */
const fullDisk = async (point: string): Promise<void> => {
  if (point.startsWith('fsync ')) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
};

async function exportWith(probe: ((p: string) => Promise<void>) | undefined, ...args: string[]): Promise<{ error: Error | null; out: string[] }> {
  const out: string[] = [];
  const error = await makeExportCommand({ probe })
    .run(['--adapter', TINY_ADAPTER, '--model', TINY_MISTRAL, ...args], { out: (l) => out.push(l), err: () => {} })
    .then(() => null, (e: unknown) => e as Error);
  return { error, out };
}

describe('writeFileAtomic', () => {
  it('leaves the old file byte for byte and no temporary file when the write fails, and says so naming the path', async () => {
    const dir = tmp();
    const path = join(dir, 'adapter.gguf');
    writeFileSync(path, 'GGUF the good one');
    const e = await writeFileAtomic(path, new Uint8Array(1000).fill(7), fullDisk).then(() => null, (x: unknown) => x as Error & { code?: string });
    expect(e?.message).toBe(`could not write "${path}": ENOSPC: no space left on device, write; the file that was there is kept as it was`);
    expect(e?.code).toBe('ENOSPC');
    expect(readFileSync(path, 'utf8')).toBe('GGUF the good one');
    expect(readdirSync(dir)).toEqual(['adapter.gguf']);
  });

  it('says nothing was left when there was no file, and replaces a file whole when it succeeds', async () => {
    const dir = tmp();
    const path = join(dir, 'new.gguf');
    const e = await writeFileAtomic(path, new Uint8Array(10), fullDisk).then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toMatch(/; nothing was written there$/);
    expect(readdirSync(dir)).toEqual([]);
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    expect([...readFileSync(path)]).toEqual([1, 2, 3]);
  });
});

// Node's own error named the temporary file (".adapter.gguf.3f2a….tmp"), not the file asked for, with its paths as they
// are: the message names the destination, quoted, and why, and no partial file is left.
describe('writeFileAtomic refused by the file system', () => {
  const noTemporary = (dir: string): string[] => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

  it('a path whose parent is a file: names the destination and the file in the way', async () => {
    const dir = tmp();
    const parent = join(dir, 'notes.txt');
    writeFileSync(parent, 'a file, not a folder');
    const path = join(parent, 'adapter.gguf');
    const e = await writeFileAtomic(path, new Uint8Array(10)).then(() => null, (x: unknown) => x as Error & { code?: string; path?: string });
    expect(e?.message).toBe(`could not write "${path}": "${parent}" is a file, not a folder; nothing was written there`);
    // The kernel cache tells a folder in the way by these (kernel-tuning.ts unwritable).
    expect(e).toMatchObject({ code: 'ENOTDIR', path: parent });
    expect(readFileSync(parent, 'utf8')).toBe('a file, not a folder');
    expect(readdirSync(dir)).toEqual(['notes.txt']);
  });

  it('a destination that is a folder: names it, not the temporary file, and leaves no temporary file', async () => {
    const dir = tmp();
    const path = join(dir, 'adapter.gguf');
    mkdirSync(path);
    const e = await writeFileAtomic(path, new Uint8Array(10)).then(() => null, (x: unknown) => x as Error & { code?: string; path?: string });
    expect(e?.message).toBe(`could not write "${path}": EISDIR: illegal operation on a directory; the folder there is kept as it was`);
    expect(e).toMatchObject({ code: 'EISDIR', path });
    expect(noTemporary(dir)).toEqual([]);
    expect(readdirSync(dir)).toEqual(['adapter.gguf']);
  });

  it('a name the file system refuses (past its 255 bytes): names the destination, not the temporary file', async () => {
    const dir = tmp();
    const path = join(dir, `${'a'.repeat(260)}.gguf`);
    const e = await writeFileAtomic(path, new Uint8Array(10)).then(() => null, (x: unknown) => x as Error & { code?: string; path?: string });
    expect(e?.message).toBe(`could not write "${path}": ENAMETOOLONG: name too long; nothing was written there`);
    expect(e?.message).not.toContain('.tmp');
    expect(e).toMatchObject({ code: 'ENAMETOOLONG', path });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a set whose folder cannot be made: names the file asked for', async () => {
    const dir = tmp();
    const parent = join(dir, 'adapter');
    writeFileSync(parent, 'a file');
    const e = await writeFilesAtomic(parent, { 'adapter_config.json': new Uint8Array(2), 'adapter_model.safetensors': new Uint8Array(2) }, undefined, 'adapter_config.json').then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toBe(`could not write "${join(parent, 'adapter_config.json')}": "${parent}" is a file, not a folder; nothing was written there (nor any of adapter_config.json, adapter_model.safetensors: they are written as one set)`);
  });
});

// A file system takes a name of up to 255 bytes. The temporary file beside it, `.NAME.<12 hex>.tmp`, is 18 bytes
// longer: written whole, a name of over 237 bytes could never be written (ENAMETOOLONG on the temporary file), though
// the name itself was a good one. The temporary name's NAME part is cut to fit, at a character's end.
describe('writeFileAtomic to a name of up to 255 bytes', () => {
  /** Names of 250 and 255 bytes: ASCII, two-byte and four-byte UTF-8 characters (a cut in one would be no name). */
  const names = [`${'a'.repeat(245)}.gguf`, `${'é'.repeat(125)}`, `${'a'.repeat(250)}.gguf`, `${'😀'.repeat(62)}ab`, `b${'😀'.repeat(63)}.g`];

  it('writes it, through a temporary file that is a dot name beginning with the name and ending in .tmp', async () => {
    for (const name of names) {
      expect([250, 255]).toContain(Buffer.byteLength(name));
      const dir = tmp();
      const seen: string[] = [];
      const look = async (point: string): Promise<void> => {
        // Written, before its rename: the temporary file is all there is.
        if (point === `fsync ${name}`) seen.push(...readdirSync(dir));
      };
      await writeFileAtomic(join(dir, name), new Uint8Array([1, 2, 3]), look);
      expect([...readFileSync(join(dir, name))], name).toEqual([1, 2, 3]);
      expect(readdirSync(dir)).toEqual([name]);
      expect(seen, name).toHaveLength(1);
      const [temporary] = seen;
      expect(Buffer.byteLength(temporary!), name).toBeLessThanOrEqual(255);
      expect(temporary, name).toMatch(/^\..+\.[0-9a-f]{12}\.tmp$/);
      const kept = temporary!.slice(1, -'.0123456789ab.tmp'.length);
      expect(name.startsWith(kept), name).toBe(true);
      expect(kept.length, name).toBeGreaterThan(100);
    }
  });

  it('two writes of the same long name at once each have a temporary file of their own: one of them is the file', async () => {
    const dir = tmp();
    const path = join(dir, `${'a'.repeat(250)}.gguf`);
    await Promise.all([writeFileAtomic(path, new Uint8Array(1000).fill(1)), writeFileAtomic(path, new Uint8Array(1000).fill(2))]);
    const bytes = readFileSync(path);
    expect(bytes.every((b) => b === bytes[0])).toBe(true);
    expect(readdirSync(dir)).toEqual([`${'a'.repeat(250)}.gguf`]);
  });

  it('finetune export --format gguf --out NAME of 250 bytes writes the GGUF', async () => {
    const dir = tmp();
    const name = `${'adapter-'.repeat(30)}abcde.gguf`;
    expect(Buffer.byteLength(name)).toBe(250);
    const { error } = await exportWith(undefined, '--format', 'gguf', '--out', join(dir, name));
    expect(error).toBeNull();
    expect(readdirSync(dir)).toEqual([name]);
    expect(readFileSync(join(dir, name)).subarray(0, 4).toString()).toBe('GGUF');
  });

  it('finetune export --format peft --out NAME.zip of 250 bytes writes the zip', async () => {
    const dir = tmp();
    const name = `${'a'.repeat(246)}.zip`;
    const { error } = await exportWith(undefined, '--format', 'peft', '--out', join(dir, name));
    expect(error).toBeNull();
    expect(readdirSync(dir)).toEqual([name]);
  });
});

describe('writeFilesAtomic with a key file', () => {
  const set = (tag: string): Record<string, Uint8Array> => ({
    'adapter_config.json': new TextEncoder().encode(`config ${tag}`),
    'adapter_model.safetensors': new TextEncoder().encode(`weights ${tag}`),
    'README.md': new TextEncoder().encode(`readme ${tag}`),
  });
  /** A kill: the probe throws, and nothing after that point runs (the clean-up of temporary files aside). */
  const killAt = (at: string) => async (point: string): Promise<void> => {
    if (point === at) throw new Error(`killed at ${point}`);
  };

  it('a kill at any point leaves either the old set whole, the new set whole, or no config: never one set’s config beside another’s weights', async () => {
    const points: string[] = [];
    await writeFilesAtomic(tmp(), set('new'), async (p) => void points.push(p), 'adapter_config.json');
    expect(points.indexOf('remove adapter_config.json')).toBeLessThan(points.indexOf('rename adapter_model.safetensors'));
    expect(points.indexOf('rename adapter_config.json')).toBeGreaterThan(points.indexOf('rename README.md'));
    const seen = new Set<string>();
    for (const point of points) {
      const dir = tmp();
      await writeFilesAtomic(dir, set('old'), undefined, 'adapter_config.json');
      const e = await writeFilesAtomic(dir, set('new'), killAt(point), 'adapter_config.json').then(() => null, (x: unknown) => x as Error);
      expect(e?.message, point).toMatch(/killed at/);
      const config = existsSync(join(dir, 'adapter_config.json')) ? readFileSync(join(dir, 'adapter_config.json'), 'utf8') : null;
      const weights = readFileSync(join(dir, 'adapter_model.safetensors'), 'utf8');
      if (config !== null) expect(config.split(' ')[1], `config beside ${weights} after a kill at ${point}`).toBe(weights.split(' ')[1]);
      seen.add(config === null ? 'no config' : config);
    }
    // Every outcome the invariant allows is reached by some kill point.
    expect([...seen].sort()).toEqual(['config new', 'config old', 'no config']);
  });

  it('refuses a key that is not in the set', async () => {
    await expect(writeFilesAtomic(tmp(), set('a'), undefined, 'adapter.json')).rejects.toThrow('the key file adapter.json is not in the set');
  });
});

describe('finetune export writes', () => {
  it('a GGUF re-export that fails leaves the previous GGUF byte for byte and no partial file', async () => {
    const dir = tmp();
    const out = join(dir, 'adapter.gguf');
    expect((await exportWith(undefined, '--format', 'gguf', '--out', out)).error).toBeNull();
    const good = readFileSync(out);
    const { error } = await exportWith(fullDisk, '--format', 'gguf', '--out', out, '--base-model', 'owner/other');
    expect(error?.message).toBe(`could not write "${out}": ENOSPC: no space left on device, write; the file that was there is kept as it was`);
    expect(readFileSync(out).equals(good)).toBe(true);
    expect(readdirSync(dir)).toEqual(['adapter.gguf']);
  });

  it('a PEFT re-export that fails on any of its files leaves the earlier set whole: never a config of one adapter beside the weights of another', async () => {
    const out = join(tmp(), 'adapter');
    expect((await exportWith(undefined, '--format', 'peft', '--out', out, '--base-model', 'owner/first')).error).toBeNull();
    const before = Object.fromEntries(readdirSync(out).map((f) => [f, readFileSync(join(out, f))]));
    expect(Object.keys(before).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    for (const failing of ['adapter_model.safetensors', 'README.md']) {
      const failAt = async (point: string): Promise<void> => {
        if (point === `fsync ${failing}`) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      };
      const { error } = await exportWith(failAt, '--format', 'peft', '--out', out, '--base-model', 'owner/second');
      expect(error?.message, failing).toMatch(/ENOSPC/);
      expect(readdirSync(out).sort(), failing).toEqual(Object.keys(before).sort());
      for (const [f, bytes] of Object.entries(before)) expect(readFileSync(join(out, f)).equals(bytes), `${f} after a failure at ${failing}`).toBe(true);
    }
    expect((await exportWith(undefined, '--format', 'peft', '--out', out, '--base-model', 'owner/second')).error).toBeNull();
    expect(readFileSync(join(out, 'adapter_config.json'), 'utf8')).toContain('owner/second');
  });

  it('a PEFT re-export killed between its renames leaves no adapter_config.json (not the new config beside the old weights), and the next export completes it', async () => {
    const out = join(tmp(), 'adapter');
    expect((await exportWith(undefined, '--format', 'peft', '--out', out, '--base-model', 'owner/first')).error).toBeNull();
    const killed = async (point: string): Promise<void> => {
      if (point === 'rename adapter_model.safetensors') throw new Error('killed');
    };
    expect((await exportWith(killed, '--format', 'peft', '--out', out, '--base-model', 'owner/second')).error?.message).toMatch(/: killed; .* without adapter_config.json/);
    expect(existsSync(join(out, 'adapter_config.json'))).toBe(false);
    // The half-swapped folder is still an export's own: no --force asked.
    expect((await exportWith(undefined, '--format', 'peft', '--out', out, '--base-model', 'owner/second')).error).toBeNull();
    expect(readFileSync(join(out, 'adapter_config.json'), 'utf8')).toContain('owner/second');
    expect(readdirSync(out).filter((f) => !f.startsWith('.')).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
  });

  it('a failure while the files are swapped says the folder holds part of the set without its config', async () => {
    const out = join(tmp(), 'adapter');
    expect((await exportWith(undefined, '--format', 'peft', '--out', out)).error).toBeNull();
    const failing = async (point: string): Promise<void> => {
      if (point === 'rename README.md') throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
    };
    const { error } = await exportWith(failing, '--format', 'peft', '--out', out);
    expect(error?.message).toBe(`could not write "${join(out, 'README.md')}": EIO: i/o error, rename; "${out}" now holds part of the new set without adapter_config.json, so no reader takes it for one: write it again`);
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('refuses a GGUF --out that exists and is not a GGUF (a JSONL), unless --force', async () => {
    const dir = tmp();
    const out = join(dir, 'important.jsonl');
    writeFileSync(out, '{"text":"a row"}\n');
    const { error } = await exportWith(undefined, '--format', 'gguf', '--out', out);
    expect(error?.message).toBe(`--out "${out}" exists and is not a GGUF file: export writes over an earlier export only; give another name, or --force to replace it`);
    expect(readFileSync(out, 'utf8')).toBe('{"text":"a row"}\n');
    expect((await exportWith(undefined, '--format', 'gguf', '--out', out, '--force')).error).toBeNull();
    expect(readFileSync(out).subarray(0, 4).toString()).toBe('GGUF');
  });

  it('refuses a GGUF --out that is a GGUF model, not a LoRA adapter (the base-model.gguf the README names), unless --force', async () => {
    // A converted base model starts with GGUF's magic too: it was replaced by the adapter, gigabytes and a conversion lost.
    const dir = tmp();
    const out = join(dir, 'base-model.gguf');
    const tokens = Array.from({ length: 300 }, (_, i) => `tok${i}`);
    const model = writeGguf(
      [kvString('general.architecture', 'llama'), kvArray('tokenizer.ggml.tokens', GgufType.STRING, tokens), kvString('general.type', 'model'), kvString('general.name', 'Mistral 7B')],
      [{ name: 'token_embd.weight', shape: [4, 32], type: GgmlType.F32, data: new Float32Array(128).fill(0.5) }],
    );
    writeFileSync(out, model);
    const { error } = await exportWith(undefined, '--format', 'gguf', '--out', out);
    expect(error?.message).toBe(`--out "${out}" exists and is a GGUF model (its general.type is "model"), not a LoRA adapter: export writes over an earlier export only; give another name, or --force to replace it`);
    expect(readFileSync(out).equals(Buffer.from(model))).toBe(true);
    // A GGUF whose header does not say what it is is not taken for an adapter either.
    const bare = join(dir, 'bare.gguf');
    const unnamed = writeGguf([kvString('general.architecture', 'llama')], []);
    writeFileSync(bare, unnamed);
    expect((await exportWith(undefined, '--format', 'gguf', '--out', bare)).error?.message).toBe(`--out "${bare}" exists and is a GGUF file that does not say it is a LoRA adapter (no general.type in its header): export writes over an earlier export only; give another name, or --force to replace it`);
    expect(readFileSync(bare).equals(Buffer.from(unnamed))).toBe(true);
    // --force replaces it with the adapter, which the next export writes over without --force.
    expect((await exportWith(undefined, '--format', 'gguf', '--out', out, '--force')).error).toBeNull();
    expect(readGguf(new Uint8Array(readFileSync(out))).kv.get('general.type')?.value).toBe('adapter');
    expect((await exportWith(undefined, '--format', 'gguf', '--out', out)).error).toBeNull();
  });

  it('refuses a PEFT --out folder holding files an export does not write (a model folder), unless --force; an earlier export’s folder is fine', async () => {
    const dir = join(tmp(), 'model');
    mkdirSync(dir);
    writeFileSync(join(dir, 'README.md'), 'the model card');
    writeFileSync(join(dir, 'config.json'), '{}');
    const { error } = await exportWith(undefined, '--format', 'peft', '--out', dir);
    expect(error?.message).toBe(`--out "${dir}" holds files an export does not write ("config.json"): it looks like another folder (a model's?), whose README.md export would replace; give --out an empty or new folder, or remove "config.json" from it, or give --force to write the adapter's files beside it`);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toBe('the model card');
    expect(existsSync(join(dir, 'adapter_config.json'))).toBe(false);
    expect((await exportWith(undefined, '--format', 'peft', '--out', dir, '--force')).error).toBeNull();
    expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe('{}');
    // Exporting again into a folder of an earlier export needs nothing more.
    const again = join(tmp(), 'adapter');
    expect((await exportWith(undefined, '--format', 'peft', '--out', again)).error).toBeNull();
    expect((await exportWith(undefined, '--format', 'peft', '--out', again)).error).toBeNull();
  });

  it('refuses a PEFT --out folder holding a README.md and no adapter (a README of its own, not an export\'s), unless --force', async () => {
    const dir = join(tmp(), 'notes');
    mkdirSync(dir);
    writeFileSync(join(dir, 'README.md'), 'my notes');
    const { error } = await exportWith(undefined, '--format', 'peft', '--out', dir);
    expect(error?.message).toBe(`--out "${dir}" holds a README.md and no adapter, so not an earlier export's: export would replace it; give --out an empty or new folder, or --force to replace it`);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toBe('my notes');
    expect(existsSync(join(dir, 'adapter_config.json'))).toBe(false);
    expect((await exportWith(undefined, '--format', 'peft', '--out', dir, '--force')).error).toBeNull();
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).not.toBe('my notes');
  });

  // Export never writes a .bin: a folder holding one holds another adapter (Replicate's, older PEFT's), whose
  // adapter_config.json an export replaced, leaving its weights beside a config that did not describe them.
  it('refuses a PEFT --out folder holding another adapter as adapter_model.bin, unless --force', async () => {
    const dir = join(tmp(), 'replicate-adapter');
    mkdirSync(dir);
    writeFileSync(join(dir, 'adapter_config.json'), '{"r": 8, "lora_alpha": 32}');
    writeFileSync(join(dir, 'adapter_model.bin'), new Uint8Array(64));
    const { error } = await exportWith(undefined, '--format', 'peft', '--out', dir);
    expect(error?.message).toBe(`--out "${dir}" holds another adapter (adapter_model.bin: export writes adapter_model.safetensors, never a .bin), whose adapter_config.json export would replace; give --out an empty or new folder, or --force to write this adapter's files beside its .bin`);
    expect(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).toBe('{"r": 8, "lora_alpha": 32}');
    expect(existsSync(join(dir, 'adapter_model.safetensors'))).toBe(false);
    expect((await exportWith(undefined, '--format', 'peft', '--out', dir, '--force')).error).toBeNull();
    expect(existsSync(join(dir, 'adapter_model.safetensors'))).toBe(true);
  });

  it('refuses a zip --out that exists and is not a zip, unless --force', async () => {
    const dir = tmp();
    const out = join(dir, 'notes.zip');
    writeFileSync(out, 'not a zip');
    const { error } = await exportWith(undefined, '--format', 'peft', '--out', out);
    expect(error?.message).toBe(`--out "${out}" exists and is not a zip file: export writes over an earlier export only; give another name, or --force to replace it`);
    expect(readFileSync(out, 'utf8')).toBe('not a zip');
  });
});

describe('finetune export --out X.zip over a zip', () => {
  it('refuses a zip that is not an export (a dataset archive, a Replicate training_output.zip), unless --force; an earlier export is written over', async () => {
    const dir = tmp();
    // Replicate's output: the PEFT pair with a .bin, which no export of ours writes into a zip.
    const replicate = join(dir, 'training_output.zip');
    const replicateBytes = zipSync({ 'adapter_config.json': strToU8('{}'), 'adapter_model.bin': new Uint8Array(64) });
    writeFileSync(replicate, replicateBytes);
    const { error } = await exportWith(undefined, '--format', 'peft', '--out', replicate);
    expect(error?.message).toBe(`--out "${replicate}" exists and is a zip of other files than an export's ("adapter_model.bin"): export writes over an earlier export only; give another name, or --force to replace it`);
    expect(readFileSync(replicate).equals(Buffer.from(replicateBytes))).toBe(true);
    const data = join(dir, 'data.zip');
    const dataBytes = zipSync({ 'train.jsonl': strToU8('{"text":"a"}\n'), 'notes, v2/README.md': strToU8('mine') });
    writeFileSync(data, dataBytes);
    expect((await exportWith(undefined, '--format', 'peft', '--out', data)).error?.message).toBe(`--out "${data}" exists and is a zip of other files than an export's ("train.jsonl", "notes, v2/README.md"): export writes over an earlier export only; give another name, or --force to replace it`);
    expect(readFileSync(data).equals(Buffer.from(dataBytes))).toBe(true);
    expect((await exportWith(undefined, '--format', 'peft', '--out', data, '--force')).error).toBeNull();
    // What export wrote, it writes over again without --force; so the page's bundle (with adapter.gguf) and a zip in one folder.
    expect((await exportWith(undefined, '--format', 'peft', '--out', data)).error).toBeNull();
    const bundle = join(dir, 'bundle.zip');
    writeFileSync(bundle, zipSync({ 'adapter_config.json': strToU8('{}'), 'adapter_model.safetensors': new Uint8Array(8), 'README.md': strToU8('#'), 'adapter.gguf': strToU8('GGUF') }));
    expect((await exportWith(undefined, '--format', 'peft', '--out', bundle)).error).toBeNull();
    const foldered = join(dir, 'foldered.zip');
    writeFileSync(foldered, zipSync({ 'my-adapter/': new Uint8Array(0), 'my-adapter/adapter_config.json': strToU8('{}'), 'my-adapter/adapter_model.safetensors': new Uint8Array(8) }));
    expect((await exportWith(undefined, '--format', 'peft', '--out', foldered)).error).toBeNull();
  });
});

describe('finetune export --adapter OUT/run: the adapter at a run’s checkpoint', () => {
  /** OUT/run holding a checkpoint at step 3 whose LoRA tensors are the tiny-adapter's (with AdamW moments beside them). */
  async function runAtStep3(savedAt?: string, modelSource = 'tiny-mistral', over: Partial<SavedRun> = {}): Promise<string> {
    const out = tmp();
    const fixture = readFileSync(join(TINY_ADAPTER, 'adapter_model.safetensors'));
    const file = await openSafetensors(bytesSource(new Uint8Array(fixture), 'fixture'));
    const tensors: TensorToWrite[] = [];
    for (const name of file.names()) {
      const data = toFloat32(await file.read(name), file.info(name).dtype);
      const shape = file.info(name).shape;
      tensors.push({ name, dtype: 'F32', shape, data }, { name: `${name}.exp_avg`, dtype: 'F32', shape, data: new Float32Array(data.length).fill(9) }, { name: `${name}.exp_avg_sq`, dtype: 'F32', shape, data: new Float32Array(data.length).fill(9) });
    }
    const state = writeSafetensors(tensors, { format: 'finetune-state', step: '3', rank: '4' });
    const run = { ...fakeRun(3), ...(savedAt ? { savedAt } : {}), modelSource, quantization: 'none' as const, hp: { ...defaultHyperparams(), lora_rank: 4, lora_alpha: 8, lora_target_modules: 'all-linear' }, totalSteps: 6, ...over };
    await folderRunStore(join(out, 'run')).commit(checkpointFiles(run, state, { train: new TextEncoder().encode('{"text":"a"}\n'), validation: null }));
    return out;
  }

  it('says when OUT/run holds a checkpoint saved after OUT/adapter was written (a later run stopped before its end), and how to export it', async () => {
    const out = await runAtStep3(new Date().toISOString());
    const adapterDir = join(out, 'adapter');
    mkdirSync(adapterDir);
    for (const f of readdirSync(TINY_ADAPTER)) copyFileSync(join(TINY_ADAPTER, f), join(adapterDir, f));
    const exportOf = async (): Promise<string> => {
      const err: string[] = [];
      await makeExportCommand().run(['--adapter', adapterDir, '--format', 'peft', '--out', join(tmp(), 'peft'), '--model', TINY_MISTRAL], { out: () => {}, err: (l) => err.push(l) });
      return err.join('\n');
    };
    // The adapter from an earlier run (2020), the checkpoint from now.
    const old = new Date('2020-01-01T00:00:00Z');
    for (const f of readdirSync(adapterDir)) utimesSync(join(adapterDir, f), old, old);
    expect(await exportOf()).toContain(`note: "${join(out, 'run')}" holds a checkpoint (step 3 of 6) saved after this adapter was written: it may be of a later run that stopped before writing its adapter; for that one, give --adapter "${join(out, 'run')}"`);
    // --adapter OUT (train's --out) reads OUT/adapter: the same note (it said nothing).
    const errOut: string[] = [];
    await makeExportCommand().run(['--adapter', out, '--format', 'peft', '--out', join(tmp(), 'peft'), '--model', TINY_MISTRAL], { out: () => {}, err: (l) => errOut.push(l) });
    expect(errOut.join('\n')).toContain(`note: "${join(out, 'run')}" holds a checkpoint (step 3 of 6) saved after "${adapterDir}" was written: it may be of a later run that stopped before writing its adapter; for that one, give --adapter "${join(out, 'run')}"`);
    // The adapter written after the checkpoint (a run's end): nothing to say.
    const later = new Date(Date.now() + 3_600_000);
    for (const f of readdirSync(adapterDir)) utimesSync(join(adapterDir, f), later, later);
    expect(await exportOf()).not.toContain('holds a checkpoint');
  });

  it('exports the checkpoint’s LoRA tensors (not the moments) with the run’s rank, alpha and targets, saying which step', async () => {
    const out = await runAtStep3();
    for (const given of [join(out, 'run'), out]) {
      const dest = join(tmp(), 'peft');
      const err: string[] = [];
      await makeExportCommand().run(['--adapter', given, '--format', 'peft', '--out', dest, '--model', TINY_MISTRAL], { out: () => {}, err: (l) => err.push(l) });
      expect(err.join('\n')).toContain(`note: reading the adapter at the checkpoint of step 3 (of 6) of the run saved in "${join(out, 'run')}"`);
      const written = await readAdapter(nodeDirectory(dest));
      const fixture = await readAdapter(nodeDirectory(TINY_ADAPTER));
      expect(written.config).toMatchObject({ r: 4, loraAlpha: 8, targetModules: [...PROJECTIONS], baseModel: 'tiny-mistral' });
      expect(written.tensors[1].down_proj?.B).toEqual(fixture.tensors[1].down_proj?.B);
      expect(written.tensors[0].q_proj?.A).toEqual(fixture.tensors[0].q_proj?.A);
    }
  });

  // The checkpoint's adapter names its base model by the run's model, from the run's record: held to what a typed
  // --base-model is (a run trained with --base-model on a folder whose name holds a U+202E saved that folder's name).
  it("a run's model whose name a typed --base-model would be refused for: refused, naming the run, unless --base-model is given", async () => {
    const out = await runAtStep3(undefined, 'tiny\u202eledom');
    const dest = join(tmp(), 'peft');
    const e = await makeExportCommand().run(['--adapter', join(out, 'run'), '--format', 'peft', '--out', dest, '--model', TINY_MISTRAL], { out: () => {}, err: () => {} }).then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toBe(`${join(out, 'run')}: the saved run's model "tiny\\u202eledom": the base model name holds U+202E (right-to-left override), a bidirectional control, which reorders the text around it so that the name reads as another: give --base-model NAME to name the base model instead`);
    expect(existsSync(dest)).toBe(false);
    const named = await makeExportCommand().run(['--adapter', join(out, 'run'), '--format', 'peft', '--out', dest, '--model', TINY_MISTRAL, '--base-model', 'mistralai/Mistral-7B-v0.1'], { out: () => {}, err: () => {} });
    expect(named).toBe(0);
    expect((await readAdapter(nodeDirectory(dest))).config.baseModel).toBe('mistralai/Mistral-7B-v0.1');
  });

  // train --base-model NAME records NAME with the run: the checkpoint's adapter names it, as OUT/adapter does at the
  // run's end. It named the model folder (and refused one whose name holds a U+202E, hinting the --base-model given).
  it('names the base model the run was trained with --base-model, recorded with it, and not the model folder', async () => {
    const out = await runAtStep3(undefined, 'tiny\u202eledom', { baseModelName: 'my-org/tiny-mistral' });
    const dest = join(tmp(), 'peft');
    const printed: string[] = [];
    expect(await makeExportCommand().run(['--adapter', join(out, 'run'), '--format', 'peft', '--out', dest, '--model', TINY_MISTRAL], { out: (l) => printed.push(l), err: () => {} })).toBe(0);
    expect((await readAdapter(nodeDirectory(dest))).config.baseModel).toBe('my-org/tiny-mistral');
    expect(JSON.parse(printed[0]).adapter.base_model_name_or_path).toBe('my-org/tiny-mistral');
    // --base-model given to export still has the last word.
    const renamed = join(tmp(), 'peft');
    await makeExportCommand().run(['--adapter', join(out, 'run'), '--format', 'peft', '--out', renamed, '--model', TINY_MISTRAL, '--base-model', 'other/name'], { out: () => {}, err: () => {} });
    expect((await readAdapter(nodeDirectory(renamed))).config.baseModel).toBe('other/name');
  });

  it('a recorded base model name a typed --base-model would be refused for is a damaged record, named as such', async () => {
    const out = await runAtStep3(undefined, 'tiny-mistral', { baseModelName: 'my-org/\u202etiny' });
    const e = await makeExportCommand().run(['--adapter', join(out, 'run'), '--format', 'peft', '--out', join(tmp(), 'peft'), '--model', TINY_MISTRAL], { out: () => {}, err: () => {} }).then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toMatch(/its base model name "my-org\/\\u202etiny" is no base model name: the base model name holds U\+202E/);
  });

  // After a kill the checkpoint's export is the run's only record beside it: its README says how it was trained, as
  // the page's export of the same run does (it had no Training section).
  it("writes the run's Training section into the README: data, steps, every hyperparameter, the losses", async () => {
    const history = [{ step: 1, loss: 2.5 }, { step: 2, loss: 2.25, valLoss: 2.375 }, { step: 3, loss: 2.125 }];
    const out = await runAtStep3(undefined, 'tiny-mistral', { trainName: 'my data.jsonl', history, baseline: { valLoss: 2.75 } });
    for (const dest of [join(tmp(), 'peft'), join(tmp(), 'peft.zip')]) {
      expect(await makeExportCommand().run(['--adapter', join(out, 'run'), '--format', 'peft', '--out', dest, '--model', TINY_MISTRAL], { out: () => {}, err: () => {} })).toBe(0);
      const readme = dest.endsWith('.zip') ? new TextDecoder().decode(unzipSync(readFileSync(dest))['README.md']) : readFileSync(join(dest, 'README.md'), 'utf8');
      expect(readme).toContain('## Training');
      expect(readme).toContain('Trained with finetune (WebGPU) for 3 optimizer steps (stopped at step 3 of the 6 planned) on `my data.jsonl`, validated on rows held out from it.');
      expect(readme).toContain('| lora_rank * | `4` |');
      expect(readme).toContain('Training loss at step 3: 2.1250');
      expect(readme).toContain('| 0 (before training) | — | 2.7500 |');
      expect(readme).toContain('| 2 | 2.2500 | 2.3750 |');
    }
  });

  it('a folder holding neither an adapter nor a run says where each would be', async () => {
    const empty = tmp();
    const e = await makeExportCommand().run(['--adapter', empty, '--format', 'peft', '--out', join(tmp(), 'x')], { out: () => {}, err: () => {} }).then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toMatch(/no adapter_config\.json.*a run's checkpoint is exported with --adapter OUT\/run \(or OUT\), the folder train --out wrote/);
  });
});

describe('finetune export and an adapter trained on another model', () => {
  it('notes that base_model_name_or_path names another model than --model', async () => {
    const dir = join(tmp(), 'ad');
    mkdirSync(dir);
    const config = JSON.parse(readFileSync(join(TINY_ADAPTER, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, base_model_name_or_path: 'mistralai/Mistral-7B-v0.1' }));
    writeFileSync(join(dir, 'adapter_model.safetensors'), readFileSync(join(TINY_ADAPTER, 'adapter_model.safetensors')));
    const err: string[] = [];
    await makeExportCommand().run(['--adapter', dir, '--format', 'gguf', '--out', join(tmp(), 'a.gguf'), '--model', TINY_MISTRAL], { out: () => {}, err: (l) => err.push(l) });
    expect(err).toContain(`note: the adapter was trained on "mistralai/Mistral-7B-v0.1" (its base_model_name_or_path), and the model loaded is "tiny-mistral": the shapes fit, but on another base than its own an adapter computes something else; load "mistralai/Mistral-7B-v0.1" unless it is the same model under another name`);
  });
});
