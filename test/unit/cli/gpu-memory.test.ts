// The GPU memory a Node run plans against when --gpu-memory is not given (src/cli/gpu-memory.ts): nvidia-smi's lines,
// the rules for a machine of several GPUs, and what is said when nvidia-smi is missing, fails or says nonsense. The
// last tests run a stand-in nvidia-smi script found on PATH, as the real one is.
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { detectGpuMemory, memoryFromNvidiaSmi, NVIDIA_SMI_ARGS, parseNvidiaSmi, runNvidiaSmi } from '../../../src/cli/gpu-memory.ts';

const MIB = 1024 ** 2;
const nvidia = { vendor: 'nvidia', software: false };

describe('nvidia-smi lines', () => {
  it('reads name, total and free MiB per GPU, names with commas included', () => {
    expect(parseNvidiaSmi('NVIDIA H200, 143771, 143153\nNVIDIA H200, 143771, 2048\n\n')).toEqual([
      { name: 'NVIDIA H200', totalMiB: 143771, freeMiB: 143153 },
      { name: 'NVIDIA H200', totalMiB: 143771, freeMiB: 2048 },
    ]);
    expect(parseNvidiaSmi('Odd, GPU, 8192, 8000')).toEqual([{ name: 'Odd, GPU', totalMiB: 8192, freeMiB: 8000 }]);
  });

  it('refuses lines it cannot read rather than guessing', () => {
    expect(() => parseNvidiaSmi('NVIDIA H200, [N/A], [N/A]')).toThrow(/unexpected nvidia-smi line "NVIDIA H200, \[N\/A\], \[N\/A\]"/);
    expect(() => parseNvidiaSmi('8192, 8000')).toThrow(/unexpected nvidia-smi line/);
    expect(() => parseNvidiaSmi('NVIDIA H200, 0, 0')).toThrow(/unexpected/);
  });
});

describe('the memory to plan against', () => {
  it('one GPU: its free memory, said with the total', () => {
    expect(memoryFromNvidiaSmi([{ name: 'NVIDIA H200', totalMiB: 143771, freeMiB: 143153 }])).toEqual({
      bytes: 143153 * MIB,
      note: 'GPU memory from nvidia-smi: 139.8 GiB free of 140.4 GiB (NVIDIA H200); --gpu-memory GB overrides it',
    });
  });

  it('several GPUs of one size: the least free among them, whichever one WebGPU picked', () => {
    const gpus = [81920, 40000, 81000].map((freeMiB) => ({ name: 'NVIDIA A100-SXM4-80GB', totalMiB: 81920, freeMiB }));
    expect(memoryFromNvidiaSmi(gpus)).toEqual({
      bytes: 40000 * MIB,
      note: 'GPU memory from nvidia-smi: 39.1 GiB free of 80.0 GiB (the least free of 3 × NVIDIA A100-SXM4-80GB); --gpu-memory GB overrides it',
    });
  });

  it('GPUs of different sizes, or none: unknown, and says what to give', () => {
    const mixed = memoryFromNvidiaSmi([
      { name: 'NVIDIA GeForce RTX 4090', totalMiB: 24564, freeMiB: 24000 },
      { name: 'NVIDIA GeForce RTX 3060', totalMiB: 12288, freeMiB: 12000 },
    ]);
    expect(mixed).toEqual({
      bytes: null,
      note: 'nvidia-smi lists GPUs of different sizes (NVIDIA GeForce RTX 4090 24.0 GiB, NVIDIA GeForce RTX 3060 12.0 GiB) and WebGPU does not say which one this is: give its memory with --gpu-memory GB',
    });
    expect(memoryFromNvidiaSmi([]).bytes).toBeNull();
  });
});

describe('asking the machine', () => {
  it('asks nothing for other vendors and for software adapters', async () => {
    const never = async (): Promise<string> => {
      throw new Error('must not run');
    };
    expect(await detectGpuMemory({ vendor: 'amd', software: false }, never)).toBeNull();
    expect(await detectGpuMemory({ vendor: 'google', software: true }, never)).toBeNull();
    expect(await detectGpuMemory({ vendor: 'nvidia', software: true }, never)).toBeNull();
  });

  it('says why the memory is unknown when nvidia-smi fails or prints what it cannot read', async () => {
    const failing = async (): Promise<string> => {
      throw Object.assign(new Error('Command failed: nvidia-smi\nNVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'), { code: 9 });
    };
    expect(await detectGpuMemory(nvidia, failing)).toEqual({
      bytes: null,
      note: 'nvidia-smi failed (Command failed: nvidia-smi), so the GPU memory is unknown: give it with --gpu-memory GB',
    });
    expect(await detectGpuMemory(nvidia, async () => 'No devices were found')).toEqual({
      bytes: null,
      note: 'unexpected nvidia-smi line "No devices were found", so the GPU memory is unknown: give it with --gpu-memory GB',
    });
  });

  // A runner's rejection is not always an Error: `(e as Error).message.split` threw a TypeError for one that is not,
  // in place of the note, and the command failed with it.
  it('says why in words when the runner rejects with a value that is not an Error', async () => {
    const note = (why: string): { bytes: null; note: string } => ({ bytes: null, note: `nvidia-smi failed (${why}), so the GPU memory is unknown: give it with --gpu-memory GB` });
    expect(await detectGpuMemory(nvidia, () => Promise.reject('killed by a signal\nno output'))).toEqual(note('killed by a signal'));
    expect(await detectGpuMemory(nvidia, () => Promise.reject(null))).toEqual(note('null'));
  });

  describe('with an nvidia-smi on PATH', () => {
    const path = process.env.PATH;
    afterEach(() => {
      process.env.PATH = path;
    });

    it('runs it with the query arguments and plans against what it prints', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'finetune-nvidia-smi-'));
      const script = join(dir, 'nvidia-smi');
      // Prints a line only when asked exactly what the code asks.
      writeFileSync(script, `#!/bin/sh\n[ "$*" = "${NVIDIA_SMI_ARGS.join(' ')}" ] || { echo "bad arguments: $*" >&2; exit 2; }\necho "NVIDIA H200, 143771, 143153"\n`);
      chmodSync(script, 0o755);
      process.env.PATH = `${dir}:${path}`;
      expect(await runNvidiaSmi(NVIDIA_SMI_ARGS)).toBe('NVIDIA H200, 143771, 143153\n');
      expect((await detectGpuMemory(nvidia))?.bytes).toBe(143153 * MIB);
    });

    it('without one: "not on PATH"', async () => {
      process.env.PATH = mkdtempSync(join(tmpdir(), 'finetune-empty-path-'));
      expect(await detectGpuMemory(nvidia)).toEqual({ bytes: null, note: 'nvidia-smi is not on PATH, so the GPU memory is unknown: give it with --gpu-memory GB' });
    });
  });
});
