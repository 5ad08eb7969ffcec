// Runs a raw WGSL compute shader as a single workgroup and reads one of its buffers back: for the GPU tests that
// probe the device itself (a toggle's effect, the subgroup-matrix layout) rather than one of the engine's kernels.

/**
 * Dispatches `code`'s `main` once (one workgroup), with `resources[i]` at @group(0) @binding(i), then copies the first
 * `bytes` of `out` to a mappable buffer and returns them.
 */
export async function runOneWorkgroup(device: GPUDevice, code: string, resources: GPUBindingResource[], out: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const module = device.createShaderModule({ code });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: resources.map((resource, binding) => ({ binding, resource })) });
  const read = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bind);
  pass.dispatchWorkgroups(1);
  pass.end();
  enc.copyBufferToBuffer(out, 0, read, 0, bytes);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const got = read.getMappedRange().slice(0);
  read.unmap();
  read.destroy();
  return got;
}
