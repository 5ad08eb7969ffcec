// Whether an adapter can run the tensor-core int8 kernel (shaders/int8_matmul_sm.wgsl): Dawn's experimental
// `chromium-experimental-subgroup-matrix` feature with an i8 × i8 → i32 configuration of 16 × 16 × 32, subgroups,
// and a largest subgroup that divides the kernel's 128 threads. In Node the feature is only offered by an instance
// made with Dawn's `allow_unsafe_apis` toggle (src/cli/node-gpu.ts); in Chrome, behind --enable-unsafe-webgpu.

export const SUBGROUP_MATRIX_FEATURE = 'chromium-experimental-subgroup-matrix';

/** The one configuration the kernel is written for (M × N × K of one multiply-accumulate). */
export const INT8_SUBGROUP_MATRIX_CONFIG = { componentType: 'i8', resultComponentType: 'i32', M: 16, N: 16, K: 32 } as const;

/** The kernel's workgroup: 128 threads along x, a multiple of every subgroup size the feature allows it on. */
export const INT8_SM_WORKGROUP = 128;

/** The parts of GPUAdapterInfo this needs; `subgroupMatrixConfigs` is Dawn's, not yet in @webgpu/types. */
interface SubgroupMatrixInfo {
  subgroupMaxSize?: number;
  subgroupMatrixConfigs?: readonly { componentType: string; resultComponentType: string; M: number; N: number; K: number }[];
}

/** null when `adapter` can run the kernel, else why not, in words for the user. */
export function int8SubgroupMatrixUnsupported(adapter: GPUAdapter): string | null {
  if (!adapter.features.has(SUBGROUP_MATRIX_FEATURE as GPUFeatureName)) {
    return `the adapter does not offer ${SUBGROUP_MATRIX_FEATURE} (Dawn offers it on some Vulkan, Metal and D3D12 drivers, and only with its allow_unsafe_apis toggle)`;
  }
  if (!adapter.features.has('subgroups' as GPUFeatureName)) return 'the adapter does not offer subgroups';
  const info = adapter.info as unknown as SubgroupMatrixInfo;
  const c = INT8_SUBGROUP_MATRIX_CONFIG;
  const configs = info.subgroupMatrixConfigs ?? [];
  if (!configs.some((x) => x.componentType === c.componentType && x.resultComponentType === c.resultComponentType && x.M === c.M && x.N === c.N && x.K === c.K)) {
    const offered = configs.map((x) => `${x.componentType}→${x.resultComponentType} ${x.M}×${x.N}×${x.K}`).join(', ') || 'none';
    return `the adapter's subgroup matrices do not include ${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K} (offered: ${offered})`;
  }
  const sub = info.subgroupMaxSize ?? 0;
  if (sub <= 0 || INT8_SM_WORKGROUP % sub !== 0) return `the adapter's largest subgroup (${sub}) does not divide the kernel's ${INT8_SM_WORKGROUP} threads`;
  // Workgroup memory needs no check: the kernel declares at most 15,168 bytes, under the 16 KiB every adapter offers
  // (test/gpu/int8_matmul_sm.test.ts builds it on a device with exactly 16 KiB).
  return null;
}
