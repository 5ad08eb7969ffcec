// Where no GPU device node exists, the CLI goes straight to SwiftShader instead of probing software drivers
// (whose probing prints Dawn warnings); wherever one might exist, it probes.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mayHaveHardwareGpu } from '../../../src/cli/node-gpu.ts';

const root = mkdtempSync(join(tmpdir(), 'finetune-dev-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const devWith = (name: string, files: string[]): string => {
  const dev = join(root, name);
  mkdirSync(dev, { recursive: true });
  for (const f of files) {
    mkdirSync(join(dev, f, '..'), { recursive: true });
    writeFileSync(join(dev, f), '');
  }
  return dev;
};

describe('mayHaveHardwareGpu', () => {
  it('is false without a GPU device node', () => {
    expect(mayHaveHardwareGpu(devWith('none', ['null', 'zero', 'tty']), 'linux')).toBe(false);
  });

  it('is true with a DRM render node, an NVIDIA node or WSL\'s dxg', () => {
    expect(mayHaveHardwareGpu(devWith('mesa', ['dri/renderD128']), 'linux')).toBe(true);
    expect(mayHaveHardwareGpu(devWith('nvidia', ['nvidia0', 'nvidiactl']), 'linux')).toBe(true);
    expect(mayHaveHardwareGpu(devWith('wsl', ['dxg']), 'linux')).toBe(true);
  });

  it('is true when it cannot tell (no /dev to read, or not Linux)', () => {
    expect(mayHaveHardwareGpu(join(root, 'missing'), 'linux')).toBe(true);
    expect(mayHaveHardwareGpu(devWith('mac', []), 'darwin')).toBe(true);
  });
});
