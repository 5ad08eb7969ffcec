// The one hyperparameter schema. Replicate's training inputs for mistral-7b-instruct-v0.2 with identical names,
// types and defaults (docs/replicate-trainer.md; ranges as its cog `Input(ge=…, le=…)`), plus our extras. The same object is
// the CLI's flags (`--learning_rate 2e-4`), the page's form (FIELDS gives label, help, type, range, group) and, through
// toReplicateInput (./replicate.ts), the `input` of a Replicate training.
//
// Every field is described once in FIELDS; the zod schema is built from it, so each message names the field and its
// rule the same way everywhere: "lora_rank must be an integer from 1 to 256, got 0".

import { PROJECTIONS, type Projection, type Quantization } from '../core/mistral.ts';
import { z } from 'zod';
import { FinetuneError } from '../core/errors.ts';
import { quote } from '../core/quote.ts';

/** Presets accepted by lora_target_modules besides a comma-separated list. */
export const TARGET_PRESETS: Readonly<Record<string, readonly Projection[]>> = { 'all-linear': PROJECTIONS };

export type Group = 'replicate' | 'extra';

interface FieldBase<K extends string, T> {
  name: K;
  /** Short label for the form. */
  label: string;
  /** One or two sentences for a tooltip / `--help`. */
  help: string;
  group: Group;
  default: T;
}
export interface IntField<K extends string = string> extends FieldBase<K, number> {
  type: 'int';
  min: number;
  max?: number;
}
export interface FloatField<K extends string = string> extends FieldBase<K, number> {
  type: 'float';
  min: number;
  /** The value must be greater than min, not equal to it (a learning rate of 0 trains nothing). */
  exclusiveMin?: boolean;
  max?: number;
  /** The value must be less than max (a dropout of 1 drops every adapter input: nothing trains). */
  exclusiveMax?: boolean;
  /** Values above this are accepted with a warning (legal, but almost certainly a mistake). */
  warnAbove?: number;
  /** A sensible step for a number input. */
  step: number;
}
export interface BoolField<K extends string = string> extends FieldBase<K, boolean> {
  type: 'bool';
}
export interface EnumField<K extends string = string, C extends string = string> extends FieldBase<K, C> {
  type: 'enum';
  choices: readonly C[];
}
export interface StringField<K extends string = string> extends FieldBase<K, string | undefined> {
  /** 'file': a JSONL file (a URL for Replicate, a path for the CLI, a picked file on the page). */
  type: 'string' | 'file';
}
export type FieldMeta = IntField | FloatField | BoolField | EnumField | StringField;

const replicate = 'replicate' as const;
const extra = 'extra' as const;

