// The flags that set a Node context's options (src/cli/kernel-flags.ts, nodeContextFlags): each absent flag leaves the
// context's default, a bad value is a usage error naming the flag before any GPU work. (--gemm's kernels, 'tiled-warp'
// among them, are in arguments.test.ts.)
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/cli/command.ts';
import { nodeContextFlags } from '../../../src/cli/kernel-flags.ts';

describe('nodeContextFlags', () => {
  it('passes on only the flags given', () => {
    expect(nodeContextFlags({})).toEqual({});
    expect(nodeContextFlags({ 'no-robustness': true, 'tiled-stages': '2' })).toEqual({ robustness: false, tiledStages: 2 });
    expect(nodeContextFlags({ 'tiled-stages': '1' })).toEqual({ tiledStages: 1 });
  });

  it('refuses a value the flag does not take, naming the flag and the choices', () => {
    expect(() => nodeContextFlags({ 'tiled-stages': 'two' })).toThrow(UsageError);
    expect(() => nodeContextFlags({ 'tiled-stages': '3' })).toThrow('--tiled-stages must be one of 1, 2, got "3"');
  });
});
