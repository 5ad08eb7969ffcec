// The memory planner: from a model's config.json and the hyperparameters alone (no weights loaded, no GPU needed), the
// GPU bytes a fine-tuning run will hold, by the ledger's categories, and a verdict against an adapter's limits.
//
// Every number is the engine's own: base weights as weights.ts uploads them (NF4 codes and scales as nf4_quantize makes
// them, norms in f32, embeddings and lm_head as stored), LoRA and AdamW moments as uploadLora makes them, and the
// runner's activations and scratch from the layout its constructor allocates from (engine/mistral/sizing.ts). The
// formula is written out in docs/models.md.
//
// When the model does not fit with every layer on the GPU, the plan also prices layer streaming
// (engine/mistral/layer-stream.ts): the decoder layers in CPU memory, two of them on the GPU at a time.

import { PROJECTIONS, type Quantization } from '../core/mistral.ts';
import { FinetuneError } from '../core/errors.ts';
import { formatBytes } from '../core/units.ts';
import { targetModules } from '../config/index.ts';
import type { Hyperparams } from '../config/hyperparams.ts';
import type { MistralConfig, ModelDtype } from '../model/config.ts';
import { dtypeDisagreement } from '../model/checkpoint.ts';
import { CONTEXT_BYTES, MAX_REQUESTED_BUFFER, type BaseMatmul } from '../engine/gpu.ts';
import { int8ScratchBytes } from '../engine/kernels/int8_matmul.ts';
import { nf4Bytes } from '../engine/kernels/nf4.ts';
import { maxSeqLenWindowProblem } from '../model/attention-span.ts';
import { dimsOf, flopsPerToken, linearShape, nf4Unsupported, type Dims } from '../engine/mistral/dims.ts';
import { forwardPassUploads, trainingPassUploads } from '../engine/mistral/layer-stream.ts';
import { arenaBytes, loraArenaLayout, loraChunkLimit } from '../engine/mistral/lora-layout.ts';
import { decoderBytes, decoderChunk, decoderPeakBytes, ledgerBytes, runnerBytes, runnerLayout } from '../engine/mistral/sizing.ts';
import { SAMPLE_MAX_TOKENS, samplePromptIds, samplePromptTokenBound } from '../data/layout.ts';
import type { Tokenizer } from '../data/tokenizer.ts';

/** What is known about the GPU the plan is for. Everything is optional: the verdict says what it could not check. */
export interface PlanGpu {
  /** The adapter's limits (the context asks for at most 4 GiB − 4 of each; the plan applies the same cap). */
  maxBufferSize?: number;
  maxStorageBufferBindingSize?: number;
  /** GPU memory to plan against, in bytes. WebGPU cannot report it: given by the user or found out otherwise, else a guess. */
  memoryBytes?: number;
  /** Where `memoryBytes` came from: the user ('given', the default) or the machine ('detected': nvidia-smi). */
  memorySource?: 'given' | 'detected';
  name?: string;
  /**
   * A software adapter (SwiftShader): the validation_prompt sample's decoder then reads its prompt in rows of 8, not
   * 128 (sizing.ts decoderChunk). Unknown: planned for the hardware GPU's larger rows.
   */
  software?: boolean;
}

export interface PlanOptions {
  /** Tokens per sequence the runner is sized for; default: the longest the hyperparameters allow. */
  seqLen?: number;
  gpu?: PlanGpu;
  /** Host → GPU bytes per second for the streaming estimate (default ASSUMED_UPLOAD_BYTES_PER_SECOND). */
  uploadBytesPerSecond?: number;
  /** Training tokens per second with resident weights, when measured (calibration, `finetune bench`); else assumed. */
  trainTokensPerSecond?: number;
  /**
   * Layers whose intermediates are kept from the forward to the backward instead of recomputed (runnerLayout's
   * `keptLayers`). Absent: chosen by the plan (chooseKeptLayers) when the GPU's memory is given, else 0.
   */
  keptLayers?: number;
  /**
   * The recomputed layers keep their attention outputs (runnerLayout's `keptAttention`). Absent: chosen by the plan
   * when the GPU's memory is given and they fit (before any whole layer), else not.
   */
  keptAttention?: boolean;
  /** How the NF4 base products run (GpuContext.baseMatmul; default 'fp32'): the int8 choices add their quantisation scratch. */
  baseMatmul?: BaseMatmul;
  /**
   * The dtype the safetensors store the weight matrices in (BaseCheckpoint.storedDtype), when their headers were read:
   * the stored weights are counted so, whatever config.json's torch_dtype says (a float32 checkpoint under a bfloat16
   * config). Absent or null: not read, and the plan is from torch_dtype, saying so (`model.dtypeFrom`).
   */
  storedDtype?: ModelDtype | null;
  /** Why the headers were not read, a clause for `model.dtypeFrom` (default: they are read at the load). */
  headersNotRead?: string;
  /**
   * Why the weights at hand could not be read (not safetensors, truncated, shards missing, a directory), when they are
   * there but broken: the plan warns, since a load refuses them. Absent where they are only not at hand (the Hub, a
   * URL, a folder holding config.json alone), which is planned on purpose and no alarm.
   */
  weightsUnreadable?: string;
  /**
   * The validation_prompt laid out as the run's sample reads it (samplePromptIds), in tokens, when a tokenizer gave
   * them; else the plan takes samplePromptTokenBound's ceiling from the text.
   */
  samplePromptTokens?: number;
  /** New tokens the sample writes at most (default SAMPLE_MAX_TOKENS, as a run). */
  sampleMaxTokens?: number;
}