/** Every hyperparameter, in form order: Replicate's first, then ours. */
export const FIELDS = [
  // ---- Replicate's training inputs -------------------------------------------------------------------------
  { name: 'train_data', type: 'file', group: replicate, default: undefined, label: 'Training data', help: 'JSONL file, one {"text"} or {"prompt", "completion"} object per line. For Replicate: a URL.' },
  { name: 'num_train_epochs', type: 'int', group: replicate, default: 3, min: 1, label: 'Epochs', help: 'Passes over the training rows.' },
  { name: 'train_batch_size', type: 'int', group: replicate, default: 4, min: 1, label: 'Batch size', help: 'Sequences per optimizer step (global batch size).' },
  { name: 'micro_batch_size', type: 'int', group: replicate, default: 4, min: 1, label: 'Micro-batch size', help: 'Sequences per forward/backward pass; when smaller than the batch size, gradients are accumulated over train_batch_size / micro_batch_size passes.' },
  { name: 'num_validation_samples', type: 'int', group: replicate, default: 50, min: 1, label: 'Validation rows', help: 'Rows used for validation: the first ones of validation_data, or else the last ones of the training data (held out from training).' },
  { name: 'validation_data', type: 'file', group: replicate, default: undefined, label: 'Validation data', help: 'Optional JSONL file for validation, same format as the training data.' },
  { name: 'validation_batch_size', type: 'int', group: replicate, default: 1, min: 1, label: 'Validation batch size', help: "Sequences per validation batch: the validation loss averages the batches' mean token losses (as Replicate's trainer). The GPU computes several batches per forward pass, so this changes the number, not the memory or the speed." },
  { name: 'run_validation', type: 'bool', group: replicate, default: true, label: 'Run validation', help: 'Compute the validation loss during training.' },
  { name: 'validation_prompt', type: 'string', group: replicate, default: undefined, label: 'Validation prompt', help: 'Optional prompt whose completion is generated and shown at each validation (under the instruct layout, in [INST] tags as the rows\' prompts are).' },
  { name: 'learning_rate', type: 'float', group: replicate, default: 1e-4, min: 0, step: 1e-5, exclusiveMin: true, warnAbove: 0.1, label: 'Learning rate', help: 'Peak learning rate of AdamW.' },
  { name: 'pack_sequences', type: 'bool', group: replicate, default: false, label: 'Pack sequences', help: 'Put several rows into one sequence of up to chunk_size tokens (they never attend to each other): fewer padding tokens.' },
  { name: 'wrap_packed_sequences', type: 'bool', group: replicate, default: false, label: 'Wrap packed sequences', help: 'With packing: concatenate all rows and cut every chunk_size tokens (constant length, but rows are split across sequences).' },
  { name: 'chunk_size', type: 'int', group: replicate, default: 2048, min: 1, label: 'Chunk size', help: 'Tokens per packed sequence.' },
  { name: 'peft_method', type: 'enum', group: replicate, default: 'lora', choices: ['lora', 'qlora'], label: 'Method', help: 'lora: adapters on the full-precision base; qlora: adapters on a 4-bit NF4 base (less memory).' },
  { name: 'seed', type: 'int', group: replicate, default: 42, min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER, label: 'Seed', help: 'Seeds the shuffling of the rows and the adapter initialisation: the same seed gives the same run.' },
  { name: 'lora_rank', type: 'int', group: replicate, default: 8, min: 1, max: 256, label: 'LoRA rank', help: 'Rank r of the adapter matrices.' },
  { name: 'lora_alpha', type: 'int', group: replicate, default: 16, min: 1, label: 'LoRA alpha', help: 'Scaling of the adapter output: alpha / rank.' },
  { name: 'lora_dropout', type: 'float', group: replicate, default: 0.05, min: 0, max: 1, exclusiveMax: true, step: 0.01, label: 'LoRA dropout', help: 'Dropout on the adapter input during training.' },
  // ---- ours ----------------------------------------------------------------------------------------------------
  { name: 'layout', type: 'enum', group: extra, default: 'replicate', choices: ['replicate', 'instruct'], label: 'Layout', help: 'replicate: <s> prompt\\ncompletion </s>, loss on every token (as Replicate). instruct: <s>[INST] prompt [/INST] completion</s>, loss on the completion only.' },
  { name: 'lora_target_modules', type: 'string', group: extra, default: 'q_proj,v_proj', label: 'LoRA target modules', help: 'Comma-separated projections that get adapters (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), or "all-linear" for all seven.' },
  { name: 'padding_free', type: 'bool', group: extra, default: true, label: 'Padding-free batches', help: "Lay each micro-batch's rows end to end in as few rows as fit (they never attend to each other), so the GPU skips most padding: the same losses and gradients as padded rows up to rounding (LoRA dropout draws other masks). Off: each row padded to the micro-batch's longest, as Replicate's trainer does." },
  { name: 'max_seq_len', type: 'int', group: extra, default: 4096, min: 1, max: 32768, label: 'Max sequence length', help: 'Rows longer than this many tokens are truncated (with a warning), as Replicate does at 4096.' },
  { name: 'lr_scheduler', type: 'enum', group: extra, default: 'linear', choices: ['constant', 'linear', 'cosine'], label: 'LR schedule', help: 'After the warmup: keep the learning rate, decay it linearly to 0 (as Replicate), or along a cosine.' },
  { name: 'warmup_ratio', type: 'float', group: extra, default: 0.03, min: 0, max: 0.5, step: 0.01, label: 'Warmup ratio', help: 'Fraction of the steps spent ramping the learning rate up from 0.' },
  { name: 'weight_decay', type: 'float', group: extra, default: 0, min: 0, max: 1, step: 0.01, label: 'Weight decay', help: 'AdamW decoupled weight decay on the adapter weights.' },
  { name: 'max_grad_norm', type: 'float', group: extra, default: 1.0, min: 0, step: 0.1, label: 'Max gradient norm', help: 'Clip the global gradient norm to this value; 0 turns clipping off.' },
  { name: 'max_steps', type: 'int', group: extra, default: 0, min: 0, label: 'Stop after', help: 'Stop after this many optimizer steps (the last epoch ends early; validation and a checkpoint still happen at the end); 0 = train every epoch to the end.' },
  { name: 'eval_steps', type: 'int', group: extra, default: 0, min: 0, label: 'Evaluate every', help: 'Run validation every this many steps; 0 = at the end of each epoch.' },
  { name: 'eval_on_start', type: 'bool', group: extra, default: false, label: 'Validate before training', help: "Also validate (and write the validation_prompt sample) before the first step: the untrained adapter's loss, the baseline the curve is read against (as transformers' eval_on_start). A new run only: a resume has it from its record." },
  { name: 'save_steps', type: 'int', group: extra, default: 0, min: 0, label: 'Checkpoint every', help: 'Save the adapter every this many steps; 0 = at the end of each epoch.' },
  { name: 'save_every_minutes', type: 'float', group: extra, default: 10, min: 0, step: 1, label: 'Checkpoint every (minutes)', help: 'Also save the adapter once this many minutes have passed since the last save, so a killed run loses at most that much; 0 = save by steps only.' },
  { name: 'quantization', type: 'enum', group: extra, default: 'none', choices: ['nf4', 'nf4-double', 'none'], label: 'Base quantization', help: 'How the frozen base is stored: nf4 (4.5 bits/weight), nf4-double (NF4 with quantized block scales, ≈4.13 bits, as Replicate\'s QLoRA) or none. Follows peft_method when not set: qlora → nf4-double, lora → none.' },
] as const satisfies readonly FieldMeta[];

