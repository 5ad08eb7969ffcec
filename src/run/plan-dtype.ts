// The dtype a memory plan counts the stored weights in, before a load: the safetensors headers' where they are at hand
// (a local folder, picked files, the bundled demo: a few kilobytes read, nothing downloaded), else config.json's
// torch_dtype, with why the headers were not read (the plan says so in `model.dtypeFrom`). A checkpoint may store
// another dtype than its config.json says: float32 shards under "bfloat16" were planned at half their size.

import { thrownMessage } from '../core/errors.ts';
import { quote } from '../core/quote.ts';
import { INDEX_FILE, openBaseCheckpoint } from '../model/checkpoint.ts';
import type { ModelDtype } from '../model/config.ts';
import type { FileSet } from '../model/source.ts';
import type { PlanOptions } from './planner.ts';

export type PlanDtypeOptions = Pick<PlanOptions, 'storedDtype' | 'headersNotRead' | 'weightsUnreadable'>;

export interface PlanDtypeHints {
  /**
   * Weight file names the folder holds as something other than a file (a directory): a FileSet lists files only, so
   * only the caller that can look at the folder itself (the CLI) can say so.
   */
  notFiles?: readonly string[];
}

/**
 * `local`: the files are at hand (reading their headers downloads nothing); otherwise only config.json is read.
 * Weights that are there but cannot be read come back as `weightsUnreadable` too (the plan warns: a load will refuse
 * them); weights that are simply not at hand (the Hub, a URL, a folder holding config.json alone) are no alarm.
 */
export async function planDtypeOptions(files: FileSet, local: boolean, hints: PlanDtypeHints = {}): Promise<PlanDtypeOptions> {
  if (!local) return { headersNotRead: 'only config.json is downloaded before a load' };
  if (!hasWeightFiles(files.list?.() ?? [])) {
    // Nothing to read: a folder of config.json alone is planned on purpose, but a weight file's name that is a
    // directory means weights that were meant to be there (the load would refuse the folder).
    const notFiles = hints.notFiles ?? [];
    if (notFiles.length === 0) return { headersNotRead: 'there is no .safetensors file beside config.json' };
    return unreadable(`${notFiles.map((n) => quote(n)).join(', ')} ${notFiles.length === 1 ? 'is' : 'are'} not a file (a directory?)`);
  }
  let storedDtype: ModelDtype | null;
  try {
    storedDtype = (await openBaseCheckpoint(files)).storedDtype;
  } catch (e) {
    // The load says what is wrong with the files; the plan still answers from config.json, and warns.
    // Read by thrownMessage: what the files' reads throw is outside code's, and String() of an object with no
    // prototype threw, failing the plan this line exists to keep answering.
    return unreadable(thrownMessage(e));
  }
  return { storedDtype };
}

/**
 * Whether the listing holds any of a checkpoint's weight files: a .safetensors file, or the index of sharded ones
 * (its shards missing are a broken checkpoint, not a folder of config.json alone).
 */
function hasWeightFiles(names: readonly string[]): boolean {
  return names.some((n) => n.endsWith('.safetensors') || n === INDEX_FILE);
}

function unreadable(reason: string): PlanDtypeOptions {
  return { headersNotRead: `they could not be read (${reason})`, weightsUnreadable: reason };
}
