// The `finetune` binary as a user runs it: a separate Node process, finding its adapter by itself.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
// A GPU command's child process (a bench, or `check`): time to compile its pipelines and run on SwiftShader, on a
// 2-core machine busy with the other gpu file beside it (`bench tune` took over 300 s when the machine was busier
// still), inside the tier's 600 s test timeout.
const BENCH_TIMEOUT = 560_000;
const env = { ...process.env };
delete env.VK_ICD_FILENAMES; // it must find SwiftShader without help

describe('finetune CLI over Dawn', () => {
  it('gpu-info reports the adapter and a passing matmul check', async () => {
    const { stdout, stderr } = await run('node', ['bin/finetune.mjs', 'gpu-info'], { env, timeout: 120_000 });
    const info = JSON.parse(stdout);
    expect(info.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(info.matmulCheck.ok).toBe(true);
    // SwiftShader offers 32 KiB of workgroup memory: the usual default kernels, and no note.
    expect(info.defaultKernels).toEqual({ gemm: 'basic', attention: 'rows', lora: 'general' });
    expect(info.kernelNote).toBeUndefined();
    if (info.via === 'swiftshader') {
      expect(stderr).toMatch(/SwiftShader.*slow/);
      // Whether --int8-kernel subgroup-matrix can run here, and why not.
      expect(info.int8SubgroupMatrix).toEqual({ available: false, why: expect.stringMatching(/^the adapter does not offer chromium-experimental-subgroup-matrix/) });
      // The GPU memory is asked of nvidia-smi only for an NVIDIA hardware adapter.
      expect(info.memory).toBeUndefined();
    }
  });

  it('says nothing on stderr but its own note: no XDG_RUNTIME_DIR or Vulkan driver warnings from the GPU stack', async () => {
    const bare = { ...env };
    delete bare.XDG_RUNTIME_DIR; // as under ssh, in containers and CI, where Mesa complained about it
    const { stderr } = await run('node', ['bin/finetune.mjs', 'gpu-info', '--no-check'], { env: bare, timeout: 120_000 });
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    expect(lines.filter((l) => !l.startsWith('note: '))).toEqual([]);
  });

  it('bench matmul prints one JSON line per result: each kernel beside the basic one, GFLOP/s and the ratios', async () => {
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'matmul', '--sizes', '32', '--shapes', '48x40x24', '--min-ms', '5'], { env, timeout: BENCH_TIMEOUT });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ bench: 'adapter', gemm: 'basic' });
    const results = lines.filter((l) => l.bench === 'matmul');
    // 2 shapes × 7 variants (4 transposes, bf16 B twice, f16 B) × (basic, tiled in both blocks and in its own block
    // with two stages of tiles, which SwiftShader's 32 KiB of workgroup memory holds, tiled with fixed sizes).
    expect(results.length).toBe(70);
    expect(results.filter((r) => r.variant === 'forward Y = X·Wᵀ, W f16')).toHaveLength(10);
    const twoStages = results.filter((r) => r.stages === 2);
    expect(twoStages).toHaveLength(14);
    for (const r of twoStages) expect(r).toMatchObject({ kernel: 'tiled', blockForced: false, vsOneStage: expect.any(Number) });
    for (const r of results) {
      expect(r.gflops).toBeGreaterThan(0);
      expect(r.ms).toBeGreaterThan(0);
      if (r.kernel === 'basic') expect(r.vsBasic).toBe(1);
      else expect(r.diffVsBasic).toBeLessThan(1e-5); // the same product as the basic kernel's
    }
    const plain = results.filter((r) => r.variant.startsWith('plain'));
    expect(plain.map((r) => [r.kernel, r.block ?? null, r.vsPlain])).toEqual(
      Array(2).fill([['basic', null, 1], ['tiled', 'narrow', 1], ['tiled', 'narrow', 1], ['tiled', 'wide', 1], ['tiled-fixed', 'narrow', 1]]).flat(),
    );
    for (const r of plain) expect(r.vsPlainRounds).toBeUndefined();
    // Every other variant is timed beside its kernel's plain product in three alternating rounds: the median ratio.
    for (const r of results.filter((x) => !x.variant.startsWith('plain'))) {
      expect(r.vsPlainRounds, r.variant).toHaveLength(3);
      expect(r.vsPlain).toBe([...r.vsPlainRounds].sort((a: number, b: number) => a - b)[1]);
    }
    expect(new Set(results.map((r) => `${r.M}x${r.N}x${r.K}`))).toEqual(new Set(['32x32x32', '48x40x24']));
  });

  it('bench matmul times the K step of 32 when named: both blocks, one stage, the basic kernel\'s products', async () => {
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'matmul', '--sizes', '32', '--kernels', 'basic,tiled-k32', '--min-ms', '5'], { env, timeout: BENCH_TIMEOUT });
    const results = stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.bench === 'matmul');
    const deep = results.filter((r) => r.kernel === 'tiled-k32');
    // 7 variants × its own block (narrow at 32³) and the other one forced; SwiftShader's 32 KiB holds both.
    expect(deep).toHaveLength(14);
    expect(deep.filter((r) => r.blockForced).map((r) => r.block)).toEqual(Array(7).fill('wide'));
    for (const r of deep) {
      expect(r.stages).toBeUndefined();
      expect(r.gflops).toBeGreaterThan(0);
      expect(r.diffVsBasic).toBeLessThan(1e-5);
    }
  });

  it('bench matmul adds the skinny kernel beside the basic one for a rank-r shape, and only there', async () => {
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'matmul', '--sizes', '32', '--shapes', '70x8x96', '--kernels', 'basic', '--min-ms', '5'], { env, timeout: BENCH_TIMEOUT });
    const results = stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.bench === 'matmul');
    const skinny = results.filter((r) => r.kernel === 'skinny');
    // The four f32 transposes of 70×8×96 (N = 8 ≤ 16, K = 96 ≥ 64); not bf16 B, not 32³.
    expect(skinny.map((r) => `${r.M}x${r.N}x${r.K} ${r.variant}`)).toEqual(
      ['plain fp32 (C = A·B)', 'forward Y = X·Wᵀ', 'backward dW = dYᵀ·X', 'both transposed C = Aᵀ·Bᵀ'].map((v) => `70x8x96 ${v}`),
    );
    for (const r of skinny) {
      expect(r.gflops).toBeGreaterThan(0);
      expect(r.diffVsBasic).toBeLessThan(1e-5);
    }
    expect(skinny[0].vsPlain).toBe(1);
  });
});

