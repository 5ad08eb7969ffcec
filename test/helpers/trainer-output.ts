// What Replicate's trainer hands back as `output.weights`: training_output.zip holding the PEFT adapter it trained.
// Built here from a LoraAdapter, so a test knows exactly which tensors the import must reproduce.

import { PROJECTIONS } from '../../src/core/mistral.ts';
import { adapterConfigJson, createAdapter, peftKey, type LoraAdapter } from '../../src/model/lora-adapter.ts';
import type { MistralConfig } from '../../src/model/config.ts';
import { uniformSource } from '../../src/core/prng.ts';
import { replicateTrainingZip, torchSaveStateDict, type FixtureTensor } from './torch-save.ts';

/** A trained-looking adapter for `base`: A as PEFT initialises it, B filled too (a fresh adapter's B is all zeros). */
export function trainedAdapter(base: MistralConfig, seed = 7, r = 8): LoraAdapter {
  const random = uniformSource(seed);
  const a = createAdapter(base, { r, alpha: 2 * r, dropout: 0.05, targetModules: ['q_proj', 'v_proj'], baseModel: 'mistralai/Mistral-7B-Instruct-v0.2', random });
  for (const layer of a.tensors) for (const pair of Object.values(layer)) for (let i = 0; i < pair.B.length; i++) pair.B[i] = (random() * 2 - 1) * 0.01;
  return a;
}

/**
 * training_output.zip in the trainer's layout: adapter_config.json and the weights as adapter_model.bin written the way
 * torch.save writes a state dict (the import fixture builder in ./torch-save.ts), in a training_output/ folder.
 */
export function trainerOutputZip(adapter: LoraAdapter): Uint8Array {
  const tensors: FixtureTensor[] = [];
  const r = adapter.config.r;
  adapter.tensors.forEach((layer, l) => {
    for (const m of PROJECTIONS) {
      const pair = layer[m];
      const d = adapter.dims[m];
      if (!pair || !d) continue;
      tensors.push({ name: peftKey(l, m, 'A'), dtype: 'F32', shape: [r, d.in], data: pair.A });
      tensors.push({ name: peftKey(l, m, 'B'), dtype: 'F32', shape: [d.out, r], data: pair.B });
    }
  });
  return replicateTrainingZip(adapterConfigJson(adapter.config), torchSaveStateDict(tensors));
}
