// Mistral `config.json` → a typed, validated config. Reads both the transformers-4 layout (top-level `rope_theta`,
// `torch_dtype`: the real Mistral-7B-Instruct-v0.2) and the transformers-5 layout (`rope_parameters: {rope_theta}`,
// `dtype`: the fixtures). Required values are never filled in from library defaults: transformers' MistralConfig
// defaults (rms_norm_eps 1e-6, sliding_window 4096, num_key_value_heads 8, …) differ from the real checkpoints, so a
// missing value is an error, except the two documented below that only produce a warning.

import { FinetuneError } from '../core/errors.ts';
import { quoteCut, visibleText } from '../core/quote.ts';

export type ModelDtype = 'bfloat16' | 'float16' | 'float32';

export interface MistralConfig {
  vocabSize: number;
  /** C, the hidden size. */
  hidden: number;
  /** The MLP's inner size. */
  intermediate: number;
  layers: number;
  /** nH, attention (query) heads. */
  heads: number;
  /** nKV, key/value heads (GQA: heads % kvHeads == 0). */
  kvHeads: number;
  /** hd; `head_dim` when given, else hidden / heads. */
  headDim: number;
  ropeTheta: number;
  rmsNormEps: number;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  /** Attention window in tokens, or null for full causal attention. */
  slidingWindow: number | null;
  /** The checkpoint's parameter dtype, when the config states it. */
  dtype: ModelDtype | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** Values that were missing and taken from Mistral's own defaults; show them to the user. */
  warnings: string[];
}

// `where` names the input as it was given (a picked file or folder, a path, a Hub file): a path label, written with
// visibleText's escapes (no quotes, so it reads as a path) so that a bidirectional control in it cannot reorder the message.
function fail(where: string, message: string): never {
  throw new FinetuneError('bad-input', `${visibleText(where)}: ${message}`);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Upper bounds of every size in a config. A config comes from anywhere (a Hub repository the page is pointed at), and
 * sizes drive allocations: num_hidden_layers 1e9 once built a billion-entry tensor list and killed the process. The
 * bounds sit far above every Mistral-architecture model published (Mistral-7B: 32 layers, hidden 4096, MLP 14336,
 * vocabulary 32000–131072, 32768–1M positions) and far below what would exhaust memory before a check could refuse it.
 */
export const CONFIG_LIMITS = {
  vocab_size: 1 << 20,
  hidden_size: 1 << 16,
  intermediate_size: 1 << 18,
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 1024,
  max_position_embeddings: 1 << 24,
  sliding_window: 1 << 24,
} as const;

type LimitedKey = keyof typeof CONFIG_LIMITS;

/** A value for a message, cut short (a hostile config can hold megabytes in one field). */
const describeValue = (v: unknown): string => quoteCut(v, 80);

function positiveInt(json: Record<string, unknown>, key: LimitedKey, where: string): number {
  if (!(key in json) || json[key] === null || json[key] === undefined) fail(where, `missing required field "${key}"`);
  const v = json[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) fail(where, `"${key}" must be a positive integer, got ${describeValue(v)}`);
  if (v > CONFIG_LIMITS[key]) fail(where, `"${key}" is ${v}, more than ${CONFIG_LIMITS[key]}: not a model this program can load (is the config corrupt?)`);
  return v;
}

function positiveNumber(v: unknown, key: string, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) fail(where, `"${key}" must be a positive number, got ${describeValue(v)}`);
  return v;
}

function optionalTokenId(json: Record<string, unknown>, key: string, where: string): number | null {
  const v = json[key];
  if (v === undefined || v === null) return null;
  // Some configs list several EOS ids; the first is the primary one.
  const first = Array.isArray(v) ? v[0] : v;
  if (typeof first !== 'number' || !Number.isSafeInteger(first) || first < 0) fail(where, `"${key}" must be a token id, got ${describeValue(v)}`);
  return first;
}

