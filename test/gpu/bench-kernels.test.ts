// `finetune bench kernels`: the bandwidth-bound kernels and the lm_head + cross-entropy at a model's shape, each beside
// the plain matmul of the same run. The lm_head is timed at the chunk a training run uses (sizing.ts:
// defaultXentChunk) and at the 256 tokens it used before, so a GPU run shows what the chunk is worth.
import { describe, expect, it } from 'vitest';
import { benchKernels, type KernelBenchResult } from '../../src/bench/kernels.ts';
import type { Dims } from '../../src/engine/mistral/dims.ts';
import { gpuContext } from './context.ts';

const DIMS: Dims = { V: 1000, C: 64, I: 128, L: 2, nH: 4, nKV: 2, hd: 16, theta: 10000, eps: 1e-5 };

describe('bench kernels', () => {
  it("times the lm_head + cross-entropy at the runner's chunk and at 256 tokens, each against the plain matmul", async () => {
    const ctx = await gpuContext();
    const lines: KernelBenchResult[] = [];
    for await (const r of benchKernels(ctx, DIMS, 300, 1)) lines.push(r);
    const head = lines.filter((l) => l.kernel.startsWith('lm_head + cross-entropy'));
    // 300 tokens: the runner takes them in one chunk (up to 1024), the old default in 256 + 44.
    expect(head.map((l) => l.kernel)).toEqual([
      'lm_head + cross-entropy, forward and backward (chunks of 300, what a run uses)',
      'lm_head + cross-entropy, forward and backward (chunks of 256)',
    ]);
    for (const l of head) {
      expect(l.gflops).toBeGreaterThan(0);
      // Timed beside the plain matmul in three alternating rounds: the median of the rounds' rate ratios.
      expect(l.vsPlainRounds).toHaveLength(3);
      expect(l.vsPlain).toBe([...l.vsPlainRounds!].sort((a, b) => a - b)[1]);
      expect(l.vsPlain).toBeGreaterThan(0);
    }
    // The other kernels against the plain line measured first.
    for (const l of lines.filter((x) => !x.kernel.startsWith('lm_head'))) expect(l.vsPlainRounds).toBeUndefined();
  });
});