describe('finetune bench beyond matmul', () => {
  it('bench layer and kernels report tokens/s, the share of the matmul ceiling and ledger memory', async () => {
    // Only the basic GEMM kernel in matmul's comparison: the one above covers the others, whose pipelines take
    // SwiftShader minutes to compile.
    const argv = ['bench', 'all', '--sizes', '32', '--tokens', '8', '--kernels', 'basic', '--min-ms', '1', '--data-mb', '0.5'];
    const { stdout } = await run('node', ['bin/finetune.mjs', ...argv], { env, timeout: BENCH_TIMEOUT });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    const kinds = new Set(lines.map((l) => l.bench));
    for (const k of ['adapter', 'matmul', 'nf4', 'attention', 'kernel', 'layer', 'dispatch', 'data']) expect(kinds.has(k), k).toBe(true);
    // Host time per dispatch, bind groups made per dispatch and reused, for small dispatches alone and a layer's work.
    const dispatch = lines.filter((l) => l.bench === 'dispatch');
    expect(dispatch.map((l) => `${l.work}/${l.bindGroups}`)).toEqual(['record-only/per-dispatch', 'record-only/cached', 'layer/per-dispatch', 'layer/cached']);
    for (const l of dispatch) {
      expect(l.hostUsPerDispatch).toBeGreaterThan(0);
      // Reused ones are all made in the warm-up; made per dispatch, none goes through the cache.
      expect(l.bindGroupsMade).toBe(0);
    }
    expect(dispatch[3].dispatchesPerLayer).toBe(dispatch[2].dispatchesPerLayer);
    expect(dispatch[3].hostSpeedup).toBeCloseTo(dispatch[2].hostUsPerDispatch / dispatch[3].hostUsPerDispatch, 9);
    // The data-loading benchmark: one line with the file's size and the memory it took, as ratios to that size.
    const data = lines.find((l) => l.bench === 'data');
    expect(data.fileBytes).toBeGreaterThanOrEqual(512 * 1024);
    expect(data.rows).toBeGreaterThan(0);
    expect(data.peakHeapPerFileByte).toBe(data.peakHeapBytes / data.fileBytes);
    expect(data.peakRssBytes).toBeGreaterThanOrEqual(0);
    // The tiled attention forward with its row max by subgroup shuffles (SwiftShader has subgroups), then without.
    const attention = lines.filter((l) => l.bench === 'attention');
    expect(attention.map((l) => `${l.variant}${l.subgroups === undefined ? '' : `/${l.subgroups}`}`)).toEqual([
      'forward',
      'forward-tiled/true',
      'forward-tiled-without-subgroups/false',
      'backward',
      'backward-tiled',
      'backward-tiled-spill',
    ]);
    expect(attention[2].vsSubgroups).toBeCloseTo(attention[2].gflops / attention[1].gflops, 9);
    // The backward with dS through a scratch: the 7-product backward's bits, its rate beside it.
    expect(attention[5]).toMatchObject({ sameBits: true, spillBytes: expect.any(Number) });
    expect(attention[5].vsTiled).toBeCloseTo(attention[5].gflops / attention[4].gflops, 9);
    // The two a training run uses, timed beside the plain product on the context's GEMM in three rounds (#9's yardstick).
    for (const l of attention) {
      if (l.variant === 'forward-tiled' || l.variant === 'backward-tiled-spill') {
        expect(l.vsPlainMatmulRounds, l.variant).toHaveLength(3);
        expect(l.vsPlainMatmul).toBe([...l.vsPlainMatmulRounds].sort((a: number, b: number) => a - b)[1]);
        expect(l.plainMatmulKernel).toBe('basic');
      } else {
        expect(l.vsPlainMatmul, l.variant).toBeUndefined();
      }
    }
    const layer = lines.find((l) => l.bench === 'layer');
    expect(layer.tokensPerSecond).toBeGreaterThan(0);
    expect(layer.vsMatmulCeiling).toBeGreaterThan(0);
    // The ceiling's plain matmul timed before and after the layer, their mean the reference.
    expect(layer.plainMatmulGflopsEach).toHaveLength(2);
    expect(layer.plainMatmulGflops).toBeCloseTo((layer.plainMatmulGflopsEach[0] + layer.plainMatmulGflopsEach[1]) / 2, 6);
    expect(layer.vsMatmulCeiling).toBeCloseTo(layer.gflops / layer.plainMatmulGflops, 9);
    expect(layer.peakBytes).toBeGreaterThan(layer.peakByCategory.weights);
    expect(layer.peakByCategory.activations).toBeGreaterThan(0);
    const kernels = lines.filter((l) => l.bench === 'kernel').map((l) => l.kernel);
    expect(kernels.some((k) => k.startsWith('lm_head'))).toBe(true);
    expect(kernels.some((k) => k.startsWith('adamw'))).toBe(true);
  });
});

describe('finetune bench layer --no-lora-epilogue', () => {
  it("turns LoRA's terms on the base products off: 20 more dispatches a layer, said on the adapter line", async () => {
    const layer = async (extra: string[]): Promise<{ adapter: Record<string, unknown>; layer: Record<string, number> }> => {
      const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'layer', '--tokens', '8', '--min-ms', '1', '--gemm', 'tiled', ...extra], { env, timeout: 300_000 });
      const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
      return { adapter: lines.find((l) => l.bench === 'adapter'), layer: lines.find((l) => l.bench === 'layer') };
    };
    const fused = await layer([]);
    const apart = await layer(['--no-lora-epilogue']);
    expect(fused.adapter.loraEpilogue).toBe(true);
    expect(apart.adapter.loraEpilogue).toBe(false);
    // Forward 7, recomputation 6, backward 7 terms, each a GEMM of its own without the epilogue.
    expect(apart.layer.dispatches - fused.layer.dispatches).toBe(20);
  });
});

