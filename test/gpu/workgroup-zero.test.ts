// Workgroup memory on a software adapter is zeroed by a loop in the shader, not by Vulkan's
// VK_KHR_zero_initialize_workgroup_memory (src/cli/node-gpu.ts, `zeroWorkgroupInShader`; why: src/core/software-adapter.ts).
// WGSL's guarantee is kept either way: every workgroup variable starts at zero.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { instanceFlags, SWIFTSHADER_ICDS } from '../../src/cli/node-gpu.ts';
import { VULKAN_ZERO_INIT_TOGGLE } from '../../src/core/software-adapter.ts';

const run = promisify(execFile);

/**
 * The SPIR-V of a 300-float workgroup array that the shader only reads, as the child compiles it
 * (test/helpers/workgroup-zero-dump.mjs): the array's OpVariable line, how many stores of 0.0 go into it (none but a
 * zeroing loop's: the shader itself never writes it), and the adapter the child's findNodeAdapter reported.
 */
async function dump(mode: 'found' | 'extension', env: NodeJS.ProcessEnv): Promise<{ variable: string; zeroStores: number; via: string }> {
  const { stdout } = await run(process.execPath, ['test/helpers/workgroup-zero-dump.mjs', mode], { env, timeout: 120_000, maxBuffer: 16 << 20 });
  const lines = stdout.split('\n').map((l) => l.trim());
  const variable = lines.filter((l) => l.startsWith('%tile = OpVariable'));
  expect(variable, stdout.slice(-2000)).toHaveLength(1);
  const intoTile = new Set(lines.map((l) => /^(%\w+) = OpAccessChain %\S+ %tile /.exec(l)?.[1]).filter((id) => id !== undefined));
  const zeroStores = lines.filter((l) => {
    const m = /^OpStore (%\w+) %float_0\b/.exec(l);
    return m !== null && intoTile.has(m[1]);
  }).length;
  const via = /^VIA (\S+)/m.exec(stdout);
  expect(via, stdout.slice(-2000)).not.toBeNull();
  return { variable: variable[0], zeroStores, via: via![1] };
}

/** No initializer operand: `%tile = OpVariable %type Workgroup`. */
const NO_INITIALIZER = /OpVariable %\S+ Workgroup$/;
/** The extension's form: `%tile = OpVariable %type Workgroup %null`. */
const INITIALIZER = /OpVariable %\S+ Workgroup %\w+$/;

describe('workgroup memory zeroed in the shader on a software adapter', () => {
  it('asks Dawn to leave the Vulkan extension unused only when told, beside the other toggles', () => {
    const exact = 'disable-dawn-features=timestamp_quantization';
    expect(instanceFlags({})).toEqual([exact]);
    expect(instanceFlags({ zeroWorkgroupInShader: false })).toEqual([exact]);
    expect(instanceFlags({ zeroWorkgroupInShader: true })).toEqual([`${exact},${VULKAN_ZERO_INIT_TOGGLE}`]);
    expect(instanceFlags({ robustness: false, zeroWorkgroupInShader: true })).toEqual(['enable-dawn-features=disable_robustness', `${exact},${VULKAN_ZERO_INIT_TOGGLE}`]);
  });

  it('SwiftShader chosen through VK_ICD_FILENAMES compiles the array with no initializer; Dawn left alone uses the extension', async () => {
    const icd = SWIFTSHADER_ICDS.find((p) => existsSync(p));
    expect(icd, 'SwiftShader (Debian: apt-get install -y chromium)').toBeDefined();
    const env = { ...process.env, VK_ICD_FILENAMES: icd };
    const found = await dump('found', env);
    expect(found.via).toBe('environment');
    // Zeroed by the shader's own loop (Dawn's disable_workgroup_init would leave it unzeroed: no stores).
    expect(found.variable).toMatch(NO_INITIALIZER);
    expect(found.zeroStores).toBeGreaterThan(0);
    // The same driver from an instance without the toggle: Dawn uses the extension, so the check above can fail.
    const extension = await dump('extension', env);
    expect(extension.variable).toMatch(INITIALIZER);
    expect(extension.zeroStores).toBe(0);
  });

  it('SwiftShader found by itself (no GPU, no VK_ICD_FILENAMES, as on CI) compiles it the same way', async () => {
    const env = { ...process.env };
    delete env.VK_ICD_FILENAMES;
    const found = await dump('found', env);
    // A machine with a hardware GPU finds that instead, whose driver keeps Dawn's default (the extension where offered).
    if (found.via !== 'swiftshader') {
      expect(found.via).toBe('hardware');
      return;
    }
    expect(found.variable).toMatch(NO_INITIALIZER);
    expect(found.zeroStores).toBeGreaterThan(0);
  });
});
