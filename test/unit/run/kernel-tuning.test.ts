// How a run chooses its kernels (src/run/kernel-tuning.ts): which combinations are run, which one is picked from the
// measurements, what is remembered, and when nothing is measured at all. The measurement itself runs on a real
// adapter in test/gpu/kernel-tuning.test.ts.
import { describe, expect, it } from 'vitest';
import type { GpuAdapterInfo } from '../../../src/engine/gpu-adapter.ts';
import {
  allowedBy,
  decideKernels,
  fileKernelTuningCache,
  kernelCandidates,
  MAX_CACHED_DECISIONS,
  pickKernels,
  savedKernels,
  shaderRevision,
  tuningKey,
  type DecideInputs,
  type KernelChoice,
  type KernelTrial,
} from '../../../src/run/kernel-tuning.ts';
import { memoryStoreFiles } from '../../../src/run/run-store.ts';

const BASIC_ROWS: KernelChoice = { gemm: 'basic', attention: 'rows', lora: 'general' };
const TILED_TILED: KernelChoice = { gemm: 'tiled', attention: 'tiled', lora: 'general' };
const TILED_ROWS: KernelChoice = { gemm: 'tiled', attention: 'rows', lora: 'general' };
const trial = (kernels: KernelChoice, ms: number, agrees = true): KernelTrial => ({ kernels, ms: agrees ? ms : NaN, reps: agrees ? 3 : 0, relDiff: agrees ? 1e-7 : 0.5, agrees });
const AUTO = { gemm: 'auto', attention: 'auto' } as const;

describe('the combinations a tuning runs', () => {
  it('runs the current kernels first, then every other tuned combination', () => {
    const c = kernelCandidates(AUTO, BASIC_ROWS);
    expect(c[0]).toEqual(BASIC_ROWS);
    expect(c).toHaveLength(8); // 2 GEMM × 2 attention × 2 LoRA-product kernels
    expect(new Set(c.map((k) => `${k.gemm}/${k.attention}/${k.lora}`)).size).toBe(8);
    // A kind asked for is not varied.
    expect(kernelCandidates({ lora: 'general' }, BASIC_ROWS)).toHaveLength(4);
  });

  it('runs the current kernels as the reference even when the ask excludes them', () => {
    const ask = { gemm: 'tiled', attention: 'auto', lora: 'general' } as const;
    const c = kernelCandidates(ask, BASIC_ROWS);
    expect(c).toEqual([BASIC_ROWS, TILED_ROWS, TILED_TILED]);
    expect(allowedBy(ask, BASIC_ROWS)).toBe(false);
    expect(allowedBy(ask, TILED_TILED)).toBe(true);
    // tiled-fixed is never tuned (one pipeline per shape), only asked for.
    expect(allowedBy(AUTO, { gemm: 'tiled-fixed', attention: 'rows', lora: 'general' })).toBe(false);
  });
});

describe('picking from the measurements', () => {
  it('takes the fastest combination that agrees, with its speed against the reference', () => {
    const pick = pickKernels([trial(BASIC_ROWS, 100), trial(TILED_ROWS, 60), trial(TILED_TILED, 40)]);
    expect(pick.chosen).toEqual(TILED_TILED);
    expect(pick.speedup).toBeCloseTo(2.5, 12);
    expect(pick.refused).toEqual([]);
  });

  it('never takes a combination whose numbers disagree, however fast', () => {
    const pick = pickKernels([trial(BASIC_ROWS, 100), trial(TILED_TILED, 1, false), trial(TILED_ROWS, 80)]);
    expect(pick.chosen).toEqual(TILED_ROWS);
    expect(pick.refused).toEqual([TILED_TILED]);
  });

  it('keeps the reference unless another beats it by more than the margin', () => {
    expect(pickKernels([trial(BASIC_ROWS, 100), trial(TILED_TILED, 97)]).chosen).toEqual(BASIC_ROWS);
    expect(pickKernels([trial(BASIC_ROWS, 100), trial(TILED_TILED, 97)], { margin: 0.01 }).chosen).toEqual(TILED_TILED);
  });

  it('with the reference excluded, takes the best allowed even when slower; none agreeing keeps the reference', () => {
    const allowed = (k: KernelChoice): boolean => k.gemm === 'tiled';
    const slower = pickKernels([trial(BASIC_ROWS, 50), trial(TILED_TILED, 80), trial(TILED_ROWS, 90)], { allowed });
    expect(slower.chosen).toEqual(TILED_TILED);
    expect(slower.speedup).toBeCloseTo(50 / 80, 12);
    const none = pickKernels([trial(BASIC_ROWS, 50), trial(TILED_TILED, 1, false)], { allowed });
    expect(none.chosen).toEqual(BASIC_ROWS);
    expect(none.refused).toEqual([TILED_TILED]);
  });
});

