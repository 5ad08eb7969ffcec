// Which kernels fit the adapter's workgroup memory. WebGPU guarantees every adapter 16 KiB per workgroup
// (maxComputeWorkgroupStorageSize); desktop and Apple GPUs offer 32 KiB, but some mobile and compatibility adapters
// offer only the minimum. Two default kernels need more: the row-split attention and the basic GEMM's NF4 products.
// Each has a sibling that fits, and computes the same contract, so a context on such an adapter starts on those
// (GpuContext.fromAdapter) and the kernel measurement of a run never tries the others (src/run/kernel-tuning.ts).

import type { AttentionKernel, GemmKernel, LoraKernel } from './gpu.ts';

/** The kernels a context runs, one of each kind it switches between. */
export interface KernelKinds {
  gemm: GemmKernel;
  attention: AttentionKernel;
  /** LoRA's rank-r products: on the GEMM kernel ('general') or the skinny one. */
  lora: LoraKernel;
}
export type KernelKind = keyof KernelKinds;
export const KERNEL_KINDS: readonly KernelKind[] = ['gemm', 'attention', 'lora'];

/**
 * The most workgroup memory any pipeline of each kernel needs, in bytes, as Dawn counts it (every workgroup variable
 * its entry point uses, each rounded up to its alignment). test/gpu/minimum-limits.test.ts checks the figures above
 * 16 KiB against the totals Dawn reports when it refuses those pipelines, and that the others build at 16 KiB.
 * - attention 'rows': backward_dkv (its K/dO tiles, 17 KiB of partial scores and the row statistics);
 *   'tiled': backward_dkv of attention_flash.wgsl (its forward needs 15,244).
 * - gemm 'basic': the fused NF4 products' two 8 KiB tiles and their 64-byte code book (its plain GEMM needs 8 KiB);
 *   'tiled': the wide block's two tiles; its NF4 products take the narrow block where the wide one's code book would
 *   not fit (matmul_tiled.ts), so 16 KiB covers every tiled pipeline; 'tiled-k32': the wide block's two tiles of 32
 *   K rows (its NF4 code book in a storage buffer).
 * - lora 'skinny': its 16 KiB of partial sums; 'general' runs on the GEMM kernel, counted there.
 */
export const WORKGROUP_BYTES: { readonly [K in KernelKind]: Readonly<Record<KernelKinds[K], number>> } = {
  attention: { rows: 25_680, tiled: 15_752 },
  gemm: { basic: 16_448, tiled: 16_384, 'tiled-fixed': 16_384, 'tiled-warp': 16_384, 'tiled-k32': 32_768, 'tiled-warp-k32': 32_768 },
  lora: { general: 0, skinny: 16_384 },
};

const KERNEL_NAMES: { readonly [K in KernelKind]: Readonly<Record<KernelKinds[K], string>> } = {
  attention: { rows: 'row-split attention', tiled: 'tiled attention' },
  gemm: { basic: 'basic GEMM (its NF4 products)', tiled: 'tiled GEMM', 'tiled-fixed': 'tiled GEMM', 'tiled-warp': 'tiled GEMM', 'tiled-k32': 'tiled GEMM with a K step of 32', 'tiled-warp-k32': 'tiled GEMM with a K step of 32' },
  lora: { general: 'general LoRA products', skinny: 'skinny LoRA products' },
};

const bytesText = (n: number): string => n.toLocaleString('en-US');

/** Why `kernel` cannot run with `limit` bytes of workgroup memory, or null when it fits. */
export function unfitKernel<K extends KernelKind>(limit: number, kind: K, kernel: KernelKinds[K]): string | null {
  return WORKGROUP_BYTES[kind][kernel] <= limit ? null : unfitText(limit, [[kind, kernel]]);
}

/** Why the kernels of `k` that need more than `limit` bytes of workgroup memory cannot run (each named), or null. */
export function unfitKernels(limit: number, k: KernelKinds): string | null {
  const unfit = KERNEL_KINDS.filter((kind) => WORKGROUP_BYTES[kind][k[kind] as never] > limit).map((kind) => [kind, k[kind]] as const);
  return unfit.length === 0 ? null : unfitText(limit, unfit);
}

function unfitText(limit: number, unfit: readonly (readonly [KernelKind, string])[]): string {
  const need = unfit.map(([kind, kernel], i) => {
    const name = (KERNEL_NAMES[kind] as Record<string, string>)[kernel];
    const bytes = bytesText((WORKGROUP_BYTES[kind] as Record<string, number>)[kernel]);
    return i === 0 ? `the ${name} needs ${bytes} bytes of workgroup memory` : `the ${name} ${bytes}`;
  });
  return `${need.join(', ')}${unfit.length > 1 ? ',' : ''} and this GPU offers ${bytesText(limit)}`;
}

/** The kernels a context starts on where the adapter's workgroup memory allows them. */
export const USUAL_KERNELS: Readonly<KernelKinds> = { gemm: 'basic', attention: 'rows', lora: 'general' };

/**
 * Why a context on an adapter with `limit` bytes of workgroup memory starts on `chosen` rather than USUAL_KERNELS,
 * naming what runs instead, or null when the usual kernels fit.
 */
export function fittingNote(limit: number, chosen: KernelKinds): string | null {
  const why = unfitKernels(limit, USUAL_KERNELS);
  if (why === null) return null;
  const instead = KERNEL_KINDS.filter((kind) => unfitKernel(limit, kind, USUAL_KERNELS[kind] as never) !== null).map(
    (kind) => (KERNEL_NAMES[kind] as Record<string, string>)[chosen[kind]],
  );
  return `${why}, so the ${instead.join(' and the ')} run${instead.length === 1 ? 's' : ''} in ${instead.length === 1 ? 'its' : 'their'} place`;
}

/** The first of `preferred` that fits (they are listed default first); the last one when none does. */
export function firstFitting<K extends KernelKind>(limit: number, kind: K, preferred: readonly KernelKinds[K][]): KernelKinds[K] {
  return preferred.find((k) => unfitKernel(limit, kind, k) === null) ?? preferred[preferred.length - 1];
}
