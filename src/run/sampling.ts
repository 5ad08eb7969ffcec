// Choosing the next token from the logits: greedy (temperature 0, the default, so samples are reproducible without a
// seed) or sampling at a temperature from the smallest set of tokens whose probability reaches top_p (nucleus
// sampling), drawn with the project's seeded generator so that a seed gives the same text in Node and every browser.

import { generationLimitMessage, withinGenerationLimit } from '../config/generation.ts';
import { FinetuneError } from '../core/errors.ts';
import type { Rng } from '../core/prng.ts';

export interface SamplingSettings {
  /** 0 = greedy (argmax); > 0 divides the logits before the softmax. */
  temperature: number;
  /** Keep the most likely tokens up to this cumulative probability, in (0, 1]; 1 keeps all. */
  topP: number;
}

/**
 * Throws a bad-input error naming the setting when a value is out of range: the limits the page and the CLI check
 * (src/config/generation.ts), checked again here for whatever reaches the worker.
 */
export function checkSampling(s: SamplingSettings): void {
  if (!withinGenerationLimit('temperature', s.temperature)) throw new FinetuneError('bad-input', generationLimitMessage('temperature', 'temperature', s.temperature));
  if (!withinGenerationLimit('topP', s.topP)) throw new FinetuneError('bad-input', generationLimitMessage('topP', 'top_p', s.topP));
}

/** Index of the largest logit (the first one on a tie). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
  return best;
}

/**
 * Refuses logits no token can be chosen from: a NaN or +Infinity anywhere (the model or the adapter overflowed: the
 * forward pass is broken, whatever token it would give), or none above -Infinity. -Infinity alone is a token of
 * probability 0. Without this a NaN made every draw token 0 (<unk>, printed ⁇), greedy or sampled.
 */
export function checkLogits(logits: ArrayLike<number>): void {
  let possible = false;
  for (let j = 0; j < logits.length; j++) {
    const v = logits[j];
    if (Number.isNaN(v) || v === Infinity) {
      throw new FinetuneError('mismatch', `the model's logits hold ${v} at token ${j} (of ${logits.length}): the model or the adapter produced a value that is not finite, and no token can be chosen from them`, { token: j });
    }
    if (v !== -Infinity) possible = true;
  }
  if (!possible) throw new FinetuneError('mismatch', `the model's ${logits.length} logits are all -Infinity: no token has any probability`);
}

/**
 * The next token under `s`; `rng` is drawn from once per sampled token (never for greedy). Logits that are not finite
 * are refused (checkLogits).
 */
export function pickToken(logits: ArrayLike<number>, s: SamplingSettings, rng: Rng): number {
  checkLogits(logits);
  if (s.temperature === 0) return argmax(logits);
  const n = logits.length;
  const m = logits[argmax(logits)];
  // Softmax in float64 of logits / temperature; the order of summation is fixed, so the draw is reproducible.
  const p = new Float64Array(n);
  let sum = 0;
  for (let j = 0; j < n; j++) {
    p[j] = Math.exp((logits[j] - m) / s.temperature);
    sum += p[j];
  }
  // Tokens by probability, most likely first (ties by id, so the order is a function of the logits alone).
  const order = Array.from({ length: n }, (_, j) => j).sort((a, b) => p[b] - p[a] || a - b);
  let keep = 0;
  let kept = 0;
  while (keep < n && (keep === 0 || kept < s.topP * sum)) kept += p[order[keep++]];
  let u = rng.next() * kept;
  for (let i = 0; i < keep; i++) {
    u -= p[order[i]];
    if (u < 0) return order[i];
  }
  return order[keep - 1];
}
