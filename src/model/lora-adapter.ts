// PEFT LoRA adapters for Mistral: `adapter_config.json` + `adapter_model.safetensors`.
//
// Keys: base_model.model.model.layers.N.(self_attn|mlp).X_proj.lora_(A|B).weight, A [r, in], B [out, r].
// Forward: y = x Wᵀ + scaling · (dropout(x) Aᵀ) Bᵀ with scaling = alpha / r (alpha / √r with rsLoRA).
// Reading validates keys, ranks and shapes (against a Mistral config when one is given); writing produces what PEFT
// itself writes: config JSON with sorted keys and 2-space indent, safetensors F32 with metadata {"format": "pt"}.

import { parseHubReference } from '../core/hub-reference.ts';
import { RE2JS } from 're2js';
import { PROJECTIONS, type Projection } from '../core/mistral.ts';
import { FinetuneError } from '../core/errors.ts';
import { firstNonFinite } from '../core/finite.ts';
import { formatCount, formatCounted } from '../core/units.ts';
import { moduleShape } from './checkpoint.ts';
import { CONFIG_LIMITS, type MistralConfig } from './config.ts';
import { parseSafetensorsHeader, readTensor, toFloat32, writeSafetensors, type TensorToWrite } from './safetensors.ts';
import { bytesSource, isNotFound, readJson, type ByteSource, type FileSet } from './source.ts';
import { firstFew, quoteCut, visibleText } from '../core/quote.ts';


export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

export interface LoraConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  /** In canonical order (q, k, v, o, gate, up, down). */
  targetModules: Projection[];
  useRslora: boolean;
  /** base_model_name_or_path. */
  baseModel: string | null;
  /** Layers the adapter covers (PEFT's layers_to_transform), or null for all. */
  layersToTransform: number[] | null;
  /**
   * Items of a target_modules list that name no module of the model (another architecture's c_attn, a layer beyond
   * its depth): PEFT ignores them when others match, and so does this reader. Absent when there are none.
   */
  ignoredTargetModules?: string[];
  taskType: string;
  inferenceMode: boolean;
  /** The config JSON as read, so writing it back keeps fields we do not model. Null for a new adapter. */
  raw: Record<string, unknown> | null;
}

export interface LoraPair {
  /** (r, in) row-major. */
  A: Float32Array;
  /** (out, r) row-major. */
  B: Float32Array;
}

export interface LoraAdapter {
  config: LoraConfig;
  /** alpha / r, or alpha / √r with rsLoRA. */
  scaling: number;
  /** Number of layers of the model (length of `tensors`). */
  layers: number;
  /** tensors[layer][module]; a module absent from a layer is not adapted there. */
  tensors: Partial<Record<Projection, LoraPair>>[];
  /** (in, out) of each adapted module, as found in (and checked across) the tensors. */
  dims: Partial<Record<Projection, { in: number; out: number }>>;
}

export function loraScaling(c: Pick<LoraConfig, 'r' | 'loraAlpha' | 'useRslora'>): number {
  return c.useRslora ? c.loraAlpha / Math.sqrt(c.r) : c.loraAlpha / c.r;
}

/** The PEFT key of one LoRA factor. */
export function peftKey(layer: number, module: Projection, factor: 'A' | 'B'): string {
  const group = module === 'gate_proj' || module === 'up_proj' || module === 'down_proj' ? 'mlp' : 'self_attn';
  return `base_model.model.model.layers.${layer}.${group}.${module}.lora_${factor}.weight`;
}

// The layer index as PEFT writes it (Python's str of an int): "layers.00" names no module, and read as layer 0 it replaced
// that layer's real tensor without a word.
const KEY_RE = /^base_model\.model\.model\.layers\.(0|[1-9]\d*)\.(self_attn|mlp)\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.lora_(A|B)\.weight$/;

// `where` names the input as it was given (a picked file or folder, a path, a Hub file): a path label, written with
// visibleText's escapes (no quotes, so it reads as a path) so that a bidirectional control in it cannot reorder the message.
function bad(where: string, message: string, details?: Record<string, unknown>): FinetuneError {
  return new FinetuneError('bad-input', `${visibleText(where)}: ${message}`, details);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isEmpty(v: unknown): boolean {
  return v === undefined || v === null || v === false || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);
}

function canonicalModules(mods: Iterable<Projection>): Projection[] {
  const set = new Set(mods);
  return PROJECTIONS.filter((m) => set.has(m));
}

/** Longest target_modules pattern accepted (PEFT's own are under 100 characters). */
const MAX_TARGET_PATTERN = 1000;

/**
 * Most names a target_modules (or exclude_modules) list may hold: a Mistral layer has 7 projections, so a list naming
 * each of them in every layer of a deep model stays far below. A config of 16 MiB can hold about 1.8 million names,
 * which read one by one took tens of seconds before any was found wrong.
 */
const MAX_TARGET_NAMES = 16_384;

/**
 * Layer indices target_modules and exclude_modules are tried on when the model's depth is not known (deeper than any
 * Mistral-architecture model); with the model's config, its own layers, as PEFT matches names against its modules.
 */
const PATTERN_LAYERS = 256;

function moduleGroup(m: Projection): 'mlp' | 'self_attn' {
  return m === 'gate_proj' || m === 'up_proj' || m === 'down_proj' ? 'mlp' : 'self_attn';
}

/** PEFT's name of a module in the base model (what its target_modules and exclude_modules are matched against). */
function moduleName(layer: number, m: Projection): string {
  return `model.layers.${layer}.${moduleGroup(m)}.${m}`;
}

