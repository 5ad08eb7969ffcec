// A Hub-layout checkpoint opened through a FileSet: config.json plus either model.safetensors or
// model.safetensors.index.json + shards. Every tensor is looked up through the index's weight_map (a layer can span
// two shards). Opening reads only headers; tensor data is read on demand. The tensor set is checked against the
// config: every expected Mistral tensor present, with the right shape and a floating-point dtype.

import { PROJECTIONS, type Projection } from '../core/mistral.ts';
import { FinetuneError } from '../core/errors.ts';
import { CONFIG_LIMITS, parseMistralConfig, type MistralConfig, type ModelDtype } from './config.ts';
import { openSafetensors, toFloat32, type SafetensorsDtype, type SafetensorsFile, type TensorInfo } from './safetensors.ts';
import { checkFileName, isNotFound, readJson, type FileSet } from './source.ts';
import { firstFew, quote, visibleText } from '../core/quote.ts';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';

export interface CheckpointTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Raw little-endian bytes, row-major. */
  bytes: Uint8Array;
}

export interface CheckpointTensorInfo extends TensorInfo {
  /** The shard (file name in the FileSet) holding the tensor. */
  file: string;
}

/**
 * The frozen base model's files as the Hub lays them out (a "checkpoint" in Hugging Face's sense). Named apart from
 * the training state (run/saved-run.ts) and from recomputation inside the runner, which are other kinds of checkpoint.
 */
export interface BaseCheckpoint {
  config: MistralConfig;
  /** config.json as parsed JSON (for fields we do not model). */
  configJson: Record<string, unknown>;
  /** The tensor names, in index/file order. */
  tensorNames: string[];
  /** The files the checkpoint is made of (shards, or model.safetensors). */
  files: string[];
  /** Total bytes of tensor data. */
  totalBytes: number;
  /**
   * The widest dtype the weight matrices are stored in, from the safetensors headers: what a load uploads and quantises
   * from (config.json's torch_dtype can say otherwise). Null for a checkpoint without matrices to tell.
   */
  storedDtype: ModelDtype | null;
  /** Tensors the checkpoint holds beyond the Mistral set (ignored by the model), and other notes. */
  warnings: string[];
  has(name: string): boolean;
  info(name: string): CheckpointTensorInfo;
  read(name: string): Promise<CheckpointTensor>;
  /** Reads a floating-point tensor and converts it to f32 on the CPU. */
  readFloat32(name: string): Promise<Float32Array>;
}


/** [out, in] of a layer's linear module (y = x Wᵀ). */
export function moduleShape(c: MistralConfig, module: Projection): [number, number] {
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  switch (module) {
    case 'q_proj':
      return [q, c.hidden];
    case 'k_proj':
    case 'v_proj':
      return [kv, c.hidden];
    case 'o_proj':
      return [c.hidden, q];
    case 'gate_proj':
    case 'up_proj':
      return [c.intermediate, c.hidden];
    case 'down_proj':
      return [c.hidden, c.intermediate];
  }
}