/**
 * 'fits-with-streaming': not with every layer on the GPU, but with the layers streamed from CPU memory (slower; the
 * plan's `streaming` says by how much).
 */
export type Verdict = 'fits' | 'tight' | 'fits-with-streaming' | 'does-not-fit';

/** What layer streaming would cost: GPU and CPU memory, bytes moved, and a rough slowdown. */
export interface StreamingPlan {
  /** GPU bytes of one decoder layer (its two norms and seven projections as uploaded): one slot, one upload. */
  layerBytes: number;
  /** Layers on the GPU at a time (two, or L when smaller). */
  slots: number;
  /** Base weights on the GPU when streamed: embeddings, lm_head, final norm and the slots. */
  gpuWeightBytes: number;
  /** GPU bytes streaming saves against resident weights. */
  savedBytes: number;
  /** CPU memory the layers take (the whole quantised stack). */
  hostBytes: number;
  loadPeakBytes: number;
  trainPeakBytes: number;
  peakBytes: number;
  /** Layer uploads per micro-batch (forward, then recomputation + backward; the two layers at each turn are reused). */
  uploadsPerMicroBatch: number;
  bytesPerMicroBatch: number;
  microBatchesPerStep: number;
  /** Bytes moved to the GPU per optimizer step. */
  bytesPerStep: number;
  /** At most: a forward-only pass uploads every layer. */
  bytesPerValidationBatch: number;
  /** Seconds per optimizer step: uploads at `uploadBytesPerSecond`, compute as `computeBasis` says. */
  estimate: {
    uploadBytesPerSecond: number;
    uploadSeconds: number;
    computeSeconds: number;
    computeBasis: string;
    /** Step time over the resident step time: when uploads hide under compute, and when they do not overlap at all. */
    slowdown: { overlapped: number; serial: number };
  };
}

export interface MemoryPlan {
  model: {
    layers: number;
    hidden: number;
    intermediate: number;
    vocab: number;
    heads: number;
    kvHeads: number;
    headDim: number;
    /** The dtype the stored weights (embeddings, head, unquantised projections) are counted in. */
    dtype: string;
    /** Where `dtype` came from: the safetensors headers, or config.json's torch_dtype alone (headers not read yet). */
    dtypeFrom: string;
    /** Why the weights at hand cannot be read (PlanOptions.weightsUnreadable): a load of them would fail. */
    weightsUnreadable?: string;
  };
  quantization: Quantization;
  run: {
    /** Micro-batch rows × tokens the runner is sized for (a validation packs into the same). */
    rows: number;
    seqLen: number;
    tokens: number;
    loraRank: number;
    targets: string[];
    dropout: boolean;
    xentChunkTokens: number;
    /** Layers (the last ones) that keep their intermediates for the backward; the others are recomputed. */
    keptLayers: number;
    /** Whether keptLayers was asked for, or chosen by the plan from the given memory ('fixed' when no memory was given). */
    keptLayersSource: 'asked' | 'chosen' | 'fixed';
    /** The recomputed layers keep their attention output and logsumexp: the recomputation skips attention. */
    keptAttention: boolean;
    recomputation: string;
    /**
     * The validation_prompt sample written after each validation, with the runner's buffers held: its decoder's KV
     * cache positions (prompt + new tokens − 1) and whether the prompt's length is its real token count or a ceiling.
     * Null without a validation_prompt.
     */
    sample: { promptTokens: number; promptTokensFrom: 'tokenizer' | 'bound'; positions: number } | null;
  };
  /** Base weights by part, as uploaded. */
  weights: { projections: number; nf4Codes: number; nf4Scales: number; norms: number; embeddings: number; lmHead: number; total: number };
  /**
   * Bytes by ledger category at their peaks during a run (what the ledger's per-category peaks show): a training step,
   * and the validation_prompt sample's decoder beside it ('kvCache' and its share of activations, scratch and io).
   * A checkpoint's readback and the sample's are not held together: trainPeakBytes is the larger moment, at most
   * their sum.
   */
  bytes: { context: number; weights: number; lora: number; optimizer: number; activations: number; kvCache: number; scratch: number; io: number };
  /** Peak while loading (weights plus one projection being quantised), and during a training step. */
  loadPeakBytes: number;
  trainPeakBytes: number;
  peakBytes: number;
  largestBuffer: { label: string; bytes: number };
  /** Layer streaming's costs (always computed; the verdict says whether the run needs it). */
  streaming: StreamingPlan;
  gpu: { maxBufferSize: number | null; maxStorageBufferBindingSize: number | null; memoryBytes: number; memorySource: 'given' | 'detected' | 'guessed'; name: string | null };
  verdict: Verdict;
  /** Why, in sentences a person can act on. */
  reasons: string[];
  warnings: string[];
  /**
   * An unquantised base that does not simply fit (tight, streamed or not at all): the same run under QLoRA
   * (peft_method qlora, the base in NF4 with double quantisation, as Replicate's QLoRA), when its verdict is better.
   * Absent otherwise. Replicate's default is lora, so a user who picks Mistral-7B gets the bf16 base unless told.
   */
  qlora?: { verdict: Verdict; peakBytes: number; memoryBytes: number; reason: string };
}