type FieldsT = typeof FIELDS;
type FieldOf<K> = Extract<FieldsT[number], { name: K }>;
type ValueOf<F> = F extends { type: 'int' | 'float' }
  ? number
  : F extends { type: 'bool' }
    ? boolean
    : F extends { type: 'enum'; choices: readonly (infer C)[] }
      ? C
      : string | undefined;

export type HyperparamName = FieldsT[number]['name'];
/** The one hyperparameter object. Optional strings are undefined when not given. */
export type Hyperparams = { -readonly [K in HyperparamName]: ValueOf<FieldOf<K>> };

export type PeftMethod = Hyperparams['peft_method'];
export type LrScheduler = Hyperparams['lr_scheduler'];

export const FIELD_BY_NAME: Readonly<Record<HyperparamName, FieldMeta>> = Object.fromEntries(FIELDS.map((f) => [f.name, f])) as Record<HyperparamName, FieldMeta>;
export const HYPERPARAM_NAMES: readonly HyperparamName[] = FIELDS.map((f) => f.name);

// ---------------------------------------------------------------------------------------------------------------
// Messages

function show(v: unknown): string {
  // Cut short: a value comes from a flag, a form, or a saved run's record (a file anyone can edit), and a lora_rank of
  // a megabyte made a message of a megabyte.
  if (typeof v === 'string') return v.length > 80 ? `${quote(v.slice(0, 80))}…` : quote(v);
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : String(v);
}

/** A bound in words; the safe-integer limits as Try it's seed writes them (src/config/generation.ts), not 16 digits. */
function fmt(n: number): string {
  if (n === Number.MAX_SAFE_INTEGER) return '2^53 - 1';
  if (n === Number.MIN_SAFE_INTEGER) return '-(2^53 - 1)';
  return String(n);
}

