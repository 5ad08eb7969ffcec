// A saved run in its RunStore: the run record (run.json), the training state it belongs to (state.safetensors) and
// the run's data. The record and its state are only ever committed together, so that a resume after any crash finds
// a pair that belongs together; a new run's data joins them at its first checkpoint, so that the previous run stays
// resumable until then.

import type { Quantization } from '../core/mistral.ts';
import { FinetuneError, thrownMessage } from '../core/errors.ts';
import { crc32, sha256Checksum } from '../core/bytes.ts';
import { hyperparamRows, type Hyperparams } from '../config/hyperparams.ts';
import type { TrainingSummary } from '../export/training-card.ts';
import type { BaseMatmul } from '../engine/gpu.ts';
import type { KernelChoice } from './kernel-tuning.ts';
import type { TokenizerIdentity } from '../data/tokenizer.ts';
import { openSafetensors } from '../model/safetensors.ts';
import { bytesSource } from '../model/source.ts';
import type { RunStore } from './run-store.ts';
import { quote, quoteCut } from '../core/quote.ts';
import { jsonTooDeepAt, MAX_JSON_DEPTH } from '../core/bounded-json.ts';

export const RUN_FILE = 'run.json';
export const STATE_FILE = 'state.safetensors';
export const TRAIN_FILE = 'train.jsonl';
export const VALIDATION_FILE = 'validation.jsonl';
export const RUN_FILES = [RUN_FILE, STATE_FILE, TRAIN_FILE, VALIDATION_FILE] as const;

/** One file a base model was loaded from: its name, size and version ("http <ETag>", "file <size> <mtime>", or null). */
export interface ModelFileVersion {
  name: string;
  size: number;
  version: string | null;
  /** A local file's sampled content hash (model-fingerprint.ts): a resume refuses a file of the same name and size with another. */
  fingerprint?: string;
}

/** A run's validation before its first step (eval_on_start): the baseline its validation losses are read against. */
export interface RunBaseline {
  valLoss: number;
  /** The validation_prompt sample the untrained adapter wrote, where the run has a validation_prompt. */
  sample?: string;
}

/** What is saved with a run so that it can be resumed after a reload. */
export interface SavedRun {
  modelSource: string;
  /**
   * The base model's files as they were loaded for the run: a resume refuses other files under the same name (local
   * files are named by their file names alone) and says when the Hub's files changed since. Older records have none.
   */
  modelFiles?: ModelFileVersion[];
  quantization: Quantization;
  hp: Hyperparams;
  trainName: string;
  validationName: string | null;
  step: number;
  totalSteps: number;
  /**
   * Each step's loss, its validation loss where it had one, and the training time up to it (StepReport.elapsedSeconds),
   * its validation pass included where it had one; and the validation_prompt sample written after that pass (so the
   * page shows a run's samples again after a reload; one written after the last checkpoint is not kept).
   */
  history: { step: number; loss: number; valLoss?: number; seconds?: number; sample?: string }[];
  /**
   * The validation before the first step (eval_on_start): the untrained adapter's loss and its validation_prompt
   * sample, the baseline the history is read against. Absent: the run made none (or predates the field).
   */
  baseline?: RunBaseline;
  savedAt: string;
  /** The epoch (0-based) of the last step done; a resume checks it against the plan (saved-run-check.ts). */
  epoch?: number;
  /** "sha256:<hex>" of the training state saved with this record; a resume refuses a state that does not match. */
  stateChecksum?: string;
  /**
   * "sha256:<hex>" of the run's training data (train.jsonl) and validation data as stored with its first checkpoint: a
   * resume refuses data that is not the data the run trained on (records before these fields have none).
   */
  trainChecksum?: string;
  validationChecksum?: string;
  /** The kernels the run trains with (src/run/kernel-tuning.ts): a resume uses them again, for the same numbers. */
  kernels?: KernelChoice;
  /** How the frozen base products ran (GpuContext.baseMatmul; absent: 'fp32'): a resume continues the same way. */
  baseMatmul?: BaseMatmul;
  /**
   * The tokenizer model the run's data was tokenized with (its checksum and where it came from): a resume with another
   * is refused, since the same ids would mean other pieces. Records from before this field have none.
   */
  tokenizer?: TokenizerIdentity;
  /**
   * The adapter's scale is lora_alpha / √r (rsLoRA) rather than alpha / r: a run started from an imported rsLoRA adapter
   * (rank, alpha and targets are the hyperparameters', which must match it). Absent: false.
   */
  useRslora?: boolean;
  /**
   * The name the run's adapter gives its base model (base_model_name_or_path), where the run was given one (train
   * --base-model NAME): a resume, a restore and an export of the run's checkpoint name it rather than modelSource (a
   * model folder's name, say). Absent: not recorded (a record from before this field, or a run given none), and the
   * adapter names modelSource. Checked as a typed name is when the record is (saved-run-check.ts).
   */
  baseModelName?: string;
}

