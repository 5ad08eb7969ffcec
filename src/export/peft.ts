// PEFT adapter export: the two files PEFT itself writes (adapter_config.json + adapter_model.safetensors, from
// src/model/lora-adapter.ts) plus a short README, as a directory listing or as one deterministic zip.

import { codeSpan, trainingCardSection, type TrainingCard } from './training-card.ts';
import { parseHubReference } from '../core/hub-reference.ts';
import { PROJECTIONS } from '../core/mistral.ts';
import { zipSync, type Zippable } from 'fflate';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, writeAdapter, type LoraAdapter } from '../model/lora-adapter.ts';
import { FinetuneError } from '../core/errors.ts';
import { fileSlug } from '../core/file-names.ts';
import { quote } from '../core/quote.ts';

export const README_FILE = 'README.md';

/**
 * Every zip entry gets this modification time. fflate stores DOS date/time from the local-time getters of a Date,
 * so a Date built from local components encodes to the same bytes in every time zone (noon: no DST gap).
 */
export const ZIP_MTIME = (): Date => new Date(1980, 0, 1, 12, 0, 0);

const DEFAULT_BASE = 'mistralai/Mistral-7B-Instruct-v0.2';

/** Ollama's own tag for the bases it ships; any other base is converted to GGUF first. */
const OLLAMA_TAGS: Readonly<Record<string, string>> = { 'mistralai/Mistral-7B-Instruct-v0.2': 'mistral:7b-instruct-v0.2-fp16' };

/**
 * How the README names the base the adapter was trained on: a Hub id (`owner/name`, with `@revision` when one was
 * loaded) or, for the demo model and local files, a folder the reader puts those files in.
 */
export function baseReference(a: LoraAdapter): { hub: string; revision: string | null } | { local: string; folder: string } {
  const name = a.config.baseModel ?? DEFAULT_BASE;
  const hub = parseHubReference(name);
  if (hub) return { hub: hub.repo, revision: hub.revision };
  return { local: name, folder: `./${fileSlug(name)}` };
}

/**
 * The folder the README has the reader unzip the adapter's files into. Every snippet names the files through it, the
 * GGUF too (it ships in the same zip): Ollama's ADAPTER once said ./adapter.gguf, a file beside the folder that is not there.
 */
const ADAPTER_DIR = './adapter';

/**
 * A base model's name in the README's prose. A Hub id (letters, digits, `_.-/` only) reads as it is, and so does any
 * name of such plain characters; another (a local name, the picked files' names, whatever an imported
 * adapter_config.json says) goes in a code span: raw, its HTML was live on a Hub model card and a line break in it
 * ended the title, the rest read as Markdown.
 */
function proseName(name: string): string {
  return /^[\w .,/()@+-]*$/.test(name) ? name : codeSpan(name);
}

/** The name on one line, for a comment in a code block: a line break in it could close the block. */
function oneLine(name: string): string {
  return name.replace(/\r\n?|\n/g, ' ');
}

/** The smallest of vLLM's allowed --max-lora-rank values that holds rank r. */
function vllmMaxRank(r: number): number {
  return [8, 16, 32, 64, 128, 256, 320, 512].find((x) => x >= r) ?? r;
}

export interface ReadmeOptions {
  /** The name the adapter is served under (vLLM `--lora-modules`, Ollama model name). Default "my-adapter". */
  name?: string;
  /** File name of a GGUF export shipped next to it, to document llama.cpp / Ollama use of it. */
  ggufFile?: string;
  /** How it was trained, for a "Training" section at the end (none when nothing is known). */
  training?: TrainingCard | null;
  /**
   * The base model's vocabulary size, where known: it says which tokenizer a base that is not a Hub id was trained
   * with (its own, or Mistral's v1 for 32,000 pieces) and so which one the README's PEFT snippet loads.
   */
  baseVocabSize?: number;
}

/**
 * The vocabulary of Mistral's v1 tokenizer (Mistral-7B v0.1 and v0.2), the app's own: a base of that vocabulary is
 * read and trained with it whatever files came with it; a base of another (Mistral-7B-Instruct-v0.3's 32,768) with its
 * own tokenizer.model (src/run/model-tokenizer.ts).
 */
const V1_VOCAB_SIZE = 32000;
const V1_TOKENIZER_REPO = 'mistralai/Mistral-7B-Instruct-v0.2';

