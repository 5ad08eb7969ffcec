// A child process for test/gpu/workgroup-zero.test.ts: compiles one shader with a workgroup array under Dawn's
// dump_shaders toggle, whose SPIR-V Dawn prints from C++ to file descriptor 1 (so only a parent can read it).
// argv[2]: 'found' — the adapter findNodeAdapter picks (with VK_ICD_FILENAMES as the parent set it);
//          'extension' — SwiftShader from an instance without zeroWorkgroupInShader (the extension's initializer).
import { register } from 'node:module';
import { register as registerTsx } from 'tsx/esm/api';

registerTsx();
register('../../bin/raw-loader.mjs', import.meta.url);
const { findNodeAdapter, instanceFlags } = await import('../../src/cli/node-gpu.ts');
const { create } = await import('webgpu');

const found = await findNodeAdapter({ dumpShaders: true });
const adapter = process.argv[2] === 'extension' ? await create(instanceFlags({ dumpShaders: true })).requestAdapter() : found.adapter;
const device = await adapter.requestDevice();
const code = `
@group(0) @binding(0) var<storage, read_write> o: array<f32>;
var<workgroup> tile: array<f32, 300>;
@compute @workgroup_size(64) fn main(@builtin(local_invocation_index) t: u32) {
  o[t] = tile[(t * 7u) % 300u];
}`;
device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
console.log(`\nVIA ${found.via} ${adapter.info.vendor} ${adapter.info.architecture}`);
process.exit(0);
