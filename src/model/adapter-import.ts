// One entry point for every LoRA adapter a person may bring: a PEFT folder or zip holding adapter_config.json with
// adapter_model.safetensors or adapter_model.bin (PyTorch's torch.save format, read by the restricted unpickler in
// torch-pickle.ts), and Replicate's training_output.zip as it comes (the adapter's folder is found by looking for
// adapter_config.json, not assumed). Everything ends in parseAdapter, so keys, rank, targets and shapes are checked
// the same way whatever the container, against the base model's config when one is given.

import { jsonTooDeepAt, MAX_JSON_DEPTH } from '../core/bounded-json.ts';
import { FinetuneError } from '../core/errors.ts';
import { startsWithGgufMagic } from '../core/gguf-magic.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, assertFiniteAdapter, parseAdapter, type LoraAdapter, type ReadAdapterOptions } from './lora-adapter.ts';
import { writeSafetensors } from './safetensors.ts';
import { checkJsonFileSize, isNotFound, readAll, type ByteSource, type FileSet } from './source.ts';
import { readTorchStateDict, isTorchArchive, type TorchTensor } from './torch-pickle.ts';
import { extractZip, listZip, looksLikeZip } from './zip-archive.ts';
import { quote, visibleText } from '../core/quote.ts';

/** PEFT's name for the torch.save weights file (older PEFT, and Replicate's trainer). */
export const ADAPTER_BIN_FILE = 'adapter_model.bin';

/** A folder (a FileSet: disk, picked files, the Hub) or the bytes of a zip (a PEFT zip, Replicate's training_output.zip). */
export type AdapterInput = FileSet | Uint8Array;

export interface ImportedAdapter {
  adapter: LoraAdapter;
  /** The folder inside the input that held the adapter ('' for the top level). */
  folder: string;
  /** Which weights file it was read from. */
  weightsFile: typeof ADAPTER_WEIGHTS_FILE | typeof ADAPTER_BIN_FILE;
  /** Its adapter_config.json as messages name it (the input, the folder in it: `x.zip/"run"/adapter_config.json`). */
  configFile: string;
  /** The README.md beside adapter_config.json (UTF-8, at most README_MAX_BYTES), when there is one: an export of it keeps its "Training" section. */
  readme?: string;
}

/** The file name of the README an adapter folder may hold beside its config. */
const README_NAME = 'README.md';
/** A README larger than this is not read (a model card is a few KiB; this is no place for a hostile size). */
export const README_MAX_BYTES = 1 << 20;

/**
 * The largest adapter file read whole into memory: adapter_model.bin (a torch.save zip, unzipped in memory) and a zip
 * found in a folder (Replicate's training_output.zip saved as it came). 2 GiB − 1 bytes, the bound every whole read
 * here has already: one zip entry (extractZip), Replicate's output download, and one read of a file in Node. Real
 * adapters fit: rank 128 (Replicate's most) on all seven projections of a 7B Mistral is 1.3 GB in float32. A larger one
 * (rank 256 in float32: 2.7 GB) is read as adapter_model.safetensors, tensor by tensor, which has no such bound. A
 * hostile size (a repository's 100 GB "adapter_model.bin") is refused by the size its source reports, before a read.
 */
export const MAX_ADAPTER_FILE_BYTES = 2 ** 31 - 1;

/** Refuses an adapter file to be read whole by its size (a File's, a Content-Range total), before it is read. */
export function checkAdapterFileSize(name: string, size: number, limit = MAX_ADAPTER_FILE_BYTES): void {
  if (size <= limit) return;
  throw new FinetuneError(
    'bad-input',
    `${name} is ${size} bytes, more than the ${limit}-byte limit (2 GiB) for an adapter .bin or zip, which is read whole: a rank-128 LoRA of all seven projections of a 7B model is 1.3 GB in float32; a larger adapter is read as ${ADAPTER_WEIGHTS_FILE} (tensor by tensor) beside its ${ADAPTER_CONFIG_FILE}`,
    { size, limit },
  );
}

/** What a zip given whole can be: bytes in memory, or a Blob / File (the page's), which has its size before a read. */
export type AdapterZipBlob = Pick<Blob, 'size' | 'arrayBuffer'>;

/**
 * The bytes of an adapter zip given whole (the page's zip input, a Replicate training's output), refused by its size
 * (checkAdapterFileSize) before a Blob is read: the page read a picked file whole whatever its size.
 */
