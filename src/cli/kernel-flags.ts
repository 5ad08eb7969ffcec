// The flags that pick the engine's kernels (GpuContextOptions), parsed one way for every command that takes them:
// --gemm, --attention and --lora-kernel (bench, check: a kernel; train: a kernel or 'auto', src/run/kernel-tuning.ts),
// --base-matmul (train, check, plan, bench; 'int8' and 'int8-mlp' are the experimental path of docs/int8.md) and
// --int8-kernel (train, check, bench: which kernel that path runs on).

import {
  ATTENTION_KERNELS,
  TILED_STAGES,
  BASE_MATMULS,
  GEMM_KERNELS,
  INT8_KERNELS,
  LORA_KERNELS,
  type AttentionKernel,
  type BaseMatmul,
  type GemmKernel,
  type Int8Kernel,
  type LoraKernel,
  type TiledStages,
} from '../engine/gpu.ts';
import type { KernelAsk } from '../run/kernel-tuning.ts';
import { UsageError } from './command.ts';

export const BASE_MATMUL_HELP = `--base-matmul fp32|int8|int8-mlp   the frozen NF4 base products: fp32 (default), or the experimental
                     int8 path (docs/int8.md) for every projection (int8) or the MLP's three (int8-mlp)`;

/** `v` when it is one of `choices`, else a usage error naming --`flag`. */
function oneOf<T extends string>(flag: string, choices: readonly T[], v: string): T {
  if (!(choices as readonly string[]).includes(v)) throw new UsageError(`--${flag} must be one of ${choices.join(', ')}, got "${v}"`);
  return v as T;
}

/** A GEMM kernel named by --`flag` (--gemm, or an entry of bench's --kernels). */
export const gemmKernelFlag = (flag: string, v: string): GemmKernel => oneOf(flag, GEMM_KERNELS, v);

export const attentionKernelFlag = (v: string): AttentionKernel => oneOf('attention', ATTENTION_KERNELS, v);

export const loraKernelFlag = (v: string): LoraKernel => oneOf('lora-kernel', LORA_KERNELS, v);

export const INT8_KERNEL_HELP = `--int8-kernel dp4a|subgroup-matrix   the int8 path's kernel: dp4a (default, every GPU), or tensor-core
                     subgroup matrices (experimental; Dawn's chromium-experimental-subgroup-matrix with i8 16×16×32,
                     checked against dp4a to the bit on this GPU before use)`;

/** The int8 kernel, 'dp4a' when the flag is absent. */
export const parseInt8Kernel = (v: string | undefined): Int8Kernel => (v === undefined ? 'dp4a' : oneOf('int8-kernel', INT8_KERNELS, v));

/** The choice, 'fp32' when the flag is absent. */
export const parseBaseMatmul = (v: string | undefined): BaseMatmul => (v === undefined ? 'fp32' : oneOf('base-matmul', BASE_MATMULS, v));

export const KERNEL_ASK_HELP = `--gemm auto|basic|tiled|tiled-fixed|tiled-warp|tiled-k32|tiled-warp-k32, --attention auto|rows|tiled, --lora-kernel auto|general|skinny
                     the GEMM (with the NF4 products), attention and LoRA-product kernels; auto (default): on a
                     hardware GPU the fastest of those whose numbers agree with the defaults there, measured on one
                     layer of the model in the run's shape and remembered in the cache directory; a resumed run keeps
                     its own
  --retune-kernels   measure again even when a choice is remembered, combinations that lost the GPU device while
                     measured before included (those are otherwise left out)`;

/** A kernel flag of train: 'auto' (the default) or one of the kernels; a refusal names auto among the choices. */
const askFlag = <K extends string>(flag: string, choices: readonly K[], v: string | undefined): KernelAsk<K> =>
  v === undefined ? 'auto' : (oneOf(flag, ['auto', ...choices] as const, v) as KernelAsk<K>);

export const gemmAskFlag = (v: string | undefined): KernelAsk<GemmKernel> => askFlag('gemm', GEMM_KERNELS, v);
export const attentionAskFlag = (v: string | undefined): KernelAsk<AttentionKernel> => askFlag('attention', ATTENTION_KERNELS, v);
export const loraAskFlag = (v: string | undefined): KernelAsk<LoraKernel> => askFlag('lora-kernel', LORA_KERNELS, v);

export const ROBUSTNESS_HELP = `--no-robustness    (Node, for a GPU server) compile shaders without Dawn's bounds clamps on buffer indexes
                     (its disable_robustness toggle): a Mistral-7B step 1.05× faster on the H200; the kernels never
                     index out of range, but a kernel bug could then touch memory outside its buffer. Off by default;
                     a browser never has it`;

export const TILED_STAGES_HELP = `--tiled-stages 1|2  stages of workgroup tiles in the tiled GEMM and its NF4 products: 1 (default), or 2 where
                     the GPU has the workgroup memory (one barrier per K step instead of two; the same numbers;
                     slower on the H200)`;

/**
 * The context options of --no-robustness and --tiled-stages, parsed once where a command reads its flags (a bad
 * --tiled-stages is a usage error before any GPU work): each absent flag leaves the context's default.
 */
export function nodeContextFlags(values: { 'no-robustness'?: boolean; 'tiled-stages'?: string }): { robustness?: false; tiledStages?: TiledStages } {
  const v = values['tiled-stages'];
  let tiledStages: TiledStages | undefined;
  if (v !== undefined) {
    const n = Number(v);
    if (!(TILED_STAGES as readonly number[]).includes(n)) throw new UsageError(`--tiled-stages must be one of ${TILED_STAGES.join(', ')}, got "${v}"`);
    tiledStages = n as TiledStages;
  }
  return { ...(values['no-robustness'] ? { robustness: false as const } : {}), ...(tiledStages ? { tiledStages } : {}) };
}