/** A run's data as it is stored with its first checkpoint. */
export interface RunData {
  train: Uint8Array;
  validation: Uint8Array | null;
}

/** Everything a resume needs, read from one committed set. */
export interface StoredCheckpoint {
  run: SavedRun;
  state: Uint8Array;
  data: RunData;
}

/** Whether an error says the store holds a run that cannot be read (rather than none). */
export function isDamagedRun(e: unknown): e is FinetuneError {
  return e instanceof FinetuneError && e.details?.damagedRun === true;
}

/**
 * The record's own check, on the line after its JSON: `crc32:` and 8 hex digits of the JSON's bytes. The state has its
 * SHA-256 in the record and the data theirs, but nothing checked the record: one flipped byte resumed a run at
 * another learning rate, seed or dropout, exported another lora_alpha, and a flip in the key "stateChecksum" turned
 * the state's own check off. A record without the line was written before it (2026-12-07) and is read as it is; any
 * damage to the line itself leaves text that is not JSON, which is refused, so no flip can pass a record off as one
 * from before.
 */
const RECORD_CHECK = /\ncrc32:([0-9a-f]{8})\n$/;

function crc32Hex(bytes: Uint8Array): string {
  return crc32(bytes).toString(16).padStart(8, '0');
}

/** A record as it is written: its JSON, then its check line. */
export function recordBytes(run: SavedRun): Uint8Array {
  const json = JSON.stringify(run);
  return new TextEncoder().encode(`${json}\ncrc32:${crc32Hex(new TextEncoder().encode(json))}\n`);
}

/** A record's JSON text, its check line verified where it has one; `unreadable` makes the error of a damaged one. */
function recordText(bytes: Uint8Array, unreadable: (detail: string) => FinetuneError): string {
  const text = new TextDecoder().decode(bytes);
  const check = RECORD_CHECK.exec(text);
  if (!check) return text;
  const json = text.slice(0, check.index);
  const actual = crc32Hex(new TextEncoder().encode(json));
  if (actual !== check[1]) throw unreadable(`${RUN_FILE}: its contents do not match its check (crc32 ${actual}, written ${check[1]}): the record is damaged`);
  return json;
}

/**
 * The run record, or null when the store holds none. A record that cannot be read (not JSON, not a run record) or a
 * store whose committed set cannot be told is a damaged run, refused as such (isDamagedRun): it once read as "no run",
 * and a new run then replaced it at its first checkpoint without a word. `where` names the store in the message.
 */
export async function readSavedRun(store: RunStore, where?: string): Promise<SavedRun | null> {
  // `where` is a folder the user gave (the CLI's OUT/run): quoted as names are, so a line break or a bidi control in
  // it shows as an escape rather than breaking or reordering the message.
  const unreadable = (detail: string, details: Record<string, unknown> = {}): FinetuneError =>
    new FinetuneError('bad-input', `the saved run${where ? ` in ${quote(where)}` : ''} is unreadable (${detail})`, { ...details, damagedRun: true });
  let bytes: Uint8Array | null;
  try {
    bytes = await store.load(RUN_FILE);
  } catch (e) {
    // The store's details go with it (firstCommitCutShort: no run was ever saved there).
    if (isDamagedRun(e)) throw unreadable(e.message, e.details);
    throw e;
  }
  if (!bytes) return null;
  const text = recordText(bytes, unreadable);
  // Refused before parsing: a record nesting 200,000 levels deep parsed, and then overflowed the stack (a RangeError,
  // not a damaged run) where a message quoted a field of it, or where the record was cloned to the page.
  if (jsonTooDeepAt(text) >= 0) throw unreadable(`${RUN_FILE}: it nests JSON deeper than ${MAX_JSON_DEPTH} levels`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw unreadable(`${RUN_FILE}: ${(e as Error).message}`);
  }
  // The fields every reader uses (the page's summary, train's refusals) must be there; the rest is checked field by
  // field when the run is resumed (checkSavedRun), which names a tampered value.
  const problem = recordShapeProblem(raw);
  if (problem) throw unreadable(`${RUN_FILE}: ${problem}`);
  const run = raw as SavedRun;
  return { ...run, hp: withRecordDefaults(run.hp as unknown as Record<string, unknown>) as unknown as SavedRun['hp'] };
}

