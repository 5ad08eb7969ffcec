// A saved run is read back from storage a user (or anything else) can edit: before a resume trusts it, its record is
// re-validated against the hyperparameter schema (a tampered `lora_rank: 1e6` would allocate gigabytes), its step and
// epoch must lie within the plan its data and hyperparameters give, and the training state must be the very bytes
// saved with the record (a SHA-256 checksum stored in the record). Every refusal is FinetuneError('bad-input').

import { FinetuneError } from '../core/errors.ts';
import { sha256Checksum } from '../core/bytes.ts';
import { safeParseHyperparams } from '../config/hyperparams.ts';
import type { DataStats } from '../data/batches.ts';
import { BASE_MATMULS } from '../engine/gpu.ts';
import { savedKernels } from './kernel-tuning.ts';
import { CHECKSUM, withRecordDefaults, type ModelFileVersion, type SavedRun } from './saved-run.ts';
// Beside checkStateStep, which readStoredCheckpoint runs after it; re-exported for the session's checks here.
export { checkStateChecksum } from './saved-run.ts';
import type { TokenizerIdentity } from '../data/tokenizer.ts';
import { formatCount } from '../core/units.ts';
import { baseModelNameProblem } from '../core/file-names.ts';
import { firstFew, quote, quoteCut, visibleText } from '../core/quote.ts';

const QUANTIZATIONS: readonly string[] = ['none', 'nf4', 'nf4-double'];

/**
 * A saved run whose record or files are not what a run saved (a field missing or out of range, data or state of other
 * bytes): a damaged run (details.damagedRun, isDamagedRun), which the page offers to forget instead of showing a
 * failed run, as it does a record it cannot read at all.
 */
function corrupt(what: string, details?: Record<string, unknown>): FinetuneError {
  return new FinetuneError('bad-input', `the saved run cannot be resumed: ${what}`, { damagedRun: true, ...details });
}

/**
 * A saved run whose plan, made again here, is not the one it was saved with. Not flagged as damaged: the store may be
 * whole and read another way here (with another tokenizer, which the resume has said in a note), where forgetting the
 * run would lose a good checkpoint.
 */
function unplanned(what: string, details?: Record<string, unknown>): FinetuneError {
  return new FinetuneError('bad-input', `the saved run cannot be resumed: ${what}`, details);
}

function isStepCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** "sha256:<hex>" of a saved file's bytes (WebCrypto: the same in browsers and Node): the state, the data. */
export const stateChecksum = sha256Checksum;

/** The epoch (0-based) the last step done belongs to: what a record saved after `step` steps says. */
export function epochOfStep(stepsByEpoch: readonly number[], step: number): number {
  let end = 0;
  for (let e = 0; e < stepsByEpoch.length; e++) {
    end += stepsByEpoch[e];
    if (step <= end) return e;
  }
  return stepsByEpoch.length;
}

/**
 * The run record as read from a store, checked field by field; its hyperparameters come back parsed by the schema
 * (so defaults and coercions are the schema's, never the file's).
 */