/** Which layers of each module a PEFT module spec selects: a Set of the layer indices tried, per module. */
type Selection = Map<Projection, Set<number>>;

const allLayers = (depth: number): Set<number> => new Set(Array.from({ length: depth }, (_, i) => i));

/**
 * The modules of MistralForCausalLM besides the seven projections, with a layer's as layer 0's: what a list item that
 * is not a projection may still name. lm_head and embed_tokens LoRA can adapt (the adapter then carries weights this
 * engine does not load); the rest are not linear layers, which PEFT refuses to adapt.
 */
const OTHER_MODULES: readonly { name: string; adaptable: boolean }[] = [
  { name: 'lm_head', adaptable: true },
  { name: 'model.embed_tokens', adaptable: true },
  ...['model', 'model.norm', 'model.layers', 'model.rotary_emb'].map((name) => ({ name, adaptable: false })),
  ...['', '.self_attn', '.mlp', '.input_layernorm', '.post_attention_layernorm', '.mlp.act_fn', '.self_attn.rotary_emb'].map((s) => ({ name: `model.layers.0${s}`, adaptable: false })),
];

/**
 * The non-projection module of a Mistral model of `depth` layers a list item names by PEFT's rule (the name or a dotted
 * suffix), if any.
 */
function otherModule(item: string, depth: number): { name: string; adaptable: boolean } | undefined {
  // Any layer index the model has stands for layer 0: which layer a norm is in does not change whether LoRA can adapt
  // it. A layer beyond the model's is no module of it.
  const layer = /(^|\.)layers\.(\d+)(\.|$)/.exec(item);
  if (layer && Number(layer[2]) >= depth) return undefined;
  const asLayer0 = item.replace(/(^|\.)layers\.\d+(\.|$)/, '$1layers.0$2');
  return OTHER_MODULES.find((m) => m.name === asLayer0 || m.name.endsWith(`.${asLayer0}`));
}

/**
 * The modules a target_modules or exclude_modules value names, layer by layer, as PEFT matches them against the names
 * of a model of `depth` layers: a string is a regular expression applied with re.fullmatch to every module name; a
 * list names modules by their name or a dotted suffix of it ("q_proj", "self_attn.q_proj",
 * "model.layers.3.self_attn.q_proj"). A target_modules item that names no module of that model is ignored, as PEFT
 * ignores it when others match, and returned in `ignored`.
 */
function selectModules(v: unknown, field: string, where: string, depth: number, ignored: string[] = []): Selection {
  const out: Selection = new Map();
  const add = (m: Projection, l: number): void => void (out.get(m) ?? out.set(m, new Set()).get(m)!).add(l);
  if (typeof v === 'string') {
    // PEFT applies the string with Python's re.fullmatch to module names. A file can hold any pattern, and a
    // backtracking engine (JavaScript's RegExp) can take exponential time on one such as (.*)*x: RE2's linear-time
    // matcher runs it instead, on a pattern of bounded length (real ones are a few dozen characters).
    if (v.length > MAX_TARGET_PATTERN) throw bad(where, `${field} is a pattern of ${v.length} characters, more than ${MAX_TARGET_PATTERN}`);
    let re: RE2JS;
    try {
      re = RE2JS.compile(v);
    } catch {
      throw bad(where, `${field} ${quoteCut(v)} is not a valid regular expression for our linear-time matcher (RE2 syntax: no lookaround or backreferences)`);
    }
    // Against the whole name only (model.layers.3.self_attn.q_proj), as PEFT's keys are: a pattern of the short name
    // alone ("q_proj", "(k|o)_proj") matches nothing in PEFT, and was once read here as that module in every layer.
    for (const m of PROJECTIONS) for (let l = 0; l < depth; l++) if (re.matches(moduleName(l, m))) add(m, l);
    return out;
  }
  if (!Array.isArray(v) || v.length === 0) throw bad(where, `${field} must be a non-empty list of module names or a pattern, got ${quoteCut(v)}`);
  if (v.length > MAX_TARGET_NAMES) throw bad(where, `${field} lists ${formatCount(v.length)} names, more than ${formatCount(MAX_TARGET_NAMES)} (7 projections a layer): the file is corrupt or not a LoRA adapter's config`);
  for (const item of v) {
    if (typeof item !== 'string') throw bad(where, `${field} holds a non-string ${quoteCut(item)}`);
    const short = item.split('.').pop() as string;
    if (!(PROJECTIONS as readonly string[]).includes(short)) {
      if (field === 'exclude_modules') continue; // excluding a module the adapter does not have changes nothing
      const other = otherModule(item, depth);
      if (other?.adaptable) throw bad(where, `target module ${quoteCut(item)} is not supported (supported: ${PROJECTIONS.join(', ')}): the adapter would carry weights for ${other.name}, which this engine does not load`);
      if (other) throw bad(where, `target module ${quoteCut(item)} names a module of a Mistral model that is not a linear layer (${other.name.replace('layers.0', 'layers.N')}): LoRA cannot adapt it, and PEFT refuses it too ("not supported")`);
      ignored.push(item);
      continue;
    }
    const m = short as Projection;
    // A dotted suffix of the module's full name: the short name matches every layer, a name with the layer index one.
    let hit = false;
    for (let l = 0; l < depth; l++) {
      const full = moduleName(l, m);
      if (full === item || full.endsWith(`.${item}`)) {
        add(m, l);
        hit = true;
      }
    }
    if (!hit) {
      // A layer the model does not have (or a path of another architecture): nothing to exclude, nothing PEFT adapts.
      if (field === 'target_modules') ignored.push(item);
      continue;
    }
  }
  return out;
}

