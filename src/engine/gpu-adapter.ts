// Describes a WebGPU adapter in the terms that matter for training: who made it, which features we can use,
// and the limits that bound tensor sizes. Used by the page's GPU panel, `finetune gpu-info` and benchmarks.

export interface GpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** SwiftShader or another CPU implementation: correct but slow. */
  software: boolean;
  features: {
    shaderF16: boolean;
    subgroups: boolean;
    timestampQuery: boolean;
    subgroupMatrix: boolean;
    all: string[];
  };
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupSizeX: number;
    maxStorageBuffersPerShaderStage: number;
    maxComputeWorkgroupsPerDimension: number;
  };
}

export function describeGpuAdapter(adapter: GPUAdapter): GpuAdapterInfo {
  const info = adapter.info;
  const features = [...adapter.features].map(String).sort();
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const description = info?.description ?? '';
  const text = `${vendor} ${architecture} ${device} ${description}`.toLowerCase();
  const l = adapter.limits;
  return {
    vendor,
    architecture,
    device,
    description,
    software: text.includes('swiftshader') || text.includes('llvmpipe') || text.includes('lavapipe') || Boolean((info as { isFallbackAdapter?: boolean }).isFallbackAdapter),
    features: {
      shaderF16: adapter.features.has('shader-f16'),
      subgroups: adapter.features.has('subgroups'),
      timestampQuery: adapter.features.has('timestamp-query'),
      subgroupMatrix: features.some((f) => f.includes('subgroup-matrix')),
      all: features,
    },
    limits: {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  };
}
