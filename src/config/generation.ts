// The one set of generation settings that the page's "Try it" (src/ui/try-panel.ts) and `finetune generate`
// (src/cli/commands/generate.ts) accept: the same ranges, the same way of writing a number and the same message for a
// value out of bounds, so that what one refuses the other refuses in the same words. They used to differ (temperature
// up to 2 on the page and 100 in the engine, `0x10` new tokens taken as 16 by both). The worker checks temperature and
// top-p again against these limits (src/run/sampling.ts): it trusts nothing it is sent. docs/generation.md says why
// each range is what it is.
//
// The prompt: any text, the empty one included. An empty prompt continues <s> alone (an unconditioned sample of what
// the model, or the adapter, has learnt), as llama.cpp and transformers' generate() allow; BOS is always prepended.

import { formatCount } from '../core/units.ts';
import { quote } from '../core/quote.ts';

export interface GenerationLimit {
  /** Whole numbers (decimal digits only) or decimals (digits with one optional point); neither takes an exponent. */
  integer: boolean;
  min: number;
  max: number;
  /** `min` itself is refused (top-p 0 would keep no token). */
  exclusiveMin?: boolean;
  /** What is accepted, in words, after "… must be". */
  rule: string;
}

/** Largest new-token count: the KV cache of Mistral-7B for 4,096 positions is 1 GiB (docs/generation.md). */
const MAX_NEW_TOKENS = 4096;

export const GENERATION_LIMITS = {
  maxNewTokens: { integer: true, min: 1, max: MAX_NEW_TOKENS, rule: `a whole number from 1 to ${formatCount(MAX_NEW_TOKENS)}` },
  // Above 2 the softmax is nearly flat over 32,000 tokens: noise, not text. 0..2 is what hosted APIs offer too.
  temperature: { integer: false, min: 0, max: 2, rule: 'a number from 0 (greedy) to 2' },
  topP: { integer: false, min: 0, max: 1, exclusiveMin: true, rule: 'a number above 0 and at most 1' },
  // The project's generator takes any safe integer as a seed (src/core/prng.ts).
  seed: { integer: true, min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER, rule: 'a whole number from -(2^53 - 1) to 2^53 - 1' },
} as const satisfies Record<string, GenerationLimit>;

export type GenerationSetting = keyof typeof GENERATION_LIMITS;

/** Written in decimal: `12`, `-3`; no `0x10`, `1e2`, `1_000` or `Infinity`, which Number() would take. */
const INTEGER_TEXT = /^[+-]?\d+$/;
/** `0.7`, `.5`, `2`, `1.`; no exponent either. */
const DECIMAL_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)$/;

/** Whether a number lies within the setting's limits (NaN and infinities do not). */
export function withinGenerationLimit(setting: GenerationSetting, n: number): boolean {
  const l: GenerationLimit = GENERATION_LIMITS[setting];
  if (!Number.isFinite(n) || (l.integer && !Number.isSafeInteger(n))) return false;
  return (l.exclusiveMin ? n > l.min : n >= l.min) && n <= l.max;
}

/** "`name` must be <rule>, got <what>": the one message for a value out of bounds, a string shown quoted. */
export function generationLimitMessage(setting: GenerationSetting, name: string, got: string | number): string {
  return `${name} must be ${GENERATION_LIMITS[setting].rule}, got ${typeof got === 'string' ? quote(got) : String(got)}`;
}

export type ParsedSetting = { ok: true; value: number } | { ok: false; error: string };

/**
 * A setting as typed (a form field, a flag's value), read as a plain decimal number and checked against its limits;
 * `name` is what the caller calls it (`--temperature`, `Temperature`). Surrounding spaces are ignored.
 */
export function parseGenerationSetting(setting: GenerationSetting, text: string, name: string): ParsedSetting {
  const s = text.trim();
  const n = (GENERATION_LIMITS[setting].integer ? INTEGER_TEXT : DECIMAL_TEXT).test(s) ? Number(s) : Number.NaN;
  return withinGenerationLimit(setting, n) ? { ok: true, value: n } : { ok: false, error: generationLimitMessage(setting, name, text) };
}