describe('finetune bench profile', () => {
  it('prints a line per kernel variant of one layer and a summary by part whose dispatches add up', async () => {
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'profile', '--tokens', '8', '--min-ms', '1', '--gemm', 'tiled'], { env, timeout: BENCH_TIMEOUT });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    const kernels = lines.filter((l) => l.bench === 'profile');
    const summary = lines.find((l) => l.bench === 'profile-summary');
    expect(kernels.length).toBeGreaterThan(5);
    expect(kernels.reduce((a, k) => a + k.dispatches, 0)).toBe(summary.dispatches);
    // LoRA's terms ride on the tiled NF4 products: 20 base products, the up-projection or input gradient in each.
    expect(summary.parts['base products'].dispatches).toBe(20);
    expect(kernels.filter((k) => k.part === 'base products').every((k) => k.kernel.includes('LOW_RANK'))).toBe(true);
    expect(summary.layerMs).toBeGreaterThan(0);
  });
});

describe('finetune bench model', () => {
  it('runs whole training steps and reports tokens/s, falling losses and the ledger peak by category', async () => {
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'model', '--tokens', '8', '--steps', '3', '--targets', 'q_proj,v_proj'], { env, timeout: BENCH_TIMEOUT });
    const r = stdout.trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.bench === 'model');
    expect(r.targets).toBe('q_proj,v_proj');
    expect(r.losses).toHaveLength(4);
    // Each timed step's time, and the figures of the median one (a disturbed step does not move them).
    expect(r.stepMsEach).toHaveLength(3);
    expect(r.stepMs).toBe([...r.stepMsEach].sort((a: number, b: number) => a - b)[1]);
    expect(r.tokensPerSecond).toBeCloseTo(8 / (r.stepMs / 1000), 6);
    // Every timed step records the same kernels: a whole number of dispatches per step.
    expect(Number.isInteger(r.dispatchesPerStep) && r.dispatchesPerStep > 0).toBe(true);
    expect(r.peakByCategory.weights).toBeGreaterThan(0);
    expect(r.peakByCategory.optimizer).toBeGreaterThan(0);
    expect(r.peakBytes).toBeGreaterThanOrEqual(r.peakByCategory.weights + r.peakByCategory.activations);
  });
});

describe('finetune bench padding', () => {
  it('trains real steps padded and padding-free on the same model and data: same tokens, fewer computed, same first loss', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-padding-'));
    const data = join(dir, 'rows.jsonl');
    // One micro-batch of very uneven rows: padded, 4 rows of the long one's length; the short ones fit in one row
    // beside it. Few tokens: the head's 32,000 columns make each one slow on SwiftShader.
    const words = [20, 2, 3, 2];
    writeFileSync(data, words.map((n, i) => JSON.stringify({ text: Array.from({ length: n }, (_, k) => `w${i}x${k}`).join(' ') })).join('\n'));
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'padding', '--model', 'test/fixtures/tiny-mistral', '--data', data, '--steps', '1', '--micro-batch', '4', '--rounds', '2'], { env, timeout: BENCH_TIMEOUT });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    const [padded, free] = lines.filter((l) => l.bench === 'padding');
    expect([padded.paddingFree, free.paddingFree]).toEqual([false, true]);
    expect(free.tokens).toBe(padded.tokens);
    expect(free.steps).toBe(1);
    expect([padded.rows, free.rows]).toEqual([4, 2]);
    expect(free.computedTokens).toBeLessThan(padded.computedTokens);
    expect(padded.computedTokens).toBeGreaterThan(padded.tokens);
    for (const l of [padded, free]) {
      // --rounds 2: the median of an even count is the mean of the middle two.
      expect(l.msEach).toHaveLength(2);
      expect(l.ms).toBeCloseTo((l.msEach[0] + l.msEach[1]) / 2, 9);
      expect(l.tokensPerSecond).toBeCloseTo(l.tokens / (l.ms / 1000), 6);
    }
    expect(Math.abs(free.firstLoss - padded.firstLoss) / padded.firstLoss).toBeLessThan(1e-5);
    const summary = lines.find((l) => l.bench === 'padding-summary');
    expect(summary.speedup).toBeCloseTo(free.tokensPerSecond / padded.tokensPerSecond, 9);
    expect(summary.computedRatio).toBeCloseTo(padded.computedTokens / free.computedTokens, 9);
    expect(summary.rounds).toBe(2);
    expect(summary.peakBytes).toBeGreaterThan(0);
  });
});

