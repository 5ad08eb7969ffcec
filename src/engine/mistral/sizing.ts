// The sizes of every buffer a MistralRunner makes, computed from the shapes alone. The runner's constructor allocates
// from this layout and the memory planner (src/run/planner.ts) adds it up, so the plan and the allocation are one
// computation and cannot drift apart. Sizes are in f32-sized elements ("floats"), as the runner's buffers are.

import { PROJECTIONS, type Projection } from '../../core/mistral.ts';
import { FinetuneError } from '../../core/errors.ts';
import { MAX_REQUESTED_BUFFER } from '../gpu.ts';
import { attentionBackwardScratchBytes } from '../kernels/attention.ts';
import { attentionSpillGroupFloats } from '../kernels/attention_flash.ts';
import { loraScratchBytes } from '../kernels/lora.ts';
import { MATVEC_MAX_ROWS } from '../kernels/matvec.ts';
import { lmheadXentScratchBytes, type XentScratchBytes } from '../kernels/xent.ts';
import { type Dims } from './dims.ts';
import { arenaGradNormSlots, loraArenaLayout } from './lora-layout.ts';

/**
 * Most tokens per chunk of the fused lm_head + cross-entropy when the caller does not choose (the logits chunk is
 * chunk × V f32). The chunk's input gradient dh (chunk, C) = dlogits · W is a GEMM with only chunk × C outputs: at
 * 256 tokens and Mistral-7B's C = 4096 that is 2 × 32 of the tiled GEMM's 128-wide blocks, under one per SM of an H200
 * (132 SMs), each walking all 32,000 of V; at 1024 it is 8 × 32, the two per SM the tiled GEMM is made for. The price
 * is memory: 131 MB of logits at V = 32,000 instead of 33 MB.
 */
export const MAX_XENT_CHUNK = 1024;

/** Tokens per lm_head chunk by default: MAX_XENT_CHUNK, fewer where one binding cannot hold chunk × V f32 logits. */
export function defaultXentChunk(V: number, maxBindingBytes: number): number {
  return Math.max(1, Math.min(MAX_XENT_CHUNK, Math.floor(maxBindingBytes / (4 * V))));
}

export interface RunnerShape {
  /** Micro-batch rows and tokens per row the runner is sized for. */
  B: number;
  T: number;
  /** LoRA rank; 0 or absent targets = no adapter (inference only). */
  r: number;
  /** The adapted projections (empty: no adapter). */
  targets: readonly Projection[];
  xentChunk?: number;
  /**
   * Layers whose forward intermediates are kept from the forward to the backward instead of being recomputed (the
   * last `keptLayers` of the stack; default 0: every layer is recomputed). Each kept layer costs one more set of
   * layer buffers and saves its recomputation: about a quarter of the layer's training FLOPs.
   */
  keptLayers?: number;
  /**
   * The recomputed layers keep their attention output and logsumexp from the forward, so that their recomputation
   * skips the attention forward (the layer's costliest kernel at long sequences) for N·(nH·hd + nH) floats per layer:
   * the best speed per byte of any kept intermediate. The last recomputed layer needs no buffers of its own (the shared
   * set still holds its attention when its backward comes); every other recomputed layer gets a pair.
   */
  keptAttention?: boolean;
  /**
   * The adapter's arena chunk limit in bytes (LoraArenaLayout.maxChunkBytes; default the largest buffer we request):
   * the most one binding holds, which also bounds the dS scratch and the lm_head's logits chunk.
   */
  loraChunkBytes?: number;
  /**
   * Which tokens the lm_head computes: 'counted' (default) only those with a loss, gathered into its chunk buffers
   * (kernels/xent.ts HeadRows); 'all' every token, whose logsumexp the golden check compares at every position.
   */
  head?: HeadMode;
}

export type HeadMode = 'counted' | 'all';

/** Per-layer forward intermediates: one set for the recomputed layers, one more per kept layer (less REBUILT_BUFFERS). */
export const LAYER_BUFFERS = ['n1', 'rstd1', 'q', 'k', 'v', 'att', 'lse', 'h', 'n2', 'rstd2', 'g', 'u', 'a'] as const;
/**
 * The intermediates that only LoRA's products read in the backward (the inputs of their dA) and that one cheap pass
 * rebuilds from what a layer keeps anyway: n1 = norm(x) (x is a checkpoint), n2 = norm(h), a = silu(g) · u. The runner
 * has one copy of each, shared by every layer; a kept layer rebuilds those its adapter needs before its backward
 * (the same kernels on the same inputs: the same bits), so a kept layer costs 43 K floats a token at Mistral-7B's
 * shape instead of 65 K.
 */
