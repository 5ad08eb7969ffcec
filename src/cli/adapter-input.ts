// An adapter named on the command line (`--adapter PATH`), as the importer the page uses takes it
// (src/model/adapter-import.ts): a PEFT folder, a zip (the page's download, a PEFT zip, Replicate's
// training_output.zip) or the adapter_model.safetensors / .bin file itself. One reading for every command that takes
// an adapter, so that what `finetune export` reads `finetune generate` reads too.

import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { FinetuneError } from '../core/errors.ts';
import { ADAPTER_BIN_FILE, type AdapterInput } from '../model/adapter-import.ts';
import { ADAPTER_WEIGHTS_FILE } from '../model/lora-adapter.ts';
import { nodeDirectory } from './node-source.ts';

/** The adapter at PATH as the importer takes it: a folder, or the bytes of a zip; `name` says where, in messages. */
export async function adapterInput(path: string, flag = '--adapter'): Promise<{ input: AdapterInput; name: string }> {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new FinetuneError('bad-input', `${flag}: ${path} does not exist`);
  }
  if (st.isDirectory()) return { input: nodeDirectory(path), name: path };
  if (!st.isFile()) throw new FinetuneError('bad-input', `${flag}: ${path} is not a regular file or folder`);
  const file = basename(path);
  // The weights file itself: its config sits beside it, so read the folder.
  if (file === ADAPTER_WEIGHTS_FILE || file === ADAPTER_BIN_FILE) return { input: nodeDirectory(dirname(path)), name: dirname(path) };
  return { input: new Uint8Array(await readFile(path)), name: path };
}
