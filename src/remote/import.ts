// Bringing a training's output home: Replicate's training_output.zip → a LoraAdapter. The one place remote mode calls
// the adapter importer, so the CLI (`remote fetch`) and the page read the zip the same way.

import { unzipSync } from 'fflate';
import { FinetuneError } from '../core/errors.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, parseAdapter, type LoraAdapter } from '../model/lora-adapter.ts';

const WANTED = [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE];
const MAX_ENTRY_BYTES = 2 ** 31 - 1;

/** The adapter in a training_output.zip (its files at the top or in one folder). */
export async function importTrainingOutput(zip: Uint8Array, where = 'training_output.zip'): Promise<LoraAdapter> {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(zip, { filter: (f) => WANTED.includes(f.name.split('/').pop() ?? '') && f.originalSize <= MAX_ENTRY_BYTES });
  } catch (e) {
    throw new FinetuneError('bad-input', `${where}: not a readable zip archive (${(e as Error).message})`);
  }
  const find = (name: string) => Object.entries(files).find(([k]) => k.split('/').pop() === name)?.[1];
  const config = find(ADAPTER_CONFIG_FILE);
  const weights = find(ADAPTER_WEIGHTS_FILE);
  if (!config || !weights) throw new FinetuneError('bad-input', `${where} holds no ${!config ? ADAPTER_CONFIG_FILE : ADAPTER_WEIGHTS_FILE}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(config));
  } catch (e) {
    throw new FinetuneError('bad-input', `${where}: ${ADAPTER_CONFIG_FILE} is not JSON (${(e as Error).message})`);
  }
  return parseAdapter(json, weights);
}
