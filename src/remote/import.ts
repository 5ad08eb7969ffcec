// Bringing a training's output home: Replicate's training_output.zip → a LoraAdapter, through the project's adapter
// importer (src/model/adapter-import.ts: adapter_model.bin read by the restricted unpickler, the adapter's folder found
// inside the zip). The one place remote mode calls it, so the CLI (`remote fetch`) and the page read the zip the same way.

import { importAdapter } from '../model/adapter-import.ts';
import type { MistralConfig } from '../model/config.ts';
import type { LoraAdapter } from '../model/lora-adapter.ts';

/** The adapter in a training_output.zip; with `base`, its shapes, targets and rank are checked against that model. */
export async function importTrainingOutput(zip: Uint8Array, opts: { base?: MistralConfig; where?: string } = {}): Promise<LoraAdapter> {
  return importAdapter(zip, { base: opts.base, where: opts.where ?? 'training_output.zip' });
}
