import { parseCommandArgs, type Command } from '../command.ts';
import { detectGpuMemory } from '../gpu-memory.ts';
import { createNodeContext, findNodeAdapter } from '../node-gpu.ts';
import { int8SubgroupMatrixUnsupported } from '../../engine/subgroup-matrix.ts';
import { checkMatmul } from '../../run/selftest.ts';

export const gpuInfoCommand: Command = {
  name: 'gpu-info',
  summary: 'show the WebGPU adapter this machine offers and check that its matmul computes right',
  usage: `finetune gpu-info [--no-check]

Prints one JSON object: the adapter (vendor, architecture, features, limits), how it was found (hardware GPU or
SwiftShader), whether the tensor-core int8 kernel (--int8-kernel subgroup-matrix, docs/int8.md) can run on it and if not
why, the kernels a run starts from here (defaultKernels; kernelNote says why when the adapter's workgroup memory is
too small for the usual ones), the GPU memory where the machine can tell (nvidia-smi on an NVIDIA GPU: what train and plan use without
--gpu-memory), and a quick matmul correctness check against a float64 reference (skip it with --no-check).`,
  async run(args, io) {
    const { values } = parseCommandArgs(args, { 'no-check': { type: 'boolean', default: false } });
    const { ctx, found } = await createNodeContext();
    if (found.note) io.err(`note: ${found.note}`);
    const result: Record<string, unknown> = { via: found.via, adapter: ctx.report };
    // Dawn shows experimental features only to an instance made with its unsafe-APIs toggle: ask one, make no device.
    const why = int8SubgroupMatrixUnsupported((await findNodeAdapter({ unsafeApis: true })).adapter);
    result.int8SubgroupMatrix = why === null ? { available: true } : { available: false, why };
    result.defaultKernels = { gemm: ctx.gemmKernel, attention: ctx.attention, lora: ctx.loraKernel };
    if (ctx.kernelNote) result.kernelNote = ctx.kernelNote;
    const memory = await detectGpuMemory(ctx.report);
    if (memory) result.memory = memory;
    if (!values['no-check']) {
      const checks = [await checkMatmul(ctx, 17, 33, 65), await checkMatmul(ctx, 130, 7, 300)];
      result.matmulCheck = { ok: checks.every((c) => c.ok), checks };
    }
    io.out(JSON.stringify(result, null, 2));
    ctx.destroyDevice();
    return (result.matmulCheck as { ok: boolean } | undefined)?.ok === false ? 1 : 0;
  },
};
