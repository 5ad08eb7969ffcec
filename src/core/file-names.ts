// The names of files we hand to people, made in one place so the page's label and the worker's download agree.
import { INVISIBLE_IN_QUOTES } from './quote.ts';
import { formatCount } from './units.ts';

/** A file-name-safe slug of a model name: "mistralai/Mistral-7B-Instruct-v0.2" → "mistralai-Mistral-7B-Instruct-v0.2". */
export function fileSlug(name: string): string {
  const s = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '');
  return s.slice(0, 80) || 'model';
}

/**
 * Which adapter a file holds: a run's, after its step N, or one loaded from outside ('imported'), which has no step
 * here (it was named after the run's step, step0 or a later run's, as if this page had trained it).
 */
export type AdapterOrigin = number | 'imported';

/** adapter-<model>-step<N>.zip (or -imported.zip) for the PEFT pair; with -gguf before .zip for the whole bundle. */
export function adapterZipName(modelName: string, origin: AdapterOrigin, full: boolean): string {
  return `adapter-${fileSlug(modelName)}-${origin === 'imported' ? 'imported' : `step${origin}`}${full ? '-gguf' : ''}.zip`;
}

/** The longest base model name an export takes: a Hub id is at most 96 characters, a local path may be longer. */
export const MAX_BASE_MODEL_NAME = 300;

/**
 * Why `name` cannot be written as an adapter's base_model_name_or_path (the user's own words, from the page or
 * `finetune export --base-model`), or null when it can. PEFT's AutoPeftModelForCausalLM loads the base from it, and
 * the README names it, so it is one line of ordinary text.
 */
export function baseModelNameProblem(name: string): string | null {
  if (name.trim() === '') return 'the base model name is empty';
  if (name !== name.trim()) return 'the base model name starts or ends with a space';
  if (name.length > MAX_BASE_MODEL_NAME) return `the base model name has ${formatCount(name.length)} characters; at most ${MAX_BASE_MODEL_NAME} are taken`;
  const hidden = baseModelNameCharacterProblem(name);
  return hidden === null ? null : `${hidden}: remove it`;
}

/**
 * The character of `name` that keeps it from being written as an adapter's base model, described, or null: a control
 * character, or another of what quote() escapes. baseModelNameProblem's test of the characters, alone, for a name that
 * comes from a file (an adapter's adapter_config.json, a model folder's name) and is written out unless another is given:
 * that it is not empty or long is the file's business, but it must not read as another model's name where it is
 * written. Without a remedy: the caller says what can be done where the name came from.
 */
export function baseModelNameCharacterProblem(name: string): string | null {
  if (/\p{Cc}/u.test(name)) return 'the base model name holds a control character (a line break or a tab, say)';
  // The rest of what quote() escapes: the name goes into adapter_config.json, the README's heading and the GGUF's
  // general.name, where a bidirectional control ("evil/\u202Eledom" shows as "evil/model") or a character that shows as
  // nothing ("mistralai/Mistral\u200B-7B") makes it read as another model's, and a line separator breaks its one line.
  // Named by code point: the character itself shows as nothing.
  const invisible = name.match(INVISIBLE_IN_QUOTES)?.[0];
  if (invisible === undefined) return null;
  const c = invisible.charCodeAt(0);
  const code = `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  const named = INVISIBLE_NAMES.get(c);
  if (!named) return `the base model name holds ${code}, an invisible character`;
  const [what, kind] = named;
  if (kind === 'line break') return `the base model name holds ${code} (${what}), a line break`;
  if (kind === 'invisible') return `the base model name holds ${code} (${what}), an invisible character, which makes the name read as another`;
  return `the base model name holds ${code} (${what}), a bidirectional control, which reorders the text around it so that the name reads as another`;
}

/**
 * The Unicode names of INVISIBLE_IN_QUOTES' characters that are not control characters (\p{Cc}), with what they do to
 * a name, for messages.
 */
const INVISIBLE_NAMES: ReadonlyMap<number, readonly [string, 'bidi' | 'line break' | 'invisible']> = new Map([
  [0x00ad, ['soft hyphen', 'invisible']],
  [0x061c, ['arabic letter mark', 'bidi']],
  [0x180e, ['mongolian vowel separator', 'invisible']],
  [0x200b, ['zero width space', 'invisible']],
  [0x200e, ['left-to-right mark', 'bidi']],
  [0x200f, ['right-to-left mark', 'bidi']],
  [0x2028, ['line separator', 'line break']],
  [0x2029, ['paragraph separator', 'line break']],
  [0x202a, ['left-to-right embedding', 'bidi']],
  [0x202b, ['right-to-left embedding', 'bidi']],
  [0x202c, ['pop directional formatting', 'bidi']],
  [0x202d, ['left-to-right override', 'bidi']],
  [0x202e, ['right-to-left override', 'bidi']],
  [0x2060, ['word joiner', 'invisible']],
  [0x2066, ['left-to-right isolate', 'bidi']],
  [0x2067, ['right-to-left isolate', 'bidi']],
  [0x2068, ['first strong isolate', 'bidi']],
  [0x2069, ['pop directional isolate', 'bidi']],
  [0xfeff, ['zero width no-break space', 'invisible']],
]);

/**
 * How a model loaded from local files is named (saved runs are matched to their model by this name, so it stays as it
 * is): by its files, since a browser's file picker says nothing of the folder they came from.
 */
export function localFilesModelName(fileNames: readonly string[]): string {
  return `local files (${fileNames.join(', ')})`;
}

export function isLocalFilesModel(name: string): boolean {
  return name.startsWith('local files (');
}

/** A picked file's path from the picked folder down ('' for a file picked on its own). */
export function relativePath(f: File): string {
  return (f as File & { webkitRelativePath?: string }).webkitRelativePath ?? '';
}

/** The name of the folder the user picked (the first segment the files' relative paths share), or null for loose files. */
export function pickedFolderName(files: Iterable<File>): string | null {
  const tops = new Set([...files].map((f) => (relativePath(f).includes('/') ? relativePath(f).split('/')[0] : '')));
  const [top] = tops;
  return tops.size === 1 && top ? top : null;
}
