// What a remote training will roughly cost, shown before anything is sent. Replicate bills the trainer's A100 80 GB by
// the second ($0.0014/s, docs/replicate-trainer.md); the time is our estimate, not Replicate's: a fixed start-up (the worker boots, the
// 14 GB base downloads and loads) plus the tokens of every epoch at an assumed A100 training throughput. The anchors
// (docs/performance.md, H200: HF + PEFT LoRA on q,v at 2048 tokens ≈ 9,900 tokens/s) scaled to an A100 (about a third of an H200's
// bf16 throughput) give ≈ 3,300 tokens/s for LoRA; QLoRA's dequantisation costs about a third more time.

import type { PeftMethod } from '../config/hyperparams.ts';
import { formatCount } from '../core/units.ts';
import { PRICE_PER_SECOND } from './flow.ts';

export const STARTUP_SECONDS = 240;
export const TOKENS_PER_SECOND: Readonly<Record<PeftMethod, number>> = { lora: 3300, qlora: 2500 };

export interface CostEstimate {
  seconds: number;
  costUsd: number;
  /** How the number was made, for a tooltip or --help. */
  basis: string;
}

export function estimateRemoteCost(o: { tokens: number; epochs: number; peftMethod: PeftMethod }): CostEstimate {
  const rate = TOKENS_PER_SECOND[o.peftMethod];
  const seconds = Math.round(STARTUP_SECONDS + (o.tokens * o.epochs) / rate);
  return {
    seconds,
    costUsd: seconds * PRICE_PER_SECOND,
    basis: `${STARTUP_SECONDS} s start-up + ${formatCount(o.tokens)} tokens × ${o.epochs} epoch${o.epochs === 1 ? '' : 's'} at ~${formatCount(rate)} tokens/s (${o.peftMethod}, A100 80 GB), at $${PRICE_PER_SECOND}/s; a rough estimate, Replicate bills the real time`,
  };
}
