// A run's kernel choice on a real adapter (src/run/kernel-tuning.ts): one layer of the tiny Mistral trained under every
// GEMM × attention combination, compared with the defaults; a session that measures, remembers and resumes with its
// choice. (Which combination is fastest on SwiftShader says nothing about a GPU; that each one is timed, compared and
// refused when it disagrees does.) The pure decision rules: test/unit/run/kernel-tuning.test.ts.
import { readFileSync } from 'node:fs';
import { createNodeContext } from '../../src/cli/node-gpu.ts';
import { isFinetuneError } from '../../src/core/errors.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.ts';
import { ATTENTION_KERNELS, LORA_KERNELS, type GpuContext } from '../../src/engine/gpu.ts';
import { fileKernelTuningCache, kernelCandidates, TUNED_GEMM_KERNELS, kernelsOf, measureKernels, pickKernels, type KernelChoice, type KernelDecision } from '../../src/run/kernel-tuning.ts';
import { memoryStoreFiles } from '../../src/run/run-store.ts';
import { FinetuneSession, memoryRunStore, type TrainEvent } from '../../src/run/session.ts';
import { gpuContext } from './context.ts';

const ROWS = ['def add(a, b):\n    return a + b', 'def sub(a, b):\n    return a - b', 'x = [1, 2, 3]', 'print("hi")'];
const FILES = { train: new Blob([ROWS.map((text) => JSON.stringify({ text })).join('\n')]), trainName: 'rows.jsonl', validation: null, validationName: null };
const HP = { num_train_epochs: 1, train_batch_size: 1, micro_batch_size: 1, lora_rank: 2, lora_alpha: 4, learning_rate: 1e-3, max_seq_len: 24, save_steps: 1, peft_method: 'qlora', run_validation: false };
const TUNED = { gemm: TUNED_GEMM_KERNELS, attention: ATTENTION_KERNELS, lora: LORA_KERNELS };
const LORA = { r: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const };