/** What a field accepts, e.g. "an integer from 1 to 256", "a number of at least 0", "one of lora, qlora". */
export function describeRule(f: FieldMeta): string {
  switch (f.type) {
    case 'int':
    case 'float': {
      const kind = f.type === 'int' ? 'an integer' : 'a number';
      const lo = fmt(f.min);
      const hi = f.max === undefined ? '' : fmt(f.max);
      const exclusive = f.type === 'float' && (f.exclusiveMin || f.exclusiveMax);
      if (exclusive) {
        const lower = f.exclusiveMin ? `greater than ${lo}` : `of at least ${lo}`;
        return hi ? `${kind} ${lower} and ${f.exclusiveMax ? 'below' : 'at most'} ${hi}` : `${kind} ${lower}`;
      }
      if (lo && hi) return `${kind} from ${lo} to ${hi}`;
      if (lo) return `${kind} of at least ${lo}`;
      if (hi) return `${kind} of at most ${hi}`;
      return kind;
    }
    case 'bool':
      return 'true or false';
    case 'enum':
      return `one of ${f.choices.join(', ')}`;
    case 'string':
    case 'file':
      return 'a string';
  }
}

/** A number as flags and form inputs may write it: decimal, with an optional exponent. */
const NUMBER_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Whether a number's text names a value a double cannot hold: a non-zero one that Number() rounds to 0 ("1e-400"), or
 * one it rounds to infinity ("1e400"). Such text stays text (see coerce), and its message says why.
 */
function beyondDouble(text: string): 'small' | 'large' | null {
  const n = Number(text);
  if (!Number.isFinite(n)) return 'large';
  return n === 0 && /[1-9]/.test(text.split(/[eE]/)[0]) ? 'small' : null;
}

function ruleMessage(f: FieldMeta, input: unknown): string {
  const base = `${f.name} must be ${describeRule(f)}, got ${show(input)}`;
  if (f.type !== 'float' || typeof input !== 'string' || !NUMBER_TEXT.test(input.trim())) return base;
  const beyond = beyondDouble(input.trim());
  if (beyond === 'small') return `${base}, which is too small to hold (it rounds to 0)`;
  if (beyond === 'large') return `${base}, which is too large to hold (it rounds to infinity)`;
  return base;
}

// ---------------------------------------------------------------------------------------------------------------
// Schema

/** Strings from flags and form inputs become numbers / booleans here; anything else is left for the check to refuse. */
function coerce(f: FieldMeta, v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const s = v.trim();
  if (f.type === 'int' || f.type === 'float') {
    if (s === '' || !NUMBER_TEXT.test(s)) return v;
    const n = Number(s);
    // Text that is no safe integer stays text, so the message echoes what was typed: Number('9007199254740993') is
    // 9007199254740992, and "got 9007199254740992" named a value nobody typed.
    if (f.type === 'int' && !Number.isSafeInteger(n)) return v;
    // So does a number a double cannot hold: learning_rate "1e-400" was refused as "got 0", weight_decay took it as 0.
    if (beyondDouble(s) !== null) return v;
    return n;
  }
  if (f.type === 'bool') {
    const l = s.toLowerCase();
    if (l === 'true' || l === '1' || l === 'yes') return true;
    if (l === 'false' || l === '0' || l === 'no') return false;
    return v;
  }
  // An empty optional text (validation_prompt) is its absence; a field with a default (lora_target_modules) is
  // never emptied on purpose, so its empty text stays for the check to refuse rather than quietly meaning the default.
  if (f.type === 'string' || f.type === 'file') return v.length === 0 && f.default === undefined ? undefined : v;
  return s;
}

