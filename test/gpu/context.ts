// The GPU tier's one way to get a device: Dawn in Node, a hardware GPU or SwiftShader. It never skips: a machine
// without an adapter fails the tier loudly.
//
// Kernel choices for the whole tier (docs/testing.md), unset: the default kernels.
// - FINETUNE_TEST_ATTENTION=tiled: the tiled attention forward and backward (GpuContextOptions.attention), e.g.
//   `FINETUNE_TEST_ATTENTION=tiled npx vitest run test/gpu/golden.test.ts`;
// - FINETUNE_TEST_GEMM=tiled (or tiled-fixed): that GEMM kernel behind `gemm` (GpuContextOptions.gemmKernel);
// - FINETUNE_TEST_LORA_KERNEL=skinny: LoRA's rank-r products on the skinny kernel (GpuContextOptions.loraKernel).
import { createNodeContext } from '../../src/cli/node-gpu.ts';
import { GEMM_KERNELS, LORA_KERNELS, type AttentionKernel, type GemmKernel, type GpuContext, type LoraKernel } from '../../src/engine/gpu.ts';

let shared: Promise<GpuContext> | null = null;

function attentionKernel(): AttentionKernel {
  const v = process.env.FINETUNE_TEST_ATTENTION ?? 'rows';
  if (v !== 'rows' && v !== 'tiled') throw new Error(`FINETUNE_TEST_ATTENTION must be rows or tiled, got "${v}"`);
  return v;
}

function gemmKernelFromEnv(): GemmKernel | undefined {
  const v = process.env.FINETUNE_TEST_GEMM;
  if (v === undefined || v === '') return undefined;
  if (!(GEMM_KERNELS as readonly string[]).includes(v)) throw new Error(`FINETUNE_TEST_GEMM must be one of ${GEMM_KERNELS.join(', ')}, got "${v}"`);
  return v as GemmKernel;
}

function loraKernelFromEnv(): LoraKernel | undefined {
  const v = process.env.FINETUNE_TEST_LORA_KERNEL;
  if (v === undefined || v === '') return undefined;
  if (!(LORA_KERNELS as readonly string[]).includes(v)) throw new Error(`FINETUNE_TEST_LORA_KERNEL must be one of ${LORA_KERNELS.join(', ')}, got "${v}"`);
  return v as LoraKernel;
}

export function gpuContext(): Promise<GpuContext> {
  shared ??= createNodeContext({ attention: attentionKernel(), gemmKernel: gemmKernelFromEnv(), loraKernel: loraKernelFromEnv() }).then(({ ctx }) => ctx);
  return shared;
}
