// `finetune generate` hands generate() the GPU's memory, so that a prompt whose KV cache would not fit is refused before
// the cache is asked for (src/run/generate.ts, checked on a GPU in test/gpu/decode.test.ts): --gpu-memory GB when given,
// else what the machine says (nvidia-smi on an NVIDIA GPU, with its note on stderr, as train does), else nothing.
// No GPU here: the context is a stand-in that has only its adapter's report, and the load and generate() are replaced
// so that what the command hands generate() can be read.
import { afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import type { GpuContext } from '../../../src/engine/gpu.ts';
import type { GpuAdapterInfo } from '../../../src/engine/gpu-adapter.ts';
import type { GpuMemoryDetection } from '../../../src/cli/gpu-memory.ts';
import type { GenerateOptions } from '../../../src/run/generate.ts';

const seen = vi.hoisted(() => ({ options: [] as GenerateOptions[], loadFails: null as Error | null }));

vi.mock('../../../src/run/weight-cache.ts', async (original) => ({
  ...(await original<typeof import('../../../src/run/weight-cache.ts')>()),
  // generate() is replaced too, and nothing else reads the weights without --adapter.
  loadWeightsCached: async () => {
    if (seen.loadFails) throw seen.loadFails;
    return { weights: {}, fromCache: false, files: [], formerFiles: null, notes: [] };
  },
}));

vi.mock('../../../src/run/generate.ts', async (original) => ({
  ...(await original<typeof import('../../../src/run/generate.ts')>()),
  generate: async (_ctx: unknown, _weights: unknown, _lora: unknown, prompt: readonly number[], o: GenerateOptions) => {
    seen.options.push(o);
    return { ids: [], promptTokens: prompt.length, stopReason: 'max-tokens', prefillSeconds: 0, tokensPerSecond: 0 };
  },
}));

const { makeGenerateCommand } = await import('../../../src/cli/commands/generate.ts');

const NVIDIA = { vendor: 'nvidia', software: false } as GpuAdapterInfo;
const GIB = 1024 ** 3;

/** Runs generate on the tiny model with `detection` as what the machine says of the GPU's memory. */
async function run(detection: GpuMemoryDetection | null, ...args: string[]): Promise<{ code: number; err: string[]; asked: GpuAdapterInfo[]; memoryBytes: GenerateOptions['memoryBytes'] }> {
  seen.options.length = 0;
  const asked: GpuAdapterInfo[] = [];
  const ctx = { report: NVIDIA, destroyDevice: () => {} } as unknown as GpuContext;
  const command = makeGenerateCommand(
    async () => ({ ctx, found: {} }),
    async (adapter) => {
      asked.push(adapter);
      return detection;
    },
  );
  const err: string[] = [];
  const code = await command.run(['--model', 'test/fixtures/tiny-mistral', '--prompt', 'a', '--no-cache', ...args], { out: () => {}, err: (l) => void err.push(l) });
  expect(seen.options).toHaveLength(1);
  return { code, err, asked, memoryBytes: seen.options[0].memoryBytes };
}

describe('finetune generate: the GPU memory a generation is checked against', () => {
  let stdout: MockInstance;
  // The generated text goes to stdout (here, a line break): kept out of the test's output.
  beforeEach(() => {
    stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  });
  afterEach(() => stdout.mockRestore());

  it("without --gpu-memory, what nvidia-smi says of the adapter, with train's note", async () => {
    const detection = { bytes: 40 * GIB, note: 'GPU memory from nvidia-smi: 40.0 GiB free of 80.0 GiB (NVIDIA A100-SXM4-80GB); --gpu-memory GB overrides it' };
    const r = await run(detection);
    expect(r.code).toBe(0);
    expect(r.asked).toEqual([NVIDIA]);
    expect(r.err).toContain(`note: ${detection.note}`);
    expect(r.memoryBytes).toBe(40 * GIB);
  });

  it('--gpu-memory GB (2³⁰ bytes) is used as given, and the machine is not asked', async () => {
    const r = await run({ bytes: 40 * GIB, note: 'not to be said' }, '--gpu-memory', '24');
    expect(r.asked).toEqual([]);
    expect(r.memoryBytes).toBe(24 * GIB);
    expect(r.err.join('\n')).not.toMatch(/nvidia-smi|not to be said/);
  });

  it('unknown: no bound, and where the machine could not tell, its note', async () => {
    // Not an NVIDIA GPU: nothing is asked of nvidia-smi, and nothing is said.
    const quiet = await run(null);
    expect(quiet.memoryBytes).toBeNull();
    expect(quiet.err.join('\n')).not.toMatch(/GPU memory/);
    const note = 'nvidia-smi is not on PATH, so the GPU memory is unknown: give it with --gpu-memory GB';
    const told = await run({ bytes: null, note });
    expect(told.memoryBytes).toBeNull();
    expect(told.err).toContain(`note: ${note}`);
  });
});

// The GPU device is made before the weights are loaded: a load that fails (a download cut, a disk full, out of memory)
// must destroy it as a generation's end does, not leave it to the process's exit. The load was once outside the
// try/finally that destroys it.
describe('finetune generate: the GPU device is destroyed whatever fails after it is made', () => {
  afterEach(() => {
    seen.loadFails = null;
  });

  it('a load of the weights that fails', async () => {
    seen.options.length = 0;
    seen.loadFails = new Error('the download was cut');
    let destroyed = 0;
    const ctx = {
      report: NVIDIA,
      destroyDevice: () => {
        destroyed++;
      },
    } as unknown as GpuContext;
    const command = makeGenerateCommand(async () => ({ ctx, found: {} }), async () => null);
    const run = command.run(['--model', 'test/fixtures/tiny-mistral', '--prompt', 'a', '--no-cache'], { out: () => {}, err: () => {} });
    await expect(run).rejects.toThrow('the download was cut');
    expect(destroyed).toBe(1);
    expect(seen.options).toEqual([]);
  });
});
