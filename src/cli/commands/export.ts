// `finetune export`: any adapter the importer reads (PEFT folder or zip with .safetensors or .bin, Replicate's
// training_output.zip) written out as PEFT safetensors or as a GGUF LoRA for llama.cpp / Ollama.

import { writeFile } from 'node:fs/promises';
import { makeFolder } from '../make-folder.ts';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { FinetuneError } from '../../core/errors.ts';
import { loraToGguf, peftFiles, peftZip, withBaseModel } from '../../export/index.ts';
import { baseModelNameProblem } from '../../core/file-names.ts';
import { ADAPTER_BIN_FILE, importAdapterDetailed } from '../../model/adapter-import.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from '../../model/lora-adapter.ts';
import { parseMistralConfig, type MistralConfig } from '../../model/config.ts';
import { hubFileSet, readJson, type FileSet } from '../../model/source.ts';
import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { nodeDirectory } from '../node-source.ts';
import { checkOutputPath } from '../input-file.ts';
import { adapterInput } from '../adapter-input.ts';

const USAGE = `finetune export --adapter PATH --format peft|gguf --out PATH [--model DIR|HUB_ID] [--base-model NAME]

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

Prints one JSON line: {"type":"export", format, out, files, adapter: {r, lora_alpha, target_modules, layers, base_model_name_or_path, read_from}, model}.`;

/** The files of a PEFT adapter folder that an export must not write over while reading them. */
const ADAPTER_FILES = [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, ADAPTER_BIN_FILE];

/** A Hub id is owner/name (a bare name is more likely a placeholder, and we never guess). */
function isHubId(s: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/.test(s) && !s.includes('..');
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
      if (!existsSync(join(m, 'config.json'))) throw new FinetuneError('bad-input', `${flag}: ${m} holds no config.json`);
      return { config: await configFrom(nodeDirectory(m), m), from: m };
    }
    if (hub && isHubId(m)) return { config: await configFrom(hubFileSet(m, { token: process.env.HF_TOKEN || undefined }), m), from: `hf:${m}` };
    return null;
  };
  if (model !== undefined) {
    const r = await resolve(model, '--model', true);
    if (!r) throw new FinetuneError('bad-input', `--model: ${model} is neither a folder nor a Hugging Face id (owner/name)`);
    return r;
  }
  if (!adapterBase) return null;
  try {
    return await resolve(adapterBase, baseFlag, needed);
  } catch (e) {
    if (e instanceof FinetuneError) throw new FinetuneError(e.kind, `${e.message} (reading the config of the base model ${JSON.stringify(adapterBase)}; give --model DIR to use a local copy)`, e.details);
    throw e;
  }
}

export const exportCommand: Command = {
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
    });
    if (!values.adapter) throw new UsageError('--adapter is required');
    if (values.format !== 'peft' && values.format !== 'gguf') throw new UsageError(`--format must be peft or gguf${values.format ? `, not ${JSON.stringify(values.format)}` : ''}`);
    if (!values.out) throw new UsageError('--out is required');
    const format = values.format;
    const out = values.out;
    const baseModel = values['base-model'];
    const baseModelProblem = baseModel === undefined ? null : baseModelNameProblem(baseModel);
    if (baseModelProblem) throw new UsageError(`--base-model: ${baseModelProblem}`);
    // A GGUF named .zip was written as asked, and no zip tool could open it.
    if (format === 'gguf' && out.toLowerCase().endsWith('.zip')) throw new UsageError(`--out ${out}: a GGUF LoRA is one .gguf file, not a zip: give a name ending in .gguf (or --format peft for a PEFT zip)`);
    // A GGUF or a .zip is one file; a PEFT folder otherwise (the branches below write them so).
    checkOutputPath(out, '--out', format === 'gguf' || out.toLowerCase().endsWith('.zip') ? 'file' : 'folder');

    const { input, name } = await adapterInput(values.adapter);
    // Never written over what is being read: the adapter's zip, its folder (a PEFT folder out), or a file in it.
    const source = resolve(name);
    const target = resolve(out);
    if (target === source || (dirname(target) === source && ADAPTER_FILES.includes(basename(target)))) {
      throw new FinetuneError('bad-input', `--out ${out} is the adapter being read (${name}): write the ${format === 'gguf' ? 'GGUF' : 'PEFT files'} somewhere else`);
    }
    // Read once without a base to learn base_model_name_or_path, then check it against the base when one resolves.
    const first = await importAdapterDetailed(input, { where: name });
    const named = baseModel ?? first.adapter.config.baseModel;
    const base = await baseConfig(values.model, named, format === 'gguf', baseModel !== undefined ? '--base-model' : undefined);
    if (!base && format === 'gguf') {
      throw new FinetuneError(
        'bad-input',
        `GGUF needs the base model's config (its head counts set the q/k row order), and ${named ? `${baseModel !== undefined ? '--base-model' : "the adapter's base_model_name_or_path"} ${JSON.stringify(named)} is neither a folder nor a Hugging Face id` : 'the adapter names no base model'}: give --model DIR or --model owner/name`,
      );
    }
    const imported = base ? await importAdapterDetailed(input, { where: name, base: base.config }) : first;
    const adapter = baseModel === undefined ? imported.adapter : withBaseModel(imported.adapter, baseModel);

    let files: string[];
    if (format === 'gguf') {
      await makeFolder(dirname(out));
      // general.name: loraToGguf's default, as the page's bundle (src/export/bundle.ts): the same adapter, the same file.
      await writeFile(out, loraToGguf(adapter, (base as { config: MistralConfig }).config));
      files = [out];
    } else if (out.toLowerCase().endsWith('.zip')) {
      await makeFolder(dirname(out));
      await writeFile(out, peftZip(adapter));
      files = [out];
    } else {
      if (existsSync(out) && !statSync(out).isDirectory()) throw new FinetuneError('bad-input', `--out: ${out} exists and is not a folder`);
      await makeFolder(out);
      files = [];
      for (const [file, bytes] of Object.entries(peftFiles(adapter))) {
        await writeFile(join(out, file), bytes);
        files.push(join(out, file));
      }
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