describe('finetune bench head', () => {
  it('trains real steps with the lm_head on every token and on the counted ones: the same loss, a head of the completions only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-head-'));
    const data = join(dir, 'rows.jsonl');
    // Long prompts and short completions under the instruct layout: most tokens have no loss.
    const rows = [0, 1, 2, 3].map((i) => ({ prompt: Array.from({ length: 9 + i }, (_, k) => `p${i}x${k}`).join(' '), completion: `c${i} done` }));
    writeFileSync(data, rows.map((r) => JSON.stringify(r)).join('\n'));
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'head', '--model', 'test/fixtures/tiny-mistral', '--data', data, '--steps', '1', '--micro-batch', '4', '--layout', 'instruct', '--rounds', '1'], { env, timeout: BENCH_TIMEOUT });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ bench: 'adapter', layout: 'instruct' });
    const [all, counted] = lines.filter((l) => l.bench === 'head');
    expect([all.head, counted.head]).toEqual(['all', 'counted']);
    expect(counted.tokens).toBe(all.tokens);
    expect(counted.computedTokens).toBe(all.computedTokens);
    expect(all.headTokens).toBe(all.computedTokens);
    // Each completion's few tokens and its </s>: under a third of what the layers computed.
    expect(counted.headTokens).toBeGreaterThan(0);
    expect(counted.headTokens).toBeLessThan(all.computedTokens / 3);
    for (const l of [all, counted]) {
      expect(l.msEach).toHaveLength(1);
      expect(l.ms).toBe(l.msEach[0]);
      expect(l.tokensPerSecond).toBeCloseTo(l.tokens / (l.ms / 1000), 6);
    }
    expect(Math.abs(counted.firstLoss - all.firstLoss) / all.firstLoss).toBeLessThan(1e-5);
    const summary = lines.find((l) => l.bench === 'head-summary');
    expect(summary.speedup).toBeCloseTo(counted.tokensPerSecond / all.tokensPerSecond, 9);
    expect(summary.countedShare).toBeCloseTo(counted.headTokens / counted.computedTokens, 9);
    expect(summary.layout).toBe('instruct');
  });

  it('refuses --layout beside --synthetic, whose rows are token ids already (exit 2, before any GPU work)', async () => {
    const failed = await run('node', ['bin/finetune.mjs', 'bench', 'head', '--synthetic', '--layout', 'instruct'], { env, timeout: 60_000 }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toMatch(/--synthetic makes its own model and rows of token ids: give it no --model, --data or --layout/);
  });

  it('refuses --rounds that is not a positive integer (exit 2, before any GPU work)', async () => {
    for (const bad of ['0', '-1', '1.5', 'three']) {
      const failed = await run('node', ['bin/finetune.mjs', 'bench', 'head', '--synthetic', '--rounds', bad], { env, timeout: 60_000 }).then(
        () => null,
        (e: { code: number; stderr: string }) => e,
      );
      expect(failed?.code, bad).toBe(2);
      expect(failed?.stderr).toContain(`--rounds: "${bad}" is not a positive integer`);
    }
  });
});

describe('finetune bench validation', () => {
  it('computes a validation a pass per batch and packed, on the same model and data: fewer passes, the same loss', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-validation-'));
    const data = join(dir, 'rows.jsonl');
    // 24 short rows: 16 held out in batches of one (Replicate's), 8 left to train on; one row of 14 words sets the row
    // length the 16 are packed into.
    const words = Array.from({ length: 24 }, (_, i) => (i === 3 ? 14 : 1 + (i % 4)));
    writeFileSync(data, words.map((n, i) => JSON.stringify({ text: Array.from({ length: n }, (_, k) => `w${i}x${k}`).join(' ') })).join('\n'));
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'validation', '--model', 'test/fixtures/tiny-mistral', '--data', data, '--micro-batch', '4', '--validation-rows', '16', '--rounds', '1'], { env, timeout: BENCH_TIMEOUT });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    const [perBatch, packed] = lines.filter((l) => l.bench === 'validation');
    expect([perBatch.layout, packed.layout]).toEqual(['per-batch', 'packed']);
    expect([perBatch.passes, perBatch.rows]).toEqual([16, 16]);
    expect(packed.passes).toBeLessThan(perBatch.passes / 4);
    expect(packed.rows).toBeLessThanOrEqual(4 * packed.passes);
    expect(packed.tokens).toBe(perBatch.tokens);
    expect(perBatch.computedTokens).toBe(perBatch.tokens);
    for (const l of [perBatch, packed]) {
      expect(l.msEach).toHaveLength(1);
      expect(l.ms).toBe(l.msEach[0]);
      expect(l.tokensPerSecond).toBeCloseTo(l.tokens / (l.ms / 1000), 6);
      expect(l.loss).toBeGreaterThan(0);
    }
    expect(Math.abs(packed.loss - perBatch.loss) / perBatch.loss).toBeLessThan(1e-5);
    const summary = lines.find((l) => l.bench === 'validation-summary');
    expect(summary.speedup).toBeCloseTo(packed.tokensPerSecond / perBatch.tokensPerSecond, 9);
    expect(summary.lossRelativeDifference).toBeCloseTo(Math.abs(packed.loss - perBatch.loss) / perBatch.loss, 12);
    expect(summary.peakBytes).toBeGreaterThan(0);
  });
});

describe('finetune bench int8', () => {
  it('prints the int8 lines beside the fp32 ones of the same run, each NF4 product with its ratio and output error', async () => {
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'int8', '--tokens', '8', '--min-ms', '1'], { env, timeout: BENCH_TIMEOUT });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.bench === 'int8');
    // 256³, then q/o, k/v, gate/up and down at 8 tokens: seven lines each.
    expect(lines).toHaveLength(5 * 7);
    const shapes = [...new Set(lines.map((l) => `${l.M}x${l.N}x${l.K}`))];
    expect(shapes).toHaveLength(5);
    // k/v's shape: the narrowest output of the layer, the one issue #9 asks ≥ 0.8× plain of.
    expect(Math.min(...lines.map((l) => l.N as number))).toBeLessThan(Math.min(...lines.filter((l) => l.M === 8).map((l) => l.K as number)));
    for (const l of lines.filter((x) => x.variant.includes(', int8 (quantisation included)'))) {
      expect(l.vsFp32).toBeGreaterThan(0);
      // An int8-sized difference from fp32: neither identical (int8 did not run) nor broken.
      expect(l.relError).toBeGreaterThan(1e-4);
      expect(l.relError).toBeLessThan(0.02);
    }
    expect(lines.filter((x) => x.variant.startsWith('int8 GEMM')).every((x) => x.vsPlain > 0)).toBe(true);
    expect(lines.filter((x) => x.variant.startsWith('quantise')).every((x) => x.gbps > 0)).toBe(true);
  });

  it('refuses the subgroup-matrix int8 kernel on an adapter without it, saying why (exit 1, no stack)', async () => {
    const failed = await run('node', ['bin/finetune.mjs', 'bench', 'int8', '--int8-kernel', 'subgroup-matrix'], { env, timeout: 120_000 }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toMatch(/the subgroup-matrix int8 kernel cannot run on this adapter: the adapter does not offer chromium-experimental-subgroup-matrix/);
    expect(failed?.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses a bad --base-matmul and an int8-ab without its model and data, before touching the GPU', async () => {
    await expect(run('node', ['bin/finetune.mjs', 'bench', 'layer', '--base-matmul', 'int4'], { env, timeout: 60_000 })).rejects.toMatchObject({ stderr: expect.stringMatching(/--base-matmul must be one of fp32, int8/) });
    await expect(run('node', ['bin/finetune.mjs', 'bench', 'int8-ab'], { env, timeout: 60_000 })).rejects.toMatchObject({ stderr: expect.stringMatching(/needs --model DIR and --data/) });
  });
});

