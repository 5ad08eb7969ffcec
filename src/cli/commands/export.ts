// `finetune export`: any adapter the importer reads (PEFT folder or zip with .safetensors or .bin, Replicate's
// training_output.zip) written out as PEFT safetensors or as a GGUF LoRA for llama.cpp / Ollama.

import { makeFolder } from '../make-folder.ts';
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { writeFileAtomic, writeFilesAtomic, type WriteProbe } from '../node-store.ts';
import { startsWithGgufMagic } from '../../core/gguf-magic.ts';
import { GGUF_FILE, README_FILE } from '../../export/index.ts';
import { basename, dirname, join, resolve } from 'node:path';
import { FinetuneError } from '../../core/errors.ts';
import { ggufHeaderString, importedTrainingCard, loraToGguf, peftFiles, peftZip, withBaseModel } from '../../export/index.ts';
import { baseModelFlag, checkBaseModelNameFrom } from '../base-model-flag.ts';
import { ADAPTER_BIN_FILE, importAdapterDetailed } from '../../model/adapter-import.ts';
import { zipNamesFromTail } from '../../model/zip-archive.ts';
import { parseHubReference, type HubReference } from '../../core/hub-reference.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, type LoraConfig } from '../../model/lora-adapter.ts';
import { parseMistralConfig, type MistralConfig } from '../../model/config.ts';
import { hubFileSet, readJson, type FileSet } from '../../model/source.ts';
import { baseModelNote, ignoredTargetsNote } from '../../run/imported-adapter.ts';
import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { nodeDirectory } from '../node-source.ts';
import { checkOutputPath } from '../input-file.ts';
import { adapterInput } from '../adapter-input.ts';
import { firstFew, quote, visibleText } from '../../core/quote.ts';

const USAGE = `finetune export --adapter PATH --format peft|gguf --out PATH [--model DIR|HUB_ID] [--base-model NAME] [--force]

Converts a LoRA adapter to PEFT safetensors or to a GGUF LoRA. PATH may be a PEFT folder (adapter_config.json with
adapter_model.safetensors or adapter_model.bin), a zip of one, Replicate's training_output.zip as downloaded, or the
adapter_model.bin / .safetensors file itself (its adapter_config.json must sit beside it). A .bin is read with a
restricted unpickler that refuses anything but tensors: it never runs code from the file.

  --format peft   writes adapter_config.json, adapter_model.safetensors (F32) and a README into the folder OUT,
                  or one zip when OUT ends in .zip
  --format gguf   writes OUT as a GGUF LoRA (llama.cpp --lora, Ollama ADAPTER); q/k rows are permuted to llama.cpp's
                  layout, which needs the base model's head counts

options:
  --adapter PATH  the adapter (see above)
  --format F      peft or gguf
  --out PATH      where to write
  --model M       the base model: a folder holding config.json, or a Hugging Face id (owner/name; HF_TOKEN is sent
                  for gated repositories). Default: the adapter's base_model_name_or_path, when that is such a folder
                  or id. Shapes are checked against it; gguf needs it.
  --base-model N  write N as the adapter's base_model_name_or_path (and the GGUF's general.name), e.g. the Hub id of
                  a model trained from a local folder, so that PEFT's AutoPeftModelForCausalLM loads the right base.
                  Without --model, the base's config is looked up under N
  --force         write over an --out that is not an earlier export: a file that is not a GGUF adapter (gguf: a
                  GGUF model is refused too) or a zip of an export's files (a .zip), a folder holding other files
                  than an adapter's, or a README.md without one (peft: its README.md is replaced, the other files
                  are left). Without it such an --out is refused. Every file is written to a temporary file
                  and renamed over the old one, so a failed write (a full disk, a kill) keeps the old file

Prints one JSON line: {"type":"export", format, out, files, adapter: {r, lora_alpha, target_modules, layers, base_model_name_or_path, read_from}, model}.`;

/** Bytes of an existing GGUF --out read to find its general.type (a model's tokenizer arrays come after it). */
const GGUF_HEADER_PEEK = 1 << 20;