/** Parses and validates a Mistral config.json (the parsed JSON object). `where` names the file in messages. */
export function parseMistralConfig(json: unknown, where = 'config.json'): MistralConfig {
  if (!isObject(json)) fail(where, 'config must be a JSON object');
  const warnings: string[] = [];

  const modelType = json.model_type;
  if (modelType !== undefined && modelType !== 'mistral') {
    fail(where, `model_type is ${describeValue(modelType)}; only Mistral-architecture models ("mistral") are supported`);
  }
  // A config without model_type (hand-written, or an older exporter) still names its class in `architectures`: a
  // LlamaForCausalLM has Mistral's shapes but not its tokenizer, and once loaded without a word.
  const architectures = json.architectures;
  if (Array.isArray(architectures) && architectures.length > 0 && !architectures.includes('MistralForCausalLM')) {
    fail(where, `architectures names ${architectures.map(describeValue).join(', ')}; only Mistral-architecture models ("MistralForCausalLM") are supported`);
  }
  const act = json.hidden_act ?? json.hidden_activation;
  if (act !== undefined && act !== 'silu') fail(where, `hidden_act ${describeValue(act)} is not supported (Mistral uses "silu")`);
  if (json.attention_bias === true || json.mlp_bias === true) fail(where, 'biases in attention/MLP projections are not supported (Mistral has none)');

  const vocabSize = positiveInt(json, 'vocab_size', where);
  const hidden = positiveInt(json, 'hidden_size', where);
  const intermediate = positiveInt(json, 'intermediate_size', where);
  const layers = positiveInt(json, 'num_hidden_layers', where);
  const heads = positiveInt(json, 'num_attention_heads', where);
  // transformers would default a missing num_key_value_heads (to 8 for Mistral); a wrong guess breaks GQA silently.
  const kvHeads = positiveInt(json, 'num_key_value_heads', where);
  const maxPositions = positiveInt(json, 'max_position_embeddings', where);

  if (heads % kvHeads !== 0) fail(where, `num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`);

  let headDim: number;
  if (json.head_dim === undefined || json.head_dim === null) {
    if (hidden % heads !== 0) fail(where, `hidden_size (${hidden}) is not divisible by num_attention_heads (${heads}) and no head_dim is given`);
    headDim = hidden / heads;
  } else {
    headDim = positiveInt(json, 'head_dim', where);
  }
  if (headDim % 2 !== 0) fail(where, `head_dim (${headDim}) must be even for rotary embeddings`);

  // RoPE: transformers 4 keeps rope_theta at the top level; transformers 5 moves it into rope_parameters.
  const rp = json.rope_parameters;
  if (rp !== undefined && rp !== null && !isObject(rp)) fail(where, `rope_parameters must be an object, got ${describeValue(rp)}`);
  const nested = isObject(rp) ? rp.rope_theta : undefined;
  const top = json.rope_theta;
  if (nested === undefined && top === undefined) fail(where, 'missing rope theta: neither "rope_theta" nor "rope_parameters.rope_theta" is present');
  if (nested !== undefined && top !== undefined && nested !== top) {
    fail(where, `"rope_theta" (${describeValue(top)}) and "rope_parameters.rope_theta" (${describeValue(nested)}) disagree`);
  }
  const ropeTheta = positiveNumber(nested ?? top, 'rope_theta', where);
  const ropeType = isObject(rp) ? (rp.rope_type ?? rp.type) : undefined;
  if (ropeType !== undefined && ropeType !== 'default') fail(where, `rope_type ${describeValue(ropeType)} is not supported (only "default")`);
  if (json.rope_scaling !== undefined && json.rope_scaling !== null) {
    fail(where, `rope_scaling ${describeValue(json.rope_scaling)} is not supported`);
  }

  if (json.rms_norm_eps === undefined || json.rms_norm_eps === null) {
    fail(where, 'missing required field "rms_norm_eps" (library defaults differ between versions: 1e-6 vs the 1e-5 of Mistral-7B)');
  }
  const rmsNormEps = positiveNumber(json.rms_norm_eps, 'rms_norm_eps', where);
  if (rmsNormEps >= 1) fail(where, `rms_norm_eps ${rmsNormEps} is implausibly large`);

  let slidingWindow: number | null;
  if (!('sliding_window' in json)) {
    slidingWindow = 4096;
    warnings.push('config has no "sliding_window": using 4096, the MistralConfig default (Mistral-7B v0.2 has null = no window)');
  } else if (json.sliding_window === null) {
    slidingWindow = null;
  } else {
    slidingWindow = positiveInt(json, 'sliding_window', where);
  }

  let tieWordEmbeddings: boolean;
  if (json.tie_word_embeddings === undefined) {
    tieWordEmbeddings = false;
    warnings.push('config has no "tie_word_embeddings": assuming false, the MistralConfig default (a separate lm_head)');
  } else if (typeof json.tie_word_embeddings === 'boolean') {
    tieWordEmbeddings = json.tie_word_embeddings;
  } else {
    fail(where, `"tie_word_embeddings" must be true or false, got ${describeValue(json.tie_word_embeddings)}`);
  }

  const rawDtype = json.dtype ?? json.torch_dtype;
  let dtype: ModelDtype | null = null;
  if (rawDtype !== undefined && rawDtype !== null) {
    // Only a string names a dtype: String() of a list read ["bfloat16"] as its item, and of an object whose own
    // toString is not a function ({"toString": 1}, as JSON.parse builds it) threw a TypeError.
    if (typeof rawDtype !== 'string') fail(where, `dtype ${describeValue(rawDtype)} is not supported (bfloat16, float16, float32)`);
    const d = rawDtype.replace(/^torch\./, '');
    if (d === 'bfloat16' || d === 'float16' || d === 'float32') dtype = d;
    else if (d === 'float') dtype = 'float32';
    else if (d === 'half') dtype = 'float16';
    else fail(where, `dtype ${describeValue(rawDtype)} is not supported (bfloat16, float16, float32)`);
  }

  const bosTokenId = optionalTokenId(json, 'bos_token_id', where);
  const eosTokenId = optionalTokenId(json, 'eos_token_id', where);
  for (const [k, id] of [['bos_token_id', bosTokenId], ['eos_token_id', eosTokenId]] as const) {
    if (id !== null && id >= vocabSize) fail(where, `${k} ${id} is outside the vocabulary (${vocabSize})`);
  }

  return {
    vocabSize,
    hidden,
    intermediate,
    layers,
    heads,
    kvHeads,
    headDim,
    ropeTheta,
    rmsNormEps,
    maxPositions,
    tieWordEmbeddings,
    slidingWindow,
    dtype,
    bosTokenId,
    eosTokenId,
    warnings,
  };
}

/** Parameter count of the model the config describes (embeddings and lm_head included). */
export function parameterCount(c: MistralConfig): number {
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const perLayer = c.hidden * q + 2 * c.hidden * kv + q * c.hidden + 3 * c.hidden * c.intermediate + 2 * c.hidden;
  return c.vocabSize * c.hidden * (c.tieWordEmbeddings ? 1 : 2) + c.layers * perLayer + c.hidden;
}
