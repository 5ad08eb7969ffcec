// `bench profile`'s bookkeeping (src/bench/profile.ts): which part of a layer each kernel is, its name in the
// profile, and the grouping of profiled dispatches into lines per kernel and a summary by part.
import { describe, expect, it } from 'vitest';
import { PROFILE_PARTS, profileKernel, profilePart, summariseProfile } from '../../../src/bench/profile.ts';
import type { ProfiledDispatch } from '../../../src/engine/profiler.ts';

describe('bench profile: kernels to parts', () => {
  it('puts the NF4 and int8 products (with LoRA terms riding on them) in the base, f32 GEMMs and skinny ones in LoRA', () => {
    expect(profilePart({ shader: 'matmul_tiled', defines: { NF4: true, DQ: true, LOW_RANK: true } })).toBe('base products');
    expect(profilePart({ shader: 'nf4_matmul', entry: 'forward' })).toBe('base products');
    expect(profilePart({ shader: 'int8_matmul' })).toBe('base products');
    expect(profilePart({ shader: 'int8_quant' })).toBe('base products');
    expect(profilePart({ shader: 'matmul_tiled', defines: { NF4: false, DROPOUT: true, DROP_OUT: true } })).toBe('LoRA products');
    expect(profilePart({ shader: 'matmul' })).toBe('LoRA products');
    expect(profilePart({ shader: 'matmul_skinny', defines: { ALIGNED: true } })).toBe('LoRA products');
    expect(profilePart({ shader: 'lora', defines: { INPLACE: true } })).toBe('LoRA products');
    expect(profilePart({ shader: 'attention_flash', entry: 'backward_dq' })).toBe('attention');
    expect(profilePart({ shader: 'attention', entry: 'dot_rows' })).toBe('attention');
    for (const shader of ['norm', 'rope', 'swiglu', 'elementwise', 'adamw', 'xent']) expect(profilePart({ shader })).toBe('other');
  });

  it('names a variant by shader, entry and the defines that are on, sorted', () => {
    expect(profileKernel({ shader: 'matmul_tiled', defines: { NF4: true, ALIGNED: true, DOUBLE: false } })).toBe('matmul_tiled [ALIGNED NF4]');
    expect(profileKernel({ shader: 'attention_flash', entry: 'backward_dq', defines: { DS_SPILL: true } })).toBe('attention_flash:backward_dq [DS_SPILL]');
    expect(profileKernel({ shader: 'norm', constants: { WG: 256 } })).toBe('norm');
  });
});

describe('bench profile: the summary', () => {
  const d = (shader: string, ms: number, defines?: Record<string, boolean>): ProfiledDispatch => ({ spec: { shader, defines }, ms });
  const dispatches = [
    d('matmul_tiled', 5, { NF4: true }),
    d('matmul_skinny', 1),
    d('matmul_tiled', 3, { NF4: true }),
    d('attention_flash', 1.5),
    d('norm', 0.5),
    d('matmul_skinny', 1, { ALIGNED: true }),
  ];

  it('one line per kernel variant, largest first, and parts that add up to the profiled sum', () => {
    const { kernels, summary } = summariseProfile(2048, { C: 4096, I: 14336 }, dispatches, 12.5);
    expect(kernels.map((k) => [k.kernel, k.dispatches, k.ms])).toEqual([
      ['matmul_tiled [NF4]', 2, 8],
      ['attention_flash', 1, 1.5],
      ['matmul_skinny', 1, 1],
      ['matmul_skinny [ALIGNED]', 1, 1],
      ['norm', 1, 0.5],
    ]);
    expect(kernels[0]).toMatchObject({ bench: 'profile', T: 2048, part: 'base products', share: 8 / 12 });
    expect(summary).toMatchObject({ bench: 'profile-summary', T: 2048, C: 4096, I: 14336, dispatches: 6, kernelMs: 12, layerMs: 12.5 });
    expect(summary.parts['base products']).toEqual({ ms: 8, share: 8 / 12, dispatches: 2 });
    expect(summary.parts['LoRA products']).toEqual({ ms: 2, share: 2 / 12, dispatches: 2 });
    expect(summary.parts.attention).toEqual({ ms: 1.5, share: 1.5 / 12, dispatches: 1 });
    expect(summary.parts.other).toEqual({ ms: 0.5, share: 0.5 / 12, dispatches: 1 });
    expect(PROFILE_PARTS.reduce((a, p) => a + summary.parts[p].share, 0)).toBeCloseTo(1, 12);
  });

  it('an empty profile has every part at zero, not NaN', () => {
    const { kernels, summary } = summariseProfile(16, { C: 64, I: 128 }, [], 1);
    expect(kernels).toEqual([]);
    for (const p of PROFILE_PARTS) expect(summary.parts[p]).toEqual({ ms: 0, share: 0, dispatches: 0 });
  });
});