/** Bytes read from the end of an existing zip --out to list its entries (an export's directory is a few hundred). */
const ZIP_TAIL_PEEK = 1 << 20;

/** What an export's zip holds (finetune export's, the page's bundle): a .bin never (Replicate's zip has one). */
const ZIP_OWN_FILES = new Set([ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, README_FILE, GGUF_FILE]);

/** The files of a PEFT adapter folder that an export must not write over while reading them. */
const ADAPTER_FILES = [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, ADAPTER_BIN_FILE];

/**
 * What a PEFT folder export may find in its --out and write over or beside: an earlier export's files. Not a .bin:
 * export never writes one, so a folder holding adapter_model.bin holds another adapter (Replicate's, older PEFT's),
 * whose adapter_config.json the export replaced, leaving its weights beside a config that does not describe them.
 */
const PEFT_OWN_FILES = new Set([ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, README_FILE]);

function firstBytes(path: string, n: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const b = new Uint8Array(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

function lastBytes(path: string, n: number): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const b = new Uint8Array(n);
    return b.subarray(0, readSync(fd, b, 0, n, Math.max(0, fstatSync(fd).size - n)));
  } finally {
    closeSync(fd);
  }
}

function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));
}

/**
 * An --out that is not an earlier export is refused (without --force): `--format gguf --out important.jsonl` replaced
 * the JSONL, and a PEFT export into a model's folder replaced its model card.
 */
function checkOverwrite(out: string, kind: 'gguf' | 'zip' | 'folder'): void {
  if (!existsSync(out)) return;
  if (kind !== 'folder') {
    if (!statSync(out).isFile()) return; // checkOutputPath says what is wrong with it
    const refuse = (what: string): FinetuneError => new FinetuneError('bad-input', `--out ${quote(out)} exists and ${what}: export writes over an earlier export only; give another name, or --force to replace it`);
    if (kind === 'zip') {
      if (!isZip(firstBytes(out, 4))) throw refuse('is not a zip file');
      // Any zip was written over: a dataset's archive, Replicate's training_output.zip of another training. An export's
      // zip holds only an export's files, at its top or in one folder; its central directory (at its end) says so.
      const size = statSync(out).size;
      const names = zipNamesFromTail(lastBytes(out, Math.min(size, ZIP_TAIL_PEEK)), size);
      if (names === null) throw refuse('is a zip whose list of files could not be read from its end (a zip64 archive, a large one, or a damaged one)');
      const files = names.filter((n) => !n.endsWith('/'));
      const folder = files.length > 0 && files.every((n) => n.split('/').length === 2 && n.split('/')[0] === files[0].split('/')[0]) ? `${files[0].split('/')[0]}/` : '';
      const others = names.filter((n) => (n.endsWith('/') ? n !== folder : !(n.startsWith(folder) && ZIP_OWN_FILES.has(n.slice(folder.length)))));
      if (others.length === 0) return;
      // The zip's entry names are quoted: a comma or a control character in one is told from the list's own.
      throw refuse(`is a zip of other files than an export's (${firstFew(others, 5, ', ', 'in all', quote)})`);
    }
    // A GGUF model (the base-model.gguf the README names, gigabytes and a conversion) starts with the same magic as an
    // adapter: its header's general.type tells them apart, among the first KVs (the first MiB is plenty).
    const head = firstBytes(out, GGUF_HEADER_PEEK);
    if (!startsWithGgufMagic(head)) throw refuse('is not a GGUF file');
    const type = ggufHeaderString(head, 'general.type');
    if (type === 'adapter') return;
    throw refuse(type === null ? 'is a GGUF file that does not say it is a LoRA adapter (no general.type in its header)' : `is a GGUF ${type} (its general.type is ${quote(type)}), not a LoRA adapter`);
  }
  if (!statSync(out).isDirectory()) return;
  const names = readdirSync(out).filter((f) => !f.startsWith('.'));
  const others = names.filter((f) => !PEFT_OWN_FILES.has(f));
  // A README.md alone is a person's (an export writes one beside its adapter, never without it): replaced, it was lost.
  if (others.length === 0 && names.length === 1 && names[0] === README_FILE) {
    throw new FinetuneError('bad-input', `--out ${quote(out)} holds a ${README_FILE} and no adapter, so not an earlier export's: export would replace it; give --out an empty or new folder, or --force to replace it`);
  }
  if (others.length === 0) return;
  if (others.length === 1 && others[0] === ADAPTER_BIN_FILE) {
    throw new FinetuneError('bad-input', `--out ${quote(out)} holds another adapter (${ADAPTER_BIN_FILE}: export writes ${ADAPTER_WEIGHTS_FILE}, never a .bin)${names.includes(ADAPTER_CONFIG_FILE) ? `, whose ${ADAPTER_CONFIG_FILE} export would replace` : ''}; give --out an empty or new folder, or --force to write this adapter's files beside its .bin`);
  }
  // The folder's file names are quoted: a comma or a control character in one is told from the list's own.
  const list = firstFew(others, 5, ', ', 'in all', quote);
  const readme = existsSync(join(out, README_FILE)) ? `, whose ${README_FILE} export would replace` : '';
  throw new FinetuneError('bad-input', `--out ${quote(out)} holds files an export does not write (${list}): it looks like another folder (a model's?)${readme}; give --out an empty or new folder, or remove ${others.length === 1 ? quote(others[0]) : 'those files'} from it, or give --force to write the adapter's files beside ${others.length === 1 ? 'it' : 'them'}`);
}