function layerList(set: ReadonlySet<number>): string {
  return layerWords([...set].sort((a, b) => a - b));
}

/**
 * True when target_modules selects a projection in some layer 0–255: whether names that match nothing in the model
 * were written for a deeper one. A refusal there (a norm of layer 40, say) means no: at the model's depth it is no module.
 */
function selectsAnyLayer(v: unknown, where: string): boolean {
  try {
    return selectModules(v, 'target_modules', where, PATTERN_LAYERS).size > 0;
  } catch {
    return false;
  }
}

/**
 * Resolves PEFT's target_modules (a list of names, "all-linear", or a regex string) and exclude_modules to our module
 * names and, when they select layers, the layers they cover: those of a model of `depth` layers (the base model's,
 * when known), else of layers 0–255. This engine adapts one set of layers for all modules (what layers_to_transform
 * gives): a selection that gives modules different layers is refused, saying so.
 */
function resolveTargets(v: unknown, exclude: unknown, where: string, depth?: number): { targets: Projection[]; layers: number[] | null; ignored: string[] } {
  const tried = depth ?? PATTERN_LAYERS;
  // PEFT's shorthand, compared without case as PEFT does; any other string is a pattern.
  const allLinear = typeof v === 'string' && v.toLowerCase() === 'all-linear';
  const ignored: string[] = [];
  const selected: Selection = allLinear ? new Map(PROJECTIONS.map((m) => [m, allLayers(tried)])) : selectModules(v, 'target_modules', where, tried, ignored);
  if (selected.size === 0 && depth !== undefined && depth < PATTERN_LAYERS && selectsAnyLayer(v, where)) {
    // Names written for a deeper model: PEFT finds none of them in this one.
    throw bad(where, `target_modules ${quoteCut(v)} names only layers beyond the model's ${depth} (${layerWords(layerRange(0, depth - 1))}): it adapts none of its modules, and PEFT refuses it too ("not found in the base model")`);
  }
  const model = depth === undefined ? 'a Mistral model' : 'the model';
  const inLayers = `${PROJECTIONS.join(', ')} in ${depth === undefined ? 'any layer' : `any of its ${depth} layers`}`;
  if (selected.size === 0 && Array.isArray(v)) {
    throw bad(where, `target_modules ${quoteCut(v)} names no module of ${model} (${inLayers}): PEFT refuses it too ("not found in the base model")`);
  }
  if (selected.size === 0) {
    throw bad(
      where,
      `target_modules ${quoteCut(v)} is a regular expression, which PEFT matches against each module's whole name (such as ${moduleName(0, 'q_proj')}): it matches none of ${model}'s modules (${inLayers}), and PEFT refuses it too ("not found in the base model"). A pattern must match the whole name (".*\\.q_proj"); a list of names (["q_proj", "v_proj"]) matches by suffix`,
    );
  }
  if (!isEmpty(exclude)) {
    const excluded = selectModules(exclude, 'exclude_modules', where, tried);
    for (const [m, layers] of excluded) {
      const kept = selected.get(m);
      if (!kept) continue;
      for (const l of layers) kept.delete(l);
      if (kept.size === 0) selected.delete(m);
    }
    if (selected.size === 0) throw bad(where, `exclude_modules ${quoteCut(exclude)} excludes every module target_modules ${quoteCut(v)} selects: the adapter adapts nothing`);
  }
  const targets = canonicalModules(selected.keys());
  const first = selected.get(targets[0])!;
  const same = targets.every((m) => { const s = selected.get(m)!; return s.size === first.size && [...s].every((l) => first.has(l)); });
  if (!same) {
    const describe = (set: ReadonlySet<number>): string => {
      if (set.size === tried) return 'every layer';
      if (set.size <= tried / 2) return layerList(set);
      return `every layer but ${layerList(new Set([...allLayers(tried)].filter((l) => !set.has(l))))}`;
    };
    const per = targets.map((m) => `${m} in ${describe(selected.get(m)!)}`).join(', ');
    throw bad(
      where,
      `target_modules ${quoteCut(v)}${isEmpty(exclude) ? '' : ` with exclude_modules ${quoteCut(exclude)}`} adapts ${per}: this engine adapts the same layers in every module it targets (as layers_to_transform does), so it cannot apply this adapter`,
    );
  }
  return { targets, layers: first.size === tried ? null : [...first].sort((a, b) => a - b), ignored };
}

/**
 * The fields of adapter_config.json this reader understands: read above (r, alpha, targets, …), or metadata that does
 * not change what the adapter computes whatever its value. Any other field is accepted only at a value that means
 * "off" (null, false, {}, []), as PEFT writes every field it has; one that is set is refused (below, with what it does
 * where we know it), since an option this engine ignores would load an adapter that computes something else.
 */
const READ_FIELDS = new Set([
  'peft_type', 'r', 'lora_alpha', 'lora_dropout', 'use_rslora', 'target_modules', 'exclude_modules', 'layers_to_transform',
  'base_model_name_or_path', 'revision', 'task_type', 'inference_mode', 'init_lora_weights',
  // Metadata: the PEFT version and auto class, the Megatron module path (used only with a megatron_config), the layer
  // list's attribute name (layers_to_transform is read as Mistral's layer indices), QA-LoRA's group size (used only with
  // use_qalora), options for loading (runtime_config: GPU offload).
  'peft_version', 'auto_mapping', 'megatron_core', 'layers_pattern', 'qalora_group_size', 'runtime_config',
]);

