// The GPU tier's one way to get a device: Dawn in Node, a hardware GPU or SwiftShader. It never skips: a machine
// without an adapter fails the tier loudly.
//
// FINETUNE_TEST_ATTENTION=tiled runs the whole tier with the tiled attention forward and backward
// (GpuContextOptions.attention), e.g. `FINETUNE_TEST_ATTENTION=tiled npx vitest run test/gpu/golden.test.ts`;
// unset or 'rows', the default kernels.
import { createNodeContext } from '../../src/cli/node-gpu.ts';
import type { AttentionKernel, GpuContext } from '../../src/engine/gpu.ts';

function attentionKernel(): AttentionKernel {
  const v = process.env.FINETUNE_TEST_ATTENTION ?? 'rows';
  if (v !== 'rows' && v !== 'tiled') throw new Error(`FINETUNE_TEST_ATTENTION must be rows or tiled, got "${v}"`);
  return v;
}

let shared: Promise<GpuContext> | null = null;

export function gpuContext(): Promise<GpuContext> {
  shared ??= createNodeContext({ attention: attentionKernel() }).then(({ ctx }) => ctx);
  return shared;
}
