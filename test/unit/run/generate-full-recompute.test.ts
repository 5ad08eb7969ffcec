// generateFullRecompute, the reference the KV-cache generation is tested against, answers from the logits it reads
// back as generate does: logits that are not finite are refused (checkLogits), not answered as a token. The GPU work
// is faked here (the runner, the head's product, the context): what is tested is what is done with the logits read.
import { describe, expect, it, vi } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import type { GpuContext } from '../../../src/engine/gpu.ts';
import type { MistralWeights } from '../../../src/engine/mistral/weights.ts';

vi.mock('../../../src/engine/mistral/model.ts', () => ({
  MistralRunner: class {
    readonly xf = {};
    setBatch(): void {}
    forwardHidden(): void {}
    destroy(): void {}
  },
}));
vi.mock('../../../src/engine/kernels/matvec.ts', () => ({ matvec_forward: () => undefined }));
vi.mock('../../../src/engine/kernels/matmul.ts', () => ({ gemm: () => undefined }));

const { generateFullRecompute } = await import('../../../src/run/generate.ts');

/** A context whose every logits read gives `logits`. */
function fakeContext(logits: number[]): GpuContext {
  return {
    createBuffer: () => ({}),
    copy: () => undefined,
    readF32: async () => Float32Array.from(logits),
    destroy: () => undefined,
  } as unknown as GpuContext;
}

const weights = { dims: { V: 4, C: 2 }, lmHead: { storage: 'f32', buffer: {} } } as unknown as MistralWeights;

describe('generateFullRecompute and the logits it reads', () => {
  it('answers the argmax of finite logits', async () => {
    expect(await generateFullRecompute(fakeContext([0.1, 3, 2, -1]), weights, null, [1], { maxNewTokens: 2 })).toEqual([1, 1]);
  });

  for (const [logits, what] of [
    [[Number.NaN, 1, 2, 3], 'NaN at token 0'],
    [[1, 2, Number.NaN, 0], 'NaN at token 2'],
    [[1, Infinity, 2, 3], 'Infinity at token 1'],
  ] as const) {
    it(`refuses ${what} rather than answering a token`, async () => {
      const got = await generateFullRecompute(fakeContext([...logits]), weights, null, [1], { maxNewTokens: 1 }).catch((e: unknown) => e);
      expect(got).toBeInstanceOf(FinetuneError);
      expect((got as FinetuneError).kind).toBe('mismatch');
      expect((got as FinetuneError).message).toContain(what);
    });
  }
});