/** The fields of adapter_config.json an adapter's base model name was read from: the revision is part of it when given. */
function baseModelFields(config: LoraConfig): string {
  return config.raw?.base_model_name_or_path === config.baseModel ? 'base_model_name_or_path' : 'base_model_name_or_path and revision';
}

/**
 * A Hub id, owner/name, with the revision written after an @ where one is (`--model owner/name@v1.0`; an adapter's
 * base_model_name_or_path and revision are read as that); null for anything else (a bare name is more likely a
 * placeholder, and we never guess).
 */
function hubIdOf(s: string): HubReference | null {
  const r = parseHubReference(s);
  return r && /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/.test(r.repo) && !r.repo.includes('..') ? r : null;
}

async function configFrom(files: FileSet, where: string): Promise<MistralConfig> {
  return parseMistralConfig(await readJson(await files.open('config.json')), `${where}/config.json`);
}

/**
 * The base model's config from --model or, failing that, the adapter's base_model_name_or_path. The adapter's own
 * name is looked up on the Hub only when the export needs the config (GGUF), so a PEFT export works offline.
 */
async function baseConfig(model: string | undefined, adapterBase: string | null, needed: boolean, baseFlag = "the adapter's base_model_name_or_path"): Promise<{ config: MistralConfig; from: string } | null> {
  const resolve = async (m: string, flag: string, hub: boolean): Promise<{ config: MistralConfig; from: string } | null> => {
    if (existsSync(m) && statSync(m).isDirectory()) {
      if (!existsSync(join(m, 'config.json'))) throw new FinetuneError('bad-input', `${flag}: ${quote(m)} holds no config.json`);
      return { config: await configFrom(nodeDirectory(m), m), from: m };
    }
    const id = hub ? hubIdOf(m) : null;
    if (id) {
      const files = hubFileSet(id.repo, { token: process.env.HF_TOKEN || undefined, redirects: 'here', tokenSource: 'HF_TOKEN', ...(id.revision ? { revision: id.revision } : {}) });
      return { config: await configFrom(files, m), from: `hf:${m}` };
    }
    return null;
  };
  if (model !== undefined) {
    const r = await resolve(model, '--model', true);
    if (!r) throw new FinetuneError('bad-input', `--model: ${quote(model)} is neither a folder nor a Hugging Face id (owner/name, or owner/name@revision)`);
    return r;
  }
  if (!adapterBase) return null;
  try {
    return await resolve(adapterBase, baseFlag, needed);
  } catch (e) {
    if (e instanceof FinetuneError) throw new FinetuneError(e.kind, `${e.message} (reading the config of the base model ${quote(adapterBase)}; give --model DIR to use a local copy)`, e.details);
    throw e;
  }
}