export function checkSavedRun(raw: unknown): SavedRun {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt('its record (run.json) is not a JSON object');
  const r = raw as Record<string, unknown>;
  const hpInput = r.hp;
  if (typeof hpInput !== 'object' || hpInput === null || Array.isArray(hpInput)) throw corrupt('its record holds no hyperparameters');
  // A record from before padding_free resumes padded, building the batches (and LoRA dropout masks) its run built.
  const hp = safeParseHyperparams(withRecordDefaults(hpInput as Record<string, unknown>));
  // The first few problems, and how many: a record of 20,000 unknown keys made a refusal of 650 KB.
  if (!hp.ok) throw corrupt(`its hyperparameters are not valid: ${firstFew(hp.errors, 8, '; ', 'problems')}`, { errors: hp.errors });
  if (typeof r.modelSource !== 'string') throw corrupt('its record names no model');
  if (typeof r.quantization !== 'string' || !QUANTIZATIONS.includes(r.quantization)) throw corrupt(`its quantization ${quoteCut(r.quantization)} is not one of ${QUANTIZATIONS.join(', ')}`);
  if (typeof r.trainName !== 'string') throw corrupt('its record names no training file');
  if (r.validationName !== null && typeof r.validationName !== 'string') throw corrupt('its validation file name is not a string');
  if (!isStepCount(r.totalSteps) || r.totalSteps === 0) throw corrupt(`its planned step count ${quoteCut(r.totalSteps)} is not a positive integer`);
  if (!isStepCount(r.step)) throw corrupt(`its step ${quoteCut(r.step)} is not a step number`);
  if (r.step > r.totalSteps) throw corrupt(`its step ${r.step} is beyond its plan of ${r.totalSteps} steps`, { step: r.step, totalSteps: r.totalSteps });
  if (r.epoch !== undefined && !isStepCount(r.epoch)) throw corrupt(`its epoch ${quoteCut(r.epoch)} is not an epoch number`);
  if (r.stateChecksum !== undefined && (typeof r.stateChecksum !== 'string' || !CHECKSUM.test(r.stateChecksum))) throw corrupt('its state checksum is malformed');
  for (const k of ['trainChecksum', 'validationChecksum'] as const) {
    if (r[k] !== undefined && (typeof r[k] !== 'string' || !CHECKSUM.test(r[k]))) throw corrupt(`its ${k === 'trainChecksum' ? 'training' : 'validation'} data checksum is malformed`);
  }
  if (r.baseMatmul !== undefined && !(BASE_MATMULS as readonly unknown[]).includes(r.baseMatmul)) throw corrupt(`its base products ${quoteCut(r.baseMatmul)} are not one of ${BASE_MATMULS.join(', ')}`);
  if (r.kernels !== undefined && savedKernels(r.kernels) === null) throw corrupt(`its kernels ${quoteCut(r.kernels)} are not kernels this engine has`);
  if (r.useRslora !== undefined && typeof r.useRslora !== 'boolean') throw corrupt(`its use_rslora ${quoteCut(r.useRslora)} is not true or false`);
  if (r.baseModelName !== undefined) {
    // Written into the adapter's config and README as it is: held to what a typed --base-model is held to.
    const problem = typeof r.baseModelName === 'string' ? baseModelNameProblem(r.baseModelName) : 'it is not text';
    if (problem) throw corrupt(`its base model name ${quoteCut(r.baseModelName)} is no base model name: ${problem}`);
  }
  if (r.tokenizer !== undefined && !isTokenizerIdentity(r.tokenizer)) throw corrupt('its record of the tokenizer is malformed');
  if (r.modelFiles !== undefined && !isModelFileList(r.modelFiles)) throw corrupt("its list of the model's files is malformed");
  if (!Array.isArray(r.history)) throw corrupt('its loss history is not a list');
  for (const h of r.history as unknown[]) {
    const item = h as Record<string, unknown> | null;
    if (typeof item !== 'object' || item === null || !isStepCount(item.step) || item.step > r.step) throw corrupt('its loss history holds an entry that is not a step of the run');
    if (item.seconds !== undefined && !(typeof item.seconds === 'number' && Number.isFinite(item.seconds) && item.seconds >= 0)) throw corrupt(`its loss history holds a training time ${quoteCut(item.seconds)} that is not a duration`);
    if (item.sample !== undefined && typeof item.sample !== 'string') throw corrupt('its loss history holds a sample that is not text');
    if (typeof item.sample === 'string' && item.sample.length > MAX_SAMPLE_TEXT) throw corrupt(`its loss history holds a sample of ${formatCount(item.sample.length)} characters, more than a sample can be (${formatCount(MAX_SAMPLE_TEXT)})`);
  }
  if (r.baseline !== undefined) {
    const b = r.baseline as Record<string, unknown> | null;
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw corrupt('its validation before training is not a record');
    if (!(typeof b.valLoss === 'number' && Number.isFinite(b.valLoss) && b.valLoss >= 0)) throw corrupt(`its validation loss before training ${quoteCut(b.valLoss)} is not a loss`);
    if (b.sample !== undefined && typeof b.sample !== 'string') throw corrupt('its sample before training is not text');
    if (typeof b.sample === 'string' && b.sample.length > MAX_SAMPLE_TEXT) throw corrupt(`its sample before training has ${formatCount(b.sample.length)} characters, more than a sample can be (${formatCount(MAX_SAMPLE_TEXT)})`);
  }
  return { ...(r as unknown as SavedRun), hp: hp.value };
}

