// learning_rate: 0 trains nothing and is refused; above 0.1 is legal but almost surely a typo, and says so.
import { describe, expect, it } from 'vitest';
import { describeRule, FIELD_BY_NAME, hyperparamWarnings, safeParseHyperparams } from '../../../src/config/index.ts';
import { hyperparamsFromArgs } from '../../../src/config/flags.ts';

describe('learning_rate range', () => {
  it('refuses 0 and negative values, with the rule in the message', () => {
    for (const v of [0, '0', -1e-4]) {
      const r = safeParseHyperparams({ learning_rate: v });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors).toEqual([`learning_rate must be a number greater than 0, got ${v}`]);
    }
    expect(describeRule(FIELD_BY_NAME.learning_rate)).toBe('a number greater than 0');
  });

  it('accepts sane values without a warning and warns above 0.1', () => {
    const ok = safeParseHyperparams({ learning_rate: '2e-4' });
    expect(ok).toMatchObject({ ok: true, warnings: [] });
    const high = safeParseHyperparams({ learning_rate: 0.5 });
    expect(high.ok).toBe(true);
    if (high.ok) expect(high.warnings).toEqual(['learning_rate 0.5 is above 0.1: far higher than fine-tuning normally uses, training will likely diverge (the default is 0.0001)']);
    expect(hyperparamWarnings({ learning_rate: 0.1 })).toEqual([]);
  });

  it('reaches the command line: hyperparamsFromArgs returns the warnings', () => {
    expect(hyperparamsFromArgs(['--learning_rate', '0.3']).warnings).toHaveLength(1);
    expect(() => hyperparamsFromArgs(['--learning_rate', '0'])).toThrow('learning_rate must be a number greater than 0, got 0');
  });
});