/**
 * A record holds every hyperparameter, so one without a newer one was saved before it existed, and trained as that
 * value says: padding_free came on 2026-12-04, and every run before it padded its micro-batches. Filled in where a
 * record is read (and again where it is checked), so a resume, the page's form and train's flag check all see it.
 */
export const RECORD_DEFAULTS: Readonly<Record<string, unknown>> = { padding_free: false };

export function withRecordDefaults(hp: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return { ...RECORD_DEFAULTS, ...hp };
}

function recordShapeProblem(raw: unknown): string | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'it is not a JSON object';
  const r = raw as Record<string, unknown>;
  const count = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (typeof r.hp !== 'object' || r.hp === null || Array.isArray(r.hp)) return 'its record holds no hyperparameters';
  if (typeof r.modelSource !== 'string') return 'its record names no model';
  if (typeof r.trainName !== 'string') return 'its record names no training file';
  if (!count(r.step)) return `its step ${quoteCut(r.step)} is not a step number`;
  if (!count(r.totalSteps)) return `its planned step count ${quoteCut(r.totalSteps)} is not a step count`;
  if (!Array.isArray(r.history)) return 'its loss history is not a list';
  return null;
}

/** Whether a saved run stopped before the end of its plan (and so is there to be resumed). */
export function isUnfinished(run: SavedRun): boolean {
  return run.step < run.totalSteps;
}

/**
 * The step a training state (trainer.ts's checkpoint format) says it was saved at: a number, or what its metadata holds
 * instead (undefined: no step at all). Read as loadTrainState reads it, decimal digits only: Number() made a missing
 * step NaN ("holds step NaN"), and took "0x2", " 2" or "" for numbers.
 */
export async function stateStep(state: Uint8Array): Promise<{ step: number } | { unreadable: string | undefined }> {
  const file = await openSafetensors(bytesSource(state, 'checkpoint'));
  const raw = file.header.metadata?.step;
  const step = Number(raw);
  return raw !== undefined && /^\d+$/.test(raw) && Number.isSafeInteger(step) ? { step } : { unreadable: raw };
}

/** The saved run with its state and data; refuses a store whose record and state do not belong together. */
export async function readStoredCheckpoint(store: RunStore): Promise<StoredCheckpoint> {
  const run = await readSavedRun(store);
  if (!run) throw new FinetuneError('bad-input', 'there is no saved run to resume');
  const [state, train] = [await store.load(STATE_FILE), await store.load(TRAIN_FILE)];
  if (!train || !state) throw new FinetuneError('bad-input', 'the saved run is incomplete (its data or checkpoint is missing)');
  const validation = run.validationName ? await store.load(VALIDATION_FILE) : null;
  if (run.validationName && !validation) throw new FinetuneError('bad-input', 'the saved run is incomplete (its validation data is missing)');
  // As a resume in the session checks it: the checksum first, where the record has one (a damaged state is then said
  // corrupt by it, not by whatever its bytes fail at). The record is not checked yet (checkSavedRun does that): a
  // checksum that is not one (not a string, or a megabyte of text that the message would quote) is left to it.
  if (typeof run.stateChecksum === 'string' && CHECKSUM.test(run.stateChecksum)) await checkStateChecksum(run, state);
  await checkStateStep(run, state);
  return { run, state, data: { train, validation } };
}

/** The state bytes must be the ones saved with the record (when the record carries a checksum: older ones do not). */
export async function checkStateChecksum(run: SavedRun, state: Uint8Array): Promise<void> {
  if (run.stateChecksum === undefined) return;
  const actual = await sha256Checksum(state);
  if (actual !== run.stateChecksum) {
    throw new FinetuneError('bad-input', `the checkpoint is corrupt: its checksum (${actual}) does not match the one saved with the run (${run.stateChecksum})`, { damagedRun: true, expected: run.stateChecksum, actual });
  }
}