export async function adapterZipBytes(name: string, zip: AdapterZipBlob | Uint8Array): Promise<Uint8Array> {
  checkAdapterFileSize(name, zip instanceof Uint8Array ? zip.byteLength : zip.size);
  return zip instanceof Uint8Array ? zip : new Uint8Array(await zip.arrayBuffer());
}

function readmeText(bytes: Uint8Array | undefined): string | undefined {
  if (!bytes || bytes.byteLength > README_MAX_BYTES) return undefined;
  return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
}

/** Entry names from the input, each quoted as a JSON string (a control character in one is escaped, not printed). */
function quotedNames(list: readonly string[]): string {
  return list.map((n) => quote(n)).join(', ');
}

/**
 * Where an adapter found in `folder` (a name from the input: a zip's entries, a folder's files; '' or ending in '/') is
 * named in messages: the input as it was given, then that folder as a JSON string (`x.zip/"output"`), escaped and
 * delimited like every other name from the input.
 */
function innerPath(where: string, folder: string): string {
  return folder ? `${visibleText(where)}/${quote(folder.slice(0, -1))}` : where;
}

// `where` names the input as it was given (a picked file or folder, a path, a Hub file): a path label, written with
// visibleText's escapes (no quotes, so it reads as a path) so that a bidirectional control in it cannot reorder the message.
function bad(where: string, message: string): FinetuneError {
  return new FinetuneError('bad-input', `${visibleText(where)}: ${message}`);
}

/** The PEFT state dict of a torch.save file as safetensors bytes, so that parseAdapter checks it like any other. */
function stateDictToSafetensors(tensors: Map<string, TorchTensor>): Uint8Array {
  return writeSafetensors([...tensors].map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.data })));
}

/** Files macOS's archiver adds beside the real ones (`__MACOSX/…`, `._name`): never the adapter. */
function isArchiverJunk(name: string): boolean {
  return name.startsWith('__MACOSX/') || name.split('/').some((s) => s.startsWith('._'));
}

/**
 * The folder holding adapter_config.json: the shallowest one (a trainer may keep checkpoint-N/ folders below the final
 * adapter); two at the same depth are ambiguous and refused.
 */
function adapterFolder(names: readonly string[], where: string): string | null {
  const configs = names.filter((n) => (n === ADAPTER_CONFIG_FILE || n.endsWith(`/${ADAPTER_CONFIG_FILE}`)) && !isArchiverJunk(n));
  if (!configs.length) return null;
  const depth = (n: string): number => n.split('/').length;
  // A loop, not Math.min(...depths): a spread of a few hundred thousand names (a folder, a zip64 listing) overflowed
  // the call stack with a RangeError.
  let shallowest = Infinity;
  for (const n of configs) shallowest = Math.min(shallowest, depth(n));
  const top = configs.filter((n) => depth(n) === shallowest);
  // One name twice (a zip's entries; a folder cannot): the entry is the trouble, as extractZip says of the others. It
  // read "holds several adapters (adapter_config.json, adapter_config.json)".
  // With a Set: top.indexOf for each name took time quadratic in their number (minutes for 200,000).
  const seen = new Set<string>();
  const twice = top.find((n) => seen.size === seen.add(n).size);
  if (twice !== undefined) throw bad(where, `holds ${quote(twice)} twice; which one is meant cannot be told: make the zip again with one of them`);
  // The first few by name, and how many: every name of a listing of thousands made a message of megabytes.
  if (top.length > 1) throw bad(where, `holds several adapters (${quotedNames(top.slice(0, 8))}${top.length > 8 ? `, … ${top.length} in all` : ''}); give one of them`);
  return top[0].slice(0, -ADAPTER_CONFIG_FILE.length);
}

function parseJsonBytes(bytes: Uint8Array, name: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    throw bad(name, `is not valid JSON: ${(e as Error).message}`);
  }
  // Refused before parsing: walking a deeply nested result (a message, a structured clone) overflows the stack.
  if (jsonTooDeepAt(text) >= 0) throw bad(name, `nests JSON deeper than ${MAX_JSON_DEPTH} levels: not an adapter config`);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw bad(name, `is not valid JSON: ${(e as Error).message}`);
  }
}

/** What is said of a GGUF LoRA: the export writes one beside the PEFT files, so a user may well pick it. */
const GGUF_NOT_READ = `is a GGUF LoRA (llama.cpp's format), which this app writes but does not read: import the PEFT files of the same adapter (${ADAPTER_CONFIG_FILE} with ${ADAPTER_WEIGHTS_FILE}), which the export zips hold beside it`;

