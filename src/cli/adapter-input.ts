// An adapter named on the command line (`--adapter PATH`), as the importer the page uses takes it
// (src/model/adapter-import.ts): a PEFT folder, a zip (the page's download, a PEFT zip, Replicate's
// training_output.zip) or the adapter_model.safetensors / .bin file itself. One reading for every command that takes
// an adapter, so that what `finetune export` reads `finetune generate` reads too.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { targetModules } from '../config/hyperparams.ts';
import { openSafetensors, toFloat32, writeSafetensors, type TensorToWrite } from '../model/safetensors.ts';
import { bytesSource, memoryFileSet } from '../model/source.ts';
import { POINTER_FILE } from '../run/run-store.ts';
import { isDamagedRun, readSavedRun, readStoredCheckpoint, savedRunTrainingSummary } from '../run/saved-run.ts';
import type { TrainingCard } from '../export/training-card.ts';
import { checkSavedRun } from '../run/saved-run-check.ts';
import { folderRunStore } from './node-store.ts';
import { FinetuneError } from '../core/errors.ts';
import { ADAPTER_BIN_FILE, checkAdapterFileSize, type AdapterInput } from '../model/adapter-import.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, adapterConfigJson, type LoraConfig } from '../model/lora-adapter.ts';
import { nodeDirectory } from './node-source.ts';
import { quote, visibleText } from '../core/quote.ts';

/** A run store's folder: its pointer, or (a damaged one, said as such when read) numbered files of a run. */
function isRunStore(dir: string): boolean {
  if (existsSync(join(dir, POINTER_FILE))) return true;
  try {
    return readdirSync(dir).some((f) => /^\d{6,}-run\.json$/.test(f));
  } catch {
    return false;
  }
}

/**
 * The adapter at a saved run's checkpoint (after a kill, train wrote no OUT/adapter): its LoRA tensors from the state
 * (not the AdamW moments), with the run's rank, alpha, targets and rsLoRA, naming its base model as the run's record
 * does: the name train --base-model gave it, else the run's model (a folder's name, say; a record from before runs
 * recorded the name has none). checkSavedRun has held a recorded name to what a typed --base-model is.
 */
async function checkpointAdapter(runDir: string): Promise<AdapterFromPath & { note: string }> {
  // Where the damage is, named: the reader's words alone do not say which folder.
  const { run, state } = await readStoredCheckpoint(folderRunStore(runDir)).catch((e: unknown) => {
    throw isDamagedRun(e) ? new FinetuneError('bad-input', `${quote(runDir)}: ${e.message}`) : e;
  });
  const checked = checkSavedRun(run);
  const hp = checked.hp;
  const file = await openSafetensors(bytesSource(state, `${runDir} (checkpoint)`));
  const tensors: TensorToWrite[] = [];
  for (const name of file.names()) {
    if (name.endsWith('.exp_avg') || name.endsWith('.exp_avg_sq')) continue;
    const info = file.info(name);
    tensors.push({ name, dtype: 'F32', shape: info.shape, data: toFloat32(await file.read(name), info.dtype) });
  }
  const config: LoraConfig = {
    r: hp.lora_rank,
    loraAlpha: hp.lora_alpha,
    loraDropout: hp.lora_dropout,
    targetModules: targetModules(hp),
    useRslora: checked.useRslora ?? false,
    baseModel: checked.baseModelName ?? checked.modelSource,
    layersToTransform: null,
    taskType: 'CAUSAL_LM',
    inferenceMode: true,
    raw: null,
  };
  const files = { [ADAPTER_CONFIG_FILE]: adapterConfigJson(config), [ADAPTER_WEIGHTS_FILE]: writeSafetensors(tensors, { format: 'pt' }) };
  return {
    input: memoryFileSet(files, runDir),
    name: runDir,
    note: `reading the adapter at the checkpoint of step ${run.step} (of ${run.totalSteps}) of the run saved in ${quote(runDir)}`,
    baseModelFrom: `${visibleText(runDir)}: ${checked.baseModelName === undefined ? "the saved run's model" : "the saved run's base model name (train --base-model)"}`,
    training: { kind: 'local', run: savedRunTrainingSummary(run, hp) },
  };
}

