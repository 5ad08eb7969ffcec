// The lent-GPU kit (scripts/device/): parking the big files, the size accounting against the device tool's limit, the
// bundle's import.meta.url rebasing and the summary of a run's bench.jsonl. Nothing here needs a GPU or the device.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parkFiles, PARKED, rebaseImportMeta, travelling } from '../../scripts/device/pack.mjs';
import { summarise } from '../../scripts/device/summary.mjs';

/** The device summary of records, each written as the kit writes it: one JSON line. */
const summariseRecords = (records: object[]): string => summarise(records.map((l) => JSON.stringify(l)).join('\n'));

let dir: string;
let root: string;
let park: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'device-kit-'));
  root = join(dir, 'repo');
  park = join(dir, 'parked');
  mkdirSync(join(root, 'a', 'b'), { recursive: true });
  writeFileSync(join(root, 'a', 'b', 'big.bin'), 'x'.repeat(1000));
  writeFileSync(join(root, 'small.txt'), 'hello');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('parkFiles', () => {
  it('moves out and back, idempotently', () => {
    const first = parkFiles(root, park, ['a/b/big.bin'], true);
    expect(first.ok).toBe(true);
    expect(existsSync(join(root, 'a/b/big.bin'))).toBe(false);
    expect(readFileSync(join(park, 'a/b/big.bin'), 'utf8')).toHaveLength(1000);
    const again = parkFiles(root, park, ['a/b/big.bin'], true);
    expect(again).toEqual({ ok: true, lines: [expect.stringMatching(/^already parked/)] });
    expect(parkFiles(root, park, ['a/b/big.bin'], false).ok).toBe(true);
    expect(readFileSync(join(root, 'a/b/big.bin'), 'utf8')).toHaveLength(1000);
    expect(existsSync(join(park, 'a/b/big.bin'))).toBe(false);
    expect(parkFiles(root, park, ['a/b/big.bin'], false).lines[0]).toMatch(/^already in place/);
  });

  it('refuses to overwrite a copy on either side, and reports a file that is nowhere', () => {
    mkdirSync(join(park, 'a', 'b'), { recursive: true });
    writeFileSync(join(park, 'a/b/big.bin'), 'other');
    for (const toPark of [true, false]) {
      const r = parkFiles(root, park, ['a/b/big.bin'], toPark);
      expect(r.ok).toBe(false);
      expect(r.lines[0]).toMatch(/^refused/);
    }
    expect(readFileSync(join(park, 'a/b/big.bin'), 'utf8')).toBe('other');
    expect(readFileSync(join(root, 'a/b/big.bin'), 'utf8')).toHaveLength(1000);
    expect(parkFiles(root, park, ['nowhere.bin'], true)).toEqual({ ok: false, lines: [expect.stringMatching(/^missing/)] });
  });

  it('parks the two files that keep the checkout over the limit', () => {
    expect(PARKED).toEqual(['public/models/mistral-nano-demo/model.safetensors', 'test/fixtures/tiny-mistral.onnx']);
  });
});

describe('travelling', () => {
  it('counts files less the parked ones, plus the carried folders, against the limit', () => {
    mkdirSync(join(root, '.device', 'sub'), { recursive: true });
    writeFileSync(join(root, '.device', 'sub', 'node.xz'), 'y'.repeat(300));
    const all = travelling(root, ['a/b/big.bin', 'small.txt', 'gone.txt'], { carried: ['.device', '.gl'], limit: 2000 });
    expect(all.total).toBe(1305);
    expect(all.ok).toBe(true);
    expect(all.largest[0]).toEqual({ path: 'a/b/big.bin', bytes: 1000 });
    const parked = travelling(root, ['a/b/big.bin', 'small.txt'], { exclude: ['a/b/big.bin'], carried: ['.device'], limit: 2000 });
    expect(parked.total).toBe(305);
    expect(travelling(root, ['a/b/big.bin'], { limit: 999 }).ok).toBe(false);
  });
});

describe('rebaseImportMeta', () => {
  it('keeps a source file’s import.meta.url pointing at that file, seen from the bundle', () => {
    const src = "const p = new URL('../../package.json', import.meta.url);";
    const out = rebaseImportMeta(src, '/r/src/cli/main.ts', '/r/.device');
    expect(out).toBe(`const p = new URL('../../package.json', new URL("../src/cli/main.ts", import.meta.url).href);`);
    // As the bundle at /r/.device/finetune.mjs evaluates it:
    const rebased = new URL('../src/cli/main.ts', 'file:///r/.device/finetune.mjs').href;
    expect(new URL('../../package.json', rebased).href).toBe('file:///r/package.json');
    expect(rebaseImportMeta('no meta here', '/r/src/a.ts', '/r/.device')).toBe('no meta here');
  });
});

