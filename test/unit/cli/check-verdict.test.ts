// `finetune check`'s verdict on stderr: a person at the terminal saw only progress lines there and exit 1, the failing
// group inside the JSON on stdout.
import { describe, expect, it } from 'vitest';
import { checkVerdictLines } from '../../../src/cli/commands/check.ts';
import type { CheckReport } from '../../../src/run/check.ts';

const group = (worst: number, ok: boolean) => ({ worst, where: 'layers.0.q_proj.lora_B', count: 4, tolerance: 1e-4, ok });
const report = (groups: CheckReport['groups'], int8?: CheckReport['int8']): CheckReport => ({ ok: Object.values(groups).every((g) => g.ok), quantization: 'nf4', loss: null, groups, adapterWeights: 'adapter', seconds: 1, ...(int8 ? { int8 } : {}) });

describe('the check verdict in words', () => {
  it('says it passed, with the number of groups', () => {
    expect(checkVerdictLines(report({ loss: group(1e-7, true), grads: group(2e-6, true) }))).toEqual(['check: passed (2 groups within tolerance)']);
  });

  it('names each failing group with its worst tensor and tolerance, and failing int8 gates', () => {
    const int8 = { int8: { ok: false, gates: { lossRelError: 1e-3, gradCosine: 0.999 }, loss: { fp32: 1, int8: 1.01, relError: 0.01 }, gradCosine: { worst: 0.9, where: 'x', all: 0.95, tensors: 3 } } } as unknown as CheckReport['int8'];
    expect(checkVerdictLines(report({ loss: group(1e-7, true), grads: group(3e-3, false) }, int8))).toEqual([
      'check: FAILED grads: worst error 3.00e-3 at layers.0.q_proj.lora_B (tolerance 1e-4)',
      'check: FAILED int8 gates for int8: loss relative error 1.00e-2, LoRA-gradient cosine 0.950000 (docs/int8.md)',
    ]);
  });
});
