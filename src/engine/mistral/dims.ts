// The sizes of a Mistral model as the engine needs them, and the shapes of its linear modules.

import { PROJECTIONS, type Projection } from '../../core/mistral.ts';
import { NF4_BLOCK } from '../../core/nf4-format.ts';
import type { MistralConfig } from '../../model/config.ts';


export interface Dims {
  V: number; // vocabulary
  C: number; // hidden size
  I: number; // MLP inner size
  L: number; // layers
  nH: number; // query heads
  nKV: number; // key/value heads
  hd: number; // head dim
  theta: number; // RoPE base
  eps: number; // RMSNorm epsilon
}

export function dimsOf(c: MistralConfig): Dims {
  return { V: c.vocabSize, C: c.hidden, I: c.intermediate, L: c.layers, nH: c.heads, nKV: c.kvHeads, hd: c.headDim, theta: c.ropeTheta, eps: c.rmsNormEps };
}

/** [out, in] of a linear module (y = x·Wᵀ, W stored [out, in]). */
export function linearShape(d: Dims, name: Projection): { out: number; in: number } {
  const q = d.nH * d.hd;
  const kv = d.nKV * d.hd;
  switch (name) {
    case 'q_proj':
      return { out: q, in: d.C };
    case 'k_proj':
    case 'v_proj':
      return { out: kv, in: d.C };
    case 'o_proj':
      return { out: d.C, in: q };
    case 'gate_proj':
    case 'up_proj':
      return { out: d.I, in: d.C };
    case 'down_proj':
      return { out: d.C, in: d.I };
  }
}

/**
 * FLOPs of one trained token (frozen base, LoRA adapters): forward 2N, input gradients 2N, and the recomputed forward
 * of activation checkpointing 2N over the matmul parameters N, plus attention (causal, average over positions T/2).
 */
/** The attention forward's FLOPs per token over all layers at T tokens (QKᵀ and PV, causal: half the keys on average). */
export function attentionFlopsPerToken(d: Dims, T: number): number {
  return 2 * 2 * (T / 2) * d.nH * d.hd * d.L;
}

export function flopsPerToken(d: Dims, T: number, checkpointing = true): number {
  let n = 0;
  for (const l of PROJECTIONS) {
    const s = linearShape(d, l);
    n += s.out * s.in;
  }
  n = n * d.L + d.V * d.C; // layers + lm_head
  const attention = attentionFlopsPerToken(d, T);
  const forward = 2 * n + attention;
  return forward * (checkpointing ? 3 : 2) + attention * 0.5;
}

/**
 * Why this model's projections cannot be NF4-quantised, or null: NF4 quantises each row in blocks of 64 weights, so
 * every projection's input width must be a multiple of 64. Said before a load (and in the plan), instead of by the
 * quantisation kernel once the first projection has been downloaded.
 */
export function nf4Unsupported(d: Dims): string | null {
  const bad = PROJECTIONS.find((p) => linearShape(d, p).in % NF4_BLOCK !== 0);
  if (bad === undefined) return null;
  const width = linearShape(d, bad).in;
  return `${bad} has ${width} inputs a row, not a multiple of ${NF4_BLOCK}: NF4 quantises rows in blocks of ${NF4_BLOCK}, so this model can only be trained unquantised (peft_method lora, quantization none)`;
}