export const REBUILT_BUFFERS = ['n1', 'n2', 'a'] as const;
/**
 * Gradient buffers of one layer's backward (reused by every layer). SwiGLU's backward writes d gate over d swiglu
 * (da) in place, and the tiled attention backward's dS scratch lives in da too: all three are dead by then.
 */
export const GRAD_BUFFERS = ['dres', 'dn', 'dq', 'dk', 'dv', 'datt', 'da', 'du', 'dxf'] as const;

export interface RunnerLayout {
  N: number;
  xentChunk: number;
  /**
   * io: input ids, targets, segment ids, positions, the loss weights of a packed validation pass, and the head's
   * counted rows and their targets (N each).
   */
  io: { ids: number; targets: number; seg: number; pos: number; lossWeights: number; headRows: number; headTargets: number };
  /** scratch: the RoPE cos/sin table for T positions. */
  ropeTable: number;
  /** activations: xs[l] (N, C) for l = 0..L, the checkpoints of per-layer recomputation. */
  xs: number[];
  /** activations: final norm output and its rstd, the head's logsumexp. */
  xf: number;
  rstdf: number;
  lse: number;
  /** scratch: loss sum and [clip scale, norm]. */
  lossSum: number;
  clip: number;
  /** Layers kept from forward to backward (the last keptLayers), and the sets of layer buffers made. */
  keptLayers: number;
  /** keptLayers, plus one set shared by the recomputed layers when any layer is recomputed. */
  layerSets: number;
  /** Recomputed layers with an attention output and logsumexp of their own (keptAttention), and their sizes. */
  attentionSets: number;
  attention: { att: number; lse: number };
  /** activations: one set of a layer's intermediates (layerSets of them are made). */
  layer: Record<(typeof LAYER_BUFFERS)[number], number>;
  /**
   * activations: LoRA intermediates t (N, r) per adapted projection, for every layer (not in the sets): t costs N·r
   * floats a module where recomputing it reads the module's whole input, so a recomputation reuses the forward's.
   */
  loraT: Partial<Record<Projection, number>>;
  /** The model's layers (each has its own t). */
  layers: number;
  /** activations: one layer's gradients. */
  grads: Record<(typeof GRAD_BUFFERS)[number], number>;
  /** scratch: the attention backward's row statistics, lse and D (2, N, nH), and the segment ids (N). */
  attnStats: number;
  /**
   * The tiled attention backward's dS (`attentionSpillFloats`; 0: none, dS is recomputed). It is no buffer of its own:
   * grads.da is made at least this large and holds it (the MLP's gradients are dead during the attention backward).
   */
  attnSpill: number;
  /** scratch: LoRA backward dt (null: not made). LoRA dropout needs no buffer: the GEMM applies the mask. */
  loraDt: number | null;
  /** scratch, in bytes: the lm_head + cross-entropy chunk buffers. */
  xent: XentScratchBytes;
  /** optimizer: global-norm partial sums (null without an adapter). */
  gradNormSlots: number | null;
}