/** What a set option does, and why this engine cannot apply it: the refusal's words. */
const OPTION_REFUSALS: Record<string, string> = {
  bias: "the adapter trains the base model's biases as well, which this engine does not load (only bias \"none\" can be applied)",
  use_dora: 'DoRA rescales every adapted weight by a trained magnitude vector; this engine adds the plain LoRA product',
  fan_in_fan_out: "the tensors are stored transposed (for GPT-2's Conv1D layers); Mistral's linear layers are not",
  lora_bias: 'the adapter trains a bias for lora_B, which this engine does not apply',
  rank_pattern: 'some modules have another rank than r, and this engine gives every module the same rank',
  alpha_pattern: 'some modules have another lora_alpha, and this engine scales every module alike',
  modules_to_save: 'the adapter carries whole trained copies of other modules (such as lm_head), which replace the base model\'s and which this engine does not load',
  layer_replication: "the adapter duplicates base layers (the model it runs on is deeper than the base), and this engine runs the base's layers as they are",
  trainable_token_indices: 'the adapter trains rows of the token embeddings, which this engine does not load',
  target_parameters: 'the adapter adapts parameters (such as mixture-of-experts weights) rather than linear layers',
  use_qalora: "QA-LoRA averages the input in groups before lora_A; this engine applies lora_A to the whole input",
  alora_invocation_tokens: 'an activated LoRA (aLoRA) applies only to the tokens after its invocation sequence, and this engine would apply it to every token',
  use_bdlora: 'BD-LoRA makes LoRA factors block-diagonal for tensor-parallel serving, and this engine reads and applies dense lora_A and lora_B only',
  arrow_config: "Arrow routes each token among several LoRA experts, and this engine applies one adapter to every token",
  megatron_config: "the adapter's layers are Megatron's parallel linear layers, whose sharded tensors this engine does not read",
  ensure_weight_tying: 'the adapter ties trained embedding and lm_head weights, which this engine does not load',
};

/**
 * Initialisations after which the adapter works only on a changed base model: PiSSA, OLoRA, CorDA and LoRA-GA subtract
 * the adapter's initial product from the base weights, LoftQ replaces them with a quantisation residual. Here the
 * adapter is added to the unmodified base, so it would compute something else.
 */
function baseRewritingInit(v: string): boolean {
  return v === 'pissa' || v.startsWith('pissa_niter_') || v === 'olora' || v === 'corda' || v === 'loftq' || v === 'lora_ga';
}

/** Initialisations that set only the adapter's own starting tensors: a trained adapter loads as any other. */
const PLAIN_INITS: readonly unknown[] = [true, false, 'gaussian', 'orthogonal', 'eva'];

function checkOptions(json: Record<string, unknown>, where: string): void {
  // An adapter for another task (PEFT's SEQ_CLS, TOKEN_CLS, QUESTION_ANS, FEATURE_EXTRACTION, SEQ_2_SEQ_LM) was trained
  // under a head this engine does not have (its weights, when saved, come as modules_to_save), or for embeddings:
  // applied to the language model's layers alone it was imported as a part of itself, without a word.
  const task = json.task_type;
  if (task !== undefined && task !== null && task !== 'CAUSAL_LM') {
    const head = isEmpty(json.modules_to_save) ? '' : ` with modules_to_save ${quoteCut(json.modules_to_save)} (the trained head or other modules it replaces)`;
    throw bad(
      where,
      `task_type ${quoteCut(task)}: this adapter was trained for another task than causal language modelling (CAUSAL_LM)${head}, and this engine runs only Mistral's language-model head, so it would apply a part of the adapter to another computation than it was trained for. Use an adapter trained with task_type "CAUSAL_LM" (or none)`,
    );
  }
  const init = json.init_lora_weights;
  if (typeof init === 'string' && baseRewritingInit(init)) {
    throw bad(
      where,
      `init_lora_weights ${quoteCut(init)}: this initialisation changes the base model's weights (PiSSA, OLoRA, CorDA and LoRA-GA subtract the adapter's initial product from them, LoftQ replaces them), so the adapter works only on that changed base, and this engine adds it to the unmodified model. Convert it to a plain LoRA with PEFT first where PEFT can (save_pretrained with path_initial_model_for_weight_conversion, for PiSSA, OLoRA and CorDA)`,
    );
  }
  if (init !== undefined && init !== null && !PLAIN_INITS.includes(init)) {
    throw bad(where, `init_lora_weights ${quoteCut(init)} is not an initialisation this app knows (${PLAIN_INITS.map((v) => quoteCut(v)).join(', ')} load as they are): it may have changed the base model's weights, which this engine would not do`);
  }
  const refused: string[] = [];
  for (const [key, value] of Object.entries(json)) {
    if (READ_FIELDS.has(key) || isEmpty(value) || (key === 'bias' && value === 'none')) continue;
    // The file's own key: looked up among OPTION_REFUSALS' own entries only, or "toString" read as Object.prototype's
    // function and said as its source text ("function toString() { [native code] }").
    const why = Object.hasOwn(OPTION_REFUSALS, key) ? OPTION_REFUSALS[key] : 'an option this app does not know, which may change what the adapter computes';
    refused.push(`${key}=${quoteCut(value)} (${why})`);
  }
  if (refused.length) throw bad(where, `unsupported LoRA option(s): ${refused.join('; ')}: this adapter cannot be applied as it was trained`);
}

/** The largest adapter scale (lora_alpha / r) accepted: far above any trained adapter's, far below overflow. */
export const MAX_LORA_SCALE = 1024;

/**
 * Parses and validates adapter_config.json (parsed JSON). `depth`: the base model's layer count, when known:
 * target_modules and exclude_modules are then matched against its modules only, as PEFT matches them (a name of a
 * layer beyond it names nothing); unknown, against layers 0–255.
 */