function isTokenizerIdentity(v: unknown): v is TokenizerIdentity {
  const o = v as Record<string, unknown> | null;
  return typeof o === 'object' && o !== null && typeof o.checksum === 'string' && CHECKSUM.test(o.checksum) && typeof o.name === 'string' && o.name.length <= MAX_MODEL_FILE_TEXT;
}

/**
 * The tokenizer loaded for a resume against the one the run was trained with: another model file is refused, naming
 * both (the run's data would be tokenized into other ids, and the adapter trained on them goes on with other pieces:
 * wrong numbers, silently). A record from before runs recorded their tokenizer cannot tell: a note says what the run
 * continues with. `how`: what to do about a refusal (the CLI names its flag). Null: nothing to say.
 */
export function checkTokenizer(run: SavedRun, loaded: TokenizerIdentity | undefined, how: string): string | null {
  if (loaded === undefined) return null;
  const saved = run.tokenizer;
  // A tokenizer's name says where it was loaded from, as a path or in words ("the default tokenizer (…)"): shown with
  // visibleText's escapes, not quoted, so that a bidirectional control in a path cannot reorder the sentence.
  if (saved === undefined) return `the saved run's record does not say which tokenizer it was trained with (it was saved before runs recorded it): it continues with ${visibleText(loaded.name)}, which must be the one it started with`;
  if (saved.checksum === loaded.checksum) return null;
  throw new FinetuneError(
    'bad-input',
    `the saved run was trained with the tokenizer ${visibleText(saved.name)} (${saved.checksum}), and this resume has ${visibleText(loaded.name)} (${loaded.checksum}): another tokenizer gives the run's data other token ids, so the run cannot continue with it. ${how}`,
    { saved, loaded },
  );
}

/** The longest validation_prompt sample a record may hold: a sample is tens of tokens, far below this. */
const MAX_SAMPLE_TEXT = 100_000;
/** A model's files are a few dozen at most (Mistral-7B: config.json and three shards); more is not a record we wrote. */
const MAX_MODEL_FILES = 4096;
const MAX_MODEL_FILE_TEXT = 4096;

function isModelFileList(v: unknown): v is ModelFileVersion[] {
  if (!Array.isArray(v) || v.length > MAX_MODEL_FILES) return false;
  return v.every((f: unknown) => {
    const o = f as Record<string, unknown> | null;
    return (
      typeof o === 'object' && o !== null &&
      typeof o.name === 'string' && o.name.length <= MAX_MODEL_FILE_TEXT &&
      isStepCount(o.size) &&
      (o.version === null || (typeof o.version === 'string' && o.version.length <= MAX_MODEL_FILE_TEXT)) &&
      (o.fingerprint === undefined || (typeof o.fingerprint === 'string' && o.fingerprint.length <= MAX_MODEL_FILE_TEXT))
    );
  });
}

/**
 * The loaded model's files against those the run was trained on (when its record lists them: older ones do not).
 * Other names or sizes are another model under the same name (local files are named by their file names alone, so two
 * single-file models look alike): refused, since the adapter would go on training on another base. The same sizes with
 * another HTTP version (ETag) are the Hub's files changed since: said, not refused, since no older copy can be had under
 * that name. A local file's version (its mtime) changes with every copy, so it is not compared. `former`: the loaded
 * files as earlier builds versioned them (the Hub's CDN ETag, before X-Linked-Etag), when that differs: a run saved
 * then recorded those, and the same file is not said to have changed.
 */