/** Used when no budget is given: WebGPU exposes no memory size, and 8 GiB is what the README asks of a 7B run. */
export const GUESSED_GPU_MEMORY = 8 * 1024 ** 3;
/** Above this share of the budget the plan is "tight": drivers, the browser and other tabs need room too. */
export const TIGHT_SHARE = 0.85;
/**
 * Host → GPU rate assumed for layer streaming when none is given: a guess for `writeBuffer` through a browser's GPU
 * process over PCIe (well under the bus's 16–32 GB/s: the bytes are copied into staging memory first). Not measured
 * here: `finetune bench stream` measures the real cost on a GPU.
 */
export const ASSUMED_UPLOAD_BYTES_PER_SECOND = 4e9;
/**
 * Training FLOP/s assumed when no rate was measured: what our checkpointed Mistral-7B run sustained on an H200 on the
 * kernels a run picks there (754.2 tokens/s at 44.5 GFLOP per token, 2026-12-04 run b, docs/benchmarks.md). Most GPUs
 * small enough to need streaming compute slower, so uploads then weigh less: the slowdown given is on the high side.
 */
export const REFERENCE_TRAIN_FLOPS = 33.6e12;

/** The longest sequence the runner can be asked for under these hyperparameters (trainer.ts runnerShape's bound). */
export function longestSequenceBound(hp: Hyperparams): number {
  if (!hp.pack_sequences) return hp.max_seq_len;
  // Wrapped packs are cut at chunk_size; greedy packs are ≤ chunk_size, or one example alone (≤ max_seq_len).
  return hp.wrap_packed_sequences ? hp.chunk_size : Math.max(hp.chunk_size, hp.max_seq_len);
}

/** Bytes per value of the weights kept as stored (embeddings, head, unquantised projections): 16-bit stays 16-bit. */
function storedBytesPerValue(dtype: ModelDtype | null, warnings: string[]): number {
  switch (dtype) {
    case 'bfloat16':
    case 'float16':
      return 2;
    case 'float32':
      return 4;
    case null:
      warnings.push('config.json states no dtype: assuming bf16 tensors (2 bytes per value)');
      return 2;
  }
}

/** The warning for weights that are there but cannot be read (PlanOptions.weightsUnreadable). */
function unreadableWeightsWarning(reason: string): string {
  return `the weights could not be read (${reason}): finetune train (and Load model on the page) refuses this model until they are replaced; this plan is from config.json alone`;
}

/**
 * Keeping a layer's intermediates saves its recomputation (about a quarter of the layer's training FLOPs) for one more
 * set of layer buffers. With the GPU's memory given, the plan keeps as many layers as fit under TIGHT_SHARE of it —
 * never so many that the run would become tight or need streaming; without it, none (a guess is no basis to spend
 * memory on speed).
 */
export function planMemory(config: MistralConfig, hp: Hyperparams, o: PlanOptions = {}): MemoryPlan {
  const plan = planQuantized(config, hp, o);
  if (plan.quantization !== 'none' || plan.verdict === 'fits') return plan;
  // Planned from the same options, so that the two verdicts compare like with like.
  const q = planQuantized(config, { ...hp, peft_method: 'qlora', quantization: 'nf4-double' }, o);
  if (VERDICT_RANK[q.verdict] >= VERDICT_RANK[plan.verdict]) return plan;
  const reason = q.reasons.filter((r) => !r.startsWith(LIMITS_UNCHECKED)).join('; ');
  return { ...plan, qlora: { verdict: q.verdict, peakBytes: q.peakBytes, memoryBytes: q.gpu.memoryBytes, reason } };
}

/** How the reason that says the adapter's buffer limits went unchecked begins (the plan's own reasons carry it once). */
export const LIMITS_UNCHECKED = 'no adapter limits were given';

/** Verdicts from best to worst. */
const VERDICT_RANK: Readonly<Record<Verdict, number>> = { fits: 0, tight: 1, 'fits-with-streaming': 2, 'does-not-fit': 3 };

