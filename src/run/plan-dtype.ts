// The dtype a memory plan counts the stored weights in, before a load: the safetensors headers' where they are at hand
// (a local folder, picked files, the bundled demo: a few kilobytes read, nothing downloaded), else config.json's
// torch_dtype, with why the headers were not read (the plan says so in `model.dtypeFrom`). A checkpoint may store
// another dtype than its config.json says: float32 shards under "bfloat16" were planned at half their size.

import { thrownMessage } from '../core/errors.ts';
import { openBaseCheckpoint } from '../model/checkpoint.ts';
import type { ModelDtype } from '../model/config.ts';
import type { FileSet } from '../model/source.ts';
import type { PlanOptions } from './planner.ts';

/** `local`: the files are at hand (reading their headers downloads nothing); otherwise only config.json is read. */
export async function planDtypeOptions(files: FileSet, local: boolean): Promise<Pick<PlanOptions, 'storedDtype' | 'headersNotRead'>> {
  if (!local) return { headersNotRead: 'only config.json is downloaded before a load' };
  if (!(files.list?.() ?? []).some((n) => n.endsWith('.safetensors'))) return { headersNotRead: 'there is no .safetensors file beside config.json' };
  let storedDtype: ModelDtype | null;
  try {
    storedDtype = (await openBaseCheckpoint(files)).storedDtype;
  } catch (e) {
    // The load says what is wrong with the files; the plan still answers from config.json.
    // Read by thrownMessage: what the files' reads throw is outside code's, and String() of an object with no
    // prototype threw, failing the plan this line exists to keep answering.
    return { headersNotRead: `they could not be read (${thrownMessage(e)})` };
  }
  return { storedDtype };
}
