// A new run that starts from an imported adapter: it gets the imported weights exactly, and a run whose rank, alpha
// or targets differ is refused with the hyperparameters to set.
import { describe, expect, it } from 'vitest';
import { uniformSource } from '../../../src/core/prng.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { createAdapter, type LoraAdapter } from '../../../src/model/lora-adapter.ts';
import { checkRunFitsImported, exportedBaseModelRefusal, importedAdapterInfo, startFromImported, baseModelNote } from '../../../src/run/imported-adapter.ts';
import { fixtureJson, TINY_MISTRAL } from '../model/helpers.ts';

const base = parseMistralConfig(fixtureJson(`${TINY_MISTRAL}/config.json`));

function adapter(seed: number, o: { r?: number; alpha?: number; targets?: ('q_proj' | 'v_proj' | 'o_proj')[] } = {}): LoraAdapter {
  const random = uniformSource(seed);
  const a = createAdapter(base, { r: o.r ?? 4, alpha: o.alpha ?? 8, targetModules: o.targets ?? ['q_proj', 'v_proj'], random });
  for (const layer of a.tensors) for (const p of Object.values(layer)) for (let i = 0; i < p.B.length; i++) p.B[i] = random() - 0.5;
  return a;
}

describe('starting a run from an imported adapter', () => {
  it('copies every A and B exactly, and keeps the imported rsLoRA scale', () => {
    const imported = adapter(1);
    imported.config.useRslora = true;
    const fresh = adapter(2);
    startFromImported(fresh, imported);
    for (let l = 0; l < base.layers; l++) {
      for (const m of ['q_proj', 'v_proj'] as const) {
        expect(fresh.tensors[l][m]!.A).toEqual(imported.tensors[l][m]!.A);
        expect(fresh.tensors[l][m]!.B).toEqual(imported.tensors[l][m]!.B);
      }
    }
    expect(fresh.scaling).toBe(8 / Math.sqrt(4));
    // The fresh adapter's own arrays are filled, not replaced by the imported ones (training writes into them).
    expect(fresh.tensors[0].q_proj!.A).not.toBe(imported.tensors[0].q_proj!.A);
  });

  it('refuses a run of another rank, alpha or targets, naming the values to set', () => {
    const imported = adapter(1, { r: 4, alpha: 8, targets: ['q_proj', 'v_proj'] });
    expect(() => checkRunFitsImported({ r: 8, alpha: 16, targets: ['q_proj', 'v_proj', 'o_proj'] }, imported)).toThrow(
      /set lora_rank 4 \(the run has 8\), lora_alpha 8 \(the run has 16\), lora_target_modules q_proj,v_proj \(the run has q_proj,v_proj,o_proj\)/,
    );
    expect(() => startFromImported(adapter(2, { r: 2 }), imported)).toThrow(/set lora_rank 4 \(the run has 2\)/);
    expect(() => checkRunFitsImported({ r: 4, alpha: 8, targets: ['q_proj', 'v_proj'] }, imported)).not.toThrow();
  });

  it('refuses an adapter that covers only some layers', () => {
    const imported = adapter(1);
    imported.config.layersToTransform = [1];
    expect(() => checkRunFitsImported({ r: 4, alpha: 8, targets: ['q_proj', 'v_proj'] }, imported)).toThrow(/covers only layers 1/);
  });

  it('describes the adapter for the page', () => {
    const a = adapter(1);
    expect(importedAdapterInfo(a, 'training_output.zip', 'training_output/adapter_model.bin')).toEqual({
      name: 'training_output.zip',
      r: 4,
      loraAlpha: 8,
      useRslora: false,
      targetModules: ['q_proj', 'v_proj'],
      layers: 2,
      baseModel: null,
      readFrom: 'training_output/adapter_model.bin',
    });
  });
});

describe("an adapter whose base_model_name_or_path names another model than the loaded one", () => {
  it('gets a note naming both, not a refusal; the same model under a folder or revision name gets none', () => {
    expect(baseModelNote('mistralai/Mistral-7B-v0.1', 'tiny-mistral')).toBe(
      'the adapter was trained on "mistralai/Mistral-7B-v0.1" (its base_model_name_or_path), and the model loaded is "tiny-mistral": the shapes fit, but on another base than its own an adapter computes something else; load "mistralai/Mistral-7B-v0.1" unless it is the same model under another name',
    );
    expect(baseModelNote('mistralai/Mistral-7B-v0.1', 'mistralai/Mistral-7B-v0.1')).toBeNull();
    expect(baseModelNote('mistralai/Mistral-7B-v0.1', 'Mistral-7B-v0.1')).toBeNull(); // a local copy in a folder of its name
    expect(baseModelNote('mistralai/mistral-7b-v0.1@main', 'mistralai/Mistral-7B-v0.1')).toBeNull();
    expect(baseModelNote(null, 'tiny-mistral')).toBeNull();
    expect(baseModelNote('', 'tiny-mistral')).toBeNull();
  });
});

// The page's export writes an adapter's base_model_name_or_path into adapter_config.json and the README as it is,
// unless a base model name is typed. One from an imported file ("evil/\u202Eledom" reads as "evil/model") is held to
// what a typed one is, as finetune export holds it (cli/base-model-flag.ts checkBaseModelNameFrom).
describe('exportedBaseModelRefusal', () => {
  it('refuses a name with a bidi control, an invisible character or a line break, naming the field; passes others', () => {
    expect(exportedBaseModelRefusal('evil/\u202eledom')).toBe(
      'the adapter\'s base_model_name_or_path "evil/\\u202eledom": the base model name holds U+202E (right-to-left override), a bidirectional control, which reorders the text around it so that the name reads as another: type the base model\'s name in "Base model name" to write that instead',
    );
    expect(exportedBaseModelRefusal('org/a\u200bb')).toMatch(/^the adapter's base_model_name_or_path "org\/a\\u200bb": the base model name holds U\+200B .*an invisible character/);
    expect(exportedBaseModelRefusal('org/a\nb')).toMatch(/^the adapter's base_model_name_or_path "org\/a\\nb": the base model name holds a control character/);
    expect(exportedBaseModelRefusal('mistralai/Mistral-7B-v0.1')).toBeNull();
    expect(exportedBaseModelRefusal(null)).toBeNull();
  });
});