export function parseLoraConfig(json: unknown, where = ADAPTER_CONFIG_FILE, depth?: number): LoraConfig {
  if (!isObject(json)) throw bad(where, 'must be a JSON object');
  if (json.peft_type !== undefined && json.peft_type !== 'LORA') throw bad(where, `peft_type ${quoteCut(json.peft_type)} is not supported (only "LORA")`);
  const r = json.r;
  if (typeof r !== 'number' || !Number.isSafeInteger(r) || r <= 0) throw bad(where, `"r" must be a positive integer, got ${quoteCut(r)}`);
  const alpha = json.lora_alpha;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) throw bad(where, `"lora_alpha" must be a positive number, got ${quoteCut(alpha)}`);
  const dropout = json.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw bad(where, `"lora_dropout" must be in [0, 1), got ${quoteCut(dropout)}`);
  const useRslora = json.use_rslora ?? false;
  if (typeof useRslora !== 'boolean') throw bad(where, `"use_rslora" must be true or false, got ${quoteCut(useRslora)}`);
  // The adapter's output is scaled by alpha / r (alpha / √r with rsLoRA). Published adapters use 1 to a few dozen; an
  // absurd one (1e30) loaded silently and turned every output non-finite: generation printed ⁇, the loss read ln V.
  const scale = useRslora ? alpha / Math.sqrt(r) : alpha / r;
  if (scale > MAX_LORA_SCALE) {
    throw bad(where, `"lora_alpha" ${alpha} over "r" ${r} scales the adapter by ${scale.toPrecision(3)}${useRslora ? ' (rsLoRA: alpha / √r)' : ''}, more than ${MAX_LORA_SCALE}: no adapter trains with that; check lora_alpha`);
  }

  checkOptions(json, where);

  let layersToTransform: number[] | null = null;
  const ltt = json.layers_to_transform;
  if (ltt !== undefined && ltt !== null) {
    const list = Array.isArray(ltt) ? ltt : [ltt];
    if (!list.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) throw bad(where, `layers_to_transform must be layer indices, got ${quoteCut(ltt)}`);
    layersToTransform = [...new Set(list as number[])].sort((a, b) => a - b);
  }
  // PEFT's LoraConfig refuses these beside a pattern ("cannot be used when `target_modules` is a str"): the pattern
  // itself says which layers it matches.
  if (typeof json.target_modules === 'string') {
    for (const field of ['layers_to_transform', 'layers_pattern']) {
      const value = json[field];
      if (value !== undefined && value !== null) {
        throw bad(where, `${field} ${quoteCut(value)} cannot be used with target_modules given as a string (${quoteCut(json.target_modules)}, a regular expression): PEFT refuses this config. Name the layers in the pattern (".*\\.layers\\.(1|2)\\.self_attn\\.q_proj"), or give target_modules as a list`);
      }
    }
  }
  const resolved = resolveTargets(json.target_modules, json.exclude_modules, where, depth);
  // Layers selected by target_modules (a pattern naming layers) or exclude_modules, and by layers_to_transform: PEFT
  // adapts a module where both say so.
  if (resolved.layers) {
    const fromTargets = resolved.layers;
    layersToTransform = layersToTransform ? layersToTransform.filter((l) => fromTargets.includes(l)) : fromTargets;
    if (layersToTransform.length === 0) throw bad(where, `layers_to_transform ${quoteCut(ltt)} and the layers target_modules/exclude_modules select have no layer in common: the adapter adapts nothing`);
  }
  const base = json.base_model_name_or_path;
  // A Hub base at a revision is held as `owner/name@revision` (how the page and the CLI name what they loaded).
  const revision = typeof json.revision === 'string' && json.revision !== '' && typeof base === 'string' && parseHubReference(base)?.revision === null ? json.revision : null;
  return {
    r,
    loraAlpha: alpha,
    loraDropout: dropout,
    targetModules: resolved.targets,
    ...(resolved.ignored.length ? { ignoredTargetModules: resolved.ignored } : {}),
    useRslora,
    baseModel: typeof base === 'string' ? (revision ? `${base}@${revision}` : base) : null,
    layersToTransform,
    taskType: typeof json.task_type === 'string' ? json.task_type : 'CAUSAL_LM',
    inferenceMode: typeof json.inference_mode === 'boolean' ? json.inference_mode : true,
    raw: json,
  };
}

export interface ReadAdapterOptions {
  /** The base model's config: shapes and layer count are checked against it. */
  base?: MistralConfig;
  /** Names for messages. */
  where?: string;
  /** The weights file's name in messages, when the tensors came from another file (e.g. adapter_model.bin). */
  weightsName?: string;
}

/** "layer 3", "layers 2–3" or "layers 2, 5" (the first five of a longer list): ascending layer indices in words. */
function layerWords(list: readonly number[]): string {
  if (list.length === 1) return `layer ${list[0]}`;
  const contiguous = list.every((l, i) => i === 0 || l === list[i - 1] + 1);
  if (contiguous) return `layers ${list[0]}–${list[list.length - 1]}`;
  return `layers ${list.slice(0, 5).join(', ')}${list.length > 5 ? ', …' : ''}`;
}

