// The GPU tier's one way to get a device: Dawn in Node, a hardware GPU or SwiftShader. It never skips: a machine
// without an adapter fails the tier loudly.
import { createNodeContext } from '../../src/cli/node-gpu.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';

let shared: Promise<GpuContext> | null = null;

export function gpuContext(): Promise<GpuContext> {
  shared ??= createNodeContext().then(({ ctx }) => ctx);
  return shared;
}