describe('finetune check --attention', () => {
  it('passes golden_qlora with the tiled attention kernels (forward and backward), the adapter given as a zip', async () => {
    // The adapter as the page downloads it: a zip, which check reads as export and generate do.
    const dir = mkdtempSync(join(tmpdir(), 'finetune-check-zip-'));
    const zip = join(dir, 'adapter.zip');
    const file = (name: string) => new Uint8Array(readFileSync(join('test/fixtures/tiny-adapter', name)));
    writeFileSync(zip, zipSync({ 'adapter_config.json': file('adapter_config.json'), 'adapter_model.safetensors': file('adapter_model.safetensors') }));
    const args = ['bin/finetune.mjs', 'check', '--model', 'test/fixtures/tiny-mistral', '--adapter', zip, '--golden', 'test/fixtures/golden_qlora.safetensors', '--quant', 'nf4', '--attention', 'tiled'];
    const { stdout, stderr } = await run('node', args, { env, timeout: BENCH_TIMEOUT });
    const report = JSON.parse(stdout);
    expect(report.ok).toBe(true);
    expect(Object.keys(report.groups)).toEqual(expect.arrayContaining(['loss', 'hidden_states', 'grad', 'adamw_step1']));
    // The verdict in words on stderr as well, where a person looks.
    expect(stderr).toContain(`check: passed (${Object.keys(report.groups).length} groups within tolerance)`);
    // The zip's values were the golden's starting point, every one of them.
    expect(report.adapterWeights).toBe("the adapter, compared with the golden's lora/* (28 tensors)");
    expect(report.groups.adapter).toMatchObject({ worst: 0, count: 28, ok: true });
  });
});

describe('finetune bench estimate', () => {
  it('prints the part-by-part time estimate beside whole measured steps of the same model', async () => {
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'estimate', '--tokens', '8', '--steps', '1'], { env, timeout: BENCH_TIMEOUT });
    const line = stdout.trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.bench === 'estimate');
    expect(line).toMatchObject({ layers: 2, T: 8, parts: { layers: 2, keptLayers: 0, keptLayer: null } });
    expect(line.estimateSeconds).toBeCloseTo(2 * line.parts.recomputedLayer + line.parts.head, 12);
    expect(line.stepSeconds).toBeGreaterThan(0);
    expect(line.ratio).toBeCloseTo(line.estimateSeconds / line.stepSeconds, 12);
    // A validation pass too: two layer forwards and the head's, beside whole measured passes.
    expect(line.forwardParts.layers).toBe(2);
    expect(line.validationEstimateSeconds).toBeCloseTo(2 * line.forwardParts.layer + line.forwardParts.head, 12);
    expect(line.validationSeconds).toBeGreaterThan(0);
    expect(line.validationRatio).toBeCloseTo(line.validationEstimateSeconds / line.validationSeconds, 12);
    expect(line.forwardShare).toBeCloseTo(line.validationEstimateSeconds / line.estimateSeconds, 12);
  });

  it('with --stream-layers adds the uploads of a pass, counted as a real step makes them', async () => {
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'estimate', '--tokens', '8', '--steps', '1', '--stream-layers'], { env, timeout: BENCH_TIMEOUT });
    const line = stdout.trim().split('\n').map((l) => JSON.parse(l)).find((l) => l.bench === 'estimate');
    // Four small layers in two slots: 2·(4 − 2) uploads per training pass, as the measured steps really made.
    expect(line).toMatchObject({ layers: 4, T: 8, streamed: true, uploads: { perTrainingPass: 4, perValidationPass: 4 }, uploadsPerStep: 4 });
    expect(line.uploadSeconds).toBeCloseTo(4 * line.uploads.seconds, 12);
    expect(line.estimateSeconds).toBeCloseTo(4 * line.parts.recomputedLayer + line.parts.head + line.uploadSeconds, 12);
  });
});

