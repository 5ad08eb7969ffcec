// Generation: the prompt runs once through the KV-cache decoder (src/engine/mistral/decode.ts), then one token at a
// time, each picked greedily (the default: reproducible samples) or sampled at a temperature with top-p and a seed.
// Tokens stream out with their text as they come; a caller can stop between tokens; the result reports tokens/s.
// generateFullRecompute is the way it was done before the cache (a whole forward pass per new token): the reference
// the cache is tested against, and the baseline of `finetune bench generate`.

import { createRng } from '../core/prng.ts';
import { unpackedBatch } from '../core/token-batch.ts';
import { FinetuneError } from '../core/errors.ts';
import { positionLimitWords, type PositionLimit } from '../model/attention-span.ts';
import { formatBytes, formatCount } from '../core/units.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { gemm } from '../engine/kernels/matmul.ts';
import { matvec_forward } from '../engine/kernels/matvec.ts';
import { MistralDecoder } from '../engine/mistral/decode.ts';
import { decoderBytes, decoderChunk, decoderPeakBytes } from '../engine/mistral/sizing.ts';
import type { GpuLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import type { MistralWeights } from '../engine/mistral/weights.ts';
import { argmax, checkLogits, checkSampling, pickToken } from './sampling.ts';
import { TextStream } from './text-stream.ts';

/** The generator stream of sampling draws, apart from the streams the seed drives elsewhere (shuffling, init). */
const SAMPLING_STREAM = 0x5a3;

export interface GenerationSettings {
  /** New tokens at most (≥ 1). */
  maxNewTokens: number;
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Nucleus sampling threshold in (0, 1]; default 1 (off). */
  topP?: number;
  /** Seed of the sampling draws (default 0); the same seed and settings give the same tokens. */
  seed?: number;
}

export interface StreamedToken {
  /** 0 for the first new token. */
  index: number;
  id: number;
  /** The text this token completes (may be '' for a byte that starts a multi-byte character). */
  text: string;
}

export interface GenerateOptions extends GenerationSettings {
  /** Stop at this id (</s>); it is not part of the output. */
  eosId?: number;
  /** Ids → text, for the streamed text (the tokenizer's decode); without it `text` is ''. */
  decode?: (ids: readonly number[]) => string;
  onToken?: (t: StreamedToken) => void;
  /** Asked between the prompt's parts and before each new token; true ends the generation there. */
  shouldStop?: () => boolean;
  /**
   * Awaited at the same places, with no GPU work queued: a paused run's validation_prompt sample waits there (its
   * control's pause point) instead of running on through the pause the user asked for.
   */
  pausePoint?: () => Promise<void>;
  /** The prompt's tokens read so far, after each part of it (the last call has read = total). */
  onPrompt?: (read: number, total: number) => void;
  /** The model's max_position_embeddings, or a shorter sliding window: the prompt and the new tokens must fit in it. */
  maxPositions?: number;
  /** The config field maxPositions comes from (a refusal names it); max_position_embeddings unless said. */
  positionsFrom?: PositionLimit['positionsFrom'];
  /** Rows per decoder call, and so the size of the prompt's parts (default: the decoder's, by adapter). */
  chunk?: number;
  /**
   * The GPU's memory, when known (the user gave it: WebGPU cannot report it): a generation whose decoder would not fit
   * beside what the GPU holds already is refused before anything is made. A long prompt at Mistral-7B asks 256 KiB a
   * position (up to 8 GiB at its 32,768), which a browser may grant and then lose the device over.
   */
  memoryBytes?: number | null;
}

export type StopReason = 'eos' | 'max-tokens' | 'stopped';

export interface GenerationResult {
  ids: number[];
  /** The generated text as it continues the prompt (a leading space kept) when a decoder was given, else ''. */
  text: string;
  stopReason: StopReason;
  promptTokens: number;
  /** The prompt's forward pass (the first token's logits included). */
  prefillSeconds: number;
  /** From the first new token's logits to the last (the per-token loop). */
  decodeSeconds: number;
  /** New tokens per second of the per-token loop (0 when fewer than two tokens were made). */
  tokensPerSecond: number;
}

function checkSettings(prompt: readonly number[], o: GenerationSettings & Partial<PositionLimit>): void {
  if (prompt.length === 0) throw new FinetuneError('bad-input', 'generation needs at least one prompt token');
  if (!(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 1)) {
    throw new FinetuneError('bad-input', `max new tokens must be a whole number ≥ 1, got ${o.maxNewTokens}`);
  }
  // The cache holds prompt + new − 1 positions (the last new token is never fed back). Past the model's positions
  // its rotary embedding was never trained, and a huge ask would only fail later as a GPU buffer too large.
  if (o.maxPositions !== undefined && prompt.length + o.maxNewTokens - 1 > o.maxPositions) {
    const room = o.maxPositions - prompt.length + 1;
    // Past a sliding window this engine's attention (over the whole prefix) is no longer the model's (model/attention-span.ts).
    const limit = positionLimitWords({ maxPositions: o.maxPositions, positionsFrom: o.positionsFrom ?? 'max_position_embeddings' });
    throw new FinetuneError(
      'bad-input',
      room >= 1
        ? `the prompt's ${formatCount(prompt.length)} tokens leave room for at most ${formatCount(room)} new tokens in this model's ${limit}, not ${formatCount(o.maxNewTokens)}`
        : `the prompt's ${formatCount(prompt.length)} tokens are more than this model's ${limit}`,
    );
  }
  checkSampling({ temperature: o.temperature ?? 0, topP: o.topP ?? 1 });
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) throw new FinetuneError('bad-input', `the sampling seed must be a whole number, got ${o.seed}`);
}