/** A well-formed checksum as the session writes it, of the state and of the data (saved-run-check.ts refuses others). */
export const CHECKSUM = /^sha256:[0-9a-f]{64}$/;

/**
 * The state must be the one of the record's step: the step in its metadata is the record's. What pairs them in a
 * record without stateChecksum (one saved before it), where a state of another step would otherwise continue the run
 * with one step's adapter and another's loss history and place in the data. A resume checks it either way.
 */
export async function checkStateStep(run: Pick<SavedRun, 'step'>, state: Uint8Array): Promise<void> {
  const damaged = "the checkpoint is damaged or not this app's";
  // Bytes that are not safetensors (a truncated file) are a damaged run too: their reader's words alone ("checkpoint:
  // header length …") said neither what was read nor what it means.
  const held = await stateStep(state).catch((e: unknown) => {
    throw new FinetuneError('bad-input', `the saved run's checkpoint (step ${run.step}) cannot be read: ${thrownMessage(e).replace(/^checkpoint: /, '')}: ${damaged}`, { damagedRun: true });
  });
  const says = `the saved run record says step ${run.step} but its checkpoint`;
  if ('unreadable' in held) {
    const raw = held.unreadable;
    // A metadata value is any string: quoted, and cut short, for the message.
    const quoted = raw === undefined ? null : quote(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw);
    throw new FinetuneError('bad-input', quoted === null ? `${says} holds no step (its metadata has none): ${damaged}` : `${says}'s step ${quoted} is not a step number: ${damaged}`, { damagedRun: true });
  }
  // Flagged as a damaged run (isDamagedRun): the page offers to forget it rather than show a failed run.
  if (held.step !== run.step) throw new FinetuneError('bad-input', `${says} holds step ${held.step}`, { damagedRun: true });
}

/**
 * The files one checkpoint commits: the state and the record that describes it, and with a run's first checkpoint
 * its data (replacing the previous run's).
 */
export function checkpointFiles(run: SavedRun, state: Uint8Array, data: RunData | null): Record<string, Uint8Array | null> {
  const files: Record<string, Uint8Array | null> = { [STATE_FILE]: state, [RUN_FILE]: recordBytes(run) };
  if (data) {
    files[TRAIN_FILE] = data.train;
    files[VALIDATION_FILE] = data.validation;
  }
  return files;
}

/**
 * The run saved in `store`, or null when none is (or there is no store: a browser without OPFS). What the session and
 * the page's worker both answer with: the record needs no GPU, and the worker reads it without a session on one.
 */
export async function savedRunIn(store: RunStore | null): Promise<SavedRun | null> {
  return store ? readSavedRun(store) : null;
}

/**
 * Forgets the run saved in `store`: its record, state and data, in one commit. A run going on beside it is its
 * caller's to rule out (the page's worker holds the run lock, which a run holds while it goes).
 */
export async function forgetSavedRunIn(store: RunStore | null): Promise<void> {
  await store?.commit(Object.fromEntries(RUN_FILES.map((f) => [f, null])));
}

/**
 * What the store holds, as a check against what a caller named reads it: the saved run (or null: none), or the reason
 * a saved run cannot be read (`damaged`; any other failure is thrown).
 */
export async function savedRunOrDamage(store: RunStore | null): Promise<{ now: SavedRun | null; damaged: FinetuneError | null }> {
  try {
    return { now: await savedRunIn(store), damaged: null };
  } catch (e) {
    if (!isDamagedRun(e)) throw e;
    return { now: null, damaged: e };
  }
}

/**
 * A checkpoint as a resume or a Forget names it: the saved run's step and its record's savedAt (each commit writes its
 * own, so another save of the same step is told apart).
 */
export type ExpectedCheckpoint = Pick<SavedRun, 'step' | 'savedAt'>;

/** Whether `e`, as it came from the page (through the worker), names a checkpoint: a whole step and a time. */
export function namesCheckpoint(e: unknown): e is ExpectedCheckpoint {
  const c = e as Partial<Record<keyof ExpectedCheckpoint, unknown>> | null;
  return typeof c === 'object' && c !== null && Number.isSafeInteger(c.step) && typeof c.savedAt === 'string';
}

