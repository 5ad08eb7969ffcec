// How a run chooses its kernels (src/run/kernel-tuning.ts): which combinations are run, which one is picked from the
// measurements, what is remembered, and when nothing is measured at all. The measurement itself runs on a real
// adapter in test/gpu/kernel-tuning.test.ts.
import { describe, expect, it } from 'vitest';
import type { GpuAdapterInfo } from '../../../src/engine/gpu-adapter.ts';
import { deserializeError, FinetuneError, serializeError } from '../../../src/core/errors.ts';
import {
  allowedBy,
  decideKernels,
  fileKernelTuningCache,
  kernelCandidates,
  kernelStages,
  lostWhileMeasuring,
  MAX_CACHED_DECISIONS,
  pickKernels,
  savedKernels,
  shaderRevision,
  stagedTrials,
  tuningKey,
  tuningPasses,
  type DecideInputs,
  type KernelChoice,
  type KernelTrial,
} from '../../../src/run/kernel-tuning.ts';
import { memoryStoreFiles } from '../../../src/run/run-store.ts';

const BASIC_ROWS: KernelChoice = { gemm: 'basic', attention: 'rows', lora: 'general' };
const TILED_TILED: KernelChoice = { gemm: 'tiled', attention: 'tiled', lora: 'general' };
const TILED_ROWS: KernelChoice = { gemm: 'tiled', attention: 'rows', lora: 'general' };
const BASIC_TILED: KernelChoice = { gemm: 'basic', attention: 'tiled', lora: 'general' };
const skinny = (k: KernelChoice): KernelChoice => ({ ...k, lora: 'skinny' });
const warp = (k: KernelChoice): KernelChoice => ({ ...k, gemm: 'tiled-warp' });
/** The K step of 32 on the same thread map. */
const deep = (k: KernelChoice): KernelChoice => ({ ...k, gemm: k.gemm === 'tiled-warp' ? 'tiled-warp-k32' : 'tiled-k32' });
const name = (k: KernelChoice): string => `${k.gemm}/${k.attention}/${k.lora}`;
const trial = (kernels: KernelChoice, ms: number, agrees = true): KernelTrial => ({ kernels, ms: agrees ? ms : NaN, reps: agrees ? 3 : 0, relDiff: agrees ? 1e-7 : 0.5, agrees });
const AUTO = { gemm: 'auto', attention: 'auto' } as const;