/** The README's tokenizer line: the tokenizer training used, as transformers loads it. */
function tokenizerLine(ref: ReturnType<typeof baseReference>, revision: string, vocab: number | undefined): string {
  if ('hub' in ref) return `tokenizer = AutoTokenizer.from_pretrained(${JSON.stringify(ref.hub)}${revision})`;
  const v1 = `tokenizer = AutoTokenizer.from_pretrained(${JSON.stringify(V1_TOKENIZER_REPO)})`;
  if (vocab === V1_VOCAB_SIZE) return `${v1}  # the tokenizer training used: the base's vocabulary is Mistral's v1 (32,000 pieces)`;
  if (vocab !== undefined) return `tokenizer = AutoTokenizer.from_pretrained(base_path)  # the base's own tokenizer (${vocab} pieces), which training used`;
  return `${v1}  # for a base of 32,000 pieces; a base of another vocabulary (Mistral-7B-Instruct-v0.3) was trained with its own: from_pretrained(base_path)`;
}

/** A short README: what the adapter is and how to load it with PEFT, vLLM, Ollama (and llama.cpp with a GGUF). */
export function adapterReadme(a: LoraAdapter, opts: ReadmeOptions = {}): string {
  const name = opts.name ?? 'my-adapter';
  const ref = baseReference(a);
  const base = proseName('hub' in ref ? ref.hub : ref.local);
  const c = a.config;
  const mods = PROJECTIONS.filter((m) => c.targetModules.includes(m)).join(', ');
  // Python for the base: the Hub id (and revision) when it came from the Hub, else the folder holding its files.
  const basePath = 'hub' in ref ? JSON.stringify(ref.hub) : 'base_path';
  const revision = 'hub' in ref && ref.revision ? `, revision=${JSON.stringify(ref.revision)}` : '';
  const ollamaFrom = 'hub' in ref && OLLAMA_TAGS[ref.hub] ? OLLAMA_TAGS[ref.hub] : './base-model.gguf';
  // The page names the bundle after the loaded model, the same model the adapter records as its base: said once then.
  const sameModel = fileSlug(name) === fileSlug(c.baseModel ?? DEFAULT_BASE);
  const lines = [
    sameModel ? `# LoRA adapter for ${base}` : `# ${name}: LoRA adapter for ${base}`,
    '',
    `A PEFT LoRA adapter (r = ${c.r}, lora_alpha = ${c.loraAlpha}${c.useRslora ? ', rsLoRA' : ''}, scaling ${a.scaling}) on ${mods}` +
      `${c.layersToTransform ? ` of layer${c.layersToTransform.length === 1 ? '' : 's'} ${c.layersToTransform.join(', ')}` : ''}.`,
    `Files: \`${ADAPTER_CONFIG_FILE}\` and \`${ADAPTER_WEIGHTS_FILE}\` (F32), as PEFT writes them.`,
    `Unzip them into a folder, here \`${ADAPTER_DIR}\`. Use the same base model the adapter was trained on` +
      ('hub' in ref ? ` (${ref.hub}${ref.revision ? ` at revision ${ref.revision}` : ''}).` : `: ${base}, whose files (config.json and the safetensors weights) go in \`${ref.folder}\`.`),
    '',
    '## PEFT (transformers)',
    '',
    '```python',
    'from transformers import AutoModelForCausalLM, AutoTokenizer',
    'from peft import PeftModel',
    '',
    ...('hub' in ref ? [] : [`base_path = ${JSON.stringify(ref.folder)}  # the folder holding ${oneLine(ref.local)}'s config.json and weights`]),
    `base = AutoModelForCausalLM.from_pretrained(${basePath}${revision}, torch_dtype="auto")`,
    `model = PeftModel.from_pretrained(base, ${JSON.stringify(ADAPTER_DIR)})`,
    tokenizerLine(ref, revision, opts.baseVocabSize),
    '# optional: model = model.merge_and_unload()',
    '```',
    '',
    '## vLLM',
    '',
    '```sh',
    `vllm serve ${'hub' in ref ? ref.hub : ref.folder}${revision ? ` --revision ${'hub' in ref ? ref.revision : ''}` : ''} --enable-lora --lora-modules ${name}=${ADAPTER_DIR}${c.r > 16 ? ` --max-lora-rank ${vllmMaxRank(c.r)}` : ''}`,
    '```',
    '',
    `Then request \`"model": "${name}"\` from the OpenAI-compatible API.${c.r > 16 ? ' (vLLM accepts ranks up to 16 unless --max-lora-rank is raised.)' : ''}`,
    '',
    '## Ollama',
    '',
    'A `Modelfile` next to the adapter folder:',
    '',
    '```',
    `FROM ${ollamaFrom}`,
    `ADAPTER ${opts.ggufFile ? `${ADAPTER_DIR}/${opts.ggufFile}` : ADAPTER_DIR}`,
    '```',
    '',
    ollamaFrom.startsWith('./')
      ? `\`ollama create ${name} -f Modelfile\`, then \`ollama run ${name}\`. \`base-model.gguf\` is ${base} converted with llama.cpp's convert_hf_to_gguf.py: \`FROM\` must be the exact base the adapter was trained on.`
      : `\`ollama create ${name} -f Modelfile\`, then \`ollama run ${name}\`. \`${ollamaFrom}\` is Ollama's unquantised ${base}: \`FROM\` must be the exact base the adapter was trained on.`,
  ];
  if (opts.ggufFile) {
    lines.push(
      '',
      '## llama.cpp',
      '',
      `\`${opts.ggufFile}\` is the same adapter as a GGUF LoRA (q/k rows already permuted to llama.cpp's layout):`,
      '',
      '```sh',
      `llama-cli -m base-model.gguf --lora ${ADAPTER_DIR}/${opts.ggufFile}`,
      '```',
      '',
      `\`base-model.gguf\` must be ${base} converted with llama.cpp's convert_hf_to_gguf.py (any quantisation).`,
    );
  }
  if (opts.training) lines.push('', ...trainingCardSection(opts.training));
  return `${lines.join('\n')}\n`;
}