describe('remembered choices', () => {
  it('reads back what it wrote, per key', async () => {
    const cache = fileKernelTuningCache(memoryStoreFiles());
    expect(await cache.get('a')).toBeNull();
    await cache.put('a', { ...TILED_TILED, speedup: 1.8, measuredAt: '2026-11-30T01:00:00.000Z' });
    await cache.put('b', { ...BASIC_ROWS, speedup: 1, measuredAt: '2026-11-30T01:00:01.000Z' });
    expect(await cache.get('a')).toMatchObject({ ...TILED_TILED, speedup: 1.8 });
    expect(await cache.get('b')).toMatchObject(BASIC_ROWS);
  });

  it('reads a damaged, foreign or tampered file as empty, entry by entry, and writes over it', async () => {
    const files = memoryStoreFiles();
    const cache = fileKernelTuningCache(files);
    await files.write('kernel-tuning.json', new TextEncoder().encode('{"format": "finetune-kernel-tuning", "entries": {"a": {"gemm": "tiled"'));
    expect(await cache.get('a')).toBeNull();
    await files.write('kernel-tuning.json', new TextEncoder().encode(JSON.stringify({ format: 'something-else', entries: { a: { ...TILED_TILED, speedup: 2, measuredAt: 'x' } } })));
    expect(await cache.get('a')).toBeNull();
    const entries = { good: { ...TILED_TILED, speedup: 2, measuredAt: '2026-11-30' }, evil: { gemm: '<script>', attention: 'rows', speedup: 2, measuredAt: 'x' }, nan: { ...TILED_TILED, speedup: 'fast', measuredAt: 'x' } };
    await files.write('kernel-tuning.json', new TextEncoder().encode(JSON.stringify({ format: 'finetune-kernel-tuning', entries })));
    expect(await cache.get('good')).toMatchObject(TILED_TILED);
    expect(await cache.get('evil')).toBeNull();
    expect(await cache.get('nan')).toBeNull();
    await cache.put('new', { ...BASIC_ROWS, speedup: 1, measuredAt: '2026-11-30T02:00:00.000Z' });
    const written = JSON.parse(new TextDecoder().decode((await files.read('kernel-tuning.json'))!)) as { entries: Record<string, unknown> };
    expect(Object.keys(written.entries).sort()).toEqual(['good', 'new']);
  });

  it(`keeps the ${MAX_CACHED_DECISIONS} newest decisions`, async () => {
    const cache = fileKernelTuningCache(memoryStoreFiles());
    for (let i = 0; i <= MAX_CACHED_DECISIONS; i++) await cache.put(`k${i}`, { ...BASIC_ROWS, speedup: 1, measuredAt: new Date(Date.UTC(2026, 10, 30, 0, 0, i)).toISOString() });
    expect(await cache.get('k0')).toBeNull();
    expect(await cache.get('k1')).not.toBeNull();
    expect(await cache.get(`k${MAX_CACHED_DECISIONS}`)).not.toBeNull();
  });

  it('lists the decisions newest first with what each was measured for, and forgets them all', async () => {
    const files = memoryStoreFiles();
    const cache = fileKernelTuningCache(files);
    const gpu = { vendor: 'nvidia', architecture: 'hopper', device: '', description: 'H200' } as GpuAdapterInfo;
    const dims = { V: 32000, C: 4096, I: 14336, L: 32, nH: 32, nKV: 8, hd: 128, theta: 1e6, eps: 1e-5 };
    const key = tuningKey(gpu, dims, 'nf4-double', false, { B: 1, T: 1900 }, { r: 16, alpha: 16, dropout: 0, targets: ['q_proj'] });
    await cache.put(key, { ...TILED_TILED, speedup: 1.8, measuredAt: '2026-11-30T01:00:00.000Z' });
    await cache.put('not a key of ours', { ...BASIC_ROWS, speedup: 1, measuredAt: '2026-11-30T02:00:00.000Z' });
    expect(await cache.list()).toEqual([
      { ...BASIC_ROWS, speedup: 1, measuredAt: '2026-11-30T02:00:00.000Z', gpu: '', hidden: null, tokens: null, rank: null, text: 'basic GEMM, row-split attention' },
      { ...TILED_TILED, speedup: 1.8, measuredAt: '2026-11-30T01:00:00.000Z', gpu: 'nvidia · hopper · H200', hidden: 4096, tokens: 2048, rank: 16, text: 'tiled GEMM, tiled attention' },
    ]);
    await cache.clear();
    expect(await cache.list()).toEqual([]);
    expect(await cache.get(key)).toBeNull();
    expect(await files.read('kernel-tuning.json')).toBeNull();
    await cache.clear(); // nothing to forget is not an error
  });

  it('keys a choice by GPU, model, batch size, memory mode, adapter and shader text', () => {
    const gpu = { vendor: 'nvidia', architecture: 'hopper', device: '', description: 'H200' } as GpuAdapterInfo;
    const dims = { V: 32000, C: 4096, I: 14336, L: 32, nH: 32, nKV: 8, hd: 128, theta: 1e6, eps: 1e-5 };
    const lora = { r: 8, alpha: 16, dropout: 0.05, targets: ['q_proj', 'v_proj'] as const };
    const key = tuningKey(gpu, dims, 'nf4-double', false, { B: 1, T: 2048 }, lora);
    expect(tuningKey(gpu, dims, 'nf4-double', false, { B: 1, T: 2048 }, { ...lora, targets: ['v_proj', 'q_proj'] })).toBe(key);
    expect(tuningKey({ ...gpu, description: 'RTX 4090' }, dims, 'nf4-double', false, { B: 1, T: 2048 }, lora)).not.toBe(key);
    expect(tuningKey(gpu, dims, 'nf4-double', false, { B: 1, T: 512 }, lora)).not.toBe(key);
    // Tokens per micro-batch by power of two: a slightly shorter longest row, or 2 × 1024, is the same measurement.
    expect(tuningKey(gpu, dims, 'nf4-double', false, { B: 1, T: 1900 }, lora)).toBe(key);
    expect(tuningKey(gpu, dims, 'nf4-double', false, { B: 2, T: 1024 }, lora)).toBe(key);
    expect(tuningKey(gpu, dims, 'nf4-double', false, { B: 1, T: 2049 }, lora)).not.toBe(key);
    expect(tuningKey(gpu, dims, 'nf4-double', false, { B: 1, T: 2048 }, lora, true)).not.toBe(key);
    expect(tuningKey(gpu, { ...dims, I: 11008 }, 'nf4-double', false, { B: 1, T: 2048 }, lora)).not.toBe(key);
    expect(tuningKey(gpu, dims, 'nf4-double', false, { B: 1, T: 2048 }, { ...lora, r: 16 })).not.toBe(key);
    expect(key).toContain(shaderRevision());
    expect(shaderRevision()).toMatch(/^[0-9a-f]{8}$/);
  });
});