describe('kernel tuning on a real adapter', () => {
  let ctx: GpuContext;
  let tokenizer: Tokenizer;
  beforeAll(async () => {
    ctx = await gpuContext();
    tokenizer = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
  });

  /**
   * The four attention × LoRA-product combinations on the context's GEMM kernel, the defaults first: enough for the
   * refusal paths, which act on each combination alone (the first test already shows every one of the twenty agrees
   * and is timed). Each of the twenty is one more layer pass on SwiftShader, and the tiled attention, whose numbers
   * differ from the defaults' by rounding, is among these four.
   */
  function onDefaultGemm(candidates: KernelChoice[]): KernelChoice[] {
    return candidates.filter((k) => k.gemm === candidates[0].gemm);
  }

  /**
   * Half of the twenty combinations, the defaults first, chosen so that every pair of kernels of two kinds is among
   * them (each GEMM kernel with both attention kernels and both LoRA-product kernels, and each attention kernel with
   * both LoRA-product kernels): the combinations whose kernel indices sum to the defaults' parity. Where a kernel
   * meets a streamed layer, or two kernels meet each other, one of these runs it; the first test runs all twenty.
   */
  function pairwise(candidates: KernelChoice[]): KernelChoice[] {
    const parity = (k: KernelChoice): number => (TUNED.gemm.indexOf(k.gemm) + TUNED.attention.indexOf(k.attention) + TUNED.lora.indexOf(k.lora)) % 2;
    return candidates.filter((k) => parity(k) === parity(candidates[0]));
  }

  async function loaded(): Promise<FinetuneSession> {
    const session = new FinetuneSession(ctx, tokenizer, memoryRunStore());
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    return session;
  }

  it('times one layer under every combination; each agrees with the defaults to fp32 rounding; nothing is left behind', async () => {
    const session = await loaded();
    const before = kernelsOf(ctx);
    const bytes = ctx.ledger.snapshot().currentBytes;
    const candidates = kernelCandidates({}, before);
    // GEMM (basic; tiled on either thread map, with a K step of 16 or 32) × attention × LoRA-product kernels
    expect(candidates).toHaveLength(20);
    const trials = await measureKernels(ctx, session.model!, session.baseConfig, LORA, { B: 2, T: 13 }, candidates, { minMs: 1, maxReps: 2 });
    expect(trials.map((t) => t.kernels)).toEqual(candidates);
    expect(trials[0].relDiff).toBe(0);
    for (const t of trials) {
      expect(t.agrees).toBe(true);
      expect(t.relDiff).toBeLessThan(1e-5);
      expect(t.ms).toBeGreaterThan(0);
      expect(t.reps).toBeGreaterThanOrEqual(1);
    }
    // The tiled attention sums in another order: its numbers differ from the rows kernel's, by rounding only.
    expect(trials.some((t) => t.kernels.attention !== before.attention && t.relDiff > 0)).toBe(true);
    expect(kernelsOf(ctx)).toEqual(before);
    expect(ctx.ledger.snapshot().currentBytes).toBe(bytes);
    session.unloadModel();
  });

  it('measures a model whose layers are streamed from CPU memory the same way (the layer is uploaded as a pass asks for it)', async () => {
    const session = new FinetuneSession(ctx, tokenizer, null);
    const info = await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double', undefined, { streamLayers: true });
    expect(info.streamedLayers).toBe(true);
    const candidates = pairwise(kernelCandidates({}, kernelsOf(ctx)));
    // Every kernel of each kind, each beside every kernel of the other kinds, on a streamed layer.
    expect(candidates).toHaveLength(10);
    for (const [a, b] of [['gemm', 'attention'], ['gemm', 'lora'], ['attention', 'lora']] as const) {
      expect(new Set(candidates.map((k) => `${k[a]}/${k[b]}`)).size, `${a} × ${b}`).toBe(TUNED[a].length * TUNED[b].length);
    }
    const trials = await measureKernels(ctx, session.model!, session.baseConfig, LORA, { B: 2, T: 13 }, candidates, { minMs: 1, maxReps: 1, keptAttention: true });
    for (const t of trials) {
      expect(t.agrees).toBe(true);
      expect(t.relDiff).toBeLessThan(1e-5);
      expect(t.ms).toBeGreaterThan(0);
    }
    session.unloadModel();
  });

  it('refuses, untimed, every combination whose numbers differ by more than the tolerance, and never picks one', async () => {
    const session = await loaded();
    const candidates = onDefaultGemm(kernelCandidates({}, kernelsOf(ctx)));
    // A tolerance of 0: any combination that is not bit-identical to the defaults counts as disagreeing here.
    const trials = await measureKernels(ctx, session.model!, session.baseConfig, LORA, { B: 2, T: 13 }, candidates, { minMs: 1, maxReps: 1, tolerance: 0 });
    const refused = trials.filter((t) => !t.agrees);
    expect(refused.length).toBeGreaterThan(0);
    for (const t of refused) {
      expect(t.relDiff).toBeGreaterThan(0);
      expect(t.ms).toBeNaN();
    }
    const pick = pickKernels(trials, { margin: 0 });
    expect(pick.refused).toEqual(refused.map((t) => t.kernels));
    expect(refused.some((t) => t.kernels === pick.chosen)).toBe(false);
    session.unloadModel();
  });

  it('refuses a combination whose pass raises a GPU error, and goes on with the others', async () => {
    const session = await loaded();
    const candidates = onDefaultGemm(kernelCandidates({}, kernelsOf(ctx)));
    expect(candidates).toHaveLength(4);
    const broken = candidates[2];
    // A real validation error on this device during that candidate's pass (as a pipeline a driver will not build gives).
    const beforePass = (k: (typeof candidates)[number]): void => {
      if (k === broken) ctx.device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
    };
    const trials = await measureKernels(ctx, session.model!, session.baseConfig, LORA, { B: 2, T: 13 }, candidates, { minMs: 1, maxReps: 1, beforePass });
    const failed = trials.find((t) => t.kernels === broken)!;
    expect(failed).toMatchObject({ agrees: false, reps: 0 });
    expect(failed.error).toMatch(/usage/i);
    expect(trials.filter((t) => t !== failed).every((t) => t.agrees && t.ms > 0)).toBe(true);
    expect(pickKernels(trials, { margin: 0 }).refused).toEqual([broken]);
    // The device is still good: a sync raises nothing left over.
    await ctx.sync();
    session.unloadModel();
  });

  it('a pass that throws before its work is submitted leaves no error scope open: later GPU errors are still reported', async () => {
    const session = await loaded();
    const candidates = kernelCandidates({}, kernelsOf(ctx));
    const beforePass = (k: (typeof candidates)[number]): void => {
      if (k === candidates[1]) throw new Error('the pass could not be recorded');
    };
    await expect(measureKernels(ctx, session.model!, session.baseConfig, LORA, { B: 2, T: 13 }, candidates, { minMs: 1, maxReps: 1, beforePass })).rejects.toThrow('the pass could not be recorded');
    // A validation error now must reach the context (uncaptured, then thrown by the next sync), not a scope left
    // pushed by the measurement, which would swallow it and every later one without a word.
    ctx.device.createBuffer({ size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.STORAGE });
    await expect(ctx.sync()).rejects.toThrow(/usage/i);
    session.unloadModel();
  });

  it('a run measures, trains with its choice and saves it; the next run remembers it; a resume keeps its own, bit for bit', async () => {
    const cache = fileKernelTuningCache(memoryStoreFiles());
    const defaults = kernelsOf(ctx);

    // An uninterrupted run with kernels other than the defaults: the reference for the resume below.
    const whole = await loaded();
    const wholeLosses: number[] = [];
    // Every kind asked, the skinny LoRA products included: a whole run and its resume on them.
    const asked = { gemm: 'tiled', attention: 'tiled', lora: 'skinny' } as const;
    await whole.train(HP, FILES, (e) => e.type === 'step' && wholeLosses.push(e.loss), { kernels: asked });
    expect(wholeLosses).toHaveLength(4);
    expect(kernelsOf(ctx)).toEqual(defaults); // the run's choice ends with the run
    whole.unloadModel();

    const session = await loaded();
    session.kernelCache = cache;
    const events: TrainEvent[] = [];
    await session.train(HP, FILES, (e) => {
      events.push(e);
      if (e.type === 'step') session.stop();
    }, { kernels: { measureOnSoftware: true } });
    const measured = events.find((e) => e.type === 'kernels') as KernelDecision & { type: 'kernels' };
    expect(measured).toMatchObject({ source: 'measured' });
    // Staged: the four GEMM × attention combinations, the warp map and then the K step of 32 when the tiled GEMM was the
    // fastest of them (which one is, on SwiftShader, is up to its timing), then the other LoRA-product kernel on the
    // fastest so far.
    const mapStage = pickKernels(measured.trials.slice(0, 4)).chosen.gemm === 'tiled' ? 1 : 0;
    expect(measured.trials).toHaveLength(5 + 2 * mapStage);
    if (mapStage) expect(measured.trials[4].kernels.gemm).toBe('tiled-warp');
    if (mapStage) expect(measured.trials[5].kernels.gemm).toMatch(/^tiled(-warp)?-k32$/);
    expect(measured.trials.at(-1)!.kernels.lora).toBe('skinny');
    expect(events.some((e) => e.type === 'status' && /measuring 4 kernel combinations on one layer of this model, then on the fastest the tiled GEMM's warp map and K step of 32 and the LoRA products' kernel/.test(e.text))).toBe(true);
    expect(events.filter((e) => e.type === 'status' && /^measured \d kernel combinations/.test(e.text))).toHaveLength(5 + 2 * mapStage);
    expect((await session.savedRun())!.kernels).toEqual(measured.kernels);

    const next: TrainEvent[] = [];
    await session.train(HP, FILES, (e) => {
      next.push(e);
      if (e.type === 'step') session.stop();
    }, { kernels: { measureOnSoftware: true } });
    expect(next.find((e) => e.type === 'kernels')).toMatchObject({ source: 'cached', kernels: measured.kernels, trials: [] });
    expect(next.some((e) => e.type === 'status' && /measuring/.test(e.text))).toBe(false);

    // A run stopped after one step with the asked kernels, resumed with nothing asked: its own kernels, same numbers.
    const stopped: number[] = [];
    await session.train(HP, FILES, (e) => {
      if (e.type === 'step') {
        stopped.push(e.loss);
        session.stop();
      }
    }, { kernels: asked });
    expect((await session.savedRun())!.kernels).toEqual(asked);
    const resumed: TrainEvent[] = [];
    await session.train({}, null, (e) => resumed.push(e), { resume: true, kernels: { measureOnSoftware: true } });
    expect(resumed.find((e) => e.type === 'kernels')).toMatchObject({ source: 'saved-run', kernels: asked });
    const losses = [...stopped, ...resumed.filter((e) => e.type === 'step').map((e) => (e as { loss: number }).loss)];
    expect(losses).toEqual(wholeLosses);
    session.unloadModel();
  });

  it('a device lost while a combination is measured ends the run naming it; the next run, on a new device, leaves it out and trains', async () => {
    const files = memoryStoreFiles();
    const cache = fileKernelTuningCache(files);
    const lostCtx = (await createNodeContext()).ctx;
    const first = new FinetuneSession(lostCtx, tokenizer, memoryRunStore());
    first.kernelCache = cache;
    await first.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    // Two combinations measured, then the device goes (as a driver reset takes it) just as the third starts.
    const error = await first
      .train(HP, FILES, (e) => {
        if (e.type === 'status' && e.text.startsWith('measured 2 ')) lostCtx.device.destroy();
      }, { kernels: { measureOnSoftware: true } })
      .catch((e: unknown) => e);
    expect(isFinetuneError(error, 'device-lost'), String(error)).toBe(true);
    expect((error as Error).message).toMatch(/while measuring tiled GEMM, row-split attention on one layer of this model, before the first step; the next run on this GPU leaves that combination out/);
    expect(first.isRunning).toBe(false);
    const written = JSON.parse(new TextDecoder().decode((await files.read('kernel-tuning.json'))!)) as { entries: object; lost: Record<string, unknown[]> };
    expect(written.entries).toEqual({});
    expect(Object.values(written.lost)).toEqual([[{ gemm: 'tiled', attention: 'rows', lora: 'general', at: expect.any(String) }]]);

    // Train again on a new device: the lost combination is not measured; the run trains.
    const ctx = (await createNodeContext()).ctx;
    const second = new FinetuneSession(ctx, tokenizer, memoryRunStore());
    second.kernelCache = cache;
    await second.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    const events: TrainEvent[] = [];
    await second.train(HP, FILES, (e) => {
      events.push(e);
      if (e.type === 'step') second.stop();
    }, { kernels: { measureOnSoftware: true } });
    const decision = events.find((e) => e.type === 'kernels') as KernelDecision & { type: 'kernels' };
    expect(decision.source).toBe('measured');
    expect(decision.trials.map((t) => `${t.kernels.gemm}/${t.kernels.attention}/${t.kernels.lora}`)).not.toContain('tiled/rows/general');
    // Three combinations left in the first stage, the warp map when the tiled GEMM won them, the LoRA stage.
    expect(decision.trials).toHaveLength(4 + (pickKernels(decision.trials.slice(0, 3)).chosen.gemm === 'tiled' ? 1 : 0));
    expect(decision.text).toMatch(/not measured, having lost the GPU device here before: tiled GEMM, row-split attention/);
    expect(events.filter((e) => e.type === 'step')).toHaveLength(1);
    second.unloadModel();
    ctx.destroyDevice();
  }, 600_000);
});