describe('finetune bench tune', () => {
  it('runs one layer under every GEMM (the tiled one on both thread maps and both K steps) × attention × LoRA-product combination, compares each with the first, and prints the choice', async () => {
    const { stdout } = await run('node', ['bin/finetune.mjs', 'bench', 'tune', '--tokens', '8', '--min-ms', '1'], { env, timeout: BENCH_TIMEOUT });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    const trials = lines.filter((l) => l.bench === 'tune');
    expect(trials.map((t) => `${t.gemm}/${t.attention}/${t.lora}`).sort()).toEqual(
      ['basic', 'tiled', 'tiled-warp', 'tiled-k32', 'tiled-warp-k32'].flatMap((g) => ['rows', 'tiled'].flatMap((a) => ['general', 'skinny'].map((l) => `${g}/${a}/${l}`))).sort(),
    );
    expect(trials[0]).toMatchObject({ gemm: 'basic', attention: 'rows', lora: 'general', vsFirst: 1, relDiff: 0, agrees: true });
    for (const t of trials) {
      expect(t.agrees).toBe(true);
      expect(t.relDiff).toBeLessThan(1e-4);
      expect(t.ms).toBeGreaterThan(0);
      expect(t.layerTokensPerSecond).toBeCloseTo(8 / (t.ms / 1000), 6);
    }
    const choice = lines.find((l) => l.bench === 'tune-choice');
    expect(trials.some((t) => t.gemm === choice.gemm && t.attention === choice.attention && t.lora === choice.lora)).toBe(true);
    expect(choice.refused).toEqual([]);
    // The choice a staged run makes from the same trials: one of them, and the line says whether it is the full grid's.
    expect(trials.some((t) => t.gemm === choice.staged.gemm && t.attention === choice.staged.attention && t.lora === choice.staged.lora)).toBe(true);
    expect(choice.stagedAgrees).toBe(choice.staged.gemm === choice.gemm && choice.staged.attention === choice.attention && choice.staged.lora === choice.lora);
  });

  it('train refuses a kernel it does not have, before touching the GPU', async () => {
    const args = ['bin/finetune.mjs', 'train', '--model', 'test/fixtures/tiny-mistral', '--data', 'public/datasets/sample.jsonl', '--gemm', 'cublas'];
    await expect(run('node', args, { env, timeout: 60_000 })).rejects.toMatchObject({ stderr: expect.stringMatching(/--gemm must be one of auto, basic, tiled, tiled-fixed, tiled-warp, tiled-k32, tiled-warp-k32, got "cublas"/) });
    args.splice(-2, 2, '--attention', 'flash3');
    await expect(run('node', args, { env, timeout: 60_000 })).rejects.toMatchObject({ stderr: expect.stringMatching(/--attention must be one of auto, rows, tiled, got "flash3"/) });
    args.splice(-2, 2, '--lora-kernel', 'fused');
    await expect(run('node', args, { env, timeout: 60_000 })).rejects.toMatchObject({ stderr: expect.stringMatching(/--lora-kernel must be one of auto, general, skinny, got "fused"/) });
  });
});

describe('finetune train: the data first', () => {
  it('refuses a bad file or a plan it cannot make before it touches the GPU or loads the model (minutes for Mistral-7B)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-data-first-'));
    writeFileSync(join(dir, 'bad.jsonl'), '{"text": "fine"}\n{"prompt": "no completion"}\n');
    writeFileSync(join(dir, 'rows.jsonl'), '{"text": "one"}\n{"text": "two"}\n');
    // Only the model's config.json and headers are read before the data (test/unit/cli/train-model-first.test.ts); the
    // GPU (its SwiftShader note) and the model's load come after the data.
    const model = 'test/fixtures/tiny-mistral';
    mkdirSync(join(dir, 'no-model'));
    const args = (data: string, ...extra: string[]) => ['bin/finetune.mjs', 'train', '--model', model, '--data', join(dir, data), '--out', join(dir, 'out'), ...extra];
    const stderrOf = (a: string[]) => run('node', a, { env, timeout: 120_000 }).then(() => '', (e: { stderr: string }) => e.stderr);
    const bad = await stderrOf(args('bad.jsonl'));
    // Named by its flag and path as given (two files of one name in two folders were told apart by nothing).
    expect(bad).toContain(`--data "${join(dir, 'bad.jsonl')}" has 1 error:\nline 2: missing "completion"`);
    expect(bad).not.toMatch(/config\.json|SwiftShader/);
    const hostile = await stderrOf(args('rows.jsonl', '--num_train_epochs', '99999999999'));
    // Two rows, one held out for validation (a tenth, at least one): one to train on.
    expect(hostile).toMatch(/num_train_epochs 99,999,999,999 over 1 row plans 99,999,999,999 rows, more than the 10,000,000 a run may/);
    expect(hostile).not.toMatch(/config\.json|SwiftShader/);
    // The rows' warnings, printed before the GPU: test/unit/cli/train-model-first.test.ts.
    // An --out that is a file: said as such, not Node's ENOTDIR from deep inside the run store.
    const outFile = join(dir, 'rows.jsonl');
    const taken = await stderrOf(['bin/finetune.mjs', 'train', '--model', join(dir, 'no-model'), '--data', outFile, '--out', outFile]);
    expect(taken).toContain(`--out: "${outFile}" is a file; give a folder (it is made if missing)`);
    expect(taken).not.toMatch(/ENOTDIR/);
    // Under a file, or with a file where the adapter's folder goes: said before any step (that one was found after all
    // of them, as Node's EEXIST).
    const under = await stderrOf(['bin/finetune.mjs', 'train', '--model', join(dir, 'no-model'), '--data', outFile, '--out', join(outFile, 'sub')]);
    expect(under).toContain(`--out: "${join(outFile, 'sub')}" cannot be made: "${outFile}" is a file`);
    mkdirSync(join(dir, 'blocked'));
    writeFileSync(join(dir, 'blocked', 'adapter'), 'x');
    const blocked = await stderrOf(['bin/finetune.mjs', 'train', '--model', join(dir, 'no-model'), '--data', outFile, '--out', join(dir, 'blocked')]);
    expect(blocked).toContain(`--out: "${join(dir, 'blocked', 'adapter')}" is a file, where train writes the adapter's folder: move it away, or give --out another folder`);
    expect(blocked).not.toMatch(/config\.json|SwiftShader/);
  });
});

describe('finetune train: one process per --out', () => {
  it('refuses an --out another live train holds, naming it, before reading the folder or the model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-locked-'));
    writeFileSync(join(dir, 'rows.jsonl'), '{"text": "one"}\n{"text": "two"}\n');
    mkdirSync(join(dir, 'no-model'));
    const out = join(dir, 'out');
    mkdirSync(out);
    // The holder: this test's own process, alive on this host for as long as the test runs.
    const lock = JSON.stringify({ pid: process.pid, host: hostname(), started: '2026-12-02T10:00:00.000Z' });
    writeFileSync(join(out, '.finetune-train.lock'), lock);
    const refused = await run('node', ['bin/finetune.mjs', 'train', '--model', join(dir, 'no-model'), '--data', join(dir, 'rows.jsonl'), '--out', out], { env, timeout: 120_000 }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(refused?.code).toBe(2);
    expect(refused?.stderr).toContain(`"${out}" is being written by finetune train (pid ${process.pid} on ${hostname()}, started 2026-12-02T10:00:00.000Z): give --out another folder, or wait for it to end`);
    expect(refused?.stderr).not.toMatch(/config\.json/); // refused before the model was looked at
    expect(readFileSync(join(out, '.finetune-train.lock'), 'utf8')).toBe(lock); // the holder's lock stays
    expect(readdirSync(out)).toEqual(['.finetune-train.lock']);
  });
});