describe('the decision a run makes', () => {
  function inputs(over: Partial<DecideInputs> = {}): DecideInputs & { measured: KernelChoice[][] } {
    const measured: KernelChoice[][] = [];
    return {
      request: {},
      current: BASIC_ROWS,
      software: false,
      saved: null,
      cache: fileKernelTuningCache(memoryStoreFiles()),
      key: 'k',
      measure: async (c) => {
        measured.push(c);
        return c.map((k, i) => trial(k, 100 - 10 * i));
      },
      measured,
      ...over,
    };
  }

  it('measures on a hardware adapter, takes the fastest, and remembers it for the next run', async () => {
    const i = inputs();
    const d = await decideKernels(i);
    expect(i.measured).toHaveLength(1);
    expect(d).toMatchObject({ source: 'measured', kernels: i.measured[0][7] });
    expect(d.speedup).toBeCloseTo(100 / 30, 12);
    expect(d.trials).toHaveLength(8);
    const again = inputs({ cache: i.cache });
    const d2 = await decideKernels(again);
    expect(again.measured).toHaveLength(0);
    expect(d2).toMatchObject({ source: 'cached', kernels: d.kernels });
    expect(d2.text).toContain('3.33×');
    const retune = inputs({ cache: i.cache, request: { retune: true } });
    expect((await decideKernels(retune)).source).toBe('measured');
    expect(retune.measured).toHaveLength(1);
  });

  it('keeps a software adapter on its kernels without measuring, unless told to measure there', async () => {
    const i = inputs({ software: true });
    expect(await decideKernels(i)).toMatchObject({ source: 'software', kernels: BASIC_ROWS });
    expect(i.measured).toHaveLength(0);
    const forced = inputs({ software: true, request: { measureOnSoftware: true } });
    expect((await decideKernels(forced)).source).toBe('measured');
  });

  it('a resume keeps the kernels the run was trained with, whatever is remembered', async () => {
    const i = inputs({ saved: TILED_TILED });
    await i.cache!.put('k', { ...BASIC_ROWS, speedup: 1, measuredAt: '2026-11-30' });
    expect(await decideKernels(i)).toMatchObject({ source: 'saved-run', kernels: TILED_TILED });
    expect(i.measured).toHaveLength(0);
    const other = await decideKernels(inputs({ saved: TILED_TILED, request: { attention: 'rows' } }));
    expect(other).toMatchObject({ source: 'asked', kernels: TILED_ROWS });
    expect(other.text).toContain('not bit for bit');
  });

  it('asked kernels are used as asked; a partly constrained choice is measured but not remembered', async () => {
    const i = inputs({ request: { gemm: 'basic', attention: 'tiled', lora: 'skinny' } });
    expect(await decideKernels(i)).toMatchObject({ source: 'asked', kernels: { gemm: 'basic', attention: 'tiled', lora: 'skinny' } });
    expect(i.measured).toHaveLength(0);
    const part = inputs({ request: { gemm: 'basic', lora: 'general' } });
    const d = await decideKernels(part);
    expect(part.measured[0]).toEqual([BASIC_ROWS, { gemm: 'basic', attention: 'tiled', lora: 'general' }]);
    expect(d.kernels).toEqual({ gemm: 'basic', attention: 'tiled', lora: 'general' });
    expect(await part.cache!.get('k')).toBeNull();
  });

  it('names the refused combinations', async () => {
    const i = inputs({ measure: async (c) => c.map((k, n) => trial(k, 100 - 20 * n, n !== 3)) });
    const d = await decideKernels(i);
    expect(d.refused).toHaveLength(1);
    expect(d.text).toContain('refused for numbers that disagree');
    expect(d.kernels).not.toEqual(d.refused[0]);
  });

  it('names a combination that failed on the GPU apart from those that disagreed, with the error', async () => {
    const i = inputs({
      measure: async (c) => c.map((k, n) => (n === 1 ? { kernels: k, ms: NaN, reps: 0, relDiff: NaN, agrees: false, error: 'pipeline creation failed' } : trial(k, 100 - 20 * n, n !== 2))),
    });
    const d = await decideKernels(i);
    expect(d.refused).toHaveLength(2);
    expect(d.text).toMatch(/refused for numbers that disagree on this GPU: [^;]+; refused for failing on this GPU: .*\(pipeline creation failed\)$/);
  });

  it('reads a saved run\'s kernels only when they are kernels this engine has', () => {
    expect(savedKernels(TILED_ROWS)).toEqual(TILED_ROWS);
    expect(savedKernels({ ...TILED_ROWS, lora: 'skinny' })).toEqual({ ...TILED_ROWS, lora: 'skinny' });
    // A record from before the LoRA-product choice existed was trained on the GEMM kernel.
    expect(savedKernels({ gemm: 'tiled', attention: 'rows' })).toEqual(TILED_ROWS);
    expect(savedKernels({ ...TILED_ROWS, lora: 'warp' })).toBeNull();
    expect(savedKernels({ gemm: 'cublas', attention: 'rows' })).toBeNull();
    expect(savedKernels(undefined)).toBeNull();
  });
});
