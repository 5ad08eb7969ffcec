// Finds a WebGPU adapter for Node through Dawn (the `webgpu` package): a hardware GPU when there is one,
// otherwise SwiftShader's Vulkan driver from Debian's chromium package (correct, and slow). No environment
// variable is needed; VK_ICD_FILENAMES / VK_DRIVER_FILES set by the user are respected.

import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, globals } from 'webgpu';
import { VULKAN_ZERO_INIT_TOGGLE } from '../core/software-adapter.ts';
import { FinetuneError } from '../core/errors.ts';
import { GpuContext, type GpuContextOptions } from '../engine/gpu.ts';
import { verifyInt8Kernel } from '../engine/int8-kernel-check.ts';

export const SWIFTSHADER_ICDS = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];

// Dawn's instance must outlive its adapters and devices: if the GPU object is garbage-collected, its event
// loop stops and mapAsync never resolves (or the process aborts). Every instance we make is kept here.
const instances: GPU[] = [];

/**
 * How Dawn's instance is made. `unsafeApis`: Dawn's allow_unsafe_apis toggle, without which it offers no experimental
 * feature; only asked for by a context that wants one (the subgroup-matrix int8 kernel), so everything else runs with
 * Dawn's full validation. `robustness: false`: Dawn's disable_robustness toggle, which compiles every shader without
 * the clamp Tint puts on each buffer index (WGSL's guarantee that an out-of-range access stays inside its buffer).
 * Our kernels never index out of range (each has its float64 reference test on odd shapes), so the clamps only cost
 * time; but with them gone a kernel bug could read or write outside its buffer, so it is asked for, never the default
 * (`--no-robustness`), and a browser page never has it.
 */
export interface InstanceToggles {
  unsafeApis?: boolean;
  robustness?: boolean;
  /**
   * Dawn's dump_shaders toggle (with disable_symbol_renaming, so functions keep their WGSL names): Dawn prints each
   * shader's WGSL and each pipeline's backend code (SPIR-V disassembly under Vulkan) to the process's standard output,
   * from C++, as it compiles them. Only `finetune bench spirv` asks for it (src/bench/clamps.ts reads what it prints).
   */
  dumpShaders?: boolean;
  /**
   * Zero workgroup memory with a loop in the shader (Tint's transform) instead of Vulkan's
   * VK_KHR_zero_initialize_workgroup_memory (Dawn's `VULKAN_ZERO_INIT_TOGGLE` off): the same zeros, so the same bits.
   * Asked for a software adapter only, which compiles the extension's initializer one store per element
   * (src/core/software-adapter.ts); a hardware driver keeps Dawn's default.
   */
  zeroWorkgroupInShader?: boolean;
}

/**
 * The `create` flags for those toggles (Dawn's node binding passes them to the adapter and to each device). Always:
 * Dawn's timestamp_quantization off. A browser rounds timestamp queries down to 2¹⁶ ns (65.5 µs) against timing
 * attacks; the command line runs only our own kernels, and `bench profile` needs the time of dispatches shorter than
 * that.
 */
export function instanceFlags(t: InstanceToggles): string[] {
  const enabled = [
    ...(t.unsafeApis ? ['allow_unsafe_apis'] : []),
    ...(t.robustness === false ? ['disable_robustness'] : []),
    ...(t.dumpShaders ? ['dump_shaders', 'disable_symbol_renaming'] : []),
  ];
  const disabled = ['timestamp_quantization', ...(t.zeroWorkgroupInShader ? [VULKAN_ZERO_INIT_TOGGLE] : [])];
  return [...(enabled.length ? [`enable-dawn-features=${enabled.join(',')}`] : []), `disable-dawn-features=${disabled.join(',')}`];
}

function newInstance(t: InstanceToggles): GPU {
  const gpu = create(instanceFlags(t));
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
  /** False when its devices compile shaders without bounds clamps (`InstanceToggles.robustness`). */
  robustness: boolean;
}

function isSoftware(adapter: GPUAdapter): boolean {
  const i = adapter.info;
  return /swiftshader|llvmpipe|lavapipe/i.test(`${i.vendor} ${i.architecture} ${i.device} ${i.description}`);
}

/**
 * Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set in the environment." to stderr when they
 * load without a session's runtime directory (ssh, containers, CI). We draw nothing on screen, so any private
 * directory satisfies them: one of our own, made only when the variable is missing or not a directory, and removed
 * when the process exits.
 */