/**
 * train's OUT/adapter (given as itself or as OUT) beside an OUT/run whose checkpoint was saved after the adapter was
 * written: a later run (started with --overwrite, or resumed) that stopped before its end, whose adapter is not this
 * one. Null otherwise (the adapter a run wrote at its end is newer than its last checkpoint), and when the run cannot
 * be read (it is not this command's to judge).
 */
async function newerCheckpointNote(given: string): Promise<string | null> {
  // --adapter OUT/adapter, or --adapter OUT (train's --out), which the importer reads as its OUT/adapter.
  const viaOut = !existsSync(join(given, ADAPTER_CONFIG_FILE)) && existsSync(join(given, 'adapter', ADAPTER_CONFIG_FILE));
  const adapterDir = viaOut ? join(given, 'adapter') : given;
  const runDir = join(dirname(adapterDir), 'run');
  if (basename(adapterDir) !== 'adapter' || !isRunStore(runDir)) return null;
  const run = await readSavedRun(folderRunStore(runDir)).catch(() => null);
  const savedAt = run ? Date.parse(run.savedAt) : NaN;
  let writtenAt: number;
  try {
    writtenAt = statSync(join(adapterDir, ADAPTER_CONFIG_FILE)).mtimeMs;
  } catch {
    return null;
  }
  if (!run || !(savedAt > writtenAt)) return null;
  return `${quote(runDir)} holds a checkpoint (step ${run.step} of ${run.totalSteps}) saved after ${viaOut ? quote(adapterDir) : 'this adapter'} was written: it may be of a later run that stopped before writing its adapter; for that one, give --adapter ${quote(runDir)}`;
}

/** An adapter named on the command line, as adapterInput found it. */
export interface AdapterFromPath {
  input: AdapterInput;
  /** Where it is, in messages. */
  name: string;
  /** What was found there that the user should hear about. */
  note?: string;
  /**
   * Where its base model's name comes from, in messages, when that is not its adapter_config.json's
   * base_model_name_or_path (a saved run's checkpoint, named after the run's model).
   */
  baseModelFrom?: string;
  /** How it was trained, for an export's README, where the path says (a saved run's record) and no README of it will. */
  training?: TrainingCard;
}

/** The adapter at PATH as the importer takes it: a folder, or the bytes of a zip; `name` says where, in messages. */
export async function adapterInput(given: string, flag = '--adapter'): Promise<AdapterFromPath> {
  // A folder given with its trailing slash (a shell's completion) is named without it: "…/adapter//adapter_config.json".
  const path = given.length > 1 ? given.replace(/(?<=[^/])\/+$/, '') : given;
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new FinetuneError('bad-input', `${flag}: ${quote(path)} does not exist`);
  }
  if (st.isDirectory()) {
    // train's OUT/run (or OUT, when it holds a run and no OUT/adapter yet): the adapter at the run's checkpoint.
    if (isRunStore(path)) return checkpointAdapter(path);
    if (isRunStore(join(path, 'run')) && !existsSync(join(path, 'adapter', ADAPTER_CONFIG_FILE)) && !existsSync(join(path, ADAPTER_CONFIG_FILE))) return checkpointAdapter(join(path, 'run'));
    const note = await newerCheckpointNote(path);
    return { input: nodeDirectory(path), name: path, ...(note ? { note } : {}) };
  }
  if (!st.isFile()) throw new FinetuneError('bad-input', `${flag}: ${quote(path)} is not a regular file or folder`);
  const file = basename(path);
  // The weights file itself, or its config: the other sits beside it, so read the folder.
  if (file === ADAPTER_WEIGHTS_FILE || file === ADAPTER_BIN_FILE || file === ADAPTER_CONFIG_FILE) return { input: nodeDirectory(dirname(path)), name: dirname(path) };
  // A zip is read whole: refused by its size first (Node's readFile threw ERR_FS_FILE_TOO_LARGE, an internal error).
  checkAdapterFileSize(path, st.size);
  return { input: new Uint8Array(await readFile(path)), name: path };
}
