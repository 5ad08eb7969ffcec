// target_modules as a pattern (PEFT applies it with re.fullmatch): matched in linear time, so a file cannot hang us.
import { describe, expect, it } from 'vitest';
import { parseLoraConfig } from '../../../src/model/lora-adapter.ts';
import { errorOf } from './helpers.ts';

const config = (target_modules: unknown) => ({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules });

describe('target_modules given as a pattern', () => {
  it('matches full module names or short names, as re.fullmatch does', () => {
    expect(parseLoraConfig(config('.*(q_proj|v_proj)')).targetModules).toEqual(['q_proj', 'v_proj']);
    expect(parseLoraConfig(config('model\\.layers\\.\\d+\\.mlp\\..*')).targetModules).toEqual(['gate_proj', 'up_proj', 'down_proj']);
    expect(parseLoraConfig(config('(k|o)_proj')).targetModules).toEqual(['k_proj', 'o_proj']);
    // Full match: a pattern that matches only part of a name does not count.
    expect(parseLoraConfig(config('q_pro.|up_proj')).targetModules).toEqual(['q_proj', 'up_proj']);
  });

  it('returns at once on patterns that make a backtracking engine take exponential time', async () => {
    for (const evil of ['(.*)*x', '(a|a)*(b|b)*(.|.)*(.|.)*(.|.)*!', '(([a-z_.0-9])+)+#', '(.*.*)*=']) {
      const started = performance.now();
      const e = await errorOf(() => parseLoraConfig(config(evil)));
      expect(e.message).toMatch(/matches none of q_proj/);
      // JavaScript's RegExp needs minutes to hours on these against a 31-character module name.
      expect(performance.now() - started).toBeLessThan(2000);
    }
  });

  it('refuses an overlong pattern, an invalid one and the features RE2 does not run', async () => {
    expect((await errorOf(() => parseLoraConfig(config(`(${'q_proj|'.repeat(200)}v_proj)`)))).message).toMatch(/a pattern of 1408 characters, more than 1000/);
    expect((await errorOf(() => parseLoraConfig(config('(q_proj')))).message).toMatch(/is not a valid regular expression/);
    expect((await errorOf(() => parseLoraConfig(config('(?=q)q_proj')))).message).toMatch(/no lookaround or backreferences/);
  });
});
