// An adapter that offers only the limits WebGPU guarantees every adapter (the spec's defaults), as some mobile and
// compatibility-mode adapters do: the same adapter, its `limits` cut down. GpuContext asks for the adapter's limits,
// so a context made from it gets a device with just these.
import { findNodeAdapter } from '../../src/cli/node-gpu.ts';

export const WEBGPU_MINIMUM_LIMITS: Readonly<Record<string, number>> = {
  maxBufferSize: 268_435_456,
  maxStorageBufferBindingSize: 134_217_728,
  maxComputeWorkgroupStorageSize: 16_384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupSizeY: 256,
  maxStorageBuffersPerShaderStage: 8,
};

/** `adapter` offering WebGPU's minimum limits, except those `over` names. */
export function withMinimumLimits(adapter: GPUAdapter, over: Readonly<Record<string, number>> = {}): GPUAdapter {
  const cut = { ...WEBGPU_MINIMUM_LIMITS, ...over };
  const limits = new Proxy(adapter.limits, {
    get: (target, key) => (typeof key === 'string' && key in cut ? cut[key] : Reflect.get(target, key)),
  });
  return new Proxy(adapter, {
    get: (target, key) => {
      if (key === 'limits') return limits;
      // Dawn's objects check `this`: methods and getters run on the real adapter.
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** A fresh adapter (each device consumes one) that offers only WebGPU's guaranteed limits, except those `over` names. */
export async function minimumLimitsAdapter(over: Readonly<Record<string, number>> = {}): Promise<GPUAdapter> {
  return withMinimumLimits((await findNodeAdapter()).adapter, over);
}