/** planMemory for the quantization the hyperparameters ask for, without the QLoRA alternative. */
function planQuantized(config: MistralConfig, hp: Hyperparams, o: PlanOptions): MemoryPlan {
  const memoryBytes = o.gpu?.memoryBytes;
  const budget = memoryBytes === undefined ? null : TIGHT_SHARE * memoryBytes;
  const within = (p: MemoryPlan): boolean => budget !== null && p.verdict === 'fits' && p.peakBytes <= budget;
  // The attention outputs first (the most recomputation saved per byte), when asked or when they fit.
  const attention = o.keptAttention ?? within(planWithKeptLayers(config, hp, o, o.keptLayers ?? 0, 'chosen', true));
  if (o.keptLayers !== undefined) return planWithKeptLayers(config, hp, o, o.keptLayers, 'asked', attention);
  const none = planWithKeptLayers(config, hp, o, 0, 'fixed', attention);
  if (budget === null || none.verdict !== 'fits') return none;
  const kept = mostKeptLayers(none.model.layers, (k) => planWithKeptLayers(config, hp, o, k, 'chosen', attention).peakBytes <= budget);
  return planWithKeptLayers(config, hp, o, kept, 'chosen', attention);
}

/**
 * The most layers, 0..L, that `fits` allows keeping (0 when none does). Every kept layer adds the same set of
 * buffers, so `fits` holds up to some count and fails beyond it: a bisection finds it. The plan and a run's choice
 * (run/kept-layers.ts) both use it.
 */