/** An adapter weights file among `names` (its config is missing, or this would have found the adapter). */
function weightsAmong(names: readonly string[]): string | undefined {
  return names.find((n) => !isArchiverJunk(n) && [ADAPTER_WEIGHTS_FILE, ADAPTER_BIN_FILE].includes(n.split('/').pop() ?? ''));
}

/** The first GGUF file among `names`, when no adapter config was found beside it. */
function ggufAmong(names: readonly string[]): string | undefined {
  return names.find((n) => /\.gguf$/i.test(n) && !isArchiverJunk(n));
}

async function fromZip(bytes: Uint8Array, opts: ReadAdapterOptions): Promise<ImportedAdapter> {
  const where = opts.where ?? 'adapter zip';
  const entries = listZip(bytes, where);
  const names = entries.map((e) => e.name);
  const folder = adapterFolder(names, where);
  if (folder === null) {
    if (isTorchArchive(names)) {
      throw bad(where, `is a torch.save file (an ${ADAPTER_BIN_FILE} on its own); its ${ADAPTER_CONFIG_FILE} is needed too: give the folder or zip holding both`);
    }
    const weights = weightsAmong(names);
    if (weights) throw bad(where, `holds ${quote(weights)} but no ${ADAPTER_CONFIG_FILE} beside it: a PEFT adapter needs both`);
    const gguf = ggufAmong(names);
    if (gguf) throw bad(where, `${quote(gguf)} ${GGUF_NOT_READ}`);
    const zips = names.filter((n) => /\.zip$/i.test(n));
    if (zips.length) throw bad(where, `holds no ${ADAPTER_CONFIG_FILE}, only nested archive(s) ${quotedNames(zips.slice(0, 3))}: zips inside zips are not opened; extract it first`);
    throw bad(where, `holds no ${ADAPTER_CONFIG_FILE}: not a PEFT adapter (files: ${quotedNames(names.slice(0, 8))}${names.length > 8 ? ', …' : ''})`);
  }
  const has = (f: string): boolean => names.includes(folder + f);
  const weightsFile = has(ADAPTER_WEIGHTS_FILE) ? ADAPTER_WEIGHTS_FILE : has(ADAPTER_BIN_FILE) ? ADAPTER_BIN_FILE : null;
  if (!weightsFile) throw bad(where, `${quote(folder + ADAPTER_CONFIG_FILE)} has neither ${ADAPTER_WEIGHTS_FILE} nor ${ADAPTER_BIN_FILE} beside it`);
  const inner = innerPath(where, folder);
  const configFile = `${inner}/${ADAPTER_CONFIG_FILE}`;
  // By the size the archive records, before it is inflated (17 MiB of spaces deflate to 17 KiB).
  const configEntry = entries.find((e) => e.name === folder + ADAPTER_CONFIG_FILE);
  if (configEntry) checkJsonFileSize(configFile, configEntry.originalSize);
  const readmeEntry = entries.find((e) => e.name === folder + README_NAME);
  // Read only when it cannot make the import fail: small, and stored or deflated (a README never blocks an adapter).
  const wantReadme = readmeEntry !== undefined && readmeEntry.originalSize <= README_MAX_BYTES && (readmeEntry.compression === 0 || readmeEntry.compression === 8);
  const files = extractZip(bytes, where, (n) => n === folder + ADAPTER_CONFIG_FILE || n === folder + weightsFile || (wantReadme && n === folder + README_NAME));
  const config = parseJsonBytes(files.get(folder + ADAPTER_CONFIG_FILE) as Uint8Array, configFile);
  const weights = files.get(folder + weightsFile) as Uint8Array;
  const adapter =
    weightsFile === ADAPTER_WEIGHTS_FILE
      ? await parseAdapter(config, weights, { ...opts, where: inner })
      : await parseAdapter(config, stateDictToSafetensors(readTorchStateDict(weights, `${inner}/${ADAPTER_BIN_FILE}`)), { ...opts, where: inner, weightsName: ADAPTER_BIN_FILE });
  return { adapter, folder: folder.replace(/\/$/, ''), weightsFile, configFile, readme: readmeText(files.get(folder + README_NAME)) };
}

