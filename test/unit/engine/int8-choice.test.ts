// Which of the training runner's NF4 products run in int8 under each base-product choice (docs/int8.md).
import { describe, expect, it } from 'vitest';
import { PROJECTIONS } from '../../../src/core/mistral.ts';
import { int8For } from '../../../src/engine/mistral/linear.ts';

describe('int8For', () => {
  it('fp32: none; int8: all seven; int8-mlp: gate, up and down; a product without a projection (generation): none', () => {
    expect(PROJECTIONS.filter((p) => int8For('fp32', p))).toEqual([]);
    expect(PROJECTIONS.filter((p) => int8For('int8', p))).toEqual([...PROJECTIONS]);
    expect(PROJECTIONS.filter((p) => int8For('int8-mlp', p))).toEqual(['gate_proj', 'up_proj', 'down_proj']);
    expect(int8For('int8', undefined)).toBe(false);
  });
});
