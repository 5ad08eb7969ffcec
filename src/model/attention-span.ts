// A sliding attention window (Mistral-7B v0.1 and the models fine-tuned from it, such as Zephyr: `sliding_window`
// 4096 in a 32,768-position config). There a token attends to itself and the window − 1 tokens before it
// (transformers' mask: key j is visible to query i when i − window < j ≤ i). This engine's attention kernels attend over
// a whole sequence (or packed segment). The two are the same computation while no sequence is longer than the window,
// so such a model is trained and sampled exactly under that bound and refused past it, with the setting to change
// (docs/mistral.md). Past the window the kernels would need a lower key bound of their own; no run in a tab comes near
// 4096 tokens a row, and max_seq_len's default (4096) is the v0.1 window itself.

import { formatCount } from '../core/units.ts';
import type { MistralConfig } from './config.ts';

/** The window in tokens when it is shorter than the model's positions (else it never bites: null). */
export function attentionWindow(config: MistralConfig): number | null {
  const w = config.slidingWindow;
  return w !== null && w < config.maxPositions ? w : null;
}

/** How many positions a generation may fill, and the config field that says so (named in a refusal). */
export interface PositionLimit {
  maxPositions: number;
  positionsFrom: 'max_position_embeddings' | 'sliding_window';
}

export function positionLimit(config: MistralConfig): PositionLimit {
  const w = attentionWindow(config);
  return w === null ? { maxPositions: config.maxPositions, positionsFrom: 'max_position_embeddings' } : { maxPositions: w, positionsFrom: 'sliding_window' };
}

/** The limit as a refusal names it: "4,096 positions (max_position_embeddings)" or "attention window of 16 positions (sliding_window)". */
export function positionLimitWords(l: PositionLimit): string {
  const n = formatCount(l.maxPositions);
  return l.positionsFrom === 'sliding_window' ? `attention window of ${n} positions (sliding_window)` : `${n} positions (max_position_embeddings)`;
}

/**
 * Why a run with this max_seq_len would not be the model's own attention, or null. Every sequence the run makes is at
 * most max_seq_len tokens between the segment boundaries attention respects: packed examples never attend to each
 * other, and a wrapped example's pieces restart their own segments (docs/replicate-trainer.md, "Packing").
 */
export function maxSeqLenWindowProblem(config: MistralConfig, maxSeqLen: number): string | null {
  const w = attentionWindow(config);
  if (w === null || maxSeqLen <= w) return null;
  return (
    `max_seq_len ${maxSeqLen} is longer than this model's attention window of ${w} tokens (sliding_window in its config.json): ` +
    `a token attends to at most the ${w} tokens ending at it there, and this engine computes attention over whole sequences, ` +
    `the same numbers only while no sequence is longer than the window: set max_seq_len to ${w} or less`
  );
}
