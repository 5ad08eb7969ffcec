import { describe, expect, it } from 'vitest';
import { hyperparamsFromArgs, hyperparamUsage, splitHyperparamFlags } from '../../../src/config/flags.ts';
import { FIELDS } from '../../../src/config/hyperparams.ts';
import { isFinetuneError } from '../../../src/core/errors.ts';

describe('hyperparameters as command-line flags', () => {
  it('reads --name value and --name=value with the schema names', () => {
    const { hp, rest } = hyperparamsFromArgs(['train', 'data.jsonl', '--learning_rate', '2e-4', '--lora_rank=16', '--layout', 'instruct', '--lora_target_modules', 'all-linear']);
    expect([hp.learning_rate, hp.lora_rank, hp.layout, hp.lora_target_modules]).toEqual([2e-4, 16, 'instruct', 'all-linear']);
    expect(rest).toEqual(['train', 'data.jsonl']);
  });

  it('reads booleans bare, with true/false, with =, and negated', () => {
    expect(hyperparamsFromArgs(['--pack_sequences']).hp.pack_sequences).toBe(true);
    expect(hyperparamsFromArgs(['--pack_sequences', 'false']).hp.pack_sequences).toBe(false);
    expect(hyperparamsFromArgs(['--run_validation=false']).hp.run_validation).toBe(false);
    expect(hyperparamsFromArgs(['--no-run_validation']).hp.run_validation).toBe(false);
    // A bare boolean does not swallow the next argument of a command that takes words (validate FILE).
    const r = splitHyperparamFlags(['--pack_sequences', 'file.jsonl']);
    expect([r.values.pack_sequences, r.rest]).toEqual([true, ['file.jsonl']]);
  });

  it('accepts kebab-case spellings and leaves other flags to the command', () => {
    const { values, rest } = splitHyperparamFlags(['--learning-rate', '3e-4', '--tokenizer', 'dir', '-v', '--', '--lora_rank', '2']);
    expect(values).toEqual({ learning_rate: '3e-4' });
    expect(rest).toEqual(['--tokenizer', 'dir', '-v', '--', '--lora_rank', '2']);
  });

  it('explains bad values and missing values as bad input', () => {
    const thrown = (args: string[]) => {
      try {
        hyperparamsFromArgs(args);
      } catch (e) {
        expect(isFinetuneError(e, 'bad-input')).toBe(true);
        return (e as Error).message;
      }
      return null;
    };
    expect(thrown(['--lora_rank', '0'])).toBe('lora_rank must be an integer from 1 to 256, got 0');
    expect(thrown(['--learning_rate'])).toBe('--learning_rate needs a value (a number greater than 0)');
    expect(thrown(['--train_batch_size', '6'])).toMatch(/multiple of micro_batch_size/);
    expect(thrown(['--pack_sequences=perhaps'])).toBe('pack_sequences must be true or false, got "perhaps"');
    // A boolean's value written another way is said as such, not left behind as a stray argument.
    expect(thrown(['--run_validation', '0'])).toBe('--run_validation takes true or false, got "0" (alone it means true; --no-run_validation means false)');
    expect(thrown(['--pack_sequences', 'YES'])).toBe('--pack_sequences takes true or false, got "YES" (alone it means true; --no-pack_sequences means false)');
    // train, plan and remote train take no positional argument, so any word after a bare boolean is its value.
    expect(thrown(['--run_validation', 'maybe'])).toBe('--run_validation takes true or false, got "maybe" (alone it means true; --no-run_validation means false)');
  });

  it('lays the defaults under the flags (a saved job, then the command line)', () => {
    const { hp } = hyperparamsFromArgs(['--lora_rank', '4'], { lora_rank: 32, seed: 7 });
    expect([hp.lora_rank, hp.seed]).toEqual([4, 7]);
  });

  it('documents every flag with its rule and default, grouped', () => {
    const usage = hyperparamUsage();
    for (const f of FIELDS) expect(usage).toContain(`--${f.name}`);
    expect(usage).toMatch(/--lora_rank\s+an integer from 1 to 256; default 8\./);
    expect(usage.indexOf("Replicate's training inputs")).toBeLessThan(usage.indexOf('ours'));
    expect(hyperparamUsage(['layout'])).not.toContain('--lora_rank');
  });
});