export function checkModelFiles(run: SavedRun, loaded: readonly ModelFileVersion[], former: readonly ModelFileVersion[] | null = null): string | null {
  const saved = run.modelFiles;
  if (saved === undefined) return null;
  // The model's file names (a folder's, a Hub repository's) in a list of names and sizes: with visibleText's escapes, so
  // that a bidirectional control in one cannot reorder the sentence; the model's name is quoted, as the record's names are.
  const sizes = (files: readonly ModelFileVersion[]): string => files.map((f) => `${visibleText(f.name)} (${formatCount(f.size)} bytes)`).join(', ');
  const same = saved.length === loaded.length && saved.every((f, i) => f.name === loaded[i].name && f.size === loaded[i].size);
  if (!same) {
    throw new FinetuneError(
      'bad-input',
      `the loaded model ${quote(run.modelSource)} is not the one the saved run was trained on: its files are ${sizes(loaded)}; the run's were ${sizes(saved)}. Load the run's model to resume it`,
      { saved, loaded },
    );
  }
  // Local files of the same names and sizes: their sampled contents (records from before fingerprints have none).
  const other = saved.filter((f, i) => f.fingerprint !== undefined && loaded[i].fingerprint !== undefined && f.fingerprint !== loaded[i].fingerprint).map((f) => f.name);
  if (other.length > 0) {
    throw new FinetuneError(
      'bad-input',
      `the loaded model ${quote(run.modelSource)} is not the one the saved run was trained on: ${visibleText(other.join(', '))} ${other.length === 1 ? 'has' : 'have'} the run's name and size but other contents (another model in a folder of the same name?). Load the run's model to resume it`,
      { files: other },
    );
  }
  const changed = saved
    .filter((f, i) => f.version?.startsWith('http ') && loaded[i].version?.startsWith('http ') && f.version !== loaded[i].version && f.version !== former?.[i]?.version)
    .map((f) => f.name);
  if (changed.length === 0) return null;
  return `${visibleText(changed.join(', '))} of ${visibleText(run.modelSource)} changed on the server since the run's last checkpoint (the same size, another version): the run continues on the files as they are now`;
}

/**
 * The record against the plan its data and hyperparameters give now: the same number of steps, a step within the plan
 * (at its end for a finished run, whose adapter a resume restores), and (when recorded) the epoch that step falls in.
 */
export function checkSavedRunAgainstPlan(run: SavedRun, stats: DataStats): void {
  if (run.totalSteps !== stats.totalSteps) {
    throw unplanned(`it was planned with ${run.totalSteps} steps, but its data and hyperparameters now give ${stats.totalSteps}: the saved data or record was changed`, { saved: run.totalSteps, planned: stats.totalSteps });
  }
  if (run.step > stats.totalSteps) throw unplanned(`its checkpoint is at step ${run.step}, beyond the plan's ${stats.totalSteps} steps`);
  // step === totalSteps is a finished run: resuming it trains nothing and restores its adapter (the page's "Restore").
  const epoch = epochOfStep(stats.stepsByEpoch, run.step);
  if (run.epoch !== undefined && run.epoch !== epoch) {
    throw unplanned(`its record says epoch ${run.epoch + 1} at step ${run.step}, the plan puts that step in epoch ${epoch + 1}`);
  }
}

/**
 * The data must be the bytes the run trained on (when the record carries their checksums: older ones do not). Two tabs
 * once committed one run's record beside the other's data: a resume would have trained that adapter on other rows.
 */
export async function checkDataChecksums(run: SavedRun, train: Uint8Array, validation: Uint8Array | null): Promise<void> {
  const check = async (expected: string | undefined, bytes: Uint8Array | null, what: string, name: string | null): Promise<void> => {
    if (expected === undefined) return;
    const actual = bytes ? await stateChecksum(bytes) : 'none';
    if (actual !== expected) {
      throw corrupt(`its ${what} data${name ? ` (${visibleText(name)})` : ''} is not the data it was trained on (checksum ${actual}, saved with the run ${expected})`, { expected, actual });
    }
  };
  await check(run.trainChecksum, train, 'training', run.trainName);
  await check(run.validationChecksum, validation, 'validation', run.validationName);
}

