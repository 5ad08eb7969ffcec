// The export bundle: everything a person downloads after training, assembled in one place for the page and the CLI —
// the PEFT pair (PEFT, vLLM, Ollama), the same adapter as a GGUF LoRA (llama.cpp, Ollama) and a README on loading each.

import { adapterZipName, baseModelNameProblem, fileSlug, type AdapterOrigin } from '../core/file-names.ts';
import type { MistralConfig } from '../model/config.ts';
import type { LoraAdapter } from '../model/lora-adapter.ts';
import { loraToGguf } from './gguf-lora.ts';
import { peftFiles, ZIP_MTIME } from './peft.ts';
import type { TrainingCard } from './training-card.ts';
import { zipSync, type Zippable } from 'fflate';
import { FinetuneError } from '../core/errors.ts';

/** The GGUF file's name inside the bundle (the README's llama.cpp and Ollama lines name it). */
export const GGUF_FILE = 'adapter.gguf';

/** The adapter with `name` as its base_model_name_or_path (checked: baseModelNameProblem). */
export function withBaseModel(adapter: LoraAdapter, name: string): LoraAdapter {
  const problem = baseModelNameProblem(name);
  if (problem) throw new FinetuneError('bad-input', problem);
  return { ...adapter, config: { ...adapter.config, baseModel: name } };
}

export interface BundleOptions {
  /** The name the adapter is served under and the bundle is named after (e.g. the model's source). */
  name: string;
  /** How the adapter was trained, for the README's "Training" section (none when nothing is known of it). */
  training?: TrainingCard | null;
}

/** The bundle's files by name, in a fixed order: adapter_config.json, adapter_model.safetensors, README.md, adapter.gguf. */
export function adapterBundle(adapter: LoraAdapter, base: MistralConfig, o: BundleOptions): Record<string, Uint8Array> {
  const files = peftFiles(adapter, { ggufFile: GGUF_FILE, name: fileSlug(o.name), training: o.training ?? null, baseVocabSize: base.vocabSize });
  // general.name as `finetune export --format gguf` writes it (loraToGguf's default), so both give the same file.
  files[GGUF_FILE] = loraToGguf(adapter, base);
  return files;
}

export interface ZipOptions extends BundleOptions {
  /** Also ship adapter.gguf and the README (default); false gives the PEFT pair alone. */
  full?: boolean;
  /** The training step the adapter is from, or 'imported' (it names the file). */
  step: AdapterOrigin;
}

/**
 * The adapter as one deterministic zip (fixed mtime and order, the same bytes in every time zone), with the file name to
 * save it under: the whole bundle, or only the PEFT pair.
 */
export function adapterZip(adapter: LoraAdapter, base: MistralConfig, o: ZipOptions): { fileName: string; bytes: Uint8Array } {
  const full = o.full ?? true;
  const files = full ? adapterBundle(adapter, base, o) : peftFiles(adapter, { readme: false });
  const mtime = ZIP_MTIME();
  const entries: Zippable = {};
  for (const [name, data] of Object.entries(files)) entries[name] = [data, { mtime }];
  return { fileName: adapterZipName(o.name, o.step, full), bytes: zipSync(entries, { level: 6, mtime }) };
}