function layerRange(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/**
 * An adapter trained for a model of another depth, said as the two layer counts in one sentence (then what that leaves
 * without weights, as a count): module by module it was 14 lines of "missing q_proj of layer 2" for a 2-layer adapter on
 * the 4-layer demo model, which hid the one fact that matters. Null when the depths agree, and when the adapter has a
 * hole in the middle or covers chosen layers on purpose (layers_to_transform): those are named module by module.
 */
function depthMismatch(found: ReadonlyMap<string, { layer: number }>, maxLayer: number, modelLayers: number, config: LoraConfig): string | null {
  const present = new Set([...found.values()].map((e) => e.layer));
  // Every layer from 0 to the last one present: the adapter's own depth is maxLayer + 1.
  const contiguous = present.size === maxLayer + 1;
  const has = contiguous ? `this adapter has ${formatCounted(maxLayer + 1, 'layer')}` : `this adapter has tensors up to layer ${maxLayer}`;
  const what = `${has}, the model has ${modelLayers}: it was trained for a model of another depth`;
  const todo = 'Load the model it was trained for (base_model_name_or_path in its adapter_config.json), or an adapter trained for this one.';
  const beyond = [...present].filter((l) => l >= modelLayers).sort((a, b) => a - b);
  if (beyond.length) return `${what} (its tensors for ${layerWords(beyond)} have no layer to go to). ${todo}`;
  if (contiguous && config.layersToTransform === null && maxLayer + 1 < modelLayers) {
    const modules = (modelLayers - maxLayer - 1) * config.targetModules.length;
    return `${what} (the ${formatCounted(modules, 'module')} of ${layerWords(layerRange(maxLayer + 1, modelLayers - 1))} would have no weights). ${todo}`;
  }
  return null;
}

/** Parses an adapter from its config JSON (parsed) and its safetensors file (bytes or a source). */
export async function parseAdapter(configJson: unknown, weights: Uint8Array | ByteSource, opts: ReadAdapterOptions = {}): Promise<LoraAdapter> {
  const where = opts.where ?? 'adapter';
  // Against the base model's layers when it is known, as PEFT matches names against the model's modules.
  const config = parseLoraConfig(configJson, `${where}/${ADAPTER_CONFIG_FILE}`, opts.base?.layers);
  const weightsName = opts.weightsName ?? ADAPTER_WEIGHTS_FILE;
  const source = weights instanceof Uint8Array ? bytesSource(weights, weightsName) : weights;
  const wfile = `${where}/${weightsName}`;
  const header = await parseSafetensorsHeader(source, wfile);
  const base = opts.base;

  // Group tensors by (layer, module).
  const found = new Map<string, { layer: number; module: Projection; A?: string; B?: string }>();
  const strange: string[] = [];
  let maxLayer = -1;
  /** The first tensor of a layer no model can have (the layer count sizes per-layer arrays when no base is given). */
  let tooDeep: { name: string; layer: string } | null = null;
  for (const name of header.tensors.keys()) {
    const m = KEY_RE.exec(name);
    if (!m) {
      strange.push(name);
      continue;
    }
    const layer = Number(m[1]);
    if (layer >= CONFIG_LIMITS.num_hidden_layers) tooDeep ??= { name, layer: m[1] };
    const module = m[3] as Projection;
    const group = m[2];
    const expectedGroup = module === 'gate_proj' || module === 'up_proj' || module === 'down_proj' ? 'mlp' : 'self_attn';
    if (group !== expectedGroup) {
      strange.push(name);
      continue;
    }
    const k = `${layer}.${module}`;
    const e = found.get(k) ?? { layer, module };
    e[m[4] as 'A' | 'B'] = name;
    found.set(k, e);
    maxLayer = Math.max(maxLayer, layer);
  }
  if (strange.length) {
    throw bad(
      wfile,
      `unexpected tensor name(s) ${strange.slice(0, 5).map((s) => quoteCut(s)).join(', ')}${strange.length > 5 ? ', …' : ''}; expected base_model.model.model.layers.N.(self_attn|mlp).X_proj.lora_(A|B).weight`,
    );
  }
  if (found.size === 0) throw bad(wfile, 'holds no LoRA tensors');
  // Against a base, depthMismatch names such a layer; without one, the adapter's depth is its deepest layer's, and a
  // forged index (layer 10^20) made the per-layer lists below V8's RangeError or millions of entries long.
  if (!base && tooDeep) {
    const most = CONFIG_LIMITS.num_hidden_layers;
    throw bad(wfile, `${tooDeep.name} is a tensor of layer ${tooDeep.layer}, and no model this program loads has more than ${most} layers (0–${most - 1}): the file is corrupt or not an adapter of such a model`);
  }

  const layers = base ? base.layers : maxLayer + 1;
  if (base) {
    const depth = depthMismatch(found, maxLayer, base.layers, config);
    if (depth) throw bad(wfile, depth);
  }
  const targets = new Set(config.targetModules);
  const coveredLayers = config.layersToTransform ?? Array.from({ length: layers }, (_, i) => i);
  for (const l of coveredLayers) {
    if (l >= layers) throw bad(where, `layers_to_transform names layer ${l}, but the model has ${layers} layers`);
  }
  const problems: string[] = [];
  for (const e of found.values()) {
    if (!targets.has(e.module)) problems.push(`${e.module} (layer ${e.layer}) is not in target_modules`);
    if (!e.A) problems.push(`missing ${peftKey(e.layer, e.module, 'A')}`);
    if (!e.B) problems.push(`missing ${peftKey(e.layer, e.module, 'B')}`);
  }
  for (const l of coveredLayers) {
    for (const mod of config.targetModules) if (!found.has(`${l}.${mod}`)) problems.push(`missing ${mod} of layer ${l}`);
  }
  if (config.layersToTransform) {
    for (const e of found.values()) if (!config.layersToTransform.includes(e.layer)) problems.push(`layer ${e.layer} is not in layers_to_transform`);
  }
  if (problems.length) throw bad(wfile, firstFew(problems, 8, '; ', 'problems'));

  const dims: Partial<Record<Projection, { in: number; out: number }>> = {};
  const tensors: Partial<Record<Projection, LoraPair>>[] = Array.from({ length: layers }, () => ({}));
  const r = config.r;
  const entries = [...found.values()].sort((a, b) => a.layer - b.layer || PROJECTIONS.indexOf(a.module) - PROJECTIONS.indexOf(b.module));
  for (const e of entries) {
    const a = header.tensors.get(e.A as string)!;
    const b = header.tensors.get(e.B as string)!;
    for (const t of [a, b]) {
      if (t.dtype !== 'F32' && t.dtype !== 'BF16' && t.dtype !== 'F16' && t.dtype !== 'F64') throw bad(wfile, `${t.name} is ${t.dtype}, not floating point`);
      if (t.shape.length !== 2) throw bad(wfile, `${t.name} has shape [${t.shape.join(', ')}], expected a matrix`);
    }
    if (a.shape[0] !== r) throw bad(wfile, `${a.name} has shape [${a.shape.join(', ')}] but r = ${r}: lora_A must be [r, in]`);
    if (b.shape[1] !== r) throw bad(wfile, `${b.name} has shape [${b.shape.join(', ')}] but r = ${r}: lora_B must be [out, r]`);
    const d = { in: a.shape[1], out: b.shape[0] };
    if (base) {
      const [out, inn] = moduleShape(base, e.module);
      if (d.in !== inn || d.out !== out) {
        throw bad(wfile, `${e.module} of layer ${e.layer}: lora_A [${a.shape.join(', ')}] / lora_B [${b.shape.join(', ')}] do not fit the base model's [${out}, ${inn}] weight (expected lora_A [${r}, ${inn}], lora_B [${out}, ${r}])`);
      }
    }
    const prev = dims[e.module];
    if (prev && (prev.in !== d.in || prev.out !== d.out)) throw bad(wfile, `${e.module} has different shapes in different layers`);
    dims[e.module] = d;
    const [ab, bb] = await Promise.all([readTensor(source, a), readTensor(source, b)]);
    tensors[e.layer][e.module] = { A: toFloat32(ab, a.dtype), B: toFloat32(bb, b.dtype) };
  }
  return { config, scaling: loraScaling(config), layers, tensors, dims };
}

/** Reads adapter_config.json + adapter_model.safetensors from a FileSet (a directory, an unzipped archive). */
export async function readAdapter(files: FileSet, opts: ReadAdapterOptions = {}): Promise<LoraAdapter> {
  const where = opts.where ?? files.name ?? 'adapter';
  const open = async (name: string): Promise<ByteSource> => {
    try {
      return await files.open(name);
    } catch (e) {
      if (isNotFound(e)) throw bad(where, `no ${name}: a PEFT adapter needs ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE}`);
      throw e;
    }
  };
  const configJson = await readJson(await open(ADAPTER_CONFIG_FILE));
  return parseAdapter(configJson, await open(ADAPTER_WEIGHTS_FILE), { ...opts, where });
}

// ---------------------------------------------------------------------------------------------------------------
// Creating and writing

export interface NewAdapterOptions {
  r: number;
  alpha: number;
  dropout?: number;
  targetModules: Projection[];
  useRslora?: boolean;
  baseModel?: string | null;
  /** Uniform [0, 1) generator for A's init (kaiming-uniform a=√5: U(±1/√in)). B starts at zero. */
  random: () => number;
}

/** A fresh adapter as PEFT initialises it: A ~ U(−1/√in, 1/√in), B = 0. */
export function createAdapter(base: MistralConfig, o: NewAdapterOptions): LoraAdapter {
  const config: LoraConfig = {
    r: o.r,
    loraAlpha: o.alpha,
    loraDropout: o.dropout ?? 0,
    targetModules: canonicalModules(o.targetModules),
    useRslora: o.useRslora ?? false,
    baseModel: o.baseModel ?? null,
    layersToTransform: null,
    taskType: 'CAUSAL_LM',
    inferenceMode: true,
    raw: null,
  };
  // Validate through the same path as a file.
  parseLoraConfig(adapterConfigObject(config), 'new adapter');
  const dims: LoraAdapter['dims'] = {};
  for (const m of config.targetModules) {
    const [out, inn] = moduleShape(base, m);
    dims[m] = { in: inn, out };
  }
  const tensors: LoraAdapter['tensors'] = [];
  for (let l = 0; l < base.layers; l++) {
    const layer: Partial<Record<Projection, LoraPair>> = {};
    for (const m of config.targetModules) {
      const { in: inn, out } = dims[m]!;
      const bound = 1 / Math.sqrt(inn);
      const A = new Float32Array(o.r * inn);
      for (let i = 0; i < A.length; i++) A[i] = (o.random() * 2 - 1) * bound;
      layer[m] = { A, B: new Float32Array(out * o.r) };
    }
    tensors.push(layer);
  }
  return { config, scaling: loraScaling(config), layers: base.layers, tensors, dims };
}

/**
 * The adapter_config.json object PEFT would write. A config read from a file keeps its other fields; a new one gets
 * the classic LoRA field set that every PEFT release since 0.10 (and vLLM) loads.
 */
export function adapterConfigObject(c: LoraConfig): Record<string, unknown> {
  const base: Record<string, unknown> = c.raw
    ? { ...c.raw }
    : {
        alpha_pattern: {},
        auto_mapping: null,
        base_model_name_or_path: null,
        bias: 'none',
        fan_in_fan_out: false,
        inference_mode: true,
        init_lora_weights: true,
        layer_replication: null,
        layers_pattern: null,
        layers_to_transform: null,
        loftq_config: {},
        lora_alpha: 16,
        lora_dropout: 0,
        megatron_config: null,
        megatron_core: 'megatron.core',
        modules_to_save: null,
        peft_type: 'LORA',
        r: 8,
        rank_pattern: {},
        revision: null,
        target_modules: [],
        task_type: 'CAUSAL_LM',
        use_dora: false,
        use_rslora: false,
      };
  base.peft_type = 'LORA';
  base.r = c.r;
  base.lora_alpha = c.loraAlpha;
  base.lora_dropout = c.loraDropout;
  base.use_rslora = c.useRslora;
  // PEFT passes base_model_name_or_path to from_pretrained, which takes a plain Hub id and the revision apart.
  const hub = c.baseModel ? parseHubReference(c.baseModel) : null;
  base.base_model_name_or_path = hub ? hub.repo : c.baseModel;
  base.revision = hub ? hub.revision : (base.revision ?? null);
  base.task_type = c.taskType;
  base.inference_mode = c.inferenceMode;
  base.layers_to_transform = c.layersToTransform;
  // Keep the file's own order of target_modules when it names the same set (PEFT stores a set).
  const rawTargets = c.raw?.target_modules;
  const same =
    Array.isArray(rawTargets) &&
    rawTargets.length === c.targetModules.length &&
    c.targetModules.every((m) => rawTargets.includes(m));
  base.target_modules = same ? rawTargets : [...c.targetModules];
  return base;
}

/** Fields PEFT writes as Python floats (json.dumps prints them with a decimal point, e.g. 0.0). */
const FLOAT_FIELDS = new Set(['lora_dropout']);

function pyFloat(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  // Python's repr: the shortest round-trip digits (as JS), in exponent form when exp < -4 or exp >= 16.
  const [mant, expStr] = x.toExponential().split('e');
  const exp = Number(expStr);
  if (exp < -4 || exp >= 16) return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  const s = String(x); // no exponent form for these magnitudes in JS either
  return s.includes('.') ? s : `${s}.0`;
}

/** JSON like Python's json.dumps(obj, indent=2, sort_keys=True). */
function pythonJson(v: unknown, indent: string, key: string | null): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return key !== null && FLOAT_FIELDS.has(key) ? pyFloat(v) : Number.isInteger(v) ? String(v) : pyFloat(v);
  if (typeof v === 'string') return asciiJsonString(v);
  const inner = `${indent}  `;
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => inner + pythonJson(x, inner, null)).join(',\n')}\n${indent}]`;
  }
  const keys = Object.keys(v as Record<string, unknown>).sort();
  if (keys.length === 0) return '{}';
  return `{\n${keys.map((k) => `${inner}${asciiJsonString(k)}: ${pythonJson((v as Record<string, unknown>)[k], inner, k)}`).join(',\n')}\n${indent}}`;
}

/** json.dumps escapes non-ASCII by default (ensure_ascii=True). */
function asciiJsonString(s: string): string {
  return JSON.stringify(s).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** adapter_config.json text, as PEFT formats it (sorted keys, 2-space indent, no trailing newline). */
export function adapterConfigJson(c: LoraConfig): string {
  return pythonJson(adapterConfigObject(c), '', null);
}

/** adapter_model.safetensors bytes: F32 tensors, metadata {"format": "pt"}. */
/**
 * Refuses an adapter holding a NaN or an infinity (kind 'mismatch', naming the tensor): such a file would load
 * everywhere and silently produce garbage. Every export and every file written from an adapter goes through this.
 */
export function assertFiniteAdapter(a: LoraAdapter, doing: string): void {
  a.tensors.forEach((layer, l) => {
    for (const m of PROJECTIONS) {
      const p = layer[m];
      if (!p) continue;
      for (const factor of ['A', 'B'] as const) {
        const i = firstNonFinite(p[factor]);
        if (i >= 0) {
          const key = peftKey(l, m, factor);
          throw new FinetuneError('mismatch', `${doing}: the adapter holds ${p[factor][i]} in ${key} (index ${i})`, { tensor: key, index: i });
        }
      }
    }
  });
}

export function adapterSafetensors(a: LoraAdapter): Uint8Array {
  assertFiniteAdapter(a, 'not writing the adapter');
  const r = a.config.r;
  const out: TensorToWrite[] = [];
  a.tensors.forEach((layer, l) => {
    for (const m of PROJECTIONS) {
      const p = layer[m];
      if (!p) continue;
      const d = a.dims[m];
      if (!d) throw new FinetuneError('internal', `adapter has ${m} tensors but no dims for it`);
      if (p.A.length !== r * d.in || p.B.length !== d.out * r) {
        throw new FinetuneError('internal', `layer ${l} ${m}: A has ${p.A.length} values (want ${r}×${d.in}), B has ${p.B.length} (want ${d.out}×${r})`);
      }
      out.push({ name: peftKey(l, m, 'A'), dtype: 'F32', shape: [r, d.in], data: p.A });
      out.push({ name: peftKey(l, m, 'B'), dtype: 'F32', shape: [d.out, r], data: p.B });
    }
  });
  return writeSafetensors(out, { format: 'pt' });
}

/** Both files of a PEFT adapter directory. */
export function writeAdapter(a: LoraAdapter): { [ADAPTER_CONFIG_FILE]: string; [ADAPTER_WEIGHTS_FILE]: Uint8Array } {
  return { [ADAPTER_CONFIG_FILE]: adapterConfigJson(a.config), [ADAPTER_WEIGHTS_FILE]: adapterSafetensors(a) };
}