/** Refuses a decoder of `maxT` positions that would take the GPU past `memoryBytes` beside what its ledger holds now. */
function checkDecoderFits(ctx: GpuContext, weights: MistralWeights, lora: GpuLora | null, maxT: number, chunk: number | undefined, memoryBytes: number, promptTokens: number): void {
  const needs = decoderPeakBytes(decoderBytes(weights.dims, { maxT, chunk: decoderChunk(maxT, ctx.report.software, chunk), loraRank: lora?.r ?? null }));
  const inUse = ctx.ledger.snapshot().currentBytes;
  if (inUse + needs <= memoryBytes) return;
  const room = Math.max(0, memoryBytes - inUse);
  throw new FinetuneError(
    'out-of-memory',
    `this generation needs ${formatBytes(needs)} of GPU memory (a KV cache of ${formatCount(maxT)} positions: the prompt's ${formatCount(promptTokens)} tokens and the new ones), and the GPU's ${formatBytes(memoryBytes)} has ${formatBytes(room)} left beside the ${formatBytes(inUse)} in use: shorten the prompt or ask for fewer new tokens`,
    { needs, inUse, memoryBytes, positions: maxT },
  );
}

/** Continues `prompt` (ids, BOS included) with the KV-cache decoder; `lora` null runs the base model. */
export async function generate(ctx: GpuContext, weights: MistralWeights, lora: GpuLora | null, prompt: readonly number[], o: GenerateOptions): Promise<GenerationResult> {
  checkSettings(prompt, o);
  const sampling = { temperature: o.temperature ?? 0, topP: o.topP ?? 1 };
  const rng = createRng(o.seed ?? 0, SAMPLING_STREAM);
  // Decoded after the prompt's last token (not BOS), so that the first word keeps the space that separates it.
  const text = o.decode ? new TextStream(o.decode, prompt.length > 1 ? prompt.slice(-1) : []) : null;
  // The last new token is never fed back, so the cache needs prompt + maxNewTokens − 1 positions.
  const maxT = prompt.length + o.maxNewTokens - 1;
  if (o.memoryBytes) checkDecoderFits(ctx, weights, lora, maxT, o.chunk, o.memoryBytes, prompt.length);
  const decoder = new MistralDecoder(ctx, weights, lora, { maxT, chunk: o.chunk });
  const ids: number[] = [];
  let stopReason: StopReason = 'max-tokens';
  const t0 = performance.now();
  let t1 = t0;
  try {
    // The prompt goes in parts of the decoder's chunk, each awaited: one submission of a 10,000-token prompt ran 207 s
    // on SwiftShader with no way to stop it or to show how far it was. The last part is fed with the logits below.
    let read = 0;
    let stopped = false;
    while (prompt.length - read > decoder.chunk) {
      await o.pausePoint?.();
      if ((stopped = o.shouldStop?.() ?? false)) break;
      decoder.extend(prompt.slice(read, read + decoder.chunk));
      await ctx.sync();
      read += decoder.chunk;
      o.onPrompt?.(read, prompt.length);
    }
    if (!stopped) {
      await o.pausePoint?.();
      decoder.feed(prompt.slice(read));
    }
    for (;;) {
      if (stopped || o.shouldStop?.()) {
        stopReason = 'stopped';
        break;
      }
      const logits = await decoder.readLogits();
      // The first new token's logits: the prompt has been read.
      if (ids.length === 0) {
        t1 = performance.now();
        o.onPrompt?.(prompt.length, prompt.length);
      }
      const id = pickToken(logits, sampling, rng);
      if (id === o.eosId) {
        stopReason = 'eos';
        break;
      }
      ids.push(id);
      const piece = text?.push(id) ?? ''; // pushed even without a listener: the result's text is made of it
      o.onToken?.({ index: ids.length - 1, id, text: piece });
      if (ids.length === o.maxNewTokens) break;
      await o.pausePoint?.();
      decoder.feed([id]);
    }
  } finally {
    decoder.destroy();
  }
  const t2 = performance.now();
  const tail = text?.finish() ?? '';
  // Generation ended inside a multi-byte character: its bytes come out (as U+FFFD) with the last token's index.
  if (tail && ids.length) o.onToken?.({ index: ids.length - 1, id: ids[ids.length - 1], text: tail });
  const decodeSeconds = ids.length ? (t2 - t1) / 1000 : 0;
  return {
    ids,
    text: text?.text ?? '',
    stopReason,
    promptTokens: prompt.length,
    prefillSeconds: ((ids.length ? t1 : t2) - t0) / 1000,
    decodeSeconds,
    tokensPerSecond: ids.length > 1 && decodeSeconds > 0 ? (ids.length - 1) / decodeSeconds : 0,
  };
}