export function mostKeptLayers(L: number, fits: (kept: number) => boolean): number {
  let lo = 0;
  let hi = L;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The int8 base path (docs/int8.md) quantises each int8 product's input into two context scratch buffers, sized by
 * the widest reduction among the projections it runs (forward: their inputs; input gradient: their outputs).
 */
function int8Scratch(d: Dims, tokens: number, quantization: Quantization, choice: BaseMatmul | undefined): number {
  if (quantization === 'none' || choice === undefined || choice === 'fp32') return 0;
  const widest = choice === 'int8' ? Math.max(d.C, d.I, d.nH * d.hd) : Math.max(d.C, d.I);
  return int8ScratchBytes(tokens, widest);
}

function planWithKeptLayers(config: MistralConfig, hp: Hyperparams, o: PlanOptions, keptLayers: number, keptLayersSource: MemoryPlan['run']['keptLayersSource'], keptAttention = false): MemoryPlan {
  const d = dimsOf(config);
  if (!(Number.isInteger(keptLayers) && keptLayers >= 0 && keptLayers <= d.L)) {
    throw new FinetuneError('bad-input', `the layers to keep must be a whole number from 0 to ${d.L}, got ${keptLayers}`);
  }
  const warnings = [...config.warnings];
  const quantization = hp.quantization;
  const gpu = o.gpu ?? {};
  // No size can be planned for weights that cannot be quantised: said here, before any load.
  const nf4Why = quantization === 'none' ? null : nf4Unsupported(d);
  if (nf4Why) throw new FinetuneError('bad-input', nf4Why);
  // Memory is planned all the same; the run itself is refused at its start (session.ts), and the plan says so first.
  const windowWhy = maxSeqLenWindowProblem(config, hp.max_seq_len);
  if (windowWhy) warnings.push(`a run with these settings is refused: ${windowWhy}`);
  // The headers' dtype when they were read: what a load uploads (config.json's torch_dtype can say otherwise).
  const fromHeaders = o.storedDtype !== undefined && o.storedDtype !== null;
  const dtype = fromHeaders ? (o.storedDtype as ModelDtype) : config.dtype;
  const disagree = fromHeaders ? dtypeDisagreement(config.dtype, dtype) : null;
  if (disagree) warnings.push(`${disagree}: planned as stored`);
  const dtypeFrom = fromHeaders
    ? `the safetensors headers${dtype !== config.dtype ? ` (config.json says ${config.dtype ?? 'no dtype'})` : ''}`
    : `config.json's torch_dtype (safetensors headers not read: ${o.headersNotRead ?? 'they are read at the load'}; a load plans from the dtype they store, and says when it differs)`;
  // Said among the warnings, not only inside dtypeFrom: a plan that "fits" is no use when the load will refuse the files.
  if (o.weightsUnreadable !== undefined) warnings.push(unreadableWeightsWarning(o.weightsUnreadable));
  const stored = storedBytesPerValue(dtype, warnings);
  let largest = { label: '', bytes: 0 };
  const see = (label: string, bytes: number): number => {
    if (bytes > largest.bytes) largest = { label, bytes };
    return bytes;
  };

  // Base weights, as weights.ts uploads them.
  const embeddings = see('model.embed_tokens.weight', ledgerBytes(d.V * d.C * stored));
  // A tied config without its own lm_head.weight reuses the embedding buffer (weights.ts).
  const lmHead = config.tieWordEmbeddings ? 0 : see('lm_head.weight', ledgerBytes(d.V * d.C * stored));
  const norms = (2 * d.L + 1) * ledgerBytes(d.C * 4);
  let nf4Codes = 0;
  let nf4Scales = 0;
  let dense = 0;
  // Per projection: bytes kept, and bytes held only while it is quantised — its source as stored, absmax (f32 per 64
  // weights) and, for double quant, the partial sums and the thresholds table; freed before the next (kernels/nf4.ts).
  const kept: number[] = [];
  const during: number[] = [];
  for (const p of PROJECTIONS) {
    const s = linearShape(d, p);
    if (quantization === 'none') {
      const b = see(p, ledgerBytes(s.out * s.in * stored));
      dense += d.L * b;
      kept.push(b);
      during.push(0);
    } else {
      const codes = see(`${p} codes`, (s.out * s.in) / 2);
      const all = nf4Bytes(s.out, s.in, quantization === 'nf4-double');
      nf4Codes += d.L * codes;
      nf4Scales += d.L * (all - codes);
      const blocks = (s.out * s.in) / 64;
      kept.push(all);
      during.push(
        see(`${p} (to quantise)`, ledgerBytes(s.out * s.in * stored)) +
          (quantization === 'nf4-double' ? ledgerBytes(blocks * 4) + ledgerBytes(Math.ceil(blocks / 256) * 4) + ledgerBytes(255 * 4) : 0),
      );
    }
  }
  // The load's peak, in weights.ts's order: embeddings; per layer two norms and the seven projections; the final norm
  // and lm_head.
  let loaded = CONTEXT_BYTES + embeddings;
  let loadPeakBytes = loaded;
  for (let l = 0; l < d.L; l++) {
    loaded += 2 * ledgerBytes(d.C * 4);
    PROJECTIONS.forEach((_, i) => {
      loadPeakBytes = Math.max(loadPeakBytes, loaded + kept[i] + during[i]);
      loaded += kept[i];
    });
  }
  loaded += ledgerBytes(d.C * 4) + lmHead;
  loadPeakBytes = Math.max(loadPeakBytes, loaded);
  const projections = dense + nf4Codes + nf4Scales;
  const weights = embeddings + lmHead + norms + projections;

  // The run's shape, as session.ts and trainer.ts's runnerShape will size it.
  const targets = targetModules(hp);
  const seqBound = longestSequenceBound(hp);
  if (o.seqLen !== undefined && !(Number.isSafeInteger(o.seqLen) && o.seqLen > 0)) {
    throw new FinetuneError('bad-input', `the sequence length must be a positive integer, got ${o.seqLen}`);
  }
  const T = Math.min(o.seqLen ?? seqBound, seqBound);
  // Validation packs its batches into rows of the same count and length (data/batches.ts validationPasses).
  const B = hp.micro_batch_size;
  const dropout = hp.lora_dropout > 0;
  // The adapter's arenas are chunked by the limits the context will ask for (the same cap as the verdict's).
  // Without the adapter's limits (plan --no-gpu) the engine's own cap still holds: no GPU gets a bigger buffer asked of it.
  const maxBuffer = Math.min(gpu.maxBufferSize ?? MAX_REQUESTED_BUFFER, MAX_REQUESTED_BUFFER);
  const maxBinding = Math.min(gpu.maxStorageBufferBindingSize ?? MAX_REQUESTED_BUFFER, MAX_REQUESTED_BUFFER);
  const limitsGiven = gpu.maxBufferSize !== undefined && gpu.maxStorageBufferBindingSize !== undefined;
  const loraChunkBytes = loraChunkLimit({ maxBufferSize: maxBuffer, maxStorageBufferBindingSize: maxBinding });
  const layout = runnerLayout(d, { B, T, r: hp.lora_rank, targets, loraChunkBytes, keptLayers, keptAttention });
  const runner = runnerBytes(layout);
  see(runner.largestBuffer.label, runner.largestBuffer.bytes);

  // LoRA: four arenas of one layout, as uploadLora makes them: parameters and gradients ('lora'), AdamW's two moments
  // ('optimizer'). Their alignment padding is allocated, so it is counted.
  const arena = loraArenaLayout(d, hp.lora_rank, targets, loraChunkBytes);
  arena.chunkBytes.forEach((b, i) => see(`lora arena chunk ${i}`, b));
  const lora = 2 * arenaBytes(arena);
  const moments = 2 * arenaBytes(arena);
  const largestLoraTensor = arena.tensors.reduce((m, t) => Math.max(m, t.floats * 4), 0);
  // A checkpoint reads tensors back one at a time through a staging buffer ('io').
  const readback = ledgerBytes(Math.max(8, largestLoraTensor));
  // The validation_prompt sample: a decoder made beside the runner after each validation, its logits read back per token.
  const sample = sampleShape(hp, o);
  const decoder = sample ? decoderBytes(d, { maxT: sample.positions, chunk: decoderChunk(sample.positions, gpu.software ?? false), loraRank: hp.lora_rank }) : null;
  if (decoder) see('k cache 0', decoder.kvCache / (2 * d.L));

  const held = {
    context: CONTEXT_BYTES,
    weights,
    lora,
    optimizer: moments + runner.optimizer,
    activations: runner.activations,
    scratch: runner.scratch + int8Scratch(d, layout.N, quantization, o.baseMatmul),
  };
  const heldBytes = Object.values(held).reduce((a, b) => a + b, 0);
  const bytes = {
    ...held,
    activations: held.activations + (decoder?.activations ?? 0),
    kvCache: decoder?.kvCache ?? 0,
    scratch: held.scratch + (decoder?.scratch ?? 0),
    io: runner.io + Math.max(readback, decoder ? decoder.io + decoder.logitsReadback : 0),
  };
  // The larger of a checkpoint's moment (its readback) and the sample's (its decoder and logits' readback).
  const trainPeakBytes = heldBytes + runner.io + Math.max(readback, decoder ? decoderPeakBytes(decoder) : 0);
  const peakBytes = Math.max(trainPeakBytes, loadPeakBytes);
  const streaming = planStreaming({ d, hp, kept, during, embeddings, lmHead, weights, trainPeakBytes, N: layout.N, T, o });

  // The verdict.
  const reasons: string[] = [];
  let verdict: Verdict = 'fits';
  const worse = (v: Verdict): void => {
    if (VERDICT_RANK[v] > VERDICT_RANK[verdict]) verdict = v;
  };
  // What makes the rows × tokens buffers smaller: the rows are micro_batch_size's (validation packs into the same), and
  // the advice never names a setting already at 1.
  const fewerRowsOrTokens = B > 1 ? 'lower micro_batch_size or max_seq_len (activations grow with rows × tokens)' : 'lower max_seq_len (activations grow with tokens; micro_batch_size is already 1)';
  // The setting that shrinks the largest buffer: the rank for a LoRA arena chunk (over a limit only when one LoRA
  // tensor alone is), quantisation for a dense projection, nothing for the model's other tensors.
  const largestIsModel = largest.label === 'model.embed_tokens.weight' || largest.label === 'lm_head.weight' || PROJECTIONS.some((p) => largest.label.startsWith(p));
  const shrink = largest.label.startsWith('lora arena')
    ? 'lower lora_rank (one LoRA tensor alone is over the limit)'
    : (PROJECTIONS as readonly string[]).includes(largest.label)
      ? 'quantise the base (peft_method qlora or quantization nf4-double) to store it in 4 bits'
      : largestIsModel
        ? "it is the model's own tensor, which no setting makes smaller"
        : fewerRowsOrTokens;
  // Every buffer the engine makes is bound whole as a storage buffer by some kernel, so both limits apply; the
  // smaller is said.
  const limit = Math.min(maxBuffer, maxBinding);
  if (largest.bytes > limit) {
    worse('does-not-fit');
    const which =
      limit === MAX_REQUESTED_BUFFER
        ? `the ${formatBytes(MAX_REQUESTED_BUFFER + 4)} − 4 bytes the engine asks of any GPU for one buffer`
        : `this GPU's ${maxBuffer <= maxBinding ? 'maxBufferSize' : 'maxStorageBufferBindingSize'} of ${formatBytes(limit)}`;
    reasons.push(`the largest buffer (${describeBuffer(largest.label)}, ${formatBytes(largest.bytes)}) is over ${which}; ${shrink}`);
  }
  if (!limitsGiven) reasons.push(`${LIMITS_UNCHECKED}: buffer sizes were checked only against the engine's own ${formatBytes(MAX_REQUESTED_BUFFER + 4)} − 4 bytes, not against this GPU's maxBufferSize / maxStorageBufferBindingSize`);
  const memoryBytes = gpu.memoryBytes ?? GUESSED_GPU_MEMORY;
  const memorySource = gpu.memoryBytes === undefined ? 'guessed' : (gpu.memorySource ?? 'given');
  const guessed = memorySource === 'guessed' ? `${formatBytes(memoryBytes)} is a guess: WebGPU cannot report GPU memory, give the real size` : null;
  const share = peakBytes / memoryBytes;
  const pct = (x: number): string => `${Math.round(x * 100)} %`;
  // Where the share follows, the guess is said inside its brackets ("of 8.0 GiB (a guess: …) (2 %)" read as two asides).
  const ofShare = `${formatBytes(peakBytes)} of ${formatBytes(memoryBytes)} (${pct(share)}${guessed ? `; ${guessed}` : ''})`;
  const of = `${formatBytes(peakBytes)} of ${formatBytes(memoryBytes)}${guessed ? ` (${guessed})` : ''}`;
  const remote = 'train it remotely on Replicate (remote mode: an A100 with 80 GB)';
  const overLimits = largest.bytes > limit;
  const streamedShare = streaming.peakBytes / memoryBytes;
  if (overLimits) {
    reasons.push(`needs ${ofShare}`);
    // Streaming keeps every buffer's size (a slot is shaped like a layer): no help against the limits.
    reasons.push(`streaming the layers would not help (the buffers keep their sizes); ${remote}`);
  } else if (share <= 1) {
    if (share > TIGHT_SHARE) {
      worse('tight');
      reasons.push(`needs ${ofShare}: the driver, the browser and other tabs need room too`);
    } else reasons.push(`needs ${ofShare}`);
  } else if (streaming.savedBytes > 0 && streamedShare <= 1) {
    worse('fits-with-streaming');
    const e = streaming.estimate;
    const slower = e.slowdown.overlapped === e.slowdown.serial ? `×${e.slowdown.serial.toFixed(2)}` : `×${e.slowdown.overlapped.toFixed(2)}–${e.slowdown.serial.toFixed(2)}`;
    reasons.push(
      `needs ${of} with every layer on the GPU; streaming the layers from CPU memory needs ${formatBytes(streaming.peakBytes)} (${pct(streamedShare)}${streamedShare > TIGHT_SHARE ? ': tight' : ''})`,
      `layer streaming keeps ${formatBytes(streaming.hostBytes)} of the model in CPU memory and moves ${formatBytes(streaming.bytesPerStep)} to the GPU per optimizer step: about ${slower} the step time (uploads at an assumed ${(e.uploadBytesPerSecond / 1e9).toFixed(1)} GB/s; ${e.computeBasis})`,
    );
  } else {
    worse('does-not-fit');
    const streamed = streaming.savedBytes > 0 ? `, and ${formatBytes(streaming.peakBytes)} even with the layers streamed from CPU memory` : '';
    // Fewer rows or tokens can help only when the buffers they size are more than the overshoot; the weights (those
    // on the GPU, streamed or not) are what they are.
    const best = Math.min(peakBytes, streaming.savedBytes > 0 ? streaming.peakBytes : peakBytes);
    const sized = bytes.activations + bytes.scratch + bytes.io;
    const helps = sized > best - memoryBytes;
    const remedies = [quantization === 'none' ? 'quantise the base (peft_method qlora or quantization nf4-double)' : null, helps ? fewerRowsOrTokens : null].filter((x): x is string => x !== null);
    const weightsAlone = helps ? '' : ` (the weights alone need ${formatBytes(best - sized)})`;
    reasons.push(`needs ${of}${streamed}${weightsAlone}: ${[...remedies, remote].join(', or ')}`);
  }

  return {
    model: { layers: d.L, hidden: d.C, intermediate: d.I, vocab: d.V, heads: d.nH, kvHeads: d.nKV, headDim: d.hd, dtype: dtype ?? 'bfloat16 (assumed)', dtypeFrom, ...(o.weightsUnreadable !== undefined ? { weightsUnreadable: o.weightsUnreadable } : {}) },
    quantization,
    run: {
      rows: B,
      seqLen: T,
      tokens: layout.N,
      loraRank: hp.lora_rank,
      targets,
      dropout,
      xentChunkTokens: layout.xentChunk,
      keptLayers,
      keptLayersSource,
      keptAttention: keptAttention && keptLayers < d.L,
      recomputation: recomputationText(d.L, keptLayers, keptAttention),
      sample,
    },
    weights: { projections, nf4Codes, nf4Scales, norms, embeddings, lmHead, total: weights },
    bytes,
    loadPeakBytes,
    trainPeakBytes,
    peakBytes,
    largestBuffer: largest,
    streaming,
    gpu: { maxBufferSize: maxBuffer, maxStorageBufferBindingSize: maxBinding, memoryBytes, memorySource, name: gpu.name ?? null },
    verdict,
    reasons,
    warnings,
  };
}

/**
 * PlanOptions.samplePromptTokens from a tokenizer at hand: the validation_prompt's tokens as the run lays it out when
 * `tok` is the model's (the same vocabulary), else undefined and the plan takes the ceiling from the text. A model of
 * another vocabulary (Mistral-7B-Instruct-v0.3 planned from its Hub repository before it is loaded) reads with its own
 * tokenizer, which the page does not have yet: the app's count would be a number about another tokenizer.
 */
export function samplePromptTokensWith(tok: Tokenizer, config: Pick<MistralConfig, 'vocabSize'>, hp: Hyperparams): number | undefined {
  if (!hp.validation_prompt || tok.vocabSize !== config.vocabSize) return undefined;
  return samplePromptIds(tok, hp.validation_prompt, hp.layout).length;
}

/** The validation_prompt sample's prompt length and KV-cache positions (generate.ts: prompt + new tokens − 1), or null. */
function sampleShape(hp: Hyperparams, o: PlanOptions): MemoryPlan['run']['sample'] {
  if (!hp.validation_prompt) return null;
  const given = o.samplePromptTokens;
  if (given !== undefined && !(Number.isSafeInteger(given) && given > 0)) {
    throw new FinetuneError('bad-input', `the sample prompt's token count must be a positive integer, got ${given}`);
  }
  const promptTokens = given ?? samplePromptTokenBound(hp.validation_prompt, hp.layout);
  return { promptTokens, promptTokensFrom: given === undefined ? 'bound' : 'tokenizer', positions: promptTokens + (o.sampleMaxTokens ?? SAMPLE_MAX_TOKENS) - 1 };
}

/** What the backward recomputes, in words. */
export function recomputationText(L: number, kept: number, keptAttention = false): string {
  if (kept === L) return `none: every layer keeps its intermediates from the forward to the backward (fastest; the most memory)`;
  const attention = keptAttention ? '; the recomputed layers keep their attention output, so the recomputation skips attention' : '';
  if (kept === 0) return `per-layer activation checkpointing: the ${L + 1} layer inputs are kept, one layer's intermediates are recomputed at a time in the backward${attention}`;
  return `the last ${kept} of ${L} layers keep their intermediates for the backward; the other ${L - kept} are recomputed one at a time (activation checkpointing)${attention}`;
}

interface StreamingInputs {
  d: ReturnType<typeof dimsOf>;
  hp: Hyperparams;
  /** Per projection, in PROJECTIONS order: bytes kept, and bytes held only while it is quantised. */
  kept: number[];
  during: number[];
  embeddings: number;
  lmHead: number;
  weights: number;
  trainPeakBytes: number;
  N: number;
  T: number;
  o: PlanOptions;
}

/** Layer streaming's memory, traffic and time, from the same per-projection bytes as the resident plan. */
function planStreaming(x: StreamingInputs): StreamingPlan {
  const { d, hp, kept, during, embeddings, lmHead } = x;
  const norm = ledgerBytes(d.C * 4);
  const layerBytes = 2 * norm + kept.reduce((a, b) => a + b, 0);
  const slots = Math.min(2, d.L);
  const gpuWeightBytes = embeddings + lmHead + norm + slots * layerBytes;
  // Loading streamed (weights.ts): each layer is quantised on the GPU as before, read back one buffer at a time through
  // a staging buffer ('io'), and freed; the slots are made once lm_head is in.
  const largestPart = Math.max(norm, ...PROJECTIONS.map((p, i) => {
    const s = linearShape(d, p);
    return x.hp.quantization === 'none' ? kept[i] : (s.out * s.in) / 2;
  }));
  let loadPeakBytes = CONTEXT_BYTES + embeddings + layerBytes + largestPart;
  let loaded = CONTEXT_BYTES + embeddings + 2 * norm;
  PROJECTIONS.forEach((_, i) => {
    loadPeakBytes = Math.max(loadPeakBytes, loaded + kept[i] + during[i]);
    loaded += kept[i];
  });
  loadPeakBytes = Math.max(loadPeakBytes, CONTEXT_BYTES + gpuWeightBytes);
  const trainPeakBytes = x.trainPeakBytes - x.weights + gpuWeightBytes;

  const uploadsPerMicroBatch = trainingPassUploads(d.L);
  const bytesPerMicroBatch = uploadsPerMicroBatch * layerBytes;
  const microBatchesPerStep = Math.max(1, Math.round(hp.train_batch_size / hp.micro_batch_size));
  const uploadBytesPerSecond = x.o.uploadBytesPerSecond ?? ASSUMED_UPLOAD_BYTES_PER_SECOND;
  const uploadSeconds = (bytesPerMicroBatch * microBatchesPerStep) / uploadBytesPerSecond;
  const tokensPerStep = x.N * microBatchesPerStep;
  const measured = x.o.trainTokensPerSecond;
  const computeSeconds = measured ? tokensPerStep / measured : (flopsPerToken(d, x.T) * tokensPerStep) / REFERENCE_TRAIN_FLOPS;
  const computeBasis = measured
    ? `compute at the measured ${Math.round(measured)} tokens/s`
    : `compute at ${REFERENCE_TRAIN_FLOPS / 1e12} TFLOP/s, our H200's rate: a slower GPU is slowed less`;
  const ratio = computeSeconds > 0 ? uploadSeconds / computeSeconds : 0;
  return {
    layerBytes,
    slots,
    gpuWeightBytes,
    savedBytes: x.weights - gpuWeightBytes,
    hostBytes: d.L * layerBytes,
    loadPeakBytes,
    trainPeakBytes,
    peakBytes: Math.max(loadPeakBytes, trainPeakBytes),
    uploadsPerMicroBatch,
    bytesPerMicroBatch,
    microBatchesPerStep,
    bytesPerStep: bytesPerMicroBatch * microBatchesPerStep,
    bytesPerValidationBatch: forwardPassUploads(d.L) * layerBytes,
    estimate: {
      uploadBytesPerSecond,
      uploadSeconds,
      computeSeconds,
      computeBasis,
      slowdown: { overlapped: Math.max(1, ratio), serial: 1 + ratio },
    },
  };
}

/** What the runner's buffers hold, in words, by the ledger's label (the planner names the largest one). */
const BUFFER_WORDS: Readonly<Record<string, string>> = {
  n1: "the first RMSNorm's output",
  n2: "the second RMSNorm's output",
  q: 'the queries',
  k: 'the keys',
  v: 'the values',
  att: "attention's output",
  'kept att': "a recomputed layer's kept attention output",
  h: 'the residual stream after attention',
  g: "the MLP's gate projection output",
  u: "the MLP's up projection output",
  a: "SwiGLU's output",
  dres: "the residual stream's gradient",
  dn: "a norm output's gradient",
  dq: "the queries' gradient",
  datt: "attention output's gradient",
  du: "the up projection output's gradient",
  dxf: "the final norm's input gradient",
  'xent logits': "a chunk of the lm_head's logits",
};

/** A buffer's ledger label with what it holds ("g, the MLP's gate projection output"); a self-explaining label as it is. */
function describeBuffer(label: string): string {
  const words = BUFFER_WORDS[label];
  return words ? `${label}, ${words}` : label;
}