function quietenRuntimeDir(): void {
  const current = process.env.XDG_RUNTIME_DIR;
  try {
    if (current && statSync(current).isDirectory()) return;
  } catch {
    // missing: make our own below
  }
  const dir = mkdtempSync(join(tmpdir(), 'finetune-xdg-')); // mode 0700, as the spec asks of a runtime dir
  process.env.XDG_RUNTIME_DIR = dir;
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
}

/**
 * False only where a hardware GPU cannot be reached: on Linux, a Vulkan driver for a GPU needs a device node (Mesa:
 * /dev/dri/renderD*, NVIDIA: /dev/nvidia*, WSL: /dev/dxg). Elsewhere, or when unsure, true.
 */
export function mayHaveHardwareGpu(devDir = '/dev', platform: string = process.platform): boolean {
  if (platform !== 'linux') return true;
  try {
    if (readdirSync(join(devDir, 'dri')).some((n) => n.startsWith('renderD') || n.startsWith('card'))) return true;
  } catch {
    // no /dev/dri
  }
  try {
    return readdirSync(devDir).some((n) => n.startsWith('nvidia') || n === 'dxg');
  } catch {
    return true;
  }
}

/** An instance for a software adapter: its devices zero workgroup memory in the shader (`zeroWorkgroupInShader`). */
function softwareInstance(toggles: InstanceToggles): GPU {
  return newInstance({ ...toggles, zeroWorkgroupInShader: true });
}

/** The software adapter the probe found, again from a software instance (the same driver: VK_ICD_FILENAMES or none). */
async function softwareAdapter(toggles: InstanceToggles, probed: GPUAdapter): Promise<GPUAdapter> {
  return (await softwareInstance(toggles).requestAdapter({ powerPreference: 'high-performance' })) ?? probed;
}

export async function findNodeAdapter(toggles: InstanceToggles = {}): Promise<NodeAdapter> {
  const robustness = toggles.robustness !== false;
  installGlobals();
  quietenRuntimeDir();
  const userChoseDriver = Boolean(process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES);
  // Without a GPU device node the probe can only find software drivers; probing them makes Dawn print warnings
  // with C++ source locations (lavapipe: "Vulkan shaderUniform*ArrayDynamicIndexing required"). Go straight to
  // SwiftShader then, as the probe would have.
  const probe = userChoseDriver || mayHaveHardwareGpu() || !SWIFTSHADER_ICDS.some((p) => existsSync(p));
  const first = probe ? await newInstance(toggles).requestAdapter({ powerPreference: 'high-performance' }) : null;
  if (first && !isSoftware(first)) return { adapter: first, via: userChoseDriver ? 'environment' : 'hardware', robustness };
  // A software driver the user chose (VK_ICD_FILENAMES).
  if (first && userChoseDriver) return { adapter: await softwareAdapter(toggles, first), via: 'environment', robustness };
  const icd = SWIFTSHADER_ICDS.find((p) => existsSync(p));
  if (!icd) {
    if (first) return { adapter: await softwareAdapter(toggles, first), via: 'hardware', note: 'software adapter', robustness };
    throw new FinetuneError(
      'no-webgpu',
      'no WebGPU adapter: no GPU driver was found, and SwiftShader is missing (on Debian: apt-get install -y chromium libvulkan1)',
    );
  }
  // The Vulkan loader re-reads this when Dawn makes a new instance.
  process.env.VK_ICD_FILENAMES = icd;
  const adapter = await softwareInstance(toggles).requestAdapter();
  if (!adapter) throw new FinetuneError('no-webgpu', `SwiftShader at ${icd} gave no WebGPU adapter (is libvulkan1 installed?)`);
  return { adapter, via: 'swiftshader', note: `no hardware GPU found; using SwiftShader (${icd}), a CPU implementation: correct but slow`, robustness };
}

/** A context's options, and whether its shaders keep Dawn's bounds clamps (`InstanceToggles.robustness`, default on). */
export interface NodeContextOptions extends GpuContextOptions {
  robustness?: boolean;
  dumpShaders?: boolean;
}

export async function createNodeContext(options: NodeContextOptions = {}): Promise<{ ctx: GpuContext; found: NodeAdapter }> {
  const subgroupMatrix = options.int8Kernel === 'subgroup-matrix';
  const found = await findNodeAdapter({ unsafeApis: subgroupMatrix, robustness: options.robustness, dumpShaders: options.dumpShaders });
  const ctx = await GpuContext.fromAdapter(found.adapter, options);
  // The tensor-core int8 kernel is experimental: it must prove on this device that it gives the DP4A kernel's bits.
  if (subgroupMatrix) {
    try {
      await verifyInt8Kernel(ctx);
    } catch (e) {
      ctx.device.destroy();
      throw e;
    }
  }
  return { ctx, found };
}