/** `finetune export`; `o.probe` is handed to every file write (tests make one fail there). */
export function makeExportCommand(o: { probe?: WriteProbe } = {}): Command {
  const write = (path: string, bytes: Uint8Array): Promise<void> => writeFileAtomic(path, bytes, o.probe);
  return {
    name: 'export',
    summary: 'convert an adapter (PEFT folder/zip, .bin, Replicate\'s training_output.zip) to PEFT safetensors or GGUF',
    usage: USAGE,
    async run(args, io) {
      const { values } = parseCommandArgs(args, {
        adapter: { type: 'string' },
        format: { type: 'string' },
        out: { type: 'string' },
        model: { type: 'string' },
        'base-model': { type: 'string' },
        force: { type: 'boolean', default: false },
      });
      if (!values.adapter) throw new UsageError('--adapter is required');
      if (values.format !== 'peft' && values.format !== 'gguf') throw new UsageError(`--format must be peft or gguf${values.format ? `, not ${quote(values.format)}` : ''}`);
      if (!values.out) throw new UsageError('--out is required');
      const format = values.format;
      const out = values.out;
      const baseModel = baseModelFlag(values['base-model']);
      // A GGUF named .zip was written as asked, and no zip tool could open it.
      if (format === 'gguf' && out.toLowerCase().endsWith('.zip')) throw new UsageError(`--out ${quote(out)}: a GGUF LoRA is one .gguf file, not a zip: give a name ending in .gguf (or --format peft for a PEFT zip)`);
      // A PEFT export named like one file (foo.gguf, adapter_model.safetensors) was made a folder of that name.
      const fileLike = /\.(gguf|safetensors|bin|json)$/i.exec(out);
      if (format === 'peft' && fileLike) {
        throw new UsageError(`--out ${quote(out)}: a PEFT export is a folder (adapter_config.json, adapter_model.safetensors, README.md) or a .zip of one, not a .${fileLike[1].toLowerCase()} file: give a folder's name or one ending in .zip${fileLike[1].toLowerCase() === 'gguf' ? ' (or --format gguf for a GGUF file)' : ''}`);
      }
      // A GGUF or a .zip is one file; a PEFT folder otherwise (the branches below write them so).
      checkOutputPath(out, '--out', format === 'gguf' || out.toLowerCase().endsWith('.zip') ? 'file' : 'folder');

      const { input, name, note, baseModelFrom, training: savedTraining } = await adapterInput(values.adapter);
      if (note) io.err(`note: ${note}`);
      // Never written over what is being read: the adapter's zip, its folder (a PEFT folder out), or a file in it.
      const source = resolve(name);
      const target = resolve(out);
      if (target === source || (dirname(target) === source && ADAPTER_FILES.includes(basename(target)))) {
        throw new FinetuneError('bad-input', `--out ${quote(out)} is the adapter being read (${quote(name)}): write the ${format === 'gguf' ? 'GGUF' : 'PEFT files'} somewhere else`);
      }
      if (!values.force) checkOverwrite(out, format === 'gguf' ? 'gguf' : out.toLowerCase().endsWith('.zip') ? 'zip' : 'folder');
      // A model given is read first, and the adapter against it: read without it, an adapter of another depth was told
      // as 63 missing tensors where generate says "this adapter has tensors up to layer 10, the model has 2".
      const given = values.model !== undefined ? await baseConfig(values.model, null, true) : null;
      // Else read once without a base to learn base_model_name_or_path, then check it against the base when one resolves.
      const first = await importAdapterDetailed(input, { where: name, ...(given ? { base: given.config } : {}) }).catch((e: unknown) => {
        // A folder of a run (killed before train wrote OUT/adapter) is read from its checkpoint: say so.
        if (e instanceof FinetuneError && !(input instanceof Uint8Array) && e.message.includes(`holds no ${ADAPTER_CONFIG_FILE}`)) {
          throw new FinetuneError(e.kind, `${e.message}; a run's checkpoint is exported with --adapter OUT/run (or OUT), the folder train --out wrote`, e.details);
        }
        throw e;
      });
      // Without --base-model, the adapter's own base model name is written out (adapter_config.json, the README, the
      // GGUF's general.name): held to what a typed one is, before it is looked up or anything is written.
      if (baseModel === undefined && first.adapter.config.baseModel !== null) {
        const from = baseModelFrom ?? `${visibleText(first.configFile)}: ${baseModelFields(first.adapter.config)}`;
        checkBaseModelNameFrom(first.adapter.config.baseModel, `${from} ${quote(first.adapter.config.baseModel)}`, baseModelFrom ? undefined : 'remove it there');
      }
      const named = baseModel ?? first.adapter.config.baseModel;
      const base = given ?? (await baseConfig(undefined, named, format === 'gguf', baseModel !== undefined ? '--base-model' : undefined));
      if (!base && format === 'gguf') {
        throw new FinetuneError(
          'bad-input',
          `GGUF needs the base model's config (its head counts set the q/k row order), and ${named ? `${baseModel !== undefined ? '--base-model' : "the adapter's base_model_name_or_path"} ${quote(named)} is neither a folder nor a Hugging Face id` : 'the adapter names no base model'}: give --model DIR or --model owner/name`,
        );
      }
      const imported = base && !given ? await importAdapterDetailed(input, { where: name, base: base.config }) : first;
      // Shapes that fit are not the same model: an adapter of another base is said, not refused.
      const otherBase = base && values.model !== undefined ? baseModelNote(first.adapter.config.baseModel, base.from.startsWith('hf:') ? base.from.slice(3) : basename(resolve(base.from))) : null;
      if (otherBase) io.err(`note: ${otherBase}`);
      const ignored = ignoredTargetsNote(imported.adapter.config);
      if (ignored) io.err(`note: the adapter: ${ignored}`);
      const adapter = baseModel === undefined ? imported.adapter : withBaseModel(imported.adapter, baseModel);
      // The README the adapter came with keeps its "Training" section in the new one (train's card, a Replicate training's).
      // A run's checkpoint has no README: its record says how it was trained.
      const training = importedTrainingCard(imported.readme) ?? savedTraining ?? null;

      let files: string[];
      if (format === 'gguf') {
        // general.name: loraToGguf's default, as the page's bundle (src/export/bundle.ts): the same adapter, the same file.
        await write(out, loraToGguf(adapter, (base as { config: MistralConfig }).config));
        files = [out];
      } else if (out.toLowerCase().endsWith('.zip')) {
        await write(out, peftZip(adapter, { training, ...(base ? { baseVocabSize: base.config.vocabSize } : {}) }));
        files = [out];
      } else {
        if (existsSync(out) && !statSync(out).isDirectory()) throw new FinetuneError('bad-input', `--out: ${quote(out)} exists and is not a folder`);
        await makeFolder(out);
        // The config, the weights and the README as one set: a failure or a kill while they are written leaves the earlier
        // export's set whole; a kill between the renames leaves no config (renamed last); never one adapter's config
        // beside another's weights.
        const set = peftFiles(adapter, { training, ...(base ? { baseVocabSize: base.config.vocabSize } : {}) });
        await writeFilesAtomic(out, set, o.probe, ADAPTER_CONFIG_FILE);
        files = Object.keys(set).map((file) => join(out, file));
      }
      io.out(
        JSON.stringify({
          type: 'export',
          format,
          out,
          files,
          adapter: {
            r: adapter.config.r,
            lora_alpha: adapter.config.loraAlpha,
            target_modules: adapter.config.targetModules,
            layers: adapter.layers,
            base_model_name_or_path: adapter.config.baseModel,
            read_from: [imported.folder, imported.weightsFile].filter(Boolean).join('/'),
          },
          model: base?.from ?? null,
        }),
      );
      return 0;
    },
  };
}

export const exportCommand: Command = makeExportCommand();