describe('summarise', () => {
  it('groups lines by step, keeps the last attempt, and names skipped and failed steps', () => {
    const lines = [
      { device: 'header', gpu: 'GPU 0: NVIDIA H200', commit: 'abcdef123456', date: 'today' },
      { device: 'step', step: 'attention', attempt: 1 },
      { device: 'step-end', step: 'attention', attempt: 1, exit: 1, seconds: 3 },
      { device: 'step', step: 'attention', attempt: 2 },
      { bench: 'attention', variant: 'forward-tiled', T: 2048, ms: 10, gflops: 3400, vsRows: 2.7, subgroups: true },
      { bench: 'attention', variant: 'forward-tiled-without-subgroups', T: 2048, ms: 11, gflops: 3091, vsRows: 2.45, subgroups: false, vsSubgroups: 0.91 },
      { device: 'step-end', step: 'attention', attempt: 2, exit: 0, seconds: 12 },
      { device: 'step', step: 'matmul', attempt: 1 },
      { bench: 'matmul', kernel: 'basic', variant: 'plain fp32 (C = A·B)', M: 8, N: 8, K: 8, gflops: 16600 },
      { bench: 'matmul', kernel: 'tiled', block: 'wide', blockForced: true, variant: 'plain fp32 (C = A·B)', M: 8, N: 8, K: 8, gflops: 30000, diffVsBasic: 2e-6 },
      { device: 'step-end', step: 'matmul', attempt: 1, exit: 124, seconds: 180 },
      { device: 'step', step: 'model-basic', skipped: 'budget' },
    ];
    const text = `${lines.map((l) => JSON.stringify(l)).join('\n')}\nFatal: futex error\n`;
    const s = summarise(text);
    expect(s).toContain('GPU 0: NVIDIA H200 | commit abcdef1234');
    expect(s).toContain('[attention] exit 0, 12s');
    expect(s).toContain('attention forward-tiled T=2048: 3.4 TFLOP/s, 10.00 ms, vsRows 2.70, subgroup row max');
    expect(s).toContain('attention forward-tiled-without-subgroups T=2048: 3.1 TFLOP/s, 11.00 ms, vsRows 2.45, vsSubgroups 0.91');
    expect(s).toContain('[matmul] exit 124, 180s');
    expect(s).toContain('8x8x8 plain: basic 16.6 | tiled[w*] 30.0');
    expect(s).toContain('largest diffVsBasic 2.00e-6');
    expect(s).toContain('[model-basic] skipped (budget)');
    expect(s).toContain('Fatal: futex error');
  });

  it('shows the attention backward with dS through a scratch beside the 7-product one, flags differing bits, and marks a run without it', () => {
    const lines = [
      { device: 'step', step: 'attention', attempt: 1 },
      { bench: 'attention', variant: 'backward-tiled-spill', T: 2048, ms: 6.8, gflops: 13000, vsRows: 7.5, vsTiled: 1.35, spillBytes: 272629760, sameBits: true },
      { bench: 'attention', variant: 'backward-tiled-spill', T: 512, ms: 1, gflops: 9000, vsRows: 6, vsTiled: 1.2, spillBytes: 1, sameBits: false },
      { device: 'step-end', step: 'attention', attempt: 1, exit: 0, seconds: 9 },
      { device: 'step', step: 'layer-best-no-spill', attempt: 1 },
      { bench: 'adapter', via: 'environment', vendor: 'nvidia', description: 'H200', gemm: 'tiled', attention: 'tiled', loraKernel: 'skinny', attentionSpill: false },
      { device: 'step-end', step: 'layer-best-no-spill', attempt: 1, exit: 0, seconds: 9 },
    ];
    const s = summariseRecords(lines);
    expect(s).toContain('attention backward-tiled-spill T=2048: 13.0 TFLOP/s, 6.80 ms, vsRows 7.50, vsTiled 1.35\n');
    expect(s).toContain('attention backward-tiled-spill T=512: 9.0 TFLOP/s, 1.00 ms, vsRows 6.00, vsTiled 1.20, BITS DIFFER from backward-tiled');
    const paired = summariseRecords([
      { device: 'step', step: 'attention', attempt: 1 },
      { bench: 'attention', variant: 'forward-tiled', T: 2048, ms: 2, gflops: 21000, vsRows: 7, subgroups: true, vsPlainMatmul: 0.54, vsPlainMatmulRounds: [0.52, 0.54, 0.55], plainMatmulKernel: 'tiled' },
    ]);
    expect(paired).toContain('attention forward-tiled T=2048: 21.0 TFLOP/s, 2.00 ms, vsRows 7.00, subgroup row max, vsPlainMatmul 0.54 (0.52–0.55) (tiled)');
    expect(s).toContain('adapter: environment nvidia H200 gemm=tiled attention=tiled lora=skinny no-attention-spill');
  });

  it('shows padding-free micro-batches beside padded ones, and the summary of the two', () => {
    const s = summariseRecords([
      { device: 'step', step: 'padding-7b', attempt: 1 },
      { bench: 'padding', paddingFree: false, steps: 2, microBatchSize: 4, tokens: 4000, computedTokens: 6000, rows: 8, ms: 9000, msEach: [9100, 9000, 8900], tokensPerSecond: 444.4, firstLoss: 10.5 },
      { bench: 'padding', paddingFree: true, steps: 2, microBatchSize: 4, tokens: 4000, computedTokens: 4500, rows: 5, ms: 7000, msEach: [7000, 7100, 6900], tokensPerSecond: 571.4, firstLoss: 10.5 },
      { bench: 'padding-summary', speedup: 1.2857, computedRatio: 1.3333, firstLossRelativeDifference: 1e-7, rounds: 3 },
    ]);
    expect(s).toContain('padding padded mb=4: 4000 real tokens in 6000 computed (8 rows), 9000 ms (rounds 9100, 9000, 8900), 444.4 real tokens/s, first loss 10.5');
    expect(s).toContain('padding free mb=4: 4000 real tokens in 4500 computed (5 rows), 7000 ms');
    expect(s).toContain('padding-free: 1.29× real tokens/s, 1.33× fewer tokens computed, first loss differs by 1.00e-7');
  });

  it('shows a validation pass per batch beside packed passes, and the summary of the two', () => {
    const s = summariseRecords([
      { device: 'step', step: 'validation-7b', attempt: 1 },
      { bench: 'validation', layout: 'per-batch', passes: 50, rows: 50, computedTokens: 25000, tokens: 25000, ms: 12000, msEach: [12100, 12000, 11900], tokensPerSecond: 2083.3, loss: 10.4 },
      { bench: 'validation', layout: 'packed', passes: 4, rows: 13, computedTokens: 26000, tokens: 25000, ms: 4000, msEach: [4000, 4100, 3900], tokensPerSecond: 6250, loss: 10.4 },
      { bench: 'validation-summary', speedup: 3, lossRelativeDifference: 2e-7, rounds: 3 },
    ]);
    expect(s).toContain('validation per-batch: 50 passes of 50 rows, 25000 real tokens in 25000 computed, 12000 ms (rounds 12100, 12000, 11900), 2083.3 real tokens/s, loss 10.4');
    expect(s).toContain('validation packed: 4 passes of 13 rows, 25000 real tokens in 26000 computed, 4000 ms');
    expect(s).toContain('packed validation: 3.00× real tokens/s, loss differs by 2.00e-7');
  });

  it('shows a layer profile: each kernel variant with its part and share, then the parts beside the unprofiled layer', () => {
    const lines = [
      { device: 'step', step: 'profile-best', attempt: 1 },
      { bench: 'profile', T: 2048, part: 'base products', kernel: 'matmul_tiled [ALIGNED LOW_RANK NF4]', dispatches: 13, ms: 55.25, share: 0.5525 },
      {
        bench: 'profile-summary', T: 2048, C: 4096, I: 14336, dispatches: 72, kernelMs: 100, layerMs: 98.5,
        parts: { 'base products': { ms: 80, share: 0.8, dispatches: 20 }, attention: { ms: 12, share: 0.12, dispatches: 5 }, 'LoRA products': { ms: 5, share: 0.05, dispatches: 35 }, other: { ms: 3, share: 0.03, dispatches: 12 } },
      },
      { device: 'step-end', step: 'profile-best', attempt: 1, exit: 0, seconds: 9 },
    ];
    const s = summariseRecords(lines);
    expect(s).toContain('profile T=2048 base products: matmul_tiled [ALIGNED LOW_RANK NF4] ×13, 55.25 ms, 55.3 %');
    expect(s).toContain('profile T=2048: 100.0 ms in 72 dispatches (layer unprofiled 98.5 ms); base products 80.0 ms 80.0 %, attention 12.0 ms 12.0 %, LoRA products 5.0 ms 5.0 %, other 3.0 ms 3.0 %');
  });

  it('shows each swept matmul design beside the tiled kernel, flags one that disagrees, and says why one was skipped', () => {
    const lines = [
      { device: 'step', step: 'sweep', attempt: 1 },
      { bench: 'matmul-sweep', config: 'tiled (production)', M: 4096, N: 4096, K: 4096, threads: 256, workgroupBytes: 0, ms: 4.5, gflops: 30543, vsTiled: 1 },
      { bench: 'matmul-sweep', config: '128x256x16 t8x16 warp unroll', M: 4096, N: 4096, K: 4096, threads: 256, workgroupBytes: 24576, ms: 3.5, gflops: 39269, vsTiled: 1.2857, diffVsTiled: 0, agrees: true },
      { bench: 'matmul-sweep', config: '128x128x8 t8x8 warp unroll', M: 4096, N: 4096, K: 4096, threads: 256, workgroupBytes: 8192, ms: 3, gflops: 45812, vsTiled: 1.5, diffVsTiled: 0.5, agrees: false },
      { bench: 'matmul-sweep', config: '128x128x32 t8x8 warp unroll', M: 4096, N: 4096, K: 4096, threads: 256, workgroupBytes: 32768, skipped: 'the pipeline was refused: too much workgroup memory' },
      { bench: 'matmul-sweep', config: '64x128x16 t8x8 warp unroll', M: 4096, N: 4096, K: 4096, threads: 128, workgroupBytes: 12288, ms: 4, gflops: 34360, vsTiled: 1.12, vsTiledRounds: [1.1, 1.12, 1.19], tiledGflops: 30600, diffVsTiled: 0, agrees: true },
      { device: 'step-end', step: 'sweep', attempt: 1, exit: 0, seconds: 20 },
    ];
    const s = summariseRecords(lines);
    expect(s).toContain('sweep 4096x4096x4096 tiled (production): 30.5 TFLOP/s, vsTiled 1.00');
    expect(s).toContain('sweep 4096x4096x4096 128x256x16 t8x16 warp unroll: 39.3 TFLOP/s, vsTiled 1.29\n');
    expect(s).toContain('sweep 4096x4096x4096 128x128x8 t8x8 warp unroll: 45.8 TFLOP/s, vsTiled 1.50, DISAGREES with the tiled kernel (5.00e-1)');
    expect(s).toContain('sweep 4096x4096x4096 128x128x32 t8x8 warp unroll: skipped: the pipeline was refused: too much workgroup memory');
    // Timed beside the production kernel in rounds (since 2026-12-04): the rounds' spread.
    expect(s).toContain('sweep 4096x4096x4096 64x128x16 t8x8 warp unroll: 34.4 TFLOP/s, vsTiled 1.12 (1.10–1.19)');
  });

  it('marks the adapter line of a run with LoRA as GEMMs of their own (--no-lora-epilogue), and only that run', () => {
    const adapter = { bench: 'adapter', via: 'environment', vendor: 'nvidia', description: 'H200', gemm: 'tiled', attention: 'tiled', loraKernel: 'skinny' };
    const lines = [
      { device: 'step', step: 'layer-best', attempt: 1 },
      { ...adapter, loraEpilogue: true },
      { device: 'step-end', step: 'layer-best', attempt: 1, exit: 0, seconds: 9 },
      { device: 'step', step: 'layer-best-no-lora-epilogue', attempt: 1 },
      { ...adapter, loraEpilogue: false },
      { bench: 'layer', T: 2048, ms: 104, tokensPerSecond: 19692, gflops: 27400, vsMatmulCeiling: 0.9, plainMatmulGflops: 30400, dispatches: 92 },
      { device: 'step-end', step: 'layer-best-no-lora-epilogue', attempt: 1, exit: 0, seconds: 9 },
    ];
    const s = summariseRecords(lines);
    expect(s.match(/no-lora-epilogue$/gm)).toHaveLength(1);
    expect(s).toContain('layer T=2048: 19692 tokens/s, 104.0 ms, 27.4 TFLOP/s, vsMatmulCeiling 0.900, plain 30.4, 92 dispatches');
    expect(s).toContain('adapter: environment nvidia H200 gemm=tiled attention=tiled lora=skinny no-lora-epilogue');
  });

  it('marks two-stage tiled lines, the NF4 products on two stages, and the adapter line of a run without bounds clamps', () => {
    const lines = [
      { device: 'step', step: 'matmul', attempt: 1 },
      { bench: 'adapter', via: 'environment', vendor: 'nvidia', description: 'H200', gemm: 'tiled', attention: 'tiled', loraKernel: 'skinny', robustness: false, tiledStages: 2 },
      { bench: 'matmul', kernel: 'tiled', block: 'narrow', blockForced: false, variant: 'plain fp32 (C = A·B)', M: 8, N: 8, K: 8, gflops: 30000 },
      { bench: 'matmul', kernel: 'tiled', block: 'narrow', blockForced: false, stages: 2, vsOneStage: 0.8, variant: 'plain fp32 (C = A·B)', M: 8, N: 8, K: 8, gflops: 24000 },
      { device: 'step-end', step: 'matmul', attempt: 1, exit: 0, seconds: 9 },
      { device: 'step', step: 'nf4-tiled', attempt: 1 },
      { bench: 'nf4', variant: 'nf4 forward Y = X·deq(W)ᵀ, double-quant, tiled', M: 8, N: 64, K: 64, gflops: 29000 },
      { bench: 'nf4', variant: 'nf4 forward Y = X·deq(W)ᵀ, double-quant, tiled, two stages', M: 8, N: 64, K: 64, gflops: 24000, stages: 2 },
      { bench: 'nf4', variant: 'nf4 backward dX = dY·deq(W), tiled, two stages', M: 8, N: 64, K: 64, gflops: 26000, stages: 2 },
      { device: 'step-end', step: 'nf4-tiled', attempt: 1, exit: 0, seconds: 9 },
    ];
    const s = summariseRecords(lines);
    expect(s).toContain('adapter: environment nvidia H200 gemm=tiled attention=tiled lora=skinny stages=2 no-robustness');
    expect(s).toContain('8x8x8 plain: tiled[n] 30.0 | tiled2[n] 24.0');
    expect(s).toContain('fwd-dq/tiled 29.0 | fwd-dq/tiled2 24.0 | bwd/tiled2 26.0');
  });

  it('names the block of each tiled NF4 line, a forced one starred, beside the basic products', () => {
    const lines = [
      { device: 'step', step: 'nf4-tiled', attempt: 1 },
      { bench: 'nf4', variant: 'plain fp32 (C = A·B)', M: 8, N: 64, K: 64, gflops: 35000 },
      { bench: 'nf4', variant: 'nf4 forward Y = X·deq(W)ᵀ, double-quant', M: 8, N: 64, K: 64, gflops: 20000 },
      { bench: 'nf4', variant: 'nf4 forward Y = X·deq(W)ᵀ, double-quant, tiled', M: 8, N: 64, K: 64, gflops: 28000, block: 'narrow', blockForced: false },
      { bench: 'nf4', variant: 'nf4 forward Y = X·deq(W)ᵀ, double-quant, tiled, wide block', M: 8, N: 64, K: 64, gflops: 31000, block: 'wide', blockForced: true, vsOwnBlock: 1.1 },
      { bench: 'nf4', variant: 'nf4 backward dX = dY·deq(W), tiled', M: 8, N: 64, K: 64, gflops: 37000, block: 'wide', blockForced: false, diffVsBasic: 2e-7 },
      { device: 'step-end', step: 'nf4-tiled', attempt: 1, exit: 0, seconds: 9 },
    ];
    const s = summariseRecords(lines);
    expect(s).toContain('8x64x64: plain 35.0 | fwd-dq 20.0 | fwd-dq/tiled[n] 28.0 | fwd-dq/tiled[w*] 31.0 | bwd/tiled[w] 37.0');
    expect(s).toContain('largest diffVsBasic 2.00e-7');
  });

  it('shows the kernels around the matmuls: the lm_head\'s paired ratio with its spread, a bandwidth-bound kernel in GB/s', () => {
    const lines = [
      { device: 'step', step: 'kernels', attempt: 1 },
      { bench: 'kernel', kernel: 'lm_head + cross-entropy, forward and backward (chunks of 1024, what a run uses)', T: 2048, ms: 30, gflops: 36000, vsPlain: 0.946, vsPlainRounds: [0.931, 0.946, 0.952], timeVsPlainMatmul: 8.2 },
      { bench: 'kernel', kernel: 'rmsnorm forward', T: 2048, ms: 0.1, gbps: 2000, timeVsPlainMatmul: 0.03 },
      { device: 'step-end', step: 'kernels', attempt: 1, exit: 0, seconds: 9 },
    ];
    const s = summariseRecords(lines);
    expect(s).toContain('kernel T=2048 lm_head + cross-entropy, forward and backward (chunks of 1024, what a run uses): 36.0 TFLOP/s, 30.000 ms, vsPlain 0.946 (0.93–0.95), 8.20× the plain matmul\'s time');
    expect(s).toContain('kernel T=2048 rmsnorm forward: 2000 GB/s, 0.100 ms, 0.03× the plain matmul\'s time');
  });

  it('shows a whole-model line with the steps its median step is of, and a one-step line without', () => {
    const lines = [
      { device: 'step', step: 'model-best', attempt: 1 },
      { bench: 'model', T: 2048, mode: 'checkpointed', keptLayers: 0, keptAttention: false, stepMs: 2700, stepMsEach: [2710, 4950, 2700], tokensPerSecond: 758.5, tflops: 33.8, peakBytes: 6.42 * 1024 ** 3, losses: [10.46, 10.44] },
      { bench: 'model', T: 2048, mode: 'kept', keptLayers: 32, keptAttention: false, stepMs: 2000, stepMsEach: [2000], tokensPerSecond: 1024, tflops: 30, peakBytes: 16.6 * 1024 ** 3, losses: [10.46] },
      { device: 'step-end', step: 'model-best', attempt: 1, exit: 0, seconds: 30 },
    ];
    const s = summariseRecords(lines);
    expect(s).toContain('model T=2048 checkpointed kept=0: 2700 ms/step (median of 2710, 4950, 2700), 758.5 tokens/s, 33.80 TFLOP/s, peak 6.42 GiB');
    expect(s).toContain('model T=2048 kept kept=32: 2000 ms/step, 1024.0 tokens/s');
  });

  it('shows a tiled NF4 product\'s ratio to the plain product timed beside it, and the dequantised-at-the-store A/B\'s to it, with their rounds\' spread', () => {
    const lines = [
      { device: 'step', step: 'nf4-tiled', attempt: 1 },
      { bench: 'nf4', variant: 'plain fp32 (C = A·B)', M: 8, N: 64, K: 64, gflops: 35000, vsPlain: 1 },
      { bench: 'nf4', variant: 'nf4 forward Y = X·deq(W)ᵀ, double-quant, tiled', M: 8, N: 64, K: 64, gflops: 33000, block: 'wide', blockForced: false, vsPlain: 0.951, vsPlainRounds: [0.94, 0.951, 0.962] },
      { bench: 'nf4', variant: 'nf4 forward Y = X·deq(W)ᵀ, double-quant, tiled, dequantised at the store', M: 8, N: 64, K: 64, gflops: 31000, block: 'wide', blockForced: false, dequantAtStore: true, vsPlain: 0.9, vsDefault: 0.94, vsDefaultRounds: [0.93, 0.94, 0.99] },
      { device: 'step-end', step: 'nf4-tiled', attempt: 1, exit: 0, seconds: 9 },
    ];
    const s = summariseRecords(lines);
    expect(s).toContain('8x64x64: plain 35.0 | fwd-dq/tiled[w] 33.0 ×0.95 (0.94–0.96) | fwd-dq/tiled[w]@store 31.0 vsDefault ×0.94 (0.93–0.99)');
  });

  it('names an NF4 product dequantised first (then the plain GEMM) apart from the basic fused one, with its ratio and the dequantisation\'s time', () => {
    const lines = [
      { device: 'step', step: 'nf4-tiled', attempt: 1 },
      { bench: 'nf4', variant: 'plain fp32 (C = A·B)', M: 8, N: 64, K: 64, gflops: 35000, vsPlain: 1 },
      { bench: 'nf4', variant: 'nf4 forward Y = X·deq(W)ᵀ', M: 8, N: 64, K: 64, gflops: 20000, vsPlain: 0.571 },
      { bench: 'nf4', variant: 'nf4 forward Y = X·deq(W)ᵀ, dequantised first', M: 8, N: 64, K: 64, gflops: 34000, vsPlain: 0.97, vsPlainRounds: [0.96, 0.97, 0.99], dequantFirst: true, dequantMs: 0.0123, gemmKernel: 'tiled' },
      { device: 'step-end', step: 'nf4-tiled', attempt: 1, exit: 0, seconds: 9 },
    ];
    expect(summariseRecords(lines)).toContain('8x64x64: plain 35.0 | fwd 20.0 | fwd/deq-first 34.0 ×0.97 (0.96–0.99) deq 0.012 ms');
  });

  it('names the tiled kernel on the warp map apart from the row map in matmul lines', () => {
    const lines = [
      { device: 'step', step: 'matmul-tiled-warp', attempt: 1 },
      { bench: 'matmul', kernel: 'tiled-warp', block: 'wide', blockForced: false, variant: 'plain fp32 (C = A·B)', M: 8, N: 8, K: 8, gflops: 33000 },
      { bench: 'matmul', kernel: 'tiled', block: 'wide', blockForced: false, variant: 'plain fp32 (C = A·B)', M: 8, N: 8, K: 8, gflops: 30000 },
    ];
    expect(summariseRecords(lines)).toContain('8x8x8 plain: warp[w] 33.0 | tiled[w] 30.0');
  });

  it('shows the int8 lines and the int8 gates of a check', () => {
    const lines = [
      { device: 'step', step: 'int8', attempt: 1 },
      { bench: 'int8', variant: 'quantise X (M, K) to int8', M: 2048, N: 4096, K: 4096, ms: 0.1, gbps: 335.5 },
      { bench: 'int8', variant: 'nf4 forward Y = X·deq(W)ᵀ, double-quant, int8 (quantisation included)', M: 2048, N: 4096, K: 4096, ms: 1, gflops: 40000, vsPlain: 1.3, vsFp32: 1.9, relError: 0.0061 },
      { device: 'step-end', step: 'int8', attempt: 1, exit: 0, seconds: 40 },
      { device: 'step', step: 'gpu-info', attempt: 1 },
      { device: 'gpu-info', via: 'hardware', adapter: { description: 'NVIDIA H200' }, int8SubgroupMatrix: { available: false, why: 'the adapter offers too little workgroup memory' }, memory: { bytes: 150113157120, note: 'GPU memory from nvidia-smi: 139.8 GiB free of 140.4 GiB (NVIDIA H200); --gpu-memory GB overrides it' } },
      { device: 'step-end', step: 'gpu-info', attempt: 1, exit: 0, seconds: 2 },
      { device: 'step', step: 'int8-sm', attempt: 1 },
      { bench: 'int8', variant: 'int8 GEMM (subgroup matrix, operands quantised)', M: 4096, N: 4096, K: 4096, ms: 1, gflops: 137439, vsPlain: 4.2, vsDp4a: 2.5, bitsDiffer: 0 },
      { bench: 'int8', variant: 'nf4 backward dX = dY·deq(W), double-quant, int8 subgroup matrix (quantisation included)', M: 2048, N: 4096, K: 4096, ms: 1, gflops: 68719, vsPlain: 2, vsFp32: 3, vsDp4a: 1.5, relError: 0.006, bitsDiffer: 12 },
      { device: 'step-end', step: 'int8-sm', attempt: 1, exit: 0, seconds: 30 },
      { device: 'step', step: 'check-int8-gates', attempt: 1 },
      { device: 'check', ok: true, quantization: 'nf4', loss: { engine: 10.88, golden: 10.88 }, groups: {}, int8: { int8: { ok: false, loss: { relError: 6.4e-4 }, gradCosine: { worst: 0.99759, all: 0.99877 } }, 'int8-mlp': { ok: true, loss: { relError: 3.5e-4 }, gradCosine: { worst: 0.99924, all: 0.99955 } } } },
      { device: 'step-end', step: 'check-int8-gates', attempt: 1, exit: 1, seconds: 30 },
    ];
    const s = summariseRecords(lines);
    expect(s).toContain('int8 2048x4096x4096 quantise X (M, K) to int8: 335.5 GB/s');
    expect(s).toContain('int8 (quantisation included): 40.0 TFLOP/s, vsPlain 1.30, vsFp32 1.90, relError 6.10e-3');
    expect(s).toContain('gpu-info NVIDIA H200 (hardware): int8 subgroup matrix unavailable: the adapter offers too little workgroup memory; GPU memory from nvidia-smi: 139.8 GiB free of 140.4 GiB (NVIDIA H200); --gpu-memory GB overrides it');
    expect(s).toContain('int8 GEMM (subgroup matrix, operands quantised): 137.4 TFLOP/s, vsPlain 4.20, vsDp4a 2.50, same bits as dp4a');
    expect(s).toContain('int8 subgroup matrix (quantisation included): 68.7 TFLOP/s, vsPlain 2.00, vsFp32 3.00, relError 6.00e-3, vsDp4a 1.50, 12 OUTPUTS DIFFER FROM DP4A');
    expect(s).toContain('; int8 gates ok=false: loss relError 6.40e-4, grad cosine worst 0.99759 all 0.99877; int8-mlp gates ok=true: loss relError 3.50e-4, grad cosine worst 0.99924 all 0.99955');
  });

  it('shows each kernel combination the tuning timed, the refused ones, and the choice', () => {
    const lines = [
      { device: 'step', step: 'tune', attempt: 1 },
      { bench: 'tune', T: 2048, gemm: 'basic', attention: 'rows', ms: 250, reps: 2, layerTokensPerSecond: 8192, vsFirst: 1, relDiff: 0, agrees: true },
      { bench: 'tune', T: 2048, gemm: 'tiled', attention: 'tiled', ms: null, reps: 0, layerTokensPerSecond: null, vsFirst: null, relDiff: 0.5, agrees: false },
      { bench: 'tune', T: 2048, gemm: 'tiled', attention: 'rows', ms: 125, reps: 4, layerTokensPerSecond: 16384, vsFirst: 2, relDiff: 1e-7, agrees: true },
      { bench: 'tune', T: 2048, gemm: 'tiled', attention: 'rows', lora: 'skinny', ms: 120, reps: 4, layerTokensPerSecond: 17067, vsFirst: 2.08, relDiff: 1e-7, agrees: true },
      { bench: 'tune-choice', T: 2048, gemm: 'tiled', attention: 'rows', lora: 'skinny', speedup: 2.08, refused: [{ gemm: 'tiled', attention: 'tiled', lora: 'general' }], staged: { gemm: 'tiled', attention: 'rows', lora: 'skinny' }, stagedSpeedup: 2.08, stagedAgrees: true },
      { bench: 'tune-choice', T: 4096, gemm: 'tiled', attention: 'tiled', lora: 'skinny', speedup: 2.5, refused: [], staged: { gemm: 'tiled', attention: 'tiled', lora: 'general' }, stagedSpeedup: 2.4, stagedAgrees: false },
      { device: 'step-end', step: 'tune', attempt: 1, exit: 0, seconds: 30 },
    ];
    const s = summariseRecords(lines);
    // Lines from before the LoRA-product kernel was tuned name none: they ran on the GEMM kernel ('general').
    expect(s).toContain('tune T=2048 basic/rows/general: 250.0 ms, 8192 tokens/s per layer, vsFirst 1.00, relDiff 0.00e+0');
    expect(s).toContain('tune T=2048 tiled/tiled/general: not timed, relDiff 5.00e-1 DISAGREES');
    expect(s).toContain('tune T=2048 tiled/rows/skinny: 120.0 ms');
    expect(s).toContain('tune T=2048 choice: tiled/rows/skinny, speedup 2.08, refused tiled/tiled/general; staged run: tiled/rows/skinny, speedup 2.08 (same)');
    expect(s).toContain('tune T=4096 choice: tiled/tiled/skinny, speedup 2.50; staged run: tiled/tiled/general, speedup 2.40 (DIFFERS from the full grid)');
    const est = summariseRecords([{ device: 'step', step: 'estimate', attempt: 1 }, { bench: 'estimate', layers: 32, T: 2048, estimateSeconds: 7.5, stepSeconds: 8, ratio: 0.9375 }]);
    expect(est).toContain('estimate T=2048 (32 layers): 7.50 s estimated, 8.00 s measured per step, ratio 0.94');
    const withValidation = { bench: 'estimate', layers: 32, T: 2048, estimateSeconds: 7.5, stepSeconds: 8, ratio: 0.9375, validationEstimateSeconds: 2.4, validationSeconds: 2.5, validationRatio: 0.96, forwardShare: 0.32 };
    expect(summariseRecords([{ device: 'step', step: 'estimate', attempt: 1 }, withValidation])).toContain(
      'ratio 0.94; validation pass 2.40 s estimated, 2.50 s measured, ratio 0.96, forward share 0.32',
    );
    const streamed = { bench: 'estimate', layers: 32, T: 2048, streamed: true, estimateSeconds: 9, uploads: { perTrainingPass: 60, perValidationPass: 32, seconds: 0.025 }, uploadSeconds: 1.5, stepSeconds: 9.5, ratio: 0.947 };
    const est2 = summariseRecords([{ device: 'step', step: 'estimate-stream', attempt: 1 }, streamed]);
    const dispatch = summariseRecords([
      { device: 'step', step: 'dispatch', attempt: 1 },
      { bench: 'dispatch', work: 'record-only', bindGroups: 'cached', T: 0, C: 256, dispatchesPerLayer: 2000, hostUsPerDispatch: 11.29, hostMsPerLayer: 22.6, wallMsPerLayer: null, bindGroupsMade: 0, reps: 14, hostSpeedup: 3.6 },
      { bench: 'dispatch', work: 'layer', bindGroups: 'per-dispatch', T: 2048, C: 4096, dispatchesPerLayer: 92, hostUsPerDispatch: 20.5, hostMsPerLayer: 1.89, wallMsPerLayer: 251.2, bindGroupsMade: 0, reps: 3 },
    ]);
    expect(dispatch).toContain('dispatch record-only bind groups cached: 11.3 µs host per dispatch (3.60× per-dispatch)\n');
    expect(dispatch).toContain('dispatch layer C=4096 T=2048 bind groups per-dispatch: 20.5 µs host per dispatch, 1.89 ms host / 251.20 ms wall per layer');
    expect(est2).toContain('estimate T=2048 (32 layers, streamed): 9.00 s estimated (uploads 1.50 s: 60 × 25.0 ms), 9.50 s measured per step, ratio 0.95');
  });
});