/** The Hub name of a layer's linear weight, e.g. model.layers.3.self_attn.q_proj.weight. */
export function moduleWeightName(layer: number, module: Projection): string {
  const group = module === 'gate_proj' || module === 'up_proj' || module === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${group}.${module}.weight`;
}

/**
 * Every tensor a Mistral checkpoint must hold, with its shape, in a stable order. `layers` (default: the config's)
 * lists only the first layers, so a config claiming more layers than a file holds costs no more than the file.
 */
export function expectedTensors(c: MistralConfig, layers = c.layers): Map<string, number[]> {
  const m = new Map<string, number[]>();
  m.set('model.embed_tokens.weight', [c.vocabSize, c.hidden]);
  for (let l = 0; l < Math.min(layers, c.layers); l++) {
    m.set(`model.layers.${l}.input_layernorm.weight`, [c.hidden]);
    for (const mod of PROJECTIONS.slice(0, 4)) m.set(moduleWeightName(l, mod), moduleShape(c, mod));
    m.set(`model.layers.${l}.post_attention_layernorm.weight`, [c.hidden]);
    for (const mod of PROJECTIONS.slice(4)) m.set(moduleWeightName(l, mod), moduleShape(c, mod));
  }
  m.set('model.norm.weight', [c.hidden]);
  if (!c.tieWordEmbeddings) m.set('lm_head.weight', [c.vocabSize, c.hidden]);
  return m;
}

/** How many layers tensor names cover: one more than the highest N of `model.layers.N.…` (0 if none). */
function layerCount(names: Iterable<string>): number {
  let highest = -1;
  for (const name of names) {
    const m = /^model\.layers\.(\d{1,9})\./.exec(name);
    if (m) highest = Math.max(highest, Number(m[1]));
  }
  return highest + 1;
}

const FLOAT_DTYPES: ReadonlySet<SafetensorsDtype> = new Set(['BF16', 'F16', 'F32', 'F64']);
const MODEL_DTYPE: Partial<Record<SafetensorsDtype, ModelDtype>> = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' };

/** The widest of the expected matrices' dtypes (bf16 and f16 are both 2 bytes: the first seen of those two). */
function widestMatrixDtype(expected: Map<string, number[]>, infos: Map<string, CheckpointTensorInfo>): ModelDtype | null {
  let widest: ModelDtype | null = null;
  for (const [name, shape] of expected) {
    const d = shape.length === 2 ? MODEL_DTYPE[infos.get(name)?.dtype ?? 'F64'] : undefined;
    if (d === undefined) continue;
    if (widest === null || (d === 'float32' && widest !== 'float32')) widest = d;
  }
  return widest;
}

/** What a load and a plan say when config.json's torch_dtype is not the dtype the matrices are stored in; else null. */
export function dtypeDisagreement(configDtype: ModelDtype | null, storedDtype: ModelDtype | null): string | null {
  if (configDtype === null || storedDtype === null || configDtype === storedDtype) return null;
  return `config.json says the weights are ${configDtype}; the safetensors store the weight matrices as ${storedDtype}`;
}

/** The dtypes a weight matrix is loaded in (engine/mistral/weights.ts): F64 ones only as vectors (norms). */
const MATRIX_DTYPES: ReadonlySet<SafetensorsDtype> = new Set(['BF16', 'F16', 'F32']);

/**
 * The most shard files an index may name: one for each tensor of a model of CONFIG_LIMITS' depth (the embeddings, the
 * final norm, lm_head, and each layer's seven projections and two norms). Real checkpoints have a few to a few hundred.
 */
const MAX_SHARD_FILES = 3 + 9 * CONFIG_LIMITS.num_hidden_layers;
/** How many shards are opened (a request each, on the Hub) and their headers read at once. */
const SHARD_PROBES_AT_ONCE = 8;

function bad(message: string, details?: Record<string, unknown>): FinetuneError {
  return new FinetuneError('bad-input', message, details);
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Which weight file layout the set has: the index when present, else the single file. */
async function findWeightLayout(files: FileSet, where: string): Promise<{ index: Record<string, unknown> | null }> {
  const listed = files.list?.();
  if (listed) {
    if (listed.includes(INDEX_FILE)) return { index: await loadIndex(files, where) };
    if (listed.includes(SINGLE_FILE)) return { index: null };
    // Names from the user's folder, quoted: a control character in one is escaped, not handed to a terminal.
    throw bad(`${where}: no ${SINGLE_FILE} or ${INDEX_FILE} (files: ${listed.slice(0, 20).map((n) => quote(n)).join(', ')}${listed.length > 20 ? ', …' : ''})`);
  }
  try {
    return { index: await loadIndex(files, where) };
  } catch (e) {
    if (!isNotFound(e)) throw e;
    return { index: null };
  }
}

async function loadIndex(files: FileSet, where: string): Promise<Record<string, unknown>> {
  const json = await readJson(await files.open(INDEX_FILE));
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad(`${where}/${INDEX_FILE}: must be a JSON object`);
  return json as Record<string, unknown>;
}

/** Opens a checkpoint; throws FinetuneError('bad-input') naming every missing or mis-shaped tensor. */
export async function openBaseCheckpoint(files: FileSet): Promise<BaseCheckpoint> {
  // The set's name (a picked folder, a path, a Hub repository) begins the messages below as a path label: written with
  // visibleText's escapes (no quotes: `Mistral-7B/config.json: …` reads as a path) so that a bidirectional control in it
  // cannot reorder them.
  const where = visibleText(files.name ?? 'checkpoint');
  let configJson: unknown;
  try {
    configJson = await readJson(await files.open('config.json'));
  } catch (e) {
    if (!isNotFound(e)) throw e;
    // A folder picked one level too high holds the model in a subfolder: name it rather than leave the user guessing.
    // The folders' names are the user's, quoted: a control character in one is escaped, not handed to a terminal.
    const nested = files.list?.().filter((n) => n.endsWith('/config.json')) ?? [];
    const hint = nested.length ? ` (the model's files look to be in ${nested.slice(0, 3).map((n) => quote(n.slice(0, -'/config.json'.length))).join(', ')}: pick that folder)` : '';
    throw bad(`${where}: no config.json${hint}`);
  }
  const config = parseMistralConfig(configJson, `${where}/config.json`);

  const { index } = await findWeightLayout(files, where);
  // name → shard file
  const weightMap = new Map<string, string>();
  const shardNames: string[] = [];
  const shardSet = new Set<string>();
  if (index) {
    const wm = index.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw bad(`${where}/${INDEX_FILE}: missing "weight_map" object`);
    for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof file !== 'string') throw bad(`${where}/${INDEX_FILE}: weight_map[${quote(name)}] must be a file name, got ${quote(file)}`);
      checkFileName(file, `${where}/${INDEX_FILE}`);
      weightMap.set(name, file);
      // A Set beside the list: shardNames.includes for every entry took time quadratic in the index's distinct shard
      // names (4.6 s for 60,000).
      if (!shardSet.has(file)) {
        shardSet.add(file);
        shardNames.push(file);
        // Every shard is opened below (a request each, on the Hub): an index naming tens of thousands of files would
        // start that many, and no checkpoint this program loads has more files than tensors.
        if (shardNames.length > MAX_SHARD_FILES) {
          throw bad(`${where}/${INDEX_FILE}: names more than ${MAX_SHARD_FILES} shard files, one for each tensor of the deepest Mistral model this program loads (${CONFIG_LIMITS.num_hidden_layers} layers): the index is corrupt or not a Mistral checkpoint's`);
        }
      }
    }
    if (weightMap.size === 0) throw bad(`${where}/${INDEX_FILE}: weight_map is empty`);
  } else {
    shardNames.push(SINGLE_FILE);
  }

  // The shards are probed together (opened, their headers read), SHARD_PROBES_AT_ONCE at a time. The first to fail
  // aborts the others' requests (through `probes`, which network file sets heed), keeps them from starting their
  // header reads and the shards not yet opened from being opened, and it is the failure reported, not the aborts it
  // caused: a missing shard left the other shards' downloads running, each up to its idle timeout, after the load had
  // already failed.
  const shards = new Map<string, SafetensorsFile>();
  const probes = new AbortController();
  const failures: unknown[] = [];
  const probe = async (file: string): Promise<void> => {
    let src;
    try {
      src = await files.open(file, { signal: probes.signal });
    } catch (e) {
      if (isNotFound(e)) {
        throw index
          ? bad(`${where}: shard ${quote(file)} named by ${INDEX_FILE} is missing`, { file })
          : bad(`${where}: no ${SINGLE_FILE} or ${INDEX_FILE}: not a safetensors checkpoint`, { file });
      }
      throw e;
    }
    probes.signal.throwIfAborted();
    shards.set(file, await openSafetensors(src));
  };
  // A few lanes, each taking the next shard: an index may name thousands of files (MAX_SHARD_FILES), and opening them
  // all at once started that many requests (sockets, on the command line) where Mistral-7B has 3.
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < shardNames.length && !probes.signal.aborted) {
      const file = shardNames[next++] as string;
      await probe(file).catch((e: unknown) => {
        failures.push(e);
        if (failures.length === 1) probes.abort(e);
        throw e;
      });
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(SHARD_PROBES_AT_ONCE, shardNames.length) }, lane));
  } catch (e) {
    throw failures.length > 0 ? failures[0] : e;
  }

  const infos = new Map<string, CheckpointTensorInfo>();
  if (index) {
    for (const [name, file] of weightMap) {
      const t = (shards.get(file) as SafetensorsFile).header.tensors.get(name);
      if (!t) throw bad(`${where}: ${INDEX_FILE} puts ${quote(name)} in ${quote(file)}, but ${quote(file)} has no such tensor`, { tensor: name, file });
      infos.set(name, { ...t, file });
    }
  } else {
    const only = shards.get(SINGLE_FILE) as SafetensorsFile;
    for (const t of only.header.tensors.values()) infos.set(t.name, { ...t, file: SINGLE_FILE });
  }

  // Check the tensor set against the config. The layers the tensors hold are counted first, and the expected set is
  // built for at most one layer more than that (its tensors then show as missing): what we build is proportional to
  // the files, never to what config.json claims.
  const layersHeld = layerCount(infos.keys());
  const expected = expectedTensors(config, layersHeld + 1);
  const missing: string[] = [];
  const misShaped: string[] = [];
  const wrongDtype: string[] = [];
  for (const [name, shape] of expected) {
    const t = infos.get(name);
    if (!t) missing.push(name);
    else if (!sameShape(t.shape, shape)) misShaped.push(`${name} is [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    else if (!FLOAT_DTYPES.has(t.dtype)) wrongDtype.push(`${name} is ${t.dtype}`);
    // Matrices go to the GPU as they are stored (or are quantised from there): 16- or 32-bit floats only. An F64 one
    // was refused only when the load reached it, minutes into a large model's load.
    else if (shape.length === 2 && !MATRIX_DTYPES.has(t.dtype)) wrongDtype.push(`${name} is ${t.dtype} (matrices must be BF16, F16 or F32)`);
  }
  if (missing.length || misShaped.length || wrongDtype.length) {
    const lines: string[] = [];
    const cap = (xs: string[]): string => firstFew(xs, 12, '; ', 'in all');
    if (config.layers > layersHeld) lines.push(`config.json says num_hidden_layers ${config.layers}, the tensors hold ${layersHeld} layer${layersHeld === 1 ? '' : 's'}`);
    if (missing.length) lines.push(`missing tensors: ${cap(missing)}`);
    if (misShaped.length) lines.push(`tensors whose shape does not match config.json: ${cap(misShaped)}`);
    if (wrongDtype.length) lines.push(`tensors of a dtype the model cannot use: ${cap(wrongDtype)}`);
    throw bad(`${where} does not match a Mistral model with this config.json: ${lines.join('. ')}`, { missing, misShaped, wrongDtype });
  }
  const warnings = [...config.warnings];
  const extra = [...infos.keys()].filter((n) => !expected.has(n));
  // Names from the files, quoted: a control character in one is escaped, not handed to a terminal.
  if (extra.length) warnings.push(`ignoring ${extra.length} tensor(s) a Mistral model does not use: ${extra.slice(0, 8).map((n) => quote(n)).join(', ')}${extra.length > 8 ? ', …' : ''}`);

  let totalBytes = 0;
  for (const t of infos.values()) totalBytes += t.end - t.begin;
  const storedDtype = widestMatrixDtype(expected, infos);
  const disagree = dtypeDisagreement(config.dtype, storedDtype);
  if (disagree) warnings.push(`${disagree}: the memory plan of the load counts them as stored`);
  if (index && typeof index.metadata === 'object' && index.metadata !== null) {
    const ts = (index.metadata as Record<string, unknown>).total_size;
    if (typeof ts === 'number' && ts !== totalBytes) warnings.push(`${INDEX_FILE} says total_size ${ts}, the shards hold ${totalBytes} bytes of tensors`);
  }

  const info = (name: string): CheckpointTensorInfo => {
    const t = infos.get(name);
    if (!t) throw bad(`${where}: no tensor named ${quote(name)}`);
    return t;
  };
  const read = async (name: string): Promise<CheckpointTensor> => {
    const t = info(name);
    const bytes = await (shards.get(t.file) as SafetensorsFile).read(name);
    return { dtype: t.dtype, shape: t.shape.slice(), bytes };
  };
  return {
    config,
    configJson: configJson as Record<string, unknown>,
    tensorNames: [...infos.keys()],
    files: shardNames,
    totalBytes,
    storedDtype,
    warnings,
    has: (name) => infos.has(name),
    info,
    read,
    async readFloat32(name) {
      const t = await read(name);
      if (!FLOAT_DTYPES.has(t.dtype)) throw bad(`${where}: ${quote(name)} is ${t.dtype}, not a floating-point tensor`);
      return toFloat32(t.bytes, t.dtype);
    },
  };
}