function fieldSchema(f: FieldMeta): z.ZodType {
  const error = (iss: { input?: unknown }) => ruleMessage(f, iss.input);
  let base: z.ZodType;
  switch (f.type) {
    case 'int': {
      let s = z.number({ error }).int({ error }).min(f.min, { error });
      if (f.max !== undefined) s = s.max(f.max, { error });
      base = s;
      break;
    }
    case 'float': {
      let s = f.exclusiveMin ? z.number({ error }).gt(f.min, { error }) : z.number({ error }).min(f.min, { error });
      if (f.max !== undefined) s = f.exclusiveMax ? s.lt(f.max, { error }) : s.max(f.max, { error });
      base = s.refine((x) => Number.isFinite(x), { error });
      break;
    }
    case 'bool':
      base = z.boolean({ error });
      break;
    case 'enum':
      base = z.enum(f.choices as [string, ...string[]], { error });
      break;
    case 'string':
    case 'file':
      base = z.string({ error }).optional();
      break;
  }
  const withDefault = f.default === undefined ? base : base.default(f.default as never);
  return z.preprocess((v) => coerce(f, v), withDefault);
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

export function unknownNameMessage(name: string): string {
  const normalized = name.replace(/-/g, '_');
  let best: string | null = null;
  let bestD = Infinity;
  for (const n of HYPERPARAM_NAMES) {
    const dd = distance(normalized.toLowerCase(), n);
    if (dd < bestD) {
      bestD = dd;
      best = n;
    }
  }
  const hint = best !== null && bestD <= Math.max(2, Math.floor(best.length / 4)) ? ` (did you mean ${best}?)` : '';
  return `unknown hyperparameter "${name}"${hint}`;
}

/** The projections a lora_target_modules value names (a preset or a comma-separated list), or an error message. */
export function parseTargetModules(value: string): Projection[] | string {
  const v = value.trim();
  if (TARGET_PRESETS[v]) return [...TARGET_PRESETS[v]];
  const names = v.split(',').map((s) => s.trim());
  const expected = `expected a comma-separated list of ${PROJECTIONS.join(', ')}, or "all-linear"`;
  if (v === '') return `lora_target_modules is empty; ${expected}`;
  if (names.length === 0 || names.some((n) => n.length === 0)) return `lora_target_modules has an empty name in ${quote(value)}; ${expected}`;
  const bad = names.filter((n) => !(PROJECTIONS as readonly string[]).includes(n));
  if (bad.length > 0) return `lora_target_modules: unknown module${bad.length > 1 ? 's' : ''} ${bad.map((b) => quote(b)).join(', ')}; ${expected}`;
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) return `lora_target_modules names ${dup} twice`;
  // Canonical order, as PEFT lists them.
  return PROJECTIONS.filter((p) => names.includes(p));
}

/** The base quantization peft_method implies when quantization is not given. */
export function defaultQuantization(peft: PeftMethod): Quantization {
  return peft === 'qlora' ? 'nf4-double' : 'none';
}

const shape = Object.fromEntries(FIELDS.map((f) => [f.name, fieldSchema(f)])) as Record<HyperparamName, z.ZodType>;

/** The zod schema of the one hyperparameter object (unknown keys refused, cross-field rules checked). */
export const hyperparamsSchema = z
  .object(shape)
  .strict()
  .superRefine((raw, ctx) => {
    const hp = raw as Hyperparams;
    const count = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;
    // Cross-field rules only between values that passed their own check (a bad value already has its message).
    if (count(hp.train_batch_size) && count(hp.micro_batch_size) && hp.train_batch_size % hp.micro_batch_size !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['micro_batch_size'],
        message: `train_batch_size (${hp.train_batch_size}) must be a multiple of micro_batch_size (${hp.micro_batch_size}): each optimizer step accumulates train_batch_size / micro_batch_size micro-batches`,
      });
    }
    const t = typeof hp.lora_target_modules === 'string' ? parseTargetModules(hp.lora_target_modules) : null;
    if (typeof t === 'string') ctx.addIssue({ code: 'custom', path: ['lora_target_modules'], message: t });
    if (hp.peft_method === 'qlora' && hp.quantization === 'none') {
      ctx.addIssue({ code: 'custom', path: ['quantization'], message: 'peft_method qlora needs a quantized base: quantization nf4 or nf4-double (or leave quantization unset)' });
    }
    if (hp.peft_method === 'lora' && hp.quantization !== 'none') {
      ctx.addIssue({ code: 'custom', path: ['quantization'], message: `quantization ${hp.quantization} is QLoRA: set peft_method qlora (or leave quantization unset)` });
    }
  });

