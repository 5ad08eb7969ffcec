// The GPU tier's one way to get a device: Dawn in Node, a hardware GPU or SwiftShader. It never skips: a machine
// without an adapter fails the tier loudly.
// FINETUNE_TEST_GEMM=tiled (or tiled-fixed) runs the whole tier with that GEMM kernel behind `gemm` (docs/testing.md);
// unset, the default kernel.
import { createNodeContext } from '../../src/cli/node-gpu.ts';
import { GEMM_KERNELS, type GemmKernel, type GpuContext } from '../../src/engine/gpu.ts';

let shared: Promise<GpuContext> | null = null;

function gemmKernelFromEnv(): GemmKernel | undefined {
  const v = process.env.FINETUNE_TEST_GEMM;
  if (v === undefined || v === '') return undefined;
  if (!(GEMM_KERNELS as readonly string[]).includes(v)) throw new Error(`FINETUNE_TEST_GEMM must be one of ${GEMM_KERNELS.join(', ')}, got "${v}"`);
  return v as GemmKernel;
}

export function gpuContext(): Promise<GpuContext> {
  shared ??= createNodeContext({ gemmKernel: gemmKernelFromEnv() }).then(({ ctx }) => ctx);
  return shared;
}