async function openIfPresent(files: FileSet, name: string): Promise<ByteSource | null> {
  try {
    return await files.open(name);
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
}

async function fromFileSet(files: FileSet, opts: ReadAdapterOptions): Promise<ImportedAdapter> {
  const where = opts.where ?? files.name ?? 'adapter';
  const names = files.list?.();
  let folder = '';
  if (names) {
    const found = adapterFolder(names, where);
    if (found === null) {
      // A folder holding just a zip (Replicate's training_output.zip saved as is): read that zip.
      const zips = names.filter((n) => /\.zip$/i.test(n) && !isArchiverJunk(n));
      if (zips.length === 1) {
        const zip = await files.open(zips[0]);
        const zipWhere = `${where}/${quote(zips[0])}`;
        checkAdapterFileSize(zipWhere, zip.size);
        return fromZip(await readAll(zip), { ...opts, where: zipWhere });
      }
      const weights = weightsAmong(names);
      if (weights) throw bad(where, `holds ${quote(weights)} but no ${ADAPTER_CONFIG_FILE} beside it: a PEFT adapter needs both`);
      const gguf = ggufAmong(names);
      if (gguf) throw bad(where, `${quote(gguf)} ${GGUF_NOT_READ}`);
      throw bad(where, `holds no ${ADAPTER_CONFIG_FILE}: a PEFT adapter needs ${ADAPTER_CONFIG_FILE} with ${ADAPTER_WEIGHTS_FILE} or ${ADAPTER_BIN_FILE}`);
    }
    folder = found;
  }
  const inner = innerPath(where, folder);
  const configFile = `${inner}/${ADAPTER_CONFIG_FILE}`;
  const configSource = await openIfPresent(files, folder + ADAPTER_CONFIG_FILE);
  if (!configSource) throw bad(inner, `no ${ADAPTER_CONFIG_FILE}: a PEFT adapter needs ${ADAPTER_CONFIG_FILE} with ${ADAPTER_WEIGHTS_FILE} or ${ADAPTER_BIN_FILE}`);
  checkJsonFileSize(configFile, configSource.size);
  const config = parseJsonBytes(await readAll(configSource), configFile);
  const readmeSource = await openIfPresent(files, folder + README_NAME);
  const readme = readmeSource && readmeSource.size <= README_MAX_BYTES ? readmeText(await readAll(readmeSource)) : undefined;
  const st = await openIfPresent(files, folder + ADAPTER_WEIGHTS_FILE);
  if (st) return { adapter: await parseAdapter(config, st, { ...opts, where: inner }), folder: folder.replace(/\/$/, ''), weightsFile: ADAPTER_WEIGHTS_FILE, configFile, readme };
  const bin = await openIfPresent(files, folder + ADAPTER_BIN_FILE);
  if (!bin) throw bad(inner, `has ${ADAPTER_CONFIG_FILE} but neither ${ADAPTER_WEIGHTS_FILE} nor ${ADAPTER_BIN_FILE}`);
  checkAdapterFileSize(`${inner}/${ADAPTER_BIN_FILE}`, bin.size);
  const tensors = readTorchStateDict(await readAll(bin), `${inner}/${ADAPTER_BIN_FILE}`);
  const adapter = await parseAdapter(config, stateDictToSafetensors(tensors), { ...opts, where: inner, weightsName: ADAPTER_BIN_FILE });
  return { adapter, folder: folder.replace(/\/$/, ''), weightsFile: ADAPTER_BIN_FILE, configFile, readme };
}

/** Reads an adapter from a folder or a zip and says where in it the adapter was found. */
export async function importAdapterDetailed(input: AdapterInput, opts: ReadAdapterOptions = {}): Promise<ImportedAdapter> {
  let imported: ImportedAdapter;
  if (input instanceof Uint8Array) {
    if (startsWithGgufMagic(input)) throw bad(opts.where ?? 'adapter', GGUF_NOT_READ);
    if (!looksLikeZip(input)) throw bad(opts.where ?? 'adapter', 'is not a zip archive (expected a PEFT adapter zip or Replicate\'s training_output.zip)');
    imported = await fromZip(input, opts);
  } else {
    imported = await fromFileSet(input, opts);
  }
  // A NaN or an infinity makes every output of the model NaN: generation printed "⁇ ⁇ ⁇" and a GGUF export wrote the
  // NaNs out, while only the PEFT export refused. Refused here, where every use of an adapter file begins.
  try {
    assertFiniteAdapter(imported.adapter, 'not usable');
  } catch (e) {
    throw bad(opts.where ?? (input instanceof Uint8Array ? 'adapter' : (input.name ?? 'adapter')), e instanceof Error ? `is ${e.message}` : String(e));
  }
  return imported;
}

/**
 * Reads a LoRA adapter from a PEFT folder or zip (adapter_model.safetensors or adapter_model.bin) or Replicate's
 * training_output.zip. With `opts.base`, its layers, rank and shapes are checked against that model.
 */
export async function importAdapter(input: AdapterInput, opts: ReadAdapterOptions = {}): Promise<LoraAdapter> {
  return (await importAdapterDetailed(input, opts)).adapter;
}