export function runnerLayout(d: Dims, s: RunnerShape): RunnerLayout {
  const N = s.B * s.T;
  const keptLayers = s.keptLayers ?? 0;
  if (!(Number.isInteger(keptLayers) && keptLayers >= 0 && keptLayers <= d.L)) {
    throw new FinetuneError('internal', `keptLayers must be an integer in [0, ${d.L}], got ${keptLayers}`);
  }
  // The most one binding holds: bounds the adapter's arena chunks, the dS scratch and the lm_head's logits chunk.
  const bindingBytes = s.loraChunkBytes ?? MAX_REQUESTED_BUFFER;
  const hasLora = s.targets.length > 0 && s.r > 0;
  const xentChunk = Math.max(1, Math.min(s.xentChunk ?? defaultXentChunk(d.V, bindingBytes), N));
  const attnSpill = hasLora ? attentionSpillFloats(d, s.B, s.T, bindingBytes) : 0;
  const Q = d.nH * d.hd;
  const KV = d.nKV * d.hd;
  const r = hasLora ? s.r : 0;
  const targets = PROJECTIONS.filter((p) => hasLora && s.targets.includes(p));
  const loraT: Partial<Record<Projection, number>> = {};
  for (const p of targets) loraT[p] = N * r;
  const ls = loraScratchBytes(N, Math.max(r, 1));
  // grad_norm_sq runs over the gradient arena's chunks (engine/mistral/lora-layout.ts).
  const slots = hasLora ? arenaGradNormSlots(loraArenaLayout(d, r, targets, bindingBytes)) : 0;
  return {
    N,
    xentChunk,
    io: { ids: N, targets: N, seg: N, pos: N, lossWeights: N, headRows: N, headTargets: N },
    ropeTable: s.T * d.hd,
    xs: Array.from({ length: d.L + 1 }, () => N * d.C),
    xf: N * d.C,
    rstdf: N,
    lse: N,
    lossSum: 1,
    clip: 2,
    keptLayers,
    layerSets: keptLayers + (keptLayers < d.L ? 1 : 0),
    attentionSets: s.keptAttention ? Math.max(0, d.L - keptLayers - 1) : 0,
    attention: { att: N * Q, lse: N * d.nH },
    layer: {
      n1: N * d.C,
      rstd1: N,
      q: N * Q,
      k: N * KV,
      v: N * KV,
      att: N * Q,
      lse: N * d.nH,
      h: N * d.C,
      n2: N * d.C,
      rstd2: N,
      g: N * d.I,
      u: N * d.I,
      a: N * d.I,
    },
    loraT,
    layers: d.L,
    grads: {
      dres: N * d.C,
      dn: N * d.C,
      dq: N * Q,
      dk: N * KV,
      dv: N * KV,
      datt: N * Q,
      da: Math.max(N * d.I, attnSpill),
      du: N * d.I,
      dxf: N * d.C,
    },
    attnStats: attentionBackwardScratchBytes(s.B, s.T, d.nH) / 4,
    attnSpill,
    loraDt: hasLora ? ls.dt / 4 : null,
    xent: lmheadXentScratchBytes(N, d.C, d.V, xentChunk, (s.head ?? 'counted') === 'counted'),
    gradNormSlots: hasLora ? slots : null,
  };
}

/**
 * Floats of the scratch through which the tiled attention backward passes dS (attention_flash_backward's `spill`: 5
 * products instead of 7). It holds whole groups of query heads (those of one KV head), as many as fit in three of the
 * layer's N × I intermediates (the size of its g, u and a) and in one buffer the device binds (`maxBindingBytes`: the
 * limit the adapter's arenas are chunked by). The cap keeps the memory linear in T, within what a layer set already
 * costs: at Mistral-7B's shape every KV head fits up to 2,656 tokens (one pass of the two kernels; 273 MB at 2048),
 * and beyond that the kernels run in chunks of KV heads. 0 (dS recomputed) when not even one group fits.
 */
export function attentionSpillFloats(d: Dims, B: number, T: number, maxBindingBytes: number): number {
  const group = attentionSpillGroupFloats(B, T, d.nH, d.nKV);
  const room = Math.min(3 * B * T * d.I, Math.floor(maxBindingBytes / 4));
  return Math.min(d.nKV, Math.floor(room / group)) * group;
}

/** What the memory ledger charges for a buffer of `bytes` (it rounds up to 4, at least 4). */
export function ledgerBytes(bytes: number): number {
  return Math.max(4, Math.ceil(bytes / 4) * 4);
}

/** What the ledger charges for a runner buffer of `floats` f32 elements (the runner asks for at least one). */
export function floatBufferBytes(floats: number): number {
  return ledgerBytes(Math.max(1, floats) * 4);
}

/** The ledger's label of grads.da, which also holds d gate and the attention backward's dS. */
export const MLP_GRADIENT_LABEL = 'd swiglu, d gate and attention dS';

const isRebuilt = (k: string): boolean => (REBUILT_BUFFERS as readonly string[]).includes(k);

export interface RunnerBytes {
  activations: number;
  scratch: number;
  io: number;
  optimizer: number;
  /** The largest single buffer the runner makes, in bytes (limits: maxBufferSize, maxStorageBufferBindingSize). */
  largestBuffer: { label: string; bytes: number };
}

