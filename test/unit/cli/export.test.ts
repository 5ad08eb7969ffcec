// `finetune export`: an adapter in any container the importer reads comes out as PEFT safetensors or GGUF, and what
// it wrote reads back (with the project's readers and the tests' strict GGUF reader) to exactly the fixture's tensors.
import { existsSync, mkdtempSync, readFileSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { ggufLoraName, permuteQkRows } from '../../../src/export/index.ts';
import { quote } from '../../../src/core/quote.ts';
import { importAdapter } from '../../../src/model/adapter-import.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { readAdapter, type LoraAdapter } from '../../../src/model/lora-adapter.ts';
import { writeSafetensors } from '../../../src/model/safetensors.ts';
import { ggufTensorF32, readGguf } from '../../helpers/gguf-reader.ts';
import { safetensorsTensors } from '../../helpers/safetensors-file.ts';
import { PickleWriter, replicateTrainingZip, torchSaveStateDict, torchZip } from '../../helpers/torch-save.ts';
import { fixtureBytes, fixtureJson, TINY_ADAPTER, TINY_MISTRAL } from '../model/helpers.ts';

const base = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));
const configText = readFileSync(`${TINY_ADAPTER}/adapter_config.json`, 'utf8');
const safetensors = fixtureBytes(`${TINY_ADAPTER}/adapter_model.safetensors`);
const bin = torchSaveStateDict(
  [...safetensorsTensors(safetensors)].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: new Float32Array(t.bytes.slice().buffer) })),
  { archive: 'adapter_model' },
);

async function run(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['export', ...args], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'finetune-export-'));
}

/** A Replicate training_output.zip on disk, holding the fixture's tensors as adapter_model.bin. */
function replicateZipFile(dir: string): string {
  const p = join(dir, 'training_output.zip');
  writeFileSync(p, replicateTrainingZip(configText, bin));
  return p;
}

let reference: LoraAdapter | null = null;
async function fixtureAdapter(): Promise<LoraAdapter> {
  reference ??= await readAdapter(nodeDirectory(TINY_ADAPTER), { base });
  return reference;
}

function expectSameTensors(got: LoraAdapter, want: LoraAdapter): void {
  want.tensors.forEach((layer, l) => {
    for (const m of PROJECTIONS) {
      const w = layer[m];
      if (!w) continue;
      const g = got.tensors[l][m]!;
      expect(Buffer.from(g.A.buffer, g.A.byteOffset, g.A.byteLength).equals(Buffer.from(w.A.buffer, w.A.byteOffset, w.A.byteLength))).toBe(true);
      expect(Buffer.from(g.B.buffer, g.B.byteOffset, g.B.byteLength).equals(Buffer.from(w.B.buffer, w.B.byteOffset, w.B.byteLength))).toBe(true);
    }
  });
}

