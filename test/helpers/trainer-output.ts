// What Replicate's trainer hands back as `output.weights`: training_output.zip holding the PEFT adapter it trained.
// Built here from a LoraAdapter, so a test knows exactly which tensors the import must reproduce.

import { zipSync } from 'fflate';
import { createAdapter, writeAdapter, type LoraAdapter } from '../../src/model/lora-adapter.ts';
import type { MistralConfig } from '../../src/model/config.ts';
import { uniformSource } from '../../src/core/prng.ts';

/** A trained-looking adapter for `base`: A as PEFT initialises it, B filled too (a fresh adapter's B is all zeros). */
export function trainedAdapter(base: MistralConfig, seed = 7, r = 8): LoraAdapter {
  const random = uniformSource(seed);
  const a = createAdapter(base, { r, alpha: 2 * r, dropout: 0.05, targetModules: ['q_proj', 'v_proj'], baseModel: 'mistralai/Mistral-7B-Instruct-v0.2', random });
  for (const layer of a.tensors) for (const pair of Object.values(layer)) for (let i = 0; i < pair.B.length; i++) pair.B[i] = (random() * 2 - 1) * 0.01;
  return a;
}

/** training_output.zip in the trainer's layout: the adapter's files at the top of the archive. */
export function trainerOutputZip(adapter: LoraAdapter): Uint8Array {
  const files = writeAdapter(adapter);
  return zipSync({ 'adapter_config.json': new TextEncoder().encode(files['adapter_config.json']), 'adapter_model.safetensors': files['adapter_model.safetensors'] });
}