/** Replaces zod's "Unrecognized key" wording by ours. */
function issueMessages(error: z.ZodError): string[] {
  const out: string[] = [];
  for (const iss of error.issues) {
    if (iss.code === 'unrecognized_keys') for (const k of iss.keys) out.push(unknownNameMessage(k));
    else out.push(iss.message);
  }
  return out;
}

/** `warnings`: values that are legal but almost certainly a mistake (the form shows them, the CLI prints them). */
export type ParseResult = { ok: true; value: Hyperparams; warnings: string[] } | { ok: false; errors: string[] };

/** Warnings about legal values outside the sane range (e.g. learning_rate above 0.1), one sentence each. */
export function hyperparamWarnings(hp: Readonly<Record<string, unknown>>): string[] {
  const out: string[] = [];
  for (const f of FIELDS as readonly FieldMeta[]) {
    const v = hp[f.name];
    if (f.type === 'float' && f.warnAbove !== undefined && typeof v === 'number' && v > f.warnAbove) {
      out.push(`${f.name} ${v} is above ${f.warnAbove}: far higher than fine-tuning normally uses, training will likely diverge (the default is ${String(f.default)})`);
    }
  }
  return out;
}

/**
 * Validates a partial hyperparameter object (from flags, the form, a saved job); missing fields take their defaults,
 * numbers and booleans may be strings. quantization, when absent, follows peft_method.
 */
export function safeParseHyperparams(input: Readonly<Record<string, unknown>>): ParseResult {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { ok: false, errors: ['hyperparameters must be an object'] };
  const withQuant: Record<string, unknown> = { ...input };
  for (const k of Object.keys(withQuant)) if (withQuant[k] === undefined) delete withQuant[k];
  if (withQuant.quantization === undefined || withQuant.quantization === '') {
    const peft = coerce(FIELD_BY_NAME.peft_method, withQuant.peft_method ?? 'lora');
    withQuant.quantization = peft === 'qlora' ? 'nf4-double' : 'none';
  }
  const r = hyperparamsSchema.safeParse(withQuant);
  if (r.success) return { ok: true, value: r.data as Hyperparams, warnings: hyperparamWarnings(r.data as Hyperparams) };
  // One message per problem: a value both too large and not a safe integer is two schema issues worded alike.
  return { ok: false, errors: [...new Set(issueMessages(r.error))] };
}

/** As safeParseHyperparams, throwing FinetuneError('bad-input') that lists every problem. */
export function parseHyperparams(input: Readonly<Record<string, unknown>>): Hyperparams {
  const r = safeParseHyperparams(input);
  if (!r.ok) throw new FinetuneError('bad-input', r.errors.join('; '), { errors: r.errors });
  return r.value;
}

/** Every field at its default. */
export function defaultHyperparams(): Hyperparams {
  return parseHyperparams({});
}

/** The projections that get adapters, from a validated object. */
export function targetModules(hp: Hyperparams): Projection[] {
  const t = parseTargetModules(hp.lora_target_modules ?? '');
  if (typeof t === 'string') throw new FinetuneError('bad-input', t);
  return t;
}

/** Only the fields that differ from their defaults (what a saved job or a command line needs to say). */
export function nonDefault(hp: Hyperparams): Partial<Hyperparams> {
  const d = defaultHyperparams();
  const out: Record<string, unknown> = {};
  for (const name of HYPERPARAM_NAMES) {
    if (name === 'quantization' ? hp.quantization !== defaultQuantization(hp.peft_method) : hp[name] !== d[name]) out[name] = hp[name];
  }
  return out as Partial<Hyperparams>;
}

/**
 * Every hyperparameter a run used, in the form's order (Replicate's, then ours), with whether it is the default (the
 * quantization's default follows peft_method, as nonDefault has it): what an exported adapter's README lists. The
 * files are named elsewhere, and an optional text left empty (validation_prompt) is not a value.
 */
export function hyperparamRows(hp: Hyperparams): { name: HyperparamName; value: string | number | boolean; isDefault: boolean }[] {
  const changed = nonDefault(hp);
  return FIELDS.flatMap((f) => {
    const value = hp[f.name];
    if (f.type === 'file' || value === undefined) return [];
    return [{ name: f.name, value, isDefault: !(f.name in changed) }];
  });
}
