// The page's number formats (src/ui/format.ts).
import { describe, expect, it } from 'vitest';
import { formatCounted } from '../../../src/core/units.ts';
import { formatCount, formatPercent, quantizationLabel, validationLossWords } from '../../../src/ui/format.ts';

describe('formats', () => {
  it('says a validation loss with the one before training beside it, either alone, or nothing', () => {
    expect(validationLossWords(3.7231, 3.9512)).toBe('validation loss 3.723 (3.951 before training)');
    expect(validationLossWords(3.7231, null)).toBe('validation loss 3.723');
    expect(validationLossWords(null, 3.9512)).toBe('validation loss 3.951 before training');
    expect(validationLossWords(null, undefined)).toBe('');
  });

  it('writes a share with one decimal below 10 %, none above, and none at all for zero', () => {
    expect(formatPercent(0.26)).toBe('26 %');
    expect(formatPercent(0.045)).toBe('4.5 %');
    expect(formatPercent(0)).toBe('0 %');
    expect(formatPercent(Number.NaN)).toBe('—');
  });

  it('separates thousands', () => {
    expect(formatCount(14000)).toBe('14,000');
    expect(formatCount(999747)).toBe('999,747');
    expect(formatCount(Infinity)).toBe('—');
  });

  it('says how the base weights are held in words', () => {
    expect(quantizationLabel('none')).toBe('unquantised');
    expect(quantizationLabel('nf4')).toBe('NF4');
    expect(quantizationLabel('nf4-double')).toBe('NF4, double-quantised');
  });

  it('names a count with its noun, singular for one', () => {
    expect(formatCounted(1, 'token')).toBe('1 token');
    expect(formatCounted(0, 'token')).toBe('0 tokens');
    expect(formatCounted(2412, 'token')).toBe('2,412 tokens');
    expect(formatCounted(2, 'batch', 'batches')).toBe('2 batches');
  });
});