/**
 * Greedy continuation without a cache: the whole sequence through MistralRunner's forward pass (inference mode) for
 * every new token. O(n²) work; kept as the reference and the benchmark's baseline. Returns the new ids.
 */
export async function generateFullRecompute(
  ctx: GpuContext,
  weights: MistralWeights,
  lora: GpuLora | null,
  prompt: readonly number[],
  o: { maxNewTokens: number; eosId?: number },
): Promise<number[]> {
  checkSettings(prompt, o);
  const d = weights.dims;
  const maxT = prompt.length + o.maxNewTokens;
  const runner = new MistralRunner(ctx, weights, lora, { B: 1, T: maxT });
  const logits = ctx.createBuffer('generation logits', d.V * 4, 'scratch');
  const last = ctx.createBuffer('last hidden', d.C * 4, 'scratch');
  const ids = [...prompt];
  const out: number[] = [];
  try {
    for (let i = 0; i < o.maxNewTokens; i++) {
      const T = ids.length;
      runner.setBatch(unpackedBatch(1, T, ids, new Int32Array(T).fill(-100)));
      runner.forwardHidden('eval');
      // Only the last position's logits: its row of xf times lm_headᵀ (a matvec, as the decoder's head).
      ctx.copy(runner.xf, (T - 1) * d.C * 4, last, 0, d.C * 4);
      const head = weights.lmHead;
      if (head.storage === 'f16') gemm(ctx, { C: logits, A: last, B: head.buffer, M: 1, N: d.V, K: d.C, transB: true, bStorage: 'f16' });
      else matvec_forward(ctx, logits, last, head.buffer, 1, d.V, d.C, { wStorage: head.storage });
      // Checked as pickToken checks generate's logits: argmax alone answered a NaN at token 0 with token 0, passed over
      // a NaN elsewhere, and took +Infinity's token, so the reference gave a token where generate says the forward
      // pass is broken.
      const row = await ctx.readF32(logits);
      checkLogits(row);
      const best = argmax(row);
      if (best === o.eosId) break;
      ids.push(best);
      out.push(best);
    }
    return out;
  } finally {
    runner.destroy();
    ctx.destroy(logits);
    ctx.destroy(last);
  }
}
