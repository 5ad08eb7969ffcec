// The one set of generation limits (src/config/generation.ts): the page's Try it and `finetune generate` read a value
// the same way and refuse it in the same words; the worker's own check (checkSampling) holds the same bounds.
import { describe, expect, it } from 'vitest';
import { GENERATION_LIMITS, generationLimitMessage, parseGenerationSetting, withinGenerationLimit } from '../../../src/config/generation.ts';
import { checkSampling } from '../../../src/run/sampling.ts';
import { readSettings } from '../../../src/ui/try-panel.ts';

const value = (r: ReturnType<typeof parseGenerationSetting>): number | string => (r.ok ? r.value : r.error);

describe('generation limits', () => {
  it('takes numbers written in decimal, spaces around them ignored', () => {
    expect(value(parseGenerationSetting('maxNewTokens', ' 16 ', 'n'))).toBe(16);
    expect(value(parseGenerationSetting('maxNewTokens', '4096', 'n'))).toBe(4096);
    expect(value(parseGenerationSetting('temperature', '0.7', 't'))).toBe(0.7);
    expect(value(parseGenerationSetting('temperature', '.5', 't'))).toBe(0.5);
    expect(value(parseGenerationSetting('temperature', '2', 't'))).toBe(2);
    expect(value(parseGenerationSetting('topP', '1', 'p'))).toBe(1);
    expect(value(parseGenerationSetting('seed', '-1', 's'))).toBe(-1);
  });

  it('refuses hex, exponents, digit separators, infinities and empty text, though Number() takes most of them', () => {
    for (const text of ['0x10', '1e2', '1_000', 'Infinity', '', ' ', '16 tokens', '0b101']) {
      expect(parseGenerationSetting('maxNewTokens', text, '--max-tokens')).toEqual({ ok: false, error: `--max-tokens must be a whole number from 1 to 4,096, got ${JSON.stringify(text)}` });
    }
    for (const text of ['1e-1', '0x1', 'NaN', '-', '.']) expect(parseGenerationSetting('temperature', text, 't').ok).toBe(false);
    expect(parseGenerationSetting('seed', '1.5', 's').ok).toBe(false);
    expect(parseGenerationSetting('seed', '99999999999999999999', 's').ok).toBe(false); // not a safe integer
  });

  it('holds each setting to its range, its ends included or not as declared', () => {
    expect(withinGenerationLimit('maxNewTokens', 0)).toBe(false);
    expect(withinGenerationLimit('maxNewTokens', 4097)).toBe(false);
    expect(withinGenerationLimit('temperature', 0)).toBe(true);
    expect(withinGenerationLimit('temperature', 2.01)).toBe(false);
    expect(withinGenerationLimit('temperature', -0.1)).toBe(false);
    expect(withinGenerationLimit('topP', 0)).toBe(false); // no token would be kept
    expect(withinGenerationLimit('topP', 1e-6)).toBe(true);
    expect(withinGenerationLimit('topP', 1.01)).toBe(false);
    expect(withinGenerationLimit('seed', Number.MAX_SAFE_INTEGER)).toBe(true);
    expect(withinGenerationLimit('seed', Number.NaN)).toBe(false);
    expect(GENERATION_LIMITS.temperature.max).toBe(2);
  });

  it('says the same thing on the page and in the engine, each under its own name', () => {
    expect(readSettings('0x10', '0', '1')).toBe('New tokens must be a whole number from 1 to 4,096, got "0x10"');
    expect(readSettings('16', '3', '1')).toBe('Temperature must be a number from 0 (greedy) to 2, got "3"');
    expect(readSettings('16', '0', '0')).toBe('Top-p must be a number above 0 and at most 1, got "0"');
    expect(readSettings('16', '0.7', '0.9')).toEqual({ maxNewTokens: 16, temperature: 0.7, topP: 0.9, seed: 0 });
    expect(readSettings('16', '0.7', '0.9', ' 42 ')).toEqual({ maxNewTokens: 16, temperature: 0.7, topP: 0.9, seed: 42 });
    expect(readSettings('16', '0.7', '0.9', '1.5')).toBe('Seed must be a whole number from -(2^53 - 1) to 2^53 - 1, got "1.5"');
    // The worker refuses what the page would (a temperature the engine used to take up to 100).
    expect(() => checkSampling({ temperature: 3, topP: 1 })).toThrow(generationLimitMessage('temperature', 'temperature', 3));
    expect(() => checkSampling({ temperature: 2, topP: 1 })).not.toThrow();
  });
});
