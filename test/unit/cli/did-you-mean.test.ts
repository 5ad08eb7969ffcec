import { describe, expect, it } from 'vitest';
import { closestName, flagSuggestion } from '../../../src/cli/did-you-mean.ts';

const FLAGS = ['model', 'data', 'validation', 'out', 'resume', 'learning_rate', 'lora_rank', 'lora_alpha', 'max_seq_len', 'no-cache'];

describe('closestName: the name a mistyped one meant', () => {
  it('finds the same name in the other spelling or case first', () => {
    expect(closestName('learning-rate', FLAGS)).toBe('learning_rate');
    expect(closestName('LEARNING_RATE', FLAGS)).toBe('learning_rate');
    expect(closestName('No_Cache', FLAGS)).toBe('no-cache');
  });

  it('finds a name a letter or two away, the nearest one', () => {
    expect(closestName('lerning_rate', FLAGS)).toBe('learning_rate');
    expect(closestName('lora_rnk', FLAGS)).toBe('lora_rank');
    expect(closestName('lora_alpah', FLAGS)).toBe('lora_alpha');
    expect(closestName('modle', FLAGS)).toBe('model');
    expect(closestName('ot', FLAGS)).toBe('out');
  });

  it('guesses nothing where no name is close, or for a short word far from every short name', () => {
    expect(closestName('zzz', FLAGS)).toBeUndefined();
    expect(closestName('temperature', FLAGS)).toBeUndefined();
    expect(closestName('abc', FLAGS)).toBeUndefined();
    expect(closestName('', FLAGS)).toBeUndefined();
    expect(closestName('model', [])).toBeUndefined();
  });

  it('allows more letters off the longer the word is', () => {
    // Three edits: too many for a word of 8 letters, allowed for one of 13.
    expect(closestName('mx_sq_ln', FLAGS)).toBeUndefined();
    expect(closestName('lernin_rat', FLAGS)).toBe('learning_rate');
  });
});

describe('flagSuggestion', () => {
  it('reads the flag as typed, dashes and a value included', () => {
    expect(flagSuggestion('--lerning-rate=1e-4', FLAGS)).toBe(' Did you mean --learning_rate?');
    expect(flagSuggestion('-modle', FLAGS)).toBe(' Did you mean --model?');
    expect(flagSuggestion('--zzz', FLAGS)).toBe('');
  });
});