describe('finetune train: an --out that holds a finished run', () => {
  it('refuses to replace it and its adapter, naming the run and the ways out; --overwrite replaces both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-finished-'));
    writeFileSync(join(dir, 'rows.jsonl'), '{"text": "def add(a, b):\\n    return a + b"}\n{"text": "x = [1, 2, 3]"}\n');
    const out = join(dir, 'out');
    const args = (seed: number, ...extra: string[]) => [
      'bin/finetune.mjs', 'train', '--model', 'test/fixtures/tiny-mistral', '--data', join(dir, 'rows.jsonl'), '--out', out, '--no-cache',
      '--max_steps', '1', '--train_batch_size', '1', '--micro_batch_size', '1', '--lora_rank', '2', '--max_seq_len', '8', '--run_validation', 'false', '--seed', String(seed), ...extra,
    ];
    const weights = join(out, 'adapter', 'adapter_model.safetensors');
    const firstRun = await run('node', args(1), { env, timeout: BENCH_TIMEOUT });
    const firstDone = JSON.parse(firstRun.stdout.trim().split('\n').at(-1)!) as { finalLoss: number };
    const first = readFileSync(weights);
    // A local folder's name is no Hub id: the adapter says it names the base so, and how to give the Hub id.
    expect(JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')).base_model_name_or_path).toBe('tiny-mistral');
    // A person at the terminal reads the run on stderr: the plan, the step, then where the adapter went.
    expect(firstRun.stderr).toMatch(/^plan: 1 step over 1 epoch of 2 rows · batch 1 = 1 × 1 · \d+ tokens an epoch, 0 % padding$/m);
    expect(firstRun.stderr).toMatch(/^step 1 \/ 1 \(epoch 1\) · loss \d+\.\d{4} · lr 0 · grad norm [\d.]+ · [\d.]+ tokens\/s$/m);
    expect(firstRun.stderr).toMatch(new RegExp(`^finished 1 step in \\d+ s · loss ${firstDone.finalLoss.toFixed(4)} · adapter in "${join(out, 'adapter')}"$`, 'm'));
    expect(firstRun.stderr).toContain(`note: the adapter names its base model "tiny-mistral", the model folder's name, which PEFT, vLLM and Ollama look up on the Hugging Face Hub: give train --base-model owner/name`);
    // Its README ends with how it was trained: the data, the changed hyperparameters marked, the step's loss.
    const readme = readFileSync(join(out, 'adapter', 'README.md'), 'utf8');
    expect(readme).toContain('for 1 optimizer step on `rows.jsonl` (2 training rows), without validation.');
    expect(readme).toContain('| lora_rank * | `2` |');
    expect(readme).toContain('| run_validation * | `false` |');
    expect(readme).toContain(`Training loss at step 1: ${firstDone.finalLoss.toFixed(4)}`);
    // The run's lock on OUT is gone once it ended, and so is a refused run's.
    expect(existsSync(join(out, '.finetune-train.lock'))).toBe(false);

    const refused = await run('node', args(2), { env, timeout: 120_000 }).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(refused?.code).toBe(2);
    expect(refused?.stderr).toContain(`"${out}" holds a finished run ("rows.jsonl", 1 step) and its adapter ("${join(out, 'adapter')}"): give --out another folder to keep it, or --overwrite to replace it`);
    expect(readFileSync(weights).equals(first)).toBe(true);
    expect(existsSync(join(out, '.finetune-train.lock'))).toBe(false);

    // --resume with other data or hyperparameters than the run's is refused, naming them (they were once ignored
    // without a word); the same ones, as when the first command is run again with --resume, are taken.
    writeFileSync(join(dir, 'other.jsonl'), '{"text": "something else"}\n');
    const otherArgs = args(1, '--resume', '--learning_rate', '0.05').map((a) => (a === join(dir, 'rows.jsonl') ? join(dir, 'other.jsonl') : a));
    const differs = await run('node', otherArgs, { env, timeout: 120_000 }).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(differs?.code).toBe(2);
    expect(differs?.stderr).toContain(`--resume continues the saved run with its own data and hyperparameters, and these differ: --data "${join(dir, 'other.jsonl')}" (the run trains on "rows.jsonl" as stored in "${join(out, 'run')}"); --learning_rate 0.05 (the run's: 0.0001). Drop them to resume it, or start a new run over it with --overwrite`);
    // Another model than the run's, refused before it is loaded (minutes for Mistral-7B).
    const otherModel = await run('node', args(1, '--resume').map((a) => (a === 'test/fixtures/tiny-mistral' ? 'public/models/mistral-nano-demo' : a)), { env, timeout: 120_000 }).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(otherModel?.stderr).toContain(`the run saved in "${join(out, 'run')}" was trained on the model "tiny-mistral"; --model "public/models/mistral-nano-demo" is "mistral-nano-demo": give the run's model to resume it`);
    expect(otherModel?.stderr).not.toMatch(/SwiftShader/); // refused before the GPU was asked for
    const same = await run('node', args(1, '--resume'), { env, timeout: BENCH_TIMEOUT });
    // A finished run resumed trains nothing, and reports its own last loss (it once said null).
    expect(JSON.parse(same.stdout.trim().split('\n').at(-1)!)).toMatchObject({ type: 'done', steps: 1, finalLoss: firstDone.finalLoss });
    expect(readFileSync(weights).equals(first)).toBe(true);

    // --overwrite, then Ctrl-C before the first step: nothing trained, so the finished run's adapter stays (an
    // untrained adapter was once written over it, beside the old run that the folder still held).
    const stopped = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn('node', args(3, '--overwrite'), { env });
      let stdout = '';
      let stderr = '';
      let sent = false;
      // Once the stop handlers are in: the GPU's note (SwiftShader here), or at the latest the loaded model's line.
      const interrupt = (): void => {
        if (sent) return;
        sent = true;
        child.kill('SIGINT');
      };
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        interrupt();
      });
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (/no hardware GPU found/.test(stderr)) interrupt();
      });
      child.on('error', reject);
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toContain(`note: stopped before the first step: nothing was trained, and "${join(out, 'adapter')}" was left as it was`);
    expect(JSON.parse(stopped.stdout.trim().split('\n').at(-1)!)).toMatchObject({ type: 'done', steps: 0, stopped: true, adapter: null });
    expect(readFileSync(weights).equals(first)).toBe(true);

    const badName = await run('node', args(2, '--overwrite', '--base-model', ' my-org/tiny'), { env, timeout: 120_000 }).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(badName?.stderr).toContain('--base-model: the base model name starts or ends with a space');
    const { stderr } = await run('node', args(2, '--overwrite', '--base-model', 'my-org/tiny-mistral'), { env, timeout: BENCH_TIMEOUT });
    expect(stderr).toContain('--overwrite: this run replaces it');
    // --base-model names the base in the adapter's config, its README and the GGUF, and there is no note then.
    expect(JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')).base_model_name_or_path).toBe('my-org/tiny-mistral');
    expect(readFileSync(join(out, 'adapter', 'README.md'), 'utf8')).toContain('my-org/tiny-mistral');
    expect(readFileSync(join(out, 'adapter', 'adapter.gguf')).includes(Buffer.from('my-org/tiny-mistral'))).toBe(true);
    expect(stderr).not.toContain('the model folder\'s name');
    // The name is recorded with the run: the run's checkpoint exports under it too (it named the model folder).
    const exported = join(out, 'from-run');
    await run('node', ['bin/finetune.mjs', 'export', '--adapter', join(out, 'run'), '--format', 'peft', '--out', exported, '--model', 'test/fixtures/tiny-mistral'], { env, timeout: 120_000 });
    expect(JSON.parse(readFileSync(join(exported, 'adapter_config.json'), 'utf8')).base_model_name_or_path).toBe('my-org/tiny-mistral');
    // Another seed, another initialisation: the adapter written is the new run's.
    expect(readFileSync(weights).equals(first)).toBe(false);
  }, 1_200_000);
});