describe('the combinations a tuning runs', () => {
  it('runs the current kernels first, then every other tuned combination', () => {
    const c = kernelCandidates(AUTO, BASIC_ROWS);
    expect(c[0]).toEqual(BASIC_ROWS);
    // 5 GEMM (basic; tiled on either thread map with a K step of 16 or 32) × 2 attention × 2 LoRA-product kernels
    expect(c).toHaveLength(20);
    expect(new Set(c.map((k) => `${k.gemm}/${k.attention}/${k.lora}`)).size).toBe(20);
    // A kind asked for is not varied.
    expect(kernelCandidates({ lora: 'general' }, BASIC_ROWS)).toHaveLength(10);
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

describe('the stages a run measures in', () => {
  it('first every basic/tiled GEMM × attention combination on the current LoRA-product kernel, then the warp map on a tiled winner, then its K step of 32, then the other LoRA kernel on the winner', () => {
    const stages = kernelStages(AUTO, BASIC_ROWS);
    expect(stages.first).toEqual([BASIC_ROWS, BASIC_TILED, TILED_ROWS, TILED_TILED]);
    const firstTrials = [trial(BASIC_ROWS, 100), trial(BASIC_TILED, 70), trial(TILED_ROWS, 60), trial(TILED_TILED, 40)];
    expect(stages.then(firstTrials)).toEqual([warp(TILED_TILED)]);
    // The K step of 32 runs on the winner so far: the warp map when it was faster, the row map when it was not.
    const warpWins = [...firstTrials, trial(warp(TILED_TILED), 35)];
    const rowWins = [...firstTrials, trial(warp(TILED_TILED), 45)];
    expect(stages.then(warpWins)).toEqual([deep(warp(TILED_TILED))]);
    expect(stages.then(rowWins)).toEqual([deep(TILED_TILED)]);
    // The LoRA stage runs on the winner so far: the K step of 32 when it was faster, 16 when it was not.
    expect(stages.then([...warpWins, trial(deep(warp(TILED_TILED)), 30)])).toEqual([skinny(deep(warp(TILED_TILED)))]);
    expect(stages.then([...warpWins, trial(deep(warp(TILED_TILED)), 36)])).toEqual([skinny(warp(TILED_TILED))]);
    expect(stages.then([...rowWins, trial(deep(TILED_TILED), 30)])).toEqual([skinny(deep(TILED_TILED))]);
    // The winner's other LoRA kernel measured, nothing more follows (the map and K step are not measured again).
    expect(stages.then([...warpWins, trial(deep(warp(TILED_TILED)), 30), trial(skinny(deep(warp(TILED_TILED))), 20)])).toEqual([]);
    expect(stages.then([...rowWins, trial(deep(TILED_TILED), 45), trial(skinny(TILED_TILED), 20)])).toEqual([]);
    // Where the K step of 32 does not fit (skipped), the LoRA stage follows the map's.
    const small = kernelStages(AUTO, BASIC_ROWS, (k) => k.gemm.endsWith('-k32'));
    expect(small.then(warpWins)).toEqual([skinny(warp(TILED_TILED))]);
    expect(small.then([...warpWins, trial(skinny(warp(TILED_TILED)), 20)])).toEqual([]);
    // When the basic GEMM wins the first stage there is no map to try: the second stage is the skinny products.
    const basicWins = [trial(BASIC_ROWS, 100), trial(BASIC_TILED, 99), trial(TILED_ROWS, 101), trial(TILED_TILED, 1, false)];
    expect(stages.then(basicWins)).toEqual([skinny(BASIC_ROWS)]);
    expect(stages.then([...basicWins, trial(skinny(BASIC_ROWS), 98)])).toEqual([]);
    // Asked for a GEMM kernel, the map is not varied.
    const asked = kernelStages({ gemm: 'tiled', attention: 'auto' }, BASIC_ROWS);
    expect(asked.then([trial(BASIC_ROWS, 100), trial(TILED_ROWS, 60), trial(TILED_TILED, 40)])).toEqual([skinny(TILED_TILED)]);
    // Asked for the warp map, it runs in the first stage.
    expect(kernelStages({ gemm: 'tiled-warp', lora: 'general' }, BASIC_ROWS).first).toEqual([BASIC_ROWS, warp(TILED_ROWS), warp(TILED_TILED)]);
  });

  it('has no second stage when the LoRA-product kernel is asked for; the asked one runs in the first', () => {
    const stages = kernelStages({ lora: 'skinny' }, BASIC_ROWS);
    expect(stages.first.map(name)).toEqual(['basic/rows/general', 'basic/rows/skinny', 'basic/tiled/skinny', 'tiled/rows/skinny', 'tiled/tiled/skinny']);
    expect(stages.then(stages.first.map((k) => trial(k, 10)))).toEqual([]);
  });

  it('leaves out the combinations it is told to skip; without the current kernels, the first left is the reference', () => {
    const lost = [BASIC_ROWS, skinny(TILED_TILED)];
    const stages = kernelStages(AUTO, BASIC_ROWS, (k) => lost.some((l) => name(l) === name(k)));
    expect(stages.first).toEqual([BASIC_TILED, TILED_ROWS, TILED_TILED]);
    const first = [trial(BASIC_TILED, 100), trial(TILED_ROWS, 90), trial(TILED_TILED, 40)];
    expect(stages.then(first)).toEqual([warp(TILED_TILED)]);
    // The row map stays the winner: its K step of 32 next; that is slower, and the winner's skinny variant was lost:
    // nothing more.
    expect(stages.then([...first, trial(warp(TILED_TILED), 41)])).toEqual([deep(TILED_TILED)]);
    expect(stages.then([...first, trial(warp(TILED_TILED), 41), trial(deep(TILED_TILED), 45)])).toEqual([]);
    expect(stages.then([trial(BASIC_TILED, 100), trial(TILED_ROWS, 40), trial(TILED_TILED, 90)])).toEqual([warp(TILED_ROWS)]);
  });

  it('counts the layer passes a measurement takes: two per candidate of every stage and one warm-up more', () => {
    // The first stage, the map and the K step, the other LoRA kernel.
    expect(tuningPasses(AUTO, BASIC_ROWS)).toBe(2 * (4 + 2 + 1) + 1);
    expect(tuningPasses({ lora: 'general' }, BASIC_ROWS)).toBe(2 * (4 + 2) + 1);
    expect(tuningPasses({ lora: 'skinny' }, BASIC_ROWS)).toBe(2 * (5 + 2) + 1); // the reference and four on skinny, map, K step
    expect(tuningPasses({ gemm: 'tiled', lora: 'general' }, BASIC_ROWS)).toBe(2 * 3 + 1);
  });

  it('finds in a full grid the trials a staged run would have made (bench tune compares the two choices)', () => {
    const all = kernelCandidates(AUTO, BASIC_ROWS).map((k) => trial(k, k.attention === 'tiled' ? (k.lora === 'skinny' ? 30 : 50) : 90));
    const staged = stagedTrials(all, kernelStages(AUTO, BASIC_ROWS));
    expect(staged.map((t) => name(t.kernels))).toEqual(['basic/rows/general', 'basic/tiled/general', 'tiled/rows/general', 'tiled/tiled/general', 'basic/tiled/skinny']);
    expect(pickKernels(staged).chosen).toEqual(skinny(BASIC_TILED));
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

  it('keeps lost marks per key beside the decisions: a decision written later keeps them; damaged marks are dropped', async () => {
    const files = memoryStoreFiles();
    const cache = fileKernelTuningCache(files);
    expect(await cache.lost('a')).toEqual([]);
    await cache.markLost('a', TILED_TILED);
    await cache.markLost('a', TILED_TILED); // once per combination, with the latest date
    await cache.markLost('b', skinny(BASIC_ROWS));
    await cache.put('a', { ...BASIC_ROWS, speedup: 1, measuredAt: '2026-11-30T01:00:00.000Z' });
    expect((await cache.lost('a')).map(name)).toEqual(['tiled/tiled/general']);
    expect((await cache.lost('b')).map(name)).toEqual(['basic/rows/skinny']);
    await cache.forgetLost('a');
    expect(await cache.lost('a')).toEqual([]);
    expect(await cache.get('a')).toMatchObject(BASIC_ROWS);
    const text = JSON.stringify({ format: 'finetune-kernel-tuning', entries: {}, lost: { a: [{ ...TILED_TILED, at: '2026-11-30' }, { gemm: '<img>', attention: 'rows', at: 'x' }, { ...TILED_ROWS }], b: 'junk' } });
    await files.write('kernel-tuning.json', new TextEncoder().encode(text));
    expect((await cache.lost('a')).map(name)).toEqual(['tiled/tiled/general']);
    expect(await cache.lost('b')).toEqual([]);
    await cache.clear();
    expect(await cache.lost('a')).toEqual([]);
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
      { ...BASIC_ROWS, speedup: 1, measuredAt: '2026-11-30T02:00:00.000Z', gpu: '', hidden: null, tokens: null, rank: null, text: 'basic GEMM, row-split attention', lost: [] },
      { ...TILED_TILED, speedup: 1.8, measuredAt: '2026-11-30T01:00:00.000Z', gpu: 'nvidia · hopper · H200', hidden: 4096, tokens: 2048, rank: 16, text: 'tiled GEMM, tiled attention', lost: [] },
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
  type Timer = (k: KernelChoice, n: number) => KernelTrial;
  function inputs(over: Partial<DecideInputs> = {}, time: Timer = (k, n) => trial(k, 100 - 10 * n)): DecideInputs & { measured: KernelChoice[][] } {
    const measured: KernelChoice[][] = [];
    return {
      request: {},
      current: BASIC_ROWS,
      software: false,
      saved: null,
      cache: fileKernelTuningCache(memoryStoreFiles()),
      key: 'k',
      // As measureKernels runs them: the first list, then each list `then` gives, until it gives none.
      measure: async (first, then) => {
        const trials: KernelTrial[] = [];
        for (let queue = first; queue.length > 0; queue = then(trials)) {
          measured.push(queue);
          for (const k of queue) trials.push(time(k, trials.length));
        }
        return trials;
      },
      measured,
      ...over,
    };
  }

  it('measures on a hardware adapter, takes the fastest, and remembers it for the next run', async () => {
    const i = inputs();
    const d = await decideKernels(i);
    // Four stages: the four GEMM × attention combinations, the warp map on the fastest (tiled), its K step of 32,
    // then the skinny LoRA products on the fastest so far.
    const best = deep(warp(TILED_TILED));
    expect(i.measured).toEqual([[BASIC_ROWS, BASIC_TILED, TILED_ROWS, TILED_TILED], [warp(TILED_TILED)], [best], [skinny(best)]]);
    expect(d).toMatchObject({ source: 'measured', kernels: skinny(best), lost: [] });
    expect(d.speedup).toBeCloseTo(100 / 40, 12);
    expect(d.trials).toHaveLength(7);
    const again = inputs({ cache: i.cache });
    const d2 = await decideKernels(again);
    expect(again.measured).toHaveLength(0);
    expect(d2).toMatchObject({ source: 'cached', kernels: d.kernels });
    expect(d2.text).toContain('2.50×');
    expect(d2.text).toContain('tiled GEMM (warp map, K step 32)');
    const retune = inputs({ cache: i.cache, request: { retune: true } });
    expect((await decideKernels(retune)).source).toBe('measured');
    expect(retune.measured).toHaveLength(4); // every stage
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
    // The tiled GEMM on the other thread map computes the same bits: a resume asked onto it says so.
    const map = await decideKernels(inputs({ saved: TILED_TILED, request: { gemm: 'tiled-warp' } }));
    expect(map).toMatchObject({ source: 'asked', kernels: warp(TILED_TILED) });
    expect(map.text).toBe('kernels: tiled GEMM (warp map), tiled attention as asked; the saved run was trained with tiled GEMM, tiled attention, the same numbers, bit for bit (only which thread computes what, and in what tiles, differs)');
    // So does its K step of 32.
    const deepAsked = await decideKernels(inputs({ saved: warp(TILED_TILED), request: { gemm: 'tiled-k32' } }));
    expect(deepAsked).toMatchObject({ source: 'asked', kernels: deep(TILED_TILED) });
    expect(deepAsked.text).toContain('tiled GEMM (K step 32), tiled attention as asked; the saved run was trained with tiled GEMM (warp map), tiled attention, the same numbers, bit for bit');
  });

  it('on a GPU with only 16 KiB of workgroup memory, never measures, chooses or resumes on kernels that need more', async () => {
    // The context's defaults there: tiled GEMM and tiled attention (engine/kernel-fit.ts).
    const small = { workgroupBytes: 16384, current: TILED_TILED };
    const i = inputs(small);
    const d = await decideKernels(i);
    // Neither the basic GEMM (its NF4 products: 16,448 bytes) nor the row-split attention (25,680) is tried.
    // Nor the K step of 32 (32,768 bytes).
    expect(i.measured).toEqual([[TILED_TILED], [warp(TILED_TILED)], [skinny(warp(TILED_TILED))]]);
    expect(d.kernels).toEqual(skinny(warp(TILED_TILED)));
    await expect(decideKernels(inputs({ ...small, request: { gemm: 'tiled-k32' } }))).rejects.toMatchObject({ kind: 'bad-input', message: expect.stringContaining('the tiled GEMM with a K step of 32 needs 32,768 bytes of workgroup memory') });
    // A decision remembered for this key that does not fit is not taken.
    const cached = inputs({ ...small });
    await cached.cache!.put('k', { ...BASIC_ROWS, speedup: 2, measuredAt: '2026-11-30' });
    expect(await decideKernels(cached)).toMatchObject({ source: 'measured' });
    // A run trained on a larger GPU resumes on kernels that fit, and says its numbers are no longer bit for bit.
    const moved = await decideKernels(inputs({ ...small, saved: skinny(BASIC_ROWS) }));
    expect(moved).toMatchObject({ source: 'fitted', kernels: skinny(TILED_TILED) });
    expect(moved.text).toContain('but the basic GEMM (its NF4 products) needs 16,448 bytes of workgroup memory, the row-split attention 25,680, and this GPU offers 16,384');
    expect(moved.text).toContain('not bit for bit');
    // One that fits resumes as saved.
    expect(await decideKernels(inputs({ ...small, saved: skinny(TILED_TILED) }))).toMatchObject({ source: 'saved-run' });
    // Asking for a kernel that does not fit is refused before anything runs, saying why and what to ask instead.
    const asked = inputs({ ...small, request: { attention: 'rows' } });
    await expect(decideKernels(asked)).rejects.toMatchObject({ kind: 'bad-input', message: expect.stringContaining('the row-split attention needs 25,680 bytes of workgroup memory and this GPU offers 16,384; ask for another attention kernel, or for auto') });
    expect(asked.measured).toHaveLength(0);
    await expect(decideKernels(inputs({ ...small, request: { gemm: 'basic' } }))).rejects.toMatchObject({ kind: 'bad-input', message: expect.stringContaining('basic GEMM') });
    // With 32 KiB every kernel is a candidate again.
    const big = inputs({ workgroupBytes: 32768 });
    await decideKernels(big);
    expect(big.measured[0]).toEqual([BASIC_ROWS, BASIC_TILED, TILED_ROWS, TILED_TILED]);
  });

  it('asked kernels are used as asked; a partly constrained choice is measured but not remembered', async () => {
    const i = inputs({ request: { gemm: 'basic', attention: 'tiled', lora: 'skinny' } });
    expect(await decideKernels(i)).toMatchObject({ source: 'asked', kernels: { gemm: 'basic', attention: 'tiled', lora: 'skinny' } });
    expect(i.measured).toHaveLength(0);
    const part = inputs({ request: { gemm: 'basic', lora: 'general' } });
    const d = await decideKernels(part);
    expect(part.measured).toEqual([[BASIC_ROWS, BASIC_TILED]]);
    expect(d.kernels).toEqual({ gemm: 'basic', attention: 'tiled', lora: 'general' });
    expect(await part.cache!.get('k')).toBeNull();
  });

  it('names the refused combinations', async () => {
    const i = inputs({}, (k, n) => trial(k, 100 - 20 * n, n !== 3));
    const d = await decideKernels(i);
    expect(d.refused).toHaveLength(1);
    expect(d.text).toContain('refused for numbers that disagree');
    expect(d.kernels).not.toEqual(d.refused[0]);
  });

  it('names a combination that failed on the GPU apart from those that disagreed, with the error', async () => {
    const i = inputs({}, (k, n) => (n === 1 ? { kernels: k, ms: NaN, reps: 0, relDiff: NaN, agrees: false, error: 'pipeline creation failed' } : trial(k, 100 - 20 * n, n !== 2)));
    const d = await decideKernels(i);
    expect(d.refused).toHaveLength(2);
    expect(d.text).toMatch(/refused for numbers that disagree on this GPU: [^;]+; refused for failing on this GPU: .*\(pipeline creation failed\)$/);
  });

  /** A measurement that loses the device while it runs `victim` (as measureKernels reports it). */
  const losingOn = (victim: KernelChoice): Timer => (k, n) => {
    if (name(k) === name(victim)) {
      // measureKernels names the running combination in the error's details (deviceLostWhile).
      throw new FinetuneError('device-lost', 'the GPU device was lost (unknown): GPU hung', { lostWhileMeasuring: k });
    }
    return trial(k, 100 - 10 * n);
  };

  it('remembers the combination during which the device was lost; the next run leaves it out and says so', async () => {
    const first = inputs({}, losingOn(TILED_ROWS));
    const error = await decideKernels(first).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FinetuneError);
    expect((error as FinetuneError).kind).toBe('device-lost');
    expect((error as FinetuneError).message).toMatch(/GPU hung — while measuring tiled GEMM, row-split attention on one layer of this model, before the first step; the next run on this GPU leaves that combination out/);
    expect((await first.cache!.lost('k')).map(name)).toEqual(['tiled/rows/general']);
    expect(await first.cache!.get('k')).toBeNull(); // no decision was made

    const next = inputs({ cache: first.cache });
    const d = await decideKernels(next);
    expect(next.measured).toEqual([[BASIC_ROWS, BASIC_TILED, TILED_TILED], [warp(TILED_TILED)], [deep(warp(TILED_TILED))], [skinny(deep(warp(TILED_TILED)))]]);
    expect(d.source).toBe('measured');
    expect(d.lost.map(name)).toEqual(['tiled/rows/general']);
    expect(d.text).toMatch(/; not measured, having lost the GPU device here before: tiled GEMM, row-split attention \(\d{4}-\d\d-\d\d\)$/);
    // The list the page shows names it beside the decision.
    expect((await next.cache!.list())[0].lost).toEqual([{ text: 'tiled GEMM, row-split attention', at: expect.stringMatching(/^\d{4}-/) }]);

    // Asking to measure again tries it again (a driver update may have mended it), and forgets the mark.
    const retune = inputs({ cache: first.cache, request: { retune: true } });
    await decideKernels(retune);
    expect(retune.measured[0]).toContainEqual(TILED_ROWS);
    expect(await first.cache!.lost('k')).toEqual([]);
  });

  it('when the defaults lost the device, measures against the first combination left, and says so', async () => {
    const first = inputs({}, losingOn(BASIC_ROWS));
    await expect(decideKernels(first)).rejects.toMatchObject({ kind: 'device-lost' });
    const next = inputs({ cache: first.cache });
    const d = await decideKernels(next);
    expect(next.measured[0]).toEqual([BASIC_TILED, TILED_ROWS, TILED_TILED]);
    expect(d.trials[0].kernels).toEqual(BASIC_TILED);
    expect(d.text).toContain('the speed of basic GEMM, tiled attention (the defaults lost the GPU device here)');
  });

  it('with every combination lost before, trains on the defaults unmeasured and says how to measure again', async () => {
    const cache = fileKernelTuningCache(memoryStoreFiles());
    for (const k of kernelCandidates({ lora: 'general' }, BASIC_ROWS)) await cache.markLost('k', k);
    const i = inputs({ cache, request: { lora: 'general' } });
    const d = await decideKernels(i);
    expect(i.measured).toEqual([]);
    expect(d).toMatchObject({ source: 'lost-before', kernels: BASIC_ROWS });
    expect(d.lost).toHaveLength(10);
    expect(d.text).toMatch(/unmeasured: every combination lost the GPU device when measured here before .*--retune-kernels or "Forget them" in the GPU panel/);
  });

  it('passes on any other error, and a lost device that names no combination, remembering nothing', async () => {
    const other = inputs({ measure: async () => Promise.reject(new FinetuneError('out-of-memory', 'no room')) });
    await expect(decideKernels(other)).rejects.toMatchObject({ kind: 'out-of-memory', message: 'no room' });
    const plain = inputs({ measure: async () => Promise.reject(new FinetuneError('device-lost', 'gone')) });
    await expect(decideKernels(plain)).rejects.toMatchObject({ kind: 'device-lost', message: 'gone' });
    expect(await other.cache!.lost('k')).toEqual([]);
    expect(await plain.cache!.lost('k')).toEqual([]);
  });

  it('the combination a lost-device error names crosses the worker boundary, and only kernels this engine has count', () => {
    const e = new FinetuneError('device-lost', 'gone', { lostWhileMeasuring: TILED_TILED });
    expect(lostWhileMeasuring(deserializeError(JSON.parse(JSON.stringify(serializeError(e)))))).toEqual(TILED_TILED);
    expect(lostWhileMeasuring(new FinetuneError('device-lost', 'gone', { lostWhileMeasuring: { gemm: 'cublas', attention: 'rows' } }))).toBeNull();
    expect(lostWhileMeasuring(new FinetuneError('internal', 'x', { lostWhileMeasuring: TILED_TILED }))).toBeNull();
    expect(lostWhileMeasuring(new Error('x'))).toBeNull();
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
