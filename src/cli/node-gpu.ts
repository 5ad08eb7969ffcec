// Finds a WebGPU adapter for Node through Dawn (the `webgpu` package): a hardware GPU when there is one,
// otherwise SwiftShader's Vulkan driver from Debian's chromium package (correct, and slow). No environment
// variable is needed; VK_ICD_FILENAMES / VK_DRIVER_FILES set by the user are respected.

import { existsSync } from 'node:fs';
import { create, globals } from 'webgpu';
import { FinetuneError } from '../core/errors.ts';
import { GpuContext, type GpuContextOptions } from '../engine/gpu.ts';

export const SWIFTSHADER_ICDS = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];

// Dawn's instance must outlive its adapters and devices: if the GPU object is garbage-collected, its event
// loop stops and mapAsync never resolves (or the process aborts). Every instance we make is kept here.
const instances: GPU[] = [];
function newInstance(): GPU {
  const gpu = create([]);
  instances.push(gpu);
  return gpu;
}

let globalsInstalled = false;
function installGlobals(): void {
  if (globalsInstalled) return;
  // GPUBufferUsage, GPUMapMode, … as in a browser.
  Object.assign(globalThis, globals);
  globalsInstalled = true;
}

export interface NodeAdapter {
  adapter: GPUAdapter;
  /** How it was found, for the user. */
  via: 'hardware' | 'swiftshader' | 'environment';
  note?: string;
}

function isSoftware(adapter: GPUAdapter): boolean {
  const i = adapter.info;
  return /swiftshader|llvmpipe|lavapipe/i.test(`${i.vendor} ${i.architecture} ${i.device} ${i.description}`);
}

export async function findNodeAdapter(): Promise<NodeAdapter> {
  installGlobals();
  const userChoseDriver = Boolean(process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES);
  const first = await newInstance().requestAdapter({ powerPreference: 'high-performance' });
  if (first && (!isSoftware(first) || userChoseDriver)) return { adapter: first, via: userChoseDriver ? 'environment' : 'hardware' };
  const icd = SWIFTSHADER_ICDS.find((p) => existsSync(p));
  if (!icd) {
    if (first) return { adapter: first, via: 'hardware', note: 'software adapter' };
    throw new FinetuneError(
      'no-webgpu',
      'no WebGPU adapter: no GPU driver was found, and SwiftShader is missing (on Debian: apt-get install -y chromium libvulkan1)',
    );
  }
  // The Vulkan loader re-reads this when Dawn makes a new instance.
  process.env.VK_ICD_FILENAMES = icd;
  const adapter = await newInstance().requestAdapter();
  if (!adapter) throw new FinetuneError('no-webgpu', `SwiftShader at ${icd} gave no WebGPU adapter (is libvulkan1 installed?)`);
  return { adapter, via: 'swiftshader', note: `no hardware GPU found; using SwiftShader (${icd}), a CPU implementation: correct but slow` };
}

export async function createNodeContext(options: GpuContextOptions = {}): Promise<{ ctx: GpuContext; found: NodeAdapter }> {
  const found = await findNodeAdapter();
  const ctx = await GpuContext.fromAdapter(found.adapter, options);
  return { ctx, found };
}