describe('finetune export', () => {
  it('keeps the "Training" section of the README the adapter came with (a renamed copy of train\'s adapter keeps its model card)', async () => {
    const dir = tmp();
    const src = join(dir, 'adapter');
    mkdirSync(src);
    writeFileSync(join(src, 'adapter_config.json'), configText);
    writeFileSync(join(src, 'adapter_model.safetensors'), safetensors);
    const section = '## Training\n\nTrained with finetune (WebGPU) for 2 optimizer steps on `rows.jsonl`.\n\n| lora_rank * | `4` |';
    writeFileSync(join(src, 'README.md'), `# LoRA adapter for tiny-mistral\n\n## PEFT (transformers)\n\nold snippet\n\n${section}\n`);
    const out = join(dir, 'renamed');
    expect((await run('--adapter', src, '--format', 'peft', '--out', out, '--model', TINY_MISTRAL, '--base-model', 'owner/tiny')).code).toBe(0);
    const readme = readFileSync(join(out, 'README.md'), 'utf8');
    // The new README's own text (the new base name), then the section as it was, once.
    expect(readme).toContain('owner/tiny');
    expect(readme).not.toContain('old snippet');
    expect(readme.endsWith(`\n\n${section}\n`)).toBe(true);
    expect(readme.split('## Training').length).toBe(2);
    // A zip export keeps it too; an adapter with no README gets none.
    expect((await run('--adapter', src, '--format', 'peft', '--out', join(dir, 'renamed.zip'), '--model', TINY_MISTRAL)).code).toBe(0);
    const { unzipSync } = await import('fflate');
    expect(new TextDecoder().decode(unzipSync(readFileSync(join(dir, 'renamed.zip')))['README.md'])).toContain(section);
    expect((await run('--adapter', TINY_ADAPTER, '--format', 'peft', '--out', join(dir, 'plain'), '--model', TINY_MISTRAL)).code).toBe(0);
    expect(readFileSync(join(dir, 'plain', 'README.md'), 'utf8')).not.toContain('## Training');
  });

  it("Replicate's training_output.zip → a PEFT folder that reads back to the same tensors", async () => {
    const dir = tmp();
    const out = join(dir, 'peft');
    const r = await run('--adapter', replicateZipFile(dir), '--format', 'peft', '--out', out, '--model', TINY_MISTRAL);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    const line = JSON.parse(r.out[0]) as Record<string, unknown>;
    expect(line).toMatchObject({ type: 'export', format: 'peft', out, model: TINY_MISTRAL, adapter: { r: 4, lora_alpha: 8, layers: 2, read_from: 'training_output/adapter_model.bin' } });
    const back = await readAdapter(nodeDirectory(out), { base });
    expectSameTensors(back, await fixtureAdapter());
    expect(back.config.loraAlpha).toBe(8);
  });

  it('a PEFT zip out, from an adapter_model.bin named directly (its config beside it), without --model', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'in'));
    writeFileSync(join(dir, 'in', 'adapter_config.json'), configText);
    writeFileSync(join(dir, 'in', 'adapter_model.bin'), bin);
    const out = join(dir, 'adapter.zip');
    const r = await run('--adapter', join(dir, 'in', 'adapter_model.bin'), '--format', 'peft', '--out', out);
    expect(r.code).toBe(0);
    // "tiny-mistral" (the fixture's base_model_name_or_path) resolves to nothing; a PEFT export does not need it.
    expect(JSON.parse(r.out[0])).toMatchObject({ model: null, files: [out] });
    expectSameTensors(await importAdapter(new Uint8Array(readFileSync(out)), { base }), await fixtureAdapter());
  });

  it('GGUF: every lora_a is A, every lora_b is B (q/k rows permuted for llama.cpp), alpha kept', async () => {
    const dir = tmp();
    const out = join(dir, 'adapter.gguf');
    const r = await run('--adapter', replicateZipFile(dir), '--format', 'gguf', '--out', out, '--model', TINY_MISTRAL);
    expect(r.code).toBe(0);
    const f = readGguf(new Uint8Array(readFileSync(out)));
    expect(f.kv.get('general.type')?.value).toBe('adapter');
    expect(f.kv.get('adapter.lora.alpha')?.value).toBe(8);
    const want = await fixtureAdapter();
    let n = 0;
    want.tensors.forEach((layer, l) => {
      for (const m of PROJECTIONS) {
        const p = layer[m]!;
        const a = f.tensors.get(ggufLoraName(l, m, 'a'))!;
        const b = f.tensors.get(ggufLoraName(l, m, 'b'))!;
        expect(a.shape).toEqual([4, want.dims[m]!.in]);
        expect(ggufTensorF32(a)).toEqual(p.A);
        const out_ = want.dims[m]!.out;
        const B = m === 'q_proj' ? permuteQkRows(p.B, out_, 4, base.heads) : m === 'k_proj' ? permuteQkRows(p.B, out_, 4, base.kvHeads) : p.B;
        expect(ggufTensorF32(b)).toEqual(B);
        n += 2;
      }
    });
    expect(f.tensors.size).toBe(n);
  });

  it('an --out that is a folder for a file (or a file for a folder) is one line naming the flag, not EISDIR', async () => {
    const dir = tmp();
    const gguf = await run('--adapter', replicateZipFile(dir), '--format', 'gguf', '--out', dir, '--model', TINY_MISTRAL);
    expect(gguf.code).toBe(2);
    expect(gguf.err.join('\n')).toContain(`--out: "${dir}" is a folder; give a file name to write`);
    writeFileSync(join(dir, 'taken'), 'x');
    const peft = await run('--adapter', replicateZipFile(dir), '--format', 'peft', '--out', join(dir, 'taken'));
    expect(peft.code).toBe(2);
    expect(peft.err.join('\n')).toContain(`--out: "${join(dir, 'taken')}" is a file; give a folder (it is made if missing)`);
    expect(readFileSync(join(dir, 'taken'), 'utf8')).toBe('x');
  });

  it('--base-model names the base in adapter_config.json and the GGUF, and is where the base config is looked for', async () => {
    const dir = tmp();
    // A base trained from a local folder, named for PEFT's AutoPeftModelForCausalLM; the base config is the folder's.
    const out = join(dir, 'peft');
    const r = await run('--adapter', replicateZipFile(dir), '--format', 'peft', '--out', out, '--base-model', 'mistralai/Mistral-7B-Instruct-v0.2');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out[0])).toMatchObject({ adapter: { base_model_name_or_path: 'mistralai/Mistral-7B-Instruct-v0.2' } });
    expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).base_model_name_or_path).toBe('mistralai/Mistral-7B-Instruct-v0.2');
    expectSameTensors(await readAdapter(nodeDirectory(out), { base }), await fixtureAdapter());
    // Without --model, GGUF reads the config of --base-model: a folder here.
    const gguf = join(dir, 'a.gguf');
    const g = await run('--adapter', replicateZipFile(dir), '--format', 'gguf', '--out', gguf, '--base-model', TINY_MISTRAL);
    expect(g.err).toEqual([]);
    expect(JSON.parse(g.out[0])).toMatchObject({ model: TINY_MISTRAL, adapter: { base_model_name_or_path: TINY_MISTRAL } });
    expect(readGguf(new Uint8Array(readFileSync(gguf))).kv.get('general.name')?.value).toBe(`LoRA adapter for ${TINY_MISTRAL}`);
    // A name that cannot be one line of text is refused before anything is read or written.
    const bad = await run('--adapter', replicateZipFile(dir), '--format', 'peft', '--out', join(dir, 'never'), '--base-model', 'two\nlines');
    expect(bad.code).toBe(2);
    expect(bad.err.join('\n')).toContain('--base-model: the base model name holds a control character (a line break or a tab, say): remove it');
    expect(existsSync(join(dir, 'never'))).toBe(false);
    // So is one a bidirectional control would make read as another model's name.
    const bidi = await run('--adapter', replicateZipFile(dir), '--format', 'peft', '--out', join(dir, 'never'), '--base-model', 'evil/\u202eledom');
    expect(bidi.code).toBe(2);
    expect(bidi.err.join('\n')).toContain('--base-model: the base model name holds U+202E (right-to-left override), a bidirectional control');
    expect(existsSync(join(dir, 'never'))).toBe(false);
    const unresolved = await run('--adapter', replicateZipFile(dir), '--format', 'gguf', '--out', join(dir, 'b.gguf'), '--base-model', 'my-model');
    expect(unresolved.err.join('\n')).toMatch(/--base-model "my-model" is neither a folder nor a Hugging Face id.*give --model/);
  });

  it("exports an adapter whose target_modules list names another architecture's modules too, saying they are ignored, as PEFT ignores them", async () => {
    const dir = tmp();
    const src = join(dir, 'mixed');
    mkdirSync(src);
    const cfg = JSON.parse(configText) as { target_modules: string[] };
    const targets = [...cfg.target_modules, 'c_attn', 'query_key_value'];
    writeFileSync(join(src, 'adapter_config.json'), JSON.stringify({ ...cfg, target_modules: targets }));
    writeFileSync(join(src, 'adapter_model.safetensors'), safetensors);
    const out = join(dir, 'peft');
    const r = await run('--adapter', src, '--format', 'peft', '--out', out, '--model', TINY_MISTRAL);
    expect(r.code).toBe(0);
    expect(r.err.join('\n')).toContain('note: the adapter: its target_modules also name "c_attn", "query_key_value", which match no module of the model: ignored, as PEFT ignores them (it adapts ');
    // Written with the modules it adapts (the ignored names are not carried on), and the same tensors.
    const written = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).target_modules as string[];
    expect([...written].sort()).toEqual([...cfg.target_modules].sort());
    expectSameTensors(await readAdapter(nodeDirectory(out), { base }), await fixtureAdapter());
  });

  it('refuses to write over the adapter it reads: its folder, a file in it, or its zip', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'ad'));
    writeFileSync(join(dir, 'ad', 'adapter_config.json'), configText);
    writeFileSync(join(dir, 'ad', 'adapter_model.safetensors'), safetensors);
    const weights = join(dir, 'ad', 'adapter_model.safetensors');
    const overWeights = await run('--adapter', join(dir, 'ad'), '--format', 'gguf', '--out', weights, '--model', TINY_MISTRAL);
    expect(overWeights.code).toBe(2);
    expect(overWeights.err.join('\n')).toContain(`--out "${weights}" is the adapter being read ("${join(dir, 'ad')}"): write the GGUF somewhere else`);
    expect(readFileSync(weights).equals(Buffer.from(safetensors))).toBe(true);
    const overFolder = await run('--adapter', weights, '--format', 'peft', '--out', join(dir, 'ad'));
    expect(overFolder.err.join('\n')).toContain('is the adapter being read');
    const zip = replicateZipFile(dir);
    const overZip = await run('--adapter', zip, '--format', 'peft', '--out', zip);
    expect(overZip.err.join('\n')).toContain(`--out "${zip}" is the adapter being read ("${zip}"): write the PEFT files somewhere else`);
  });

  it('GGUF without a resolvable base model asks for --model', async () => {
    const dir = tmp();
    const r = await run('--adapter', replicateZipFile(dir), '--format', 'gguf', '--out', join(dir, 'a.gguf'));
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/GGUF needs the base model's config .*"tiny-mistral" is neither a folder nor a Hugging Face id.*give --model/);
  });

  it('an adapter that does not fit --model is refused with the shapes', async () => {
    const dir = tmp();
    const wide = join(dir, 'wide');
    mkdirSync(wide);
    writeFileSync(join(wide, 'config.json'), JSON.stringify({ ...(fixtureJson(`${TINY_MISTRAL}/config.json`) as object), intermediate_size: 512 }));
    const r = await run('--adapter', replicateZipFile(dir), '--format', 'peft', '--out', join(dir, 'o'), '--model', wide);
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/gate_proj of layer 0: lora_A \[4, 128\] \/ lora_B \[448, 4\] do not fit the base model's \[512, 128\] weight/);
  });

  it('a hostile adapter_model.bin is refused, naming the global, and nothing is written', async () => {
    const dir = tmp();
    const evil = new PickleWriter().proto(2).global('builtins', 'eval').unicode("__import__('os').system('id')").tupleN(1).reduce().stop().finish();
    const p = join(dir, 'evil.zip');
    writeFileSync(p, replicateTrainingZip(configText, torchZip(evil, new Map())));
    const r = await run('--adapter', p, '--format', 'peft', '--out', join(dir, 'o'));
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/refused global "builtins\.eval"/);
    expect(() => readFileSync(join(dir, 'o', 'adapter_config.json'))).toThrow();
  });

  it('an adapter zip past 2 GiB is refused by its size, before it is read (Node refused to read it, exit 1)', async () => {
    const dir = tmp();
    const p = join(dir, 'huge.zip');
    // Sparse: 2 GiB on the file system's word, no bytes written.
    writeFileSync(p, '');
    truncateSync(p, 2 ** 31);
    const r = await run('--adapter', p, '--format', 'peft', '--out', join(dir, 'o'));
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toContain(`${p} is 2147483648 bytes, more than the 2147483647-byte limit (2 GiB) for an adapter .bin or zip, which is read whole`);
    expect(existsSync(join(dir, 'o'))).toBe(false);
  });

  it('names from the files (zip entries, base_model_name_or_path) are printed quoted: their control characters never reach the terminal', async () => {
    const dir = tmp();
    // An escape sequence that would clear the screen and set the window title, in an entry name.
    const evil = 'x\u001b[2J\u001b]0;pwned\u0007.txt';
    const p = join(dir, 'evil.zip');
    writeFileSync(p, zipSync({ [evil]: new TextEncoder().encode('1') }));
    const r = await run('--adapter', p, '--format', 'peft', '--out', join(dir, 'o'));
    expect(r.code).toBe(2);
    const err = r.err.join('\n');
    expect(err).toContain(JSON.stringify(evil));
    expect(err).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    // The adapter's base model, said in a note when --model is another.
    mkdirSync(join(dir, 'in'));
    writeFileSync(join(dir, 'in', 'adapter_config.json'), JSON.stringify({ ...JSON.parse(configText), base_model_name_or_path: 'owner/other\u001b[31m' }));
    writeFileSync(join(dir, 'in', 'adapter_model.safetensors'), safetensors);
    // Written out as it is, it would be refused (see 'a base model name from adapter_config.json'): --base-model names it.
    const n = await run('--adapter', join(dir, 'in'), '--format', 'peft', '--out', join(dir, 'o2'), '--model', TINY_MISTRAL, '--base-model', 'owner/other');
    expect(n.code).toBe(0);
    const note = n.err.join('\n');
    expect(note).toContain('the adapter was trained on "owner/other\\u001b[31m"');
    expect(note).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });

  // Without --base-model, the adapter's own base_model_name_or_path is written out: the README's heading, the GGUF's
  // general.name, the new adapter_config.json. A name a typed --base-model is refused for ("evil/\u202Eledom" reads as
  // "evil/model") was written as it came; it is refused the same way, naming the file and the field.
  it('a base model name from adapter_config.json is checked as a typed --base-model is, naming the file and the field', async () => {
    const dir = tmp();
    const adapterDir = join(dir, 'in');
    mkdirSync(adapterDir);
    writeFileSync(join(adapterDir, 'adapter_model.safetensors'), safetensors);
    const cases: [string, string][] = [
      ['evil/\u202eledom', 'U+202E (right-to-left override), a bidirectional control, which reorders the text around it so that the name reads as another'],
      ['mistralai/Mistral\u200b-7B', 'U+200B (zero width space), an invisible character, which makes the name read as another'],
    ];
    for (const [name, holds] of cases) {
      writeFileSync(join(adapterDir, 'adapter_config.json'), JSON.stringify({ ...JSON.parse(configText), base_model_name_or_path: name }));
      for (const format of ['peft', 'gguf']) {
        const out = join(dir, `never.${format}`);
        const r = await run('--adapter', adapterDir, '--format', format, '--out', out, '--model', TINY_MISTRAL);
        expect(r.code).toBe(2);
        expect(r.err.join('\n')).toContain(`${join(adapterDir, 'adapter_config.json')}: base_model_name_or_path ${quote(name)}: the base model name holds ${holds}: remove it there, or give --base-model NAME to name the base model instead`);
        expect(existsSync(out)).toBe(false);
      }
      // --base-model names the base instead: nothing of the file's name is written.
      const out = join(dir, 'renamed');
      const r = await run('--adapter', adapterDir, '--format', 'peft', '--out', out, '--base-model', 'mistralai/Mistral-7B-v0.1');
      expect(r.code).toBe(0);
      expect(JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')).base_model_name_or_path).toBe('mistralai/Mistral-7B-v0.1');
    }
    // In a zip, the folder it lies in is named too.
    writeFileSync(join(dir, 'a.zip'), zipSync({ 'run/adapter_config.json': new TextEncoder().encode(JSON.stringify({ ...JSON.parse(configText), base_model_name_or_path: 'evil/\u202eledom' })), 'run/adapter_model.safetensors': safetensors }));
    const zipped = await run('--adapter', join(dir, 'a.zip'), '--format', 'peft', '--out', join(dir, 'z'));
    expect(zipped.code).toBe(2);
    expect(zipped.err.join('\n')).toContain(`${join(dir, 'a.zip')}/"run"/adapter_config.json: base_model_name_or_path "evil/\\u202eledom": the base model name holds U+202E`);
  });

  it('a line on stderr never carries a control character, whatever put it in the message (a path given on the command line)', async () => {
    const r = await run('--adapter', '/no/such\u001b[2Jadapter', '--format', 'peft', '--out', join(tmp(), 'o'));
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toContain('"/no/such\\u001b[2Jadapter" does not exist');
    expect(r.err.join('\n')).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  });

  // A line break in a path given on the command line ended the message's line and started one of the path's choosing:
  // the paths are quoted, as names from files are.
  it('a path given on the command line (--out, --adapter, --model) is quoted: a line break in it starts no line', async () => {
    const fake = '\nfinetune export: done';
    const cases: [string[], string][] = [
      [['--adapter', TINY_ADAPTER, '--format', 'gguf', '--out', `a${fake}.zip`], `--out "a\\nfinetune export: done.zip": a GGUF LoRA is one .gguf file`],
      [['--adapter', `/no/such${fake}`, '--format', 'peft', '--out', join(tmp(), 'o')], `--adapter: "/no/such\\nfinetune export: done" does not exist`],
      [['--adapter', TINY_ADAPTER, '--format', 'gguf', '--out', join(tmp(), 'a.gguf'), '--model', `/no/such${fake}`], `--model: "/no/such\\nfinetune export: done" is neither a folder nor a Hugging Face id (owner/name, or owner/name@revision)`],
    ];
    for (const [args, said] of cases) {
      const r = await run(...args);
      expect(r.code).toBe(2);
      expect(r.err[0]).toContain(said);
      expect(r.err.join('\n').split('\n').filter((l) => l.startsWith('finetune export: done'))).toEqual([]);
    }
  });

  it('command-line mistakes answer with the usage and exit 2', async () => {
    const r = await run('--adapter', TINY_ADAPTER, '--format', 'onnx', '--out', 'x');
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toMatch(/--format must be peft or gguf, not "onnx"/);
    expect((await run('--format', 'peft', '--out', 'x')).err.join('\n')).toMatch(/--adapter is required/);
    // A GGUF under a zip's name (it was written so): refused, saying what each name holds.
    const zipNamed = await run('--adapter', TINY_ADAPTER, '--format', 'gguf', '--out', 'lora.zip', '--model', TINY_MISTRAL);
    expect(zipNamed.code).toBe(2);
    expect(zipNamed.err.join('\n')).toContain('--out "lora.zip": a GGUF LoRA is one .gguf file, not a zip: give a name ending in .gguf (or --format peft for a PEFT zip)');
    expect((await run('--adapter', '/no/such/adapter', '--format', 'peft', '--out', 'x')).err.join('\n')).toMatch(/--adapter: "\/no\/such\/adapter" does not exist/);
    // A PEFT export named like one file was made a folder of that name.
    for (const name of ['lora.gguf', 'adapter_model.safetensors', 'a.BIN']) {
      const dir = tmp();
      const r = await run('--adapter', TINY_ADAPTER, '--format', 'peft', '--out', join(dir, name));
      expect(r.code).toBe(2);
      const ext = name.slice(name.lastIndexOf('.') + 1).toLowerCase();
      expect(r.err[0].trimEnd()).toBe(`finetune export: --out "${join(dir, name)}": a PEFT export is a folder (adapter_config.json, adapter_model.safetensors, README.md) or a .zip of one, not a .${ext} file: give a folder's name or one ending in .zip${ext === 'gguf' ? ' (or --format gguf for a GGUF file)' : ''}`);
      expect(existsSync(join(dir, name))).toBe(false);
    }
  });

  it('reads the adapter named by its adapter_config.json, as by its weights file (it said "is not a zip archive")', async () => {
    const dir = tmp();
    const r = await run('--adapter', join(TINY_ADAPTER, 'adapter_config.json'), '--format', 'peft', '--out', join(dir, 'o'));
    expect(r.code).toBe(0);
    expectSameTensors(await readAdapter(nodeDirectory(join(dir, 'o'))), await fixtureAdapter());
  });

  it('names a folder given with a trailing slash without a doubled slash', async () => {
    const dir = tmp();
    const bad = join(dir, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'adapter_config.json'), configText.replace('"lora_alpha": 8', '"lora_alpha": -1'));
    writeFileSync(join(bad, 'adapter_model.safetensors'), safetensors);
    const r = await run('--adapter', `${bad}/`, '--format', 'peft', '--out', join(dir, 'o'));
    expect(r.code).toBe(2);
    expect(r.err[0]).toContain(`${bad}/adapter_config.json`);
    expect(r.err[0]).not.toContain('//');
  });

  it('with --model, an adapter of another depth is said as such, as generate says it (not as 63 missing tensors)', async () => {
    // The fixture's layer 1 written as layer 2: a hole at 1, and a layer the 2-layer model lacks.
    const moved = new Map([...safetensorsTensors(safetensors)].map(([name, t]) => [name.replace('.layers.1.', '.layers.2.'), t]));
    const dir = tmp();
    const deep = join(dir, 'deep');
    mkdirSync(deep);
    writeFileSync(join(deep, 'adapter_config.json'), configText);
    writeFileSync(join(deep, 'adapter_model.safetensors'), writeSafetensors([...moved].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: new Float32Array(t.bytes.slice().buffer) }))));
    const r = await run('--adapter', deep, '--format', 'peft', '--out', join(dir, 'o'), '--model', TINY_MISTRAL);
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/this adapter has tensors up to layer 2, the model has 2: it was trained for a model of another depth \(its tensors for layer 2 have no layer to go to\)/);
    expect(existsSync(join(dir, 'o'))).toBe(false);
  });

  it("GGUF of a base at a revision (--model owner/name@REV, or the adapter's revision field) reads its config at that revision", async () => {
    const asked: string[] = [];
    const config = readFileSync(`${TINY_MISTRAL}/config.json`);
    vi.stubGlobal('fetch', async (input: string | URL | Request) => {
      asked.push(String(input));
      return String(input).endsWith('/config.json') ? new Response(config, { status: 200 }) : new Response('no', { status: 404 });
    });
    try {
      const dir = tmp();
      const r = await run('--adapter', TINY_ADAPTER, '--format', 'gguf', '--out', join(dir, 'a.gguf'), '--model', 'someone/tiny-mistral@v1.0');
      expect(r.err.join('\n')).not.toMatch(/neither a folder nor/);
      expect(r.code).toBe(0);
      expect(asked[0]).toBe('https://huggingface.co/someone/tiny-mistral/resolve/v1.0/config.json');
      // The adapter's own base_model_name_or_path and revision, as PEFT writes them for a base loaded at a revision.
      const pinned = join(dir, 'pinned');
      mkdirSync(pinned);
      writeFileSync(join(pinned, 'adapter_config.json'), JSON.stringify({ ...JSON.parse(configText), base_model_name_or_path: 'someone/tiny-mistral', revision: 'v2.0' }));
      writeFileSync(join(pinned, 'adapter_model.safetensors'), safetensors);
      asked.length = 0;
      const own = await run('--adapter', pinned, '--format', 'gguf', '--out', join(dir, 'b.gguf'));
      expect(own.code).toBe(0);
      expect(asked[0]).toBe('https://huggingface.co/someone/tiny-mistral/resolve/v2.0/config.json');
      expect(readGguf(readFileSync(join(dir, 'b.gguf'))).tensors.size).toBe(readGguf(readFileSync(join(dir, 'a.gguf'))).tensors.size);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("the README's tokenizer is the one training used: Mistral's v1 for a base of 32,000 pieces, the base's own for another", async () => {
    const dir = tmp();
    const v3 = join(dir, 'Mistral-7B-Instruct-v0.3');
    mkdirSync(v3);
    writeFileSync(join(v3, 'config.json'), JSON.stringify({ ...(fixtureJson(`${TINY_MISTRAL}/config.json`) as object), vocab_size: 32768 }));
    const readmeWith = async (...extra: string[]): Promise<string> => {
      const out = join(tmp(), 'o');
      expect((await run('--adapter', TINY_ADAPTER, '--format', 'peft', '--out', out, '--base-model', 'Mistral-7B-Instruct-v0.3', ...extra)).code).toBe(0);
      return readFileSync(join(out, 'README.md'), 'utf8');
    };
    expect(await readmeWith('--model', v3)).toContain('tokenizer = AutoTokenizer.from_pretrained(base_path)  # the base\'s own tokenizer (32768 pieces), which training used');
    expect(await readmeWith('--model', TINY_MISTRAL)).toContain('tokenizer = AutoTokenizer.from_pretrained("mistralai/Mistral-7B-Instruct-v0.2")  # the tokenizer training used: the base\'s vocabulary is Mistral\'s v1 (32,000 pieces)');
    // Without the base's config, both are said.
    expect(await readmeWith()).toContain('tokenizer = AutoTokenizer.from_pretrained("mistralai/Mistral-7B-Instruct-v0.2")  # for a base of 32,000 pieces; a base of another vocabulary (Mistral-7B-Instruct-v0.3) was trained with its own: from_pretrained(base_path)');
  });
});
