// An adapter brought in from outside (a PEFT folder or zip, Replicate's training_output.zip) as the session's current
// adapter: what the page is told about it, and how a new run starts from it instead of PEFT's fresh initialisation.

import { FinetuneError } from '../core/errors.ts';
import type { Projection } from '../core/mistral.ts';
import { loraScaling, type LoraAdapter, type LoraConfig } from '../model/lora-adapter.ts';
import { quote } from '../core/quote.ts';
import { baseModelNameCharacterProblem } from '../core/file-names.ts';

/** What the page shows about an imported adapter. */
export interface ImportedAdapterInfo {
  /** What the user gave (a file or folder name). */
  name: string;
  r: number;
  loraAlpha: number;
  useRslora: boolean;
  targetModules: Projection[];
  layers: number;
  /** Its base_model_name_or_path, as written in the adapter. */
  baseModel: string | null;
  /** Where inside the input it was found, e.g. "training_output/adapter_model.bin". */
  readFrom: string;
  /** Said when its base_model_name_or_path names another model than the one loaded (baseModelNote). */
  note?: string;
}

export function importedAdapterInfo(adapter: LoraAdapter, name: string, readFrom: string, loadedModel?: string): ImportedAdapterInfo {
  const c = adapter.config;
  const notes = [loadedModel === undefined ? null : baseModelNote(c.baseModel, loadedModel), ignoredTargetsNote(c)].filter((n): n is string => n !== null);
  const note = notes.length ? notes.join('; ') : null;
  return { name, r: c.r, loraAlpha: c.loraAlpha, useRslora: c.useRslora, targetModules: [...c.targetModules], layers: adapter.layers, baseModel: c.baseModel, readFrom, ...(note ? { note } : {}) };
}

/** What a run's hyperparameters give its adapter: rank, alpha and targets (canonical order). */
export interface RunAdapterShape {
  r: number;
  alpha: number;
  targets: readonly Projection[];
}

/**
 * A run that starts from an imported adapter continues it, so its rank, alpha and targets must be the adapter's (with
 * others it would not be a continuation, and its saved state could not be resumed); a mismatch says what to set.
 */
export function checkRunFitsImported(run: RunAdapterShape, imported: LoraAdapter): void {
  const b = imported.config;
  const differ: string[] = [];
  if (run.r !== b.r) differ.push(`lora_rank ${b.r} (the run has ${run.r})`);
  if (run.alpha !== b.loraAlpha) differ.push(`lora_alpha ${b.loraAlpha} (the run has ${run.alpha})`);
  if (run.targets.join(',') !== b.targetModules.join(',')) differ.push(`lora_target_modules ${b.targetModules.join(',')} (the run has ${run.targets.join(',')})`);
  if (differ.length) {
    throw new FinetuneError('bad-input', `training starts from the imported adapter, so the run must match it: set ${differ.join(', ')}, or forget the imported adapter to start fresh`);
  }
  if (b.layersToTransform) throw new FinetuneError('bad-input', `the imported adapter covers only layers ${b.layersToTransform.join(', ')}; training here adapts every layer, so it cannot continue it`);
}

/** Puts the imported adapter's weights into `fresh`, the adapter a new run created from its hyperparameters. */
export function startFromImported(fresh: LoraAdapter, imported: LoraAdapter): void {
  const a = fresh.config;
  const b = imported.config;
  checkRunFitsImported({ r: a.r, alpha: a.loraAlpha, targets: a.targetModules }, imported);
  if (fresh.layers !== imported.layers) throw new FinetuneError('bad-input', `the imported adapter has ${imported.layers} layers, the model ${fresh.layers}`);
  fresh.tensors.forEach((layer, l) => {
    for (const [m, pair] of Object.entries(layer) as [Projection, { A: Float32Array; B: Float32Array }][]) {
      const from = imported.tensors[l][m];
      if (!from || from.A.length !== pair.A.length || from.B.length !== pair.B.length) {
        throw new FinetuneError('bad-input', `the imported adapter's ${m} of layer ${l} does not fit the model`);
      }
      pair.A.set(from.A);
      pair.B.set(from.B);
    }
  });
  // rsLoRA changes the scale, not the tensors: keep the imported adapter's so its outputs are unchanged.
  a.useRslora = b.useRslora;
  fresh.scaling = loraScaling(a);
}

/** A model name as compared across sources: without a revision, lower-case. */
function comparableName(name: string): string {
  return name.replace(/@[^/]*$/, '').toLowerCase();
}

/**
 * A note when the adapter's target_modules list names modules the model does not have (another architecture's, a layer
 * beyond its depth: ignored, as PEFT ignores them): said so that a list meant for another model is not taken for one
 * that adapts them. Null when none.
 */
export function ignoredTargetsNote(c: Pick<LoraConfig, 'ignoredTargetModules' | 'targetModules'>): string | null {
  const ignored = c.ignoredTargetModules;
  if (!ignored?.length) return null;
  return `its target_modules also name ${ignored.map((m) => quote(m)).join(', ')}, which match no module of the model: ignored, as PEFT ignores them (it adapts ${c.targetModules.join(', ')})`;
}

/**
 * A note when the adapter names another base model than the one loaded (`loaded`: the model's name, a Hub id or a
 * local folder's name), null when they are the same or the adapter names none. The same Hub model in a local folder of
 * its name (Mistral-7B-v0.1 for mistralai/Mistral-7B-v0.1) counts as the same. Not a refusal: the shapes fit, and a
 * base under another name may be the same weights.
 */
export function baseModelNote(adapterBase: string | null, loaded: string): string | null {
  if (!adapterBase) return null;
  const a = comparableName(adapterBase);
  const b = comparableName(loaded);
  const last = (n: string): string => n.split('/').pop() ?? n;
  if (a === b || last(a) === last(b)) return null;
  // Quoted as JSON strings: base_model_name_or_path comes from the adapter's file (a control character is escaped).
  const [said, have] = [quote(adapterBase), quote(loaded)];
  return `the adapter was trained on ${said} (its base_model_name_or_path), and the model loaded is ${have}: the shapes fit, but on another base than its own an adapter computes something else; load ${said} unless it is the same model under another name`;
}

/**
 * Why the page's export refuses to write the adapter's own base_model_name_or_path (into adapter_config.json and the
 * README), or null: one from an imported file is held to what a typed name is held to (baseModelNameCharacterProblem),
 * as finetune export holds it (cli/base-model-flag.ts); a name typed in "Base model name" is written instead.
 */
export function exportedBaseModelRefusal(baseModel: string | null): string | null {
  const problem = baseModel === null ? null : baseModelNameCharacterProblem(baseModel);
  return problem ? `the adapter's base_model_name_or_path ${quote(baseModel)}: ${problem}: type the base model's name in "Base model name" to write that instead` : null;
}