/** Whether the run saved now is the checkpoint `expected`: the same commit, not merely the same step of some run. */
export function isCheckpoint(now: ExpectedCheckpoint | null, expected: ExpectedCheckpoint): boolean {
  return now !== null && now.step === expected.step && now.savedAt === expected.savedAt;
}

/**
 * What a Forget names: the run the page's box showed (its step and its record's savedAt, as a resume names its
 * checkpoint), or `{ damaged: true }`, "the store holds a run that cannot be read". The box of a run that cannot be read
 * is also shown for a Resume refused because the run's files cannot be read though its record can (a checkpoint file
 * removed from the store, a state of another step); it names that record as `record`, since the store's record reads.
 * Every tab shares the store: another may save or forget a run between the box being shown and the person confirming,
 * and a Forget that named nothing deleted a run the person never saw.
 */
export type ExpectedForget = ExpectedCheckpoint | { damaged: true; record?: ExpectedCheckpoint };

/** Whether `e`, as it came from the page (through the worker), names what a Forget may delete; else refused. */
function checkExpectedForget(e: unknown): asserts e is ExpectedForget {
  const c = e as Record<string, unknown> | null;
  const damaged = typeof c === 'object' && c !== null && c.damaged === true && (c.record === undefined || namesCheckpoint(c.record));
  if (!damaged && !namesCheckpoint(c)) {
    throw new FinetuneError('bad-input', 'the saved run to forget is named by its step (a whole number) and its savedAt (text), or as { damaged: true } for one that cannot be read (with the record a refused Resume read, as { step, savedAt }, where there was one)');
  }
}

/**
 * Refuses a Forget unless `store` holds what `expected` names: that very record (its step and savedAt), or, for
 * `{ damaged: true }`, a run that cannot be read or the record named with it. Its caller holds the run lock that keeps
 * other tabs from saving between this check and the delete. The refusal's details.savedRunChanged tells the page to
 * show the run saved now; nothing was deleted.
 */
export async function checkForgets(store: RunStore | null, expected: unknown): Promise<void> {
  checkExpectedForget(expected);
  const { now, damaged } = await savedRunOrDamage(store);
  const same = 'damaged' in expected ? damaged !== null || (expected.record !== undefined && isCheckpoint(now, expected.record)) : damaged === null && isCheckpoint(now, expected);
  if (same) return;
  const named = (r: ExpectedCheckpoint): string => `step ${r.step}, saved ${r.savedAt}`;
  const asked = 'damaged' in expected ? `a run that cannot be read${expected.record ? `, ${named(expected.record)}` : ''}` : named(expected);
  const holds = damaged
    ? `it now holds a run that cannot be read: ${damaged.message}`
    : now
      ? `it now holds ${quote(now.trainName)} at step ${now.step} of ${now.totalSteps}, saved ${now.savedAt}`
      : 'no run is saved any more';
  const record = (r: ExpectedCheckpoint): ExpectedCheckpoint => ({ step: r.step, savedAt: r.savedAt });
  throw new FinetuneError('bad-input', `the run saved here is no longer the one Forget asked about (${asked}): ${holds}. Nothing was forgotten`, {
    savedRunChanged: true,
    expected: 'damaged' in expected ? { damaged: true, ...(expected.record ? { record: record(expected.record) } : {}) } : record(expected),
  });
}

/**
 * What an adapter's README can say of the run saved in `run` from its record alone (an export of the run's checkpoint,
 * after a kill: the README is then the run's only record beside it): the data's names, the steps, every
 * hyperparameter (`hp`, the record's as checkSavedRun read them), the losses and samples. The rows' split is not kept
 * in the record, so their counts are not said.
 */
export function savedRunTrainingSummary(run: SavedRun, hp: Hyperparams): TrainingSummary {
  return {
    trainName: run.trainName,
    validationName: run.validationName,
    step: run.step,
    totalSteps: run.totalSteps,
    trainRows: null,
    validationRows: hp.run_validation ? null : 0,
    hyperparameters: hyperparamRows(hp),
    history: run.history.map((h) => ({ step: h.step, loss: h.loss, ...(h.valLoss !== undefined ? { valLoss: h.valLoss } : {}), ...(h.sample !== undefined ? { sample: h.sample } : {}) })),
    validationPrompt: hp.validation_prompt ?? null,
    ...(run.baseline ? { baseline: { ...run.baseline } } : {}),
  };
}
