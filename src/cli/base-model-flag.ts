// The name an adapter the command line writes gives its base model (base_model_name_or_path, the README's heading, the
// GGUF's general.name): --base-model as typed, or without it a name that came from a file (the model folder's name for
// train, the adapter's own adapter_config.json for export). Both are held to one test of their characters
// (src/core/file-names.ts), so that a name from a file cannot read as another model's where a typed one could not.

import { FinetuneError } from '../core/errors.ts';
import { baseModelNameCharacterProblem, baseModelNameProblem } from '../core/file-names.ts';
import { UsageError } from './command.ts';

/** --base-model NAME as given, checked as the page checks it (baseModelNameProblem); undefined when not given. */
export function baseModelFlag(value: string | undefined): string | undefined {
  const problem = value === undefined ? null : baseModelNameProblem(value);
  if (problem) throw new UsageError(`--base-model: ${problem}`);
  return value;
}

/**
 * Refuses a base model name that came from a file, by the characters a typed --base-model is refused for. `from` says
 * where it came from (the file and the field, the name quoted); `fix`, what can be done there, besides --base-model.
 */
export function checkBaseModelNameFrom(name: string, from: string, fix?: string): void {
  const problem = baseModelNameCharacterProblem(name);
  if (problem) throw new FinetuneError('bad-input', `${from}: ${problem}: ${fix ? `${fix}, or ` : ''}give --base-model NAME to name the base model instead`);
}
