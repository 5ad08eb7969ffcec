// Which kernels fit an adapter's workgroup memory (src/engine/kernel-fit.ts): the rules and the sentences users read.
// That the byte counts are Dawn's own is checked on a real device in test/gpu/minimum-limits.test.ts.
import { describe, expect, it } from 'vitest';
import { ATTENTION_KERNELS, GEMM_KERNELS, LORA_KERNELS } from '../../../src/engine/gpu.ts';
import { firstFitting, fittingNote, unfitKernel, unfitKernels, USUAL_KERNELS, WORKGROUP_BYTES } from '../../../src/engine/kernel-fit.ts';

describe('kernels against the workgroup memory an adapter offers', () => {
  it('the usual kernels fit 32 KiB; at the 16 KiB minimum their tiled siblings take over', () => {
    expect(unfitKernels(32768, USUAL_KERNELS)).toBeNull();
    expect(fittingNote(32768, USUAL_KERNELS)).toBeNull();
    expect(firstFitting(16384, 'gemm', GEMM_KERNELS)).toBe('tiled');
    expect(firstFitting(16384, 'attention', ATTENTION_KERNELS)).toBe('tiled');
    expect(firstFitting(16384, 'lora', LORA_KERNELS)).toBe('general');
    expect(firstFitting(32768, 'attention', ATTENTION_KERNELS)).toBe('rows');
    // Every kernel has a sibling within WebGPU's guaranteed 16 KiB.
    for (const kind of ['gemm', 'attention', 'lora'] as const) expect(Math.min(...Object.values(WORKGROUP_BYTES[kind]))).toBeLessThanOrEqual(16384);
  });

  it('says which kernel needs how much, and what runs instead', () => {
    expect(unfitKernel(20000, 'attention', 'rows')).toBe('the row-split attention needs 25,680 bytes of workgroup memory and this GPU offers 20,000');
    expect(unfitKernel(20000, 'gemm', 'basic')).toBeNull();
    expect(fittingNote(20000, { ...USUAL_KERNELS, attention: 'tiled' })).toBe(
      'the row-split attention needs 25,680 bytes of workgroup memory and this GPU offers 20,000, so the tiled attention runs in its place',
    );
    expect(unfitKernels(16384, { gemm: 'basic', attention: 'rows', lora: 'skinny' })).toBe(
      'the basic GEMM (its NF4 products) needs 16,448 bytes of workgroup memory, the row-split attention 25,680, and this GPU offers 16,384',
    );
    expect(fittingNote(16384, { gemm: 'tiled', attention: 'tiled', lora: 'general' })).toMatch(/, so the tiled GEMM and the tiled attention run in their place$/);
  });
});