/** Bytes per ledger category of a runner with this layout: what the ledger shows once the runner exists. */
export function runnerBytes(lay: RunnerLayout): RunnerBytes {
  let largest = { label: '', bytes: 0 };
  const see = (label: string, bytes: number): number => {
    if (bytes > largest.bytes) largest = { label, bytes };
    return bytes;
  };
  const f = (label: string, floats: number): number => see(label, floatBufferBytes(floats));
  const activations =
    lay.xs.reduce((a, n, l) => a + f(`x[${l}]`, n), 0) +
    f('x final', lay.xf) +
    f('rstd final', lay.rstdf) +
    f('head lse', lay.lse) +
    lay.layerSets * Object.entries(lay.layer).reduce((a, [k, n]) => a + (isRebuilt(k) ? 0 : f(k, n)), 0) +
    lay.layers * Object.entries(lay.loraT).reduce((a, [k, n]) => a + f(`lora t ${k}`, n ?? 0), 0) +
    (lay.layerSets > 0 ? REBUILT_BUFFERS.reduce((a, k) => a + f(k, lay.layer[k]), 0) : 0) +
    lay.attentionSets * (f('kept att', lay.attention.att) + f('kept attention lse', lay.attention.lse)) +
    Object.entries(lay.grads).reduce((a, [k, n]) => a + f(k === 'da' ? MLP_GRADIENT_LABEL : k, n), 0);
  const scratch =
    f('rope table', lay.ropeTable) +
    f('loss sum', lay.lossSum) +
    f('clip', lay.clip) +
    f('attention lse and D', lay.attnStats) +
    (lay.loraDt === null ? 0 : f('lora dt', lay.loraDt)) +
    Object.entries(lay.xent).reduce((a, [k, b]) => a + see(`xent ${k}`, ledgerBytes(b)), 0);
  const io = Object.values(lay.io).reduce((a, n) => a + f('batch', n), 0);
  const optimizer = lay.gradNormSlots === null ? 0 : f('grad norm partials', lay.gradNormSlots);
  return { activations, scratch, io, optimizer, largestBuffer: largest };
}

/** Rows a decoder call processes by default on a hardware GPU (the tiled products suit a prompt). */
export const DECODER_CHUNK_HARDWARE = 128;

/**
 * Rows one MistralDecoder call processes (decode.ts): `asked`, else 128 on a hardware GPU and MATVEC_MAX_ROWS on a
 * software adapter (there the few-row kernels win even for a prompt), never more than the cache's positions.
 */
export function decoderChunk(maxT: number, software: boolean, asked?: number): number {
  return Math.max(1, Math.min(asked ?? (software ? MATVEC_MAX_ROWS : DECODER_CHUNK_HARDWARE), maxT));
}

/** A MistralDecoder's GPU bytes by ledger category, as its constructor makes them, and its logits' readback. */
export interface DecoderBytes {
  kvCache: number;
  activations: number;
  scratch: number;
  io: number;
  /** The staging buffer each token's logits are read back through ('io', made and freed per read). */
  logitsReadback: number;
}

/**
 * The decoder's buffers for a cache of `maxT` positions and calls of `chunk` rows, with a LoRA intermediate of rank
 * `loraRank` (null: the base alone). The planner counts them beside the training runner: a run's validation_prompt
 * sample is written with the runner's buffers still held (test/gpu/planner.test.ts compares it with the ledger).
 */
export function decoderBytes(d: Dims, o: { maxT: number; chunk: number; loraRank: number | null }): DecoderBytes {
  const n = o.chunk;
  const Q = d.nH * d.hd;
  const KV = d.nKV * d.hd;
  const f = floatBufferBytes;
  const perRow = [d.C, d.C, 1, Q, KV, KV, Q, d.C, d.I, d.I, d.I];
  return {
    kvCache: 2 * d.L * f(o.maxT * KV),
    activations: perRow.reduce((s, w) => s + f(n * w), 0) + (o.loraRank === null ? 0 : f(n * o.loraRank)) + 2 * f(d.C) + f(1),
    // The RoPE table: cos and sin of every position's hd/2 frequencies.
    scratch: ledgerBytes(o.maxT * d.hd * 4),
    io: 2 * f(n) + f(d.V),
    logitsReadback: ledgerBytes(d.V * 4),
  };
}

/** A decoder's bytes all held at once, as a token's logits are read back: what a generation adds to the GPU at its peak. */
export function decoderPeakBytes(b: DecoderBytes): number {
  return b.kvCache + b.activations + b.scratch + b.io + b.logitsReadback;
}