export interface PeftExportOptions extends ReadmeOptions {
  /** README.md text; default adapterReadme(adapter); false leaves it out. */
  readme?: string | false;
  /** Extra files to ship alongside (e.g. `{ 'adapter.gguf': loraToGguf(...) }`), by file name. */
  extra?: Record<string, Uint8Array | string>;
}

const encoder = new TextEncoder();

/** The files of a PEFT adapter directory, in order: adapter_config.json, adapter_model.safetensors, README.md, extras. */
export function peftFiles(adapter: LoraAdapter, opts: PeftExportOptions = {}): Record<string, Uint8Array> {
  const w = writeAdapter(adapter);
  const files: Record<string, Uint8Array> = {
    [ADAPTER_CONFIG_FILE]: encoder.encode(w[ADAPTER_CONFIG_FILE]),
    [ADAPTER_WEIGHTS_FILE]: w[ADAPTER_WEIGHTS_FILE],
  };
  if (opts.readme !== false) files[README_FILE] = encoder.encode(opts.readme ?? adapterReadme(adapter, opts));
  for (const [name, data] of Object.entries(opts.extra ?? {})) {
    if (!/^[A-Za-z0-9._-]+$/.test(name) || name === '.' || name === '..') throw new FinetuneError('bad-input', `export file name ${quote(name)} must be a plain file name`);
    if (name in files) throw new FinetuneError('bad-input', `export file ${name} would replace one of the adapter's own files`);
    files[name] = typeof data === 'string' ? encoder.encode(data) : data;
  }
  return files;
}

export interface PeftZipOptions extends PeftExportOptions {
  /** Put the files inside this folder of the zip (e.g. "my-adapter"); default: at the top level. */
  folder?: string;
  /** Deflate level 0–9 (default 6). */
  level?: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;
}

/** The adapter as a zip. Deterministic: same adapter and options → same bytes (fixed mtime, fixed order). */
export function peftZip(adapter: LoraAdapter, opts: PeftZipOptions = {}): Uint8Array {
  const files = peftFiles(adapter, opts);
  const folder = opts.folder?.replace(/\/+$/, '');
  if (folder !== undefined && !/^[A-Za-z0-9._-]+$/.test(folder)) throw new FinetuneError('bad-input', `zip folder ${quote(opts.folder)} must be a plain name`);
  const mtime = ZIP_MTIME();
  const entries: Zippable = {};
  for (const [name, data] of Object.entries(files)) entries[folder ? `${folder}/${name}` : name] = [data, { mtime }];
  return zipSync(entries, { level: opts.level ?? 6, mtime });
}