describe('finetune train: the weight cache', () => {
  it('says on stderr that a damaged cache entry was rebuilt (it was only inside the model line)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-cache-warn-'));
    writeFileSync(join(dir, 'rows.jsonl'), '{"text": "def add(a, b):\\n    return a + b"}\n{"text": "x = [1, 2, 3]"}\n');
    const args = (out: string) => ['bin/finetune.mjs', 'train', '--model', 'test/fixtures/tiny-mistral', '--data', join(dir, 'rows.jsonl'), '--out', join(dir, out), '--cache-dir', join(dir, 'cache'), '--max_steps', '1', '--train_batch_size', '1', '--micro_batch_size', '1', '--lora_rank', '2', '--max_seq_len', '8', '--run_validation', 'false'];
    const first = await run('node', args('a'), { env, timeout: BENCH_TIMEOUT });
    // The load's progress goes to stderr (phase, tensors, bytes; a folder is read, not downloaded), stdout stays JSON.
    expect(first.stderr).toMatch(/^loading tiny-mistral: reading · \d+ \/ \d+ tensors · [\d.]+ MiB \/ [\d.]+ MiB/m);
    expect(first.stderr).toMatch(/^loading tiny-mistral: caching · /m);
    for (const line of first.stdout.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
    const [entry] = readdirSync(join(dir, 'cache')).filter((n) => n.endsWith('.bin'));
    const bytes = readFileSync(join(dir, 'cache', entry));
    bytes[100] ^= 0xff; // a flipped byte in the first part
    writeFileSync(join(dir, 'cache', entry), bytes);
    const { stderr } = await run('node', args('b'), { env, timeout: BENCH_TIMEOUT });
    expect(stderr).toMatch(/^warning: the cached weights were unusable \(.+\): removed, loading from the source again$/m);
  }, 1_200_000);
});

describe('finetune train: notes on stderr', () => {
  it('says on stderr that the base products run in int8, for either int8 choice, before anything else can fail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-int8-note-'));
    writeFileSync(join(dir, 'rows.jsonl'), '{"text": "hi"}\n');
    mkdirSync(join(dir, 'no-model'));
    for (const choice of ['int8', 'int8-mlp']) {
      const args = ['bin/finetune.mjs', 'train', '--model', join(dir, 'no-model'), '--data', join(dir, 'rows.jsonl'), '--out', join(dir, 'out'), '--base-matmul', choice];
      const failed = await run('node', args, { env, timeout: 120_000 }).then(() => null, (e: { stderr: string }) => e);
      expect(failed?.stderr).toContain(`note: NF4 base products in int8 (--base-matmul ${choice}, experimental, docs/int8.md)`);
      expect(failed?.stderr).toMatch(/no config\.json/);
    }
  });

  it('says on stderr that the shaders run without bounds clamps under --no-robustness, and only then', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-robustness-note-'));
    writeFileSync(join(dir, 'rows.jsonl'), '{"text": "hi"}\n');
    mkdirSync(join(dir, 'no-model'));
    const args = ['bin/finetune.mjs', 'train', '--model', join(dir, 'no-model'), '--data', join(dir, 'rows.jsonl'), '--out', join(dir, 'out')];
    const stderrOf = (extra: string[]) => run('node', [...args, ...extra], { env, timeout: 120_000 }).then(() => '', (e: { stderr: string }) => e.stderr);
    const without = await stderrOf(['--no-robustness']);
    expect(without).toContain("note: shaders compiled without Dawn's bounds clamps (--no-robustness)");
    expect(without).toMatch(/no config\.json/);
    expect(await stderrOf([])).not.toContain('bounds clamps');
  });
});
