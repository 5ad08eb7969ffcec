// Workgroup memory on a software adapter, named once for the command line (src/cli/node-gpu.ts), the page's tip
// (src/ui/gpu-panel.ts) and the browser tests (test/e2e/browser.ts).
//
// WGSL starts every workgroup variable at zero. Dawn does that on Vulkan through VK_KHR_zero_initialize_workgroup_memory
// where the driver offers it, and SwiftShader compiles that extension's initializer as one store per element: the
// compile time of a shader grew with its workgroup arrays (≈ 0.5 ms per element; the row-split attention forward
// 5.1 s → 0.13 s without it), and each workgroup paid the stores when it ran. With Dawn's toggle off, the shader zeroes
// the memory itself with a loop over the workgroup's threads: the same zeros, the same results.

/** The Dawn toggle a software adapter is better without. */
export const VULKAN_ZERO_INIT_TOGGLE = 'use_vulkan_zero_initialize_workgroup_memory_extension';

/** How Chrome or Chromium is started without it (a page cannot set Dawn's toggles). */
export const SOFTWARE_ADAPTER_BROWSER_FLAG = `--disable-dawn-features=${VULKAN_ZERO_INIT_TOGGLE}`;
