// The memory planner from config.json + hyperparameters alone. Its agreement with the ledger's measured peak is
// tested on a real GPU in test/gpu/planner.test.ts; here: the 7B numbers, the verdicts and the sequence bound.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseHyperparams } from '../../../src/config/index.ts';
import { parseMistralConfig } from '../../../src/model/config.ts';
import { ASSUMED_UPLOAD_BYTES_PER_SECOND, longestSequenceBound, planMemory, samplePromptTokensWith } from '../../../src/run/planner.ts';
import { loadTokenizer } from '../../../src/data/tokenizer.ts';
import { activationBytes } from '../../../src/engine/mistral/model.ts';
import { dimsOf } from '../../../src/engine/mistral/dims.ts';
import { attentionSpillFloats, decoderBytes, runnerLayout } from '../../../src/engine/mistral/sizing.ts';
import { SAMPLE_MAX_TOKENS, samplePromptIds, samplePromptTokenBound } from '../../../src/data/layout.ts';
import { mistralTokenizer } from '../data/helpers.ts';
import { MAX_REQUESTED_BUFFER } from '../../../src/engine/gpu.ts';

const mistral7b = parseMistralConfig(JSON.parse(readFileSync('test/fixtures/mistral-7b-instruct-v0.2/config.json', 'utf8')));
const GB = 1e9;

describe('memory planner', () => {
  it('Mistral-7B-Instruct-v0.2 at NF4 double-quant: base weights ≈ 4.1 GB, embeddings and lm_head bf16', () => {
    const plan = planMemory(mistral7b, parseHyperparams({ peft_method: 'qlora' }));
    expect(plan.quantization).toBe('nf4-double');
    expect(plan.weights.embeddings).toBe(32000 * 4096 * 2);
    expect(plan.weights.lmHead).toBe(32000 * 4096 * 2);
    // 6.98 G projection weights at 4 bits + double-quantised scales.
    expect(plan.weights.nf4Codes).toBe((32 * (4096 * 4096 * 2 + 1024 * 4096 * 2 + 14336 * 4096 * 3)) / 2);
    expect(plan.weights.total).toBeGreaterThan(3.9 * GB);
    expect(plan.weights.total).toBeLessThan(4.4 * GB);
    expect(plan.bytes.weights).toBe(plan.weights.total);
    expect(plan.peakBytes).toBeGreaterThan(plan.weights.total);
  });

  it('an f16 checkpoint is planned at 2 bytes per stored value, as bf16, whatever the adapter (the kernels decode f16 bits)', () => {
    const f16 = parseMistralConfig({ ...JSON.parse(readFileSync('test/fixtures/mistral-7b-instruct-v0.2/config.json', 'utf8')), torch_dtype: 'float16' });
    expect(f16.dtype).toBe('float16');
    for (const hp of [{ peft_method: 'qlora' }, { quantization: 'none' }]) {
      const a = planMemory(f16, parseHyperparams(hp));
      const b = planMemory(mistral7b, parseHyperparams(hp));
      expect(a.weights.total).toBe(b.weights.total);
      expect(a.weights.embeddings).toBe(32000 * 4096 * 2);
    }
  });

  it('single-quant NF4 costs more than double-quant, and the dense bf16 base about 14.5 GB', () => {
    const dq = planMemory(mistral7b, parseHyperparams({ peft_method: 'qlora', quantization: 'nf4-double' })).weights.total;
    const q = planMemory(mistral7b, parseHyperparams({ peft_method: 'qlora', quantization: 'nf4' })).weights.total;
    const none = planMemory(mistral7b, parseHyperparams({ quantization: 'none' })).weights.total;
    expect(q).toBeGreaterThan(dq);
    // 4.5 vs ≈4.127 bits per projection weight.
    expect((q - dq) / 6.98e9).toBeCloseTo((4.5 - 4.127) / 8, 2);
    expect(none).toBeGreaterThan(14.4 * GB);
    expect(none).toBeLessThan(14.6 * GB);
  });

  it('the lm_head + cross-entropy takes 1024 tokens a chunk (its input-gradient product then fills an H200: 8 × 32 blocks), fewer where one binding cannot hold their logits', () => {
    const hp = parseHyperparams({ peft_method: 'qlora', micro_batch_size: 1, train_batch_size: 1, max_seq_len: 2048, validation_batch_size: 1 });
    const plan = planMemory(mistral7b, hp);
    expect(plan.run.xentChunkTokens).toBe(1024);
    // 1024 × 32000 f32 logits (131 MB) fit WebGPU's minimum binding of 128 MiB; a device binding 64 MiB gets 524 rows.
    expect(planMemory(mistral7b, hp, { gpu: { maxBufferSize: 256 * 1024 ** 2, maxStorageBufferBindingSize: 128 * 1024 ** 2 } }).run.xentChunkTokens).toBe(1024);
    expect(planMemory(mistral7b, hp, { gpu: { maxBufferSize: 256 * 1024 ** 2, maxStorageBufferBindingSize: 64 * 1024 ** 2 } }).run.xentChunkTokens).toBe(524);
    // Never more than the tokens.
    expect(planMemory(mistral7b, { ...hp, max_seq_len: 300 }).run.xentChunkTokens).toBe(300);
  });

  it('activations follow rows × tokens, with the runner’s own sizing (activationBytes) and recomputation', () => {
    const hp = parseHyperparams({ peft_method: 'qlora', micro_batch_size: 1, train_batch_size: 1, max_seq_len: 2048, validation_batch_size: 1 });
    const plan = planMemory(mistral7b, hp);
    expect(plan.run).toMatchObject({ rows: 1, seqLen: 2048, tokens: 2048, loraRank: 8, targets: ['q_proj', 'v_proj'] });
    const d = dimsOf(mistral7b);
    expect(plan.bytes.activations + plan.bytes.scratch).toBe(activationBytes(d, { B: 1, T: 2048, r: 8, targets: ['q_proj', 'v_proj'] }));
    // (L + 1) checkpoints of (N, C) f32 dominate: 33 · 2048 · 4096 · 4 bytes.
    expect(plan.bytes.activations).toBeGreaterThan(33 * 2048 * 4096 * 4);
    // Linear in the tokens but for the MLP's gradient buffer, which also holds the attention backward's dS: up to three
    // N × I of it, whole KV groups of (T × T) scores (sizing.ts: attentionSpillFloats).
    const twice = planMemory(mistral7b, { ...hp, max_seq_len: 4096 });
    const shape = { B: 1, r: 8, targets: ['q_proj', 'v_proj'] as const };
    const da = (T: number): number => runnerLayout(d, { ...shape, T }).grads.da;
    expect(da(2048)).toBe(attentionSpillFloats(d, 1, 2048, MAX_REQUESTED_BUFFER));
    expect(twice.bytes.activations - 2 * plan.bytes.activations).toBe(4 * (da(4096) - 2 * da(2048)));
  });

  it('fits, tight, does not fit — and says why', () => {
    const hp = parseHyperparams({ peft_method: 'qlora', micro_batch_size: 1, train_batch_size: 1, max_seq_len: 1024 });
    const big = { maxBufferSize: 4 * 1024 ** 3, maxStorageBufferBindingSize: 4 * 1024 ** 3 };
    // Every layer recomputed (kept layers are chosen only where the run fits with room: see the next test).
    const fits = planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 80 * 1024 ** 3 }, keptLayers: 0, keptAttention: false });
    expect(fits.verdict).toBe('fits');
    expect(fits.gpu.memorySource).toBe('given');
    // Memory the machine reported (nvidia-smi) plans the same and is labelled as such.
    const detected = planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 80 * 1024 ** 3, memorySource: 'detected' }, keptLayers: 0, keptAttention: false });
    expect(detected.gpu.memorySource).toBe('detected');
    expect({ ...detected, gpu: { ...detected.gpu, memorySource: 'given' } }).toEqual(fits);
    const tight = planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: fits.peakBytes / 0.9 } });
    expect(tight.run).toMatchObject({ keptLayers: 0, keptAttention: false });
    expect(tight.verdict).toBe('tight');
    expect(tight.reasons.join(' ')).toMatch(/90 %/);
    // A guessed memory is said inside the share's own brackets, once (it read "… of 8.0 GiB (a guess: …) (2 %)").
    const guessed = planMemory(mistral7b, hp, { gpu: big });
    expect(guessed.gpu.memorySource).toBe('guessed');
    expect(guessed.reasons[0]).toMatch(/^needs [\d.]+ GiB of 8\.0 GiB \(\d+ %; 8\.0 GiB is a guess: WebGPU cannot report GPU memory, give the real size\)/);
    expect(fits.reasons[0]).toMatch(/^needs [\d.]+ GiB of 80\.0 GiB \(\d+ %\)$/);
    // 4 GiB cannot hold the 4.1 GB base and the run, but two layers at a time can be.
    const small = planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 4 * 1024 ** 3 } });
    expect(small.verdict).toBe('fits-with-streaming');
    expect(small.reasons.join(' ')).toMatch(/of 4\.0 GiB with every layer on the GPU; streaming the layers from CPU memory needs/);
    const tiny = planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 1024 ** 3 } });
    expect(tiny.verdict).toBe('does-not-fit');
    expect(tiny.reasons.join(' ')).toMatch(/of 1\.0 GiB, and .* even with the layers streamed from CPU memory: .*train it remotely on Replicate/);
    // WebGPU's default 128 MiB binding limit cannot hold the 250 MiB bf16 embedding table.
    const defaults = planMemory(mistral7b, hp, { gpu: { maxBufferSize: 256 * 1024 ** 2, maxStorageBufferBindingSize: 128 * 1024 ** 2, memoryBytes: 80 * 1024 ** 3 } });
    expect(defaults.verdict).toBe('does-not-fit');
    expect(defaults.largestBuffer.label).toBe('model.embed_tokens.weight');
    expect(defaults.reasons.join(' ')).toMatch(/maxStorageBufferBindingSize/);
  });

  it('gives the QLoRA alternative of an unquantised base that does not simply fit, with its own verdict and peak', () => {
    const big = { maxBufferSize: 4 * 1024 ** 3, maxStorageBufferBindingSize: 4 * 1024 ** 3 };
    const at = (gib: number) => ({ gpu: { ...big, memoryBytes: gib * 1024 ** 3 } });
    // peft_method lora (Replicate's default) at 4 × 256 tokens: the bf16 base needs streaming on 8 GiB; in NF4 it fits.
    const lora = parseHyperparams({ max_seq_len: 256 });
    const plan = planMemory(mistral7b, lora, at(8));
    expect(plan.quantization).toBe('none');
    expect(plan.verdict).toBe('fits-with-streaming');
    const direct = planMemory(mistral7b, parseHyperparams({ max_seq_len: 256, peft_method: 'qlora' }), at(8));
    expect(direct.verdict).toBe('fits');
    expect(plan.qlora).toEqual({ verdict: 'fits', peakBytes: direct.peakBytes, memoryBytes: 8 * 1024 ** 3, reason: direct.reasons[0] });
    expect(plan.qlora!.reason).toMatch(/^needs .* of 8\.0 GiB \(\d+ %\)$/);
    // The rest is the lora plan's own.
    expect(plan.peakBytes).toBeGreaterThan(direct.peakBytes * 2);
    expect(plan.reasons[0]).toMatch(/with every layer on the GPU; streaming the layers/);
    // Better, though not whole on the GPU: at 2 GiB the bf16 base does not fit even streamed; in NF4 it does, streamed.
    const two = planMemory(mistral7b, lora, at(2));
    expect(two.verdict).toBe('does-not-fit');
    expect(two.qlora?.verdict).toBe('fits-with-streaming');
    // None where the base fits as it is, where it is already quantised, or where NF4 is no better.
    expect(planMemory(mistral7b, lora, at(24)).verdict).toBe('fits');
    expect(planMemory(mistral7b, lora, at(24)).qlora).toBeUndefined();
    expect(planMemory(mistral7b, parseHyperparams({ max_seq_len: 256, peft_method: 'qlora' }), at(2)).qlora).toBeUndefined();
    expect(planMemory(mistral7b, lora, at(1)).verdict).toBe('does-not-fit');
    expect(planMemory(mistral7b, lora, at(1)).qlora).toBeUndefined();
    expect(planMemory(mistral7b, lora, at(4)).verdict).toBe('fits-with-streaming');
    expect(planMemory(mistral7b, lora, at(4)).qlora).toBeUndefined();
  });

  it('keeps as many layers’ intermediates as fit under 85 % of a given memory, none on a guess, and prices each', () => {
    const hp = parseHyperparams({ peft_method: 'qlora', micro_batch_size: 1, train_batch_size: 1, max_seq_len: 2048, validation_batch_size: 1, lora_target_modules: 'all-linear' });
    const big = { maxBufferSize: 4 * 1024 ** 3, maxStorageBufferBindingSize: 4 * 1024 ** 3 };
    const guessed = planMemory(mistral7b, hp, { gpu: big });
    expect(guessed.run).toMatchObject({ keptLayers: 0, keptLayersSource: 'fixed' });
    expect(guessed.run.recomputation).toMatch(/activation checkpointing/);
    // One kept Mistral-7B layer at 2048 tokens, on top of the shared set: what its backward cannot rebuild in one cheap
    // pass — rstd1, q, k, v, att, lse, h, rstd2, g, u (1 + 4096 + 1024 + 1024 + 4096 + 32 + 4096 + 1 + 2 · 14336 floats a
    // token) — 43,042 floats a token; n1, n2 and the SwiGLU output (22,528 more) are rebuilt before its backward into
    // the runner's one copy, and its LoRA intermediates t are its own whether it is kept or not.
    const one = planMemory(mistral7b, hp, { gpu: big, keptLayers: 1 });
    const perLayer = one.bytes.activations - guessed.bytes.activations;
    expect(perLayer).toBe(2048 * 4 * 43_042);
    const all = planMemory(mistral7b, hp, { gpu: big, keptLayers: 32 });
    expect(all.run).toMatchObject({ keptLayers: 32, keptLayersSource: 'asked' });
    expect(all.run.recomputation).toMatch(/^none/);
    // With every layer kept, no shared set is needed: 31 more sets, not 32.
    expect(all.bytes.activations - guessed.bytes.activations).toBe(31 * perLayer);
    // An H200 (141 GB) keeps them all, and so does a 24 GiB GPU now (17.8 GB: 23.66 GB before kept layers rebuilt
    // n1, n2 and a); 16 GiB some; 8.5 GiB two and 8 GiB one (the recomputing run alone is most of it: 6.90 GB; the
    // 0.35 GB of a kept layer fits under 85 %); 7.5 GiB none.
    const h200 = planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 141e9 } });
    expect(h200.run).toMatchObject({ keptLayers: 32, keptLayersSource: 'chosen' });
    expect(all.peakBytes).toBeLessThan(17.9e9);
    expect(planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 24 * 1024 ** 3 } }).run).toMatchObject({ keptLayers: 32, keptLayersSource: 'chosen' });
    const mid = planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 16 * 1024 ** 3 } });
    expect(mid.run.keptLayers).toBeGreaterThan(0);
    expect(mid.run.keptLayers).toBeLessThan(32);
    expect(mid.peakBytes).toBeLessThanOrEqual(0.85 * 16 * 1024 ** 3);
    expect(planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 16 * 1024 ** 3 }, keptLayers: mid.run.keptLayers + 1, keptAttention: true }).peakBytes).toBeGreaterThan(0.85 * 16 * 1024 ** 3);
    expect(mid.verdict).toBe('fits');
    expect(mid.run.keptAttention).toBe(true);
    expect(mid.run.recomputation).toMatch(new RegExp(`the last ${mid.run.keptLayers} of 32 layers keep.*the recomputed layers keep their attention output`));
    expect(h200.run.keptAttention).toBe(false); // every layer kept: nothing is recomputed
    expect(planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 8.5 * 1024 ** 3 } }).run.keptLayers).toBe(2);
    expect(planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 8 * 1024 ** 3 } }).run.keptLayers).toBe(1);
    expect(planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 7.5 * 1024 ** 3 } }).run.keptLayers).toBe(0);
    // Issue #9's memory target for the recomputing run at 2048 tokens: ≤ 7 GB, the dS scratch included. It is 6.90 GB:
    // the dS scratch (273 MB) lives in the MLP's gradient buffer, which also takes d gate in place (two N × I buffers
    // fewer than 6.99 GB had); every layer's LoRA intermediates t (14 MB in all) are kept for its recomputation; the
    // lm_head's 1024-token chunk holds 123 MB more than a 256-token one did.
    expect(guessed.peakBytes).toBeLessThanOrEqual(6.9e9);
    expect(() => planMemory(mistral7b, hp, { keptLayers: 33 })).toThrow(/from 0 to 32, got 33/);
    // The attention outputs of the 31 recomputed layers below the last: (nH·hd + nH) floats a token each, ≈ 1.05 GB in
    // all, chosen before any whole layer: 10 GiB keeps them (and one layer), 8 GiB cannot.
    const attention = planMemory(mistral7b, hp, { gpu: big, keptAttention: true });
    expect(attention.run).toMatchObject({ keptLayers: 0, keptAttention: true });
    expect(attention.bytes.activations - guessed.bytes.activations).toBe(31 * 2048 * (4096 + 32) * 4);
    expect(planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 10 * 1024 ** 3 } }).run).toMatchObject({ keptAttention: true });
    expect(planMemory(mistral7b, hp, { gpu: { ...big, memoryBytes: 8 * 1024 ** 3 } }).run).toMatchObject({ keptAttention: false });
  });

  it('layer streaming: two Mistral-7B layers on the GPU instead of 32, the rest in CPU memory, and the traffic it costs', () => {
    const hp = parseHyperparams({ peft_method: 'qlora', micro_batch_size: 1, train_batch_size: 4, max_seq_len: 1024, validation_batch_size: 1 });
    const plan = planMemory(mistral7b, hp);
    const s = plan.streaming;
    const w = plan.weights;
    // One layer: two f32 norms and the seven NF4 projections with their double-quantised scales.
    expect(s.layerBytes).toBe((w.nf4Codes + w.nf4Scales) / 32 + 2 * 4096 * 4);
    expect(s.layerBytes / 1e6).toBeCloseTo(112.55, 1);
    expect(s.slots).toBe(2);
    expect(s.gpuWeightBytes).toBe(w.embeddings + w.lmHead + 4096 * 4 + 2 * s.layerBytes);
    expect(s.savedBytes).toBe(30 * s.layerBytes);
    expect(s.hostBytes).toBe(32 * s.layerBytes);
    expect(s.trainPeakBytes).toBe(plan.trainPeakBytes - 30 * s.layerBytes);
    expect(s.peakBytes).toBe(Math.max(s.trainPeakBytes, s.loadPeakBytes));
    // A streamed load holds one layer at a time: its peak is under the resident load's.
    expect(s.loadPeakBytes).toBeLessThan(plan.loadPeakBytes);
    // Forward uploads layers 2..31, the backward 29..0 (the two at each turn stay in their slots); 4 micro-batches a step.
    expect(s.uploadsPerMicroBatch).toBe(60);
    expect(s.microBatchesPerStep).toBe(4);
    expect(s.bytesPerStep).toBe(4 * 60 * s.layerBytes);
    expect(s.bytesPerValidationBatch).toBe(32 * s.layerBytes);
    expect(s.estimate.uploadBytesPerSecond).toBe(ASSUMED_UPLOAD_BYTES_PER_SECOND);
    expect(s.estimate.computeBasis).toMatch(/TFLOP\/s/);
    // With measured rates the slowdown is plain arithmetic: 4 × 1024 tokens at 1000 tokens/s against 4 × 60 layers at 1 GB/s.
    const m = planMemory(mistral7b, hp, { uploadBytesPerSecond: 1e9, trainTokensPerSecond: 1000 }).streaming.estimate;
    expect(m.computeSeconds).toBeCloseTo(4.096, 6);
    expect(m.uploadSeconds).toBeCloseTo((4 * 60 * s.layerBytes) / 1e9, 6);
    expect(m.slowdown.serial).toBeCloseTo(1 + m.uploadSeconds / m.computeSeconds, 9);
    expect(m.slowdown.overlapped).toBeCloseTo(m.uploadSeconds / m.computeSeconds, 9);
    expect(m.computeBasis).toMatch(/measured 1000 tokens\/s/);
  });

  it('streaming cannot help a two-layer model or a buffer over the limits', () => {
    const tinyConfig = parseMistralConfig(JSON.parse(readFileSync('test/fixtures/tiny-mistral/config.json', 'utf8')));
    const p = planMemory(tinyConfig, parseHyperparams({ peft_method: 'qlora', max_seq_len: 8 }), { gpu: { memoryBytes: 1024 ** 2 } });
    expect(p.streaming.savedBytes).toBe(0);
    expect(p.streaming.uploadsPerMicroBatch).toBe(0);
    expect(p.verdict).toBe('does-not-fit');
    const hp = parseHyperparams({ peft_method: 'qlora', micro_batch_size: 1, train_batch_size: 1, max_seq_len: 1024 });
    const limits = planMemory(mistral7b, hp, { gpu: { maxBufferSize: 256 * 1024 ** 2, maxStorageBufferBindingSize: 128 * 1024 ** 2, memoryBytes: 4 * 1024 ** 3 } });
    expect(limits.verdict).toBe('does-not-fit');
    expect(limits.reasons.join(' ')).toMatch(/streaming the layers would not help .*Replicate/);
  });

  it('checks buffers against the 4 GiB the engine asks of any GPU even without adapter limits (plan --no-gpu)', () => {
    const plan = planMemory(mistral7b, parseHyperparams({ peft_method: 'qlora', max_seq_len: 32768 }), { gpu: { memoryBytes: 141 * 1024 ** 3 } });
    expect(plan.largestBuffer.bytes).toBeGreaterThan(MAX_REQUESTED_BUFFER);
    expect(plan.verdict).toBe('does-not-fit');
    expect(plan.reasons.join(' ')).toMatch(/is over the 4\.0 GiB − 4 bytes the engine asks of any GPU for one buffer; lower micro_batch_size or max_seq_len/);
  });

  it('names the buffer in words, and the setting that sizes it, never micro_batch_size at 1; validation_batch_size sizes nothing', () => {
    const limits = { maxBufferSize: 256 * 1024 ** 2, maxStorageBufferBindingSize: 256 * 1024 ** 2, memoryBytes: 8 * 1024 ** 3 };
    const rows = planMemory(mistral7b, parseHyperparams({ peft_method: 'qlora', micro_batch_size: 16, train_batch_size: 16, max_seq_len: 1024 }), { gpu: limits });
    const said = rows.reasons.join(' ');
    expect(said).toMatch(/the largest buffer \(g, the MLP's gate projection output, 896\.0 MiB\)/);
    expect(said).toMatch(/lower micro_batch_size or max_seq_len \(activations grow with rows × tokens\)/);
    // A validation packs its batches into the micro-batch's rows: 16 sequences a validation batch need no more memory
    // than 1 (they once made the rows 16 here, and the plan refused).
    const hp = { peft_method: 'qlora', micro_batch_size: 1, train_batch_size: 1, max_seq_len: 1024 } as const;
    const byValidation = planMemory(mistral7b, parseHyperparams({ ...hp, validation_batch_size: 16 }), { gpu: limits });
    const one = planMemory(mistral7b, parseHyperparams({ ...hp, validation_batch_size: 1 }), { gpu: limits });
    expect(byValidation.peakBytes).toBe(one.peakBytes);
    expect(byValidation.reasons.join(' ')).not.toMatch(/validation_batch_size/);
    const single = planMemory(mistral7b, parseHyperparams({ peft_method: 'qlora', micro_batch_size: 1, train_batch_size: 1, max_seq_len: 8192 }), { gpu: limits });
    expect(single.reasons.join(' ')).toMatch(/lower max_seq_len \(activations grow with tokens; micro_batch_size is already 1\)/);
  });

  it('says no setting shrinks a model tensor over the limits, and that streaming would not help, in one sentence each', () => {
    const nemo = parseMistralConfig({ ...JSON.parse(readFileSync('test/fixtures/mistral-7b-instruct-v0.2/config.json', 'utf8')), vocab_size: 131072, hidden_size: 5120 });
    const p = planMemory(nemo, parseHyperparams({ peft_method: 'qlora', max_seq_len: 64 }), { gpu: { maxBufferSize: 1024 ** 3, maxStorageBufferBindingSize: 1024 ** 3, memoryBytes: 24 * 1024 ** 3 } });
    expect(p.verdict).toBe('does-not-fit');
    const said = p.reasons.join(' | ');
    expect(said).toMatch(/model\.embed_tokens\.weight, 1\.3 GiB\) is over this GPU's maxBufferSize of 1\.0 GiB; it is the model's own tensor, which no setting makes smaller/);
    expect(said).not.toMatch(/micro_batch_size|max_seq_len/);
    expect(said).toMatch(/streaming the layers would not help \(the buffers keep their sizes\); train it remotely on Replicate/);
  });

  it('does not suggest smaller batches when the weights alone are over the memory', () => {
    const tinyConfig = parseMistralConfig(JSON.parse(readFileSync('test/fixtures/tiny-mistral/config.json', 'utf8')));
    const p = planMemory(tinyConfig, parseHyperparams({ max_seq_len: 8 }), { gpu: { memoryBytes: 1024 ** 2 } });
    expect(p.verdict).toBe('does-not-fit');
    const said = p.reasons.join(' ');
    expect(said).toMatch(/the weights alone need/);
    expect(said).not.toMatch(/micro_batch_size|max_seq_len/);
  });

  it('refuses to plan NF4 for projections it cannot quantise (an input width not a multiple of 64), before any load', () => {
    const narrow = parseMistralConfig({ ...JSON.parse(readFileSync('test/fixtures/tiny-mistral/config.json', 'utf8')), hidden_size: 96, head_dim: 16, num_attention_heads: 6, num_key_value_heads: 2 });
    expect(() => planMemory(narrow, parseHyperparams({ peft_method: 'qlora', max_seq_len: 8 }))).toThrow('q_proj has 96 inputs a row, not a multiple of 64: NF4 quantises rows in blocks of 64, so this model can only be trained unquantised (peft_method lora, quantization none)');
    expect(planMemory(narrow, parseHyperparams({ peft_method: 'lora', max_seq_len: 8 })).reasons.join(' ')).not.toMatch(/NF4/);
  });

  // Mistral-7B v0.1's config as published (transformers 4.34): a 4096-token window in 32,768 positions, rope θ 1e4.
  it("says a run of Mistral-7B v0.1 (a sliding window) is refused past its window, and plans it inside", () => {
    const v01 = parseMistralConfig({ ...JSON.parse(readFileSync('test/fixtures/mistral-7b-instruct-v0.2/config.json', 'utf8')), rope_theta: 10000, sliding_window: 4096 });
    expect(planMemory(v01, parseHyperparams({ peft_method: 'qlora' })).warnings.join(' ')).not.toMatch(/window/);
    const past = planMemory(v01, parseHyperparams({ peft_method: 'qlora', max_seq_len: 8192 }));
    expect(past.warnings).toContain(
      "a run with these settings is refused: max_seq_len 8192 is longer than this model's attention window of 4096 tokens (sliding_window in its config.json): a token attends to at most the 4096 tokens ending at it there, and this engine computes attention over whole sequences, the same numbers only while no sequence is longer than the window: set max_seq_len to 4096 or less",
    );
    expect(planMemory(mistral7b, parseHyperparams({ peft_method: 'qlora', max_seq_len: 8192 })).warnings.join(' ')).not.toMatch(/window/);
  });

  it('without a memory size it plans against a labelled guess', () => {
    const plan = planMemory(mistral7b, parseHyperparams({}));
    expect(plan.gpu.memorySource).toBe('guessed');
    expect(plan.reasons.join(' ')).toMatch(/guess/);
    expect(plan.reasons.join(' ')).toMatch(/no adapter limits/);
  });

  it("counts a validation_prompt sample's decoder beside the runner: its KV cache by the prompt's tokens, a ceiling without them", async () => {
    const hp = parseHyperparams({ peft_method: 'qlora', validation_prompt: 'Write a haiku about the sea' });
    const none = planMemory(mistral7b, parseHyperparams({ peft_method: 'qlora' }));
    expect(none.bytes.kvCache).toBe(0);
    expect(none.run.sample).toBeNull();
    const ids = samplePromptIds(await mistralTokenizer(), hp.validation_prompt!, hp.layout);
    const counted = planMemory(mistral7b, hp, { samplePromptTokens: ids.length });
    const positions = ids.length + SAMPLE_MAX_TOKENS - 1;
    expect(counted.run.sample).toEqual({ promptTokens: ids.length, promptTokensFrom: 'tokenizer', positions });
    // Keys and values of 32 layers, 8 KV heads × 128 dims in f32, for every position.
    expect(counted.bytes.kvCache).toBe(2 * 32 * positions * 1024 * 4);
    const d = decoderBytes(dimsOf(mistral7b), { maxT: positions, chunk: Math.min(128, positions), loraRank: hp.lora_rank });
    expect(counted.bytes.activations - none.bytes.activations).toBe(d.activations);
    // The sample's moment replaces the checkpoint readback's (never held together): the peak grows by the decoder less that.
    const sampleTotal = d.kvCache + d.activations + d.scratch + d.io + d.logitsReadback;
    expect(counted.trainPeakBytes - none.trainPeakBytes).toBeGreaterThan(d.kvCache);
    expect(counted.trainPeakBytes - none.trainPeakBytes).toBeLessThanOrEqual(sampleTotal);
    // Without a tokenizer: the UTF-8 ceiling, never below the real count.
    const bounded = planMemory(mistral7b, hp);
    expect(bounded.run.sample?.promptTokensFrom).toBe('bound');
    expect(bounded.run.sample!.promptTokens).toBeGreaterThanOrEqual(ids.length);
    expect(bounded.bytes.kvCache).toBeGreaterThan(counted.bytes.kvCache);
    // A software adapter reads the prompt in rows of 8: smaller per-row buffers.
    expect(planMemory(mistral7b, hp, { samplePromptTokens: ids.length, gpu: { software: true } }).bytes.activations).toBeLessThan(counted.bytes.activations);
    expect(() => planMemory(mistral7b, hp, { samplePromptTokens: 0 })).toThrow(/sample prompt's token count must be a positive integer, got 0/);
  });

  it("counts a validation_prompt with a tokenizer of the model's vocabulary only: a v0.3 repository not loaded yet gets the ceiling", async () => {
    const hp = parseHyperparams({ peft_method: 'qlora', validation_prompt: 'Write a haiku about the sea' });
    const v1 = await mistralTokenizer();
    const v3 = await loadTokenizer(new Uint8Array(readFileSync('test/fixtures/mistral-tokenizer-v3/tokenizer.model')), 'v3');
    const v03 = { ...mistral7b, vocabSize: 32768 };
    // The app's tokenizer (v1, 32,000) on a v0.2 config: its count. On v0.3's config (32,768): no count, not v1's.
    expect(samplePromptTokensWith(v1, mistral7b, hp)).toBe(samplePromptIds(v1, hp.validation_prompt!, hp.layout).length);
    expect(samplePromptTokensWith(v1, v03, hp)).toBeUndefined();
    // The model's own (v3, loaded with it) counts again, as the run will: [INST] is one control token there.
    const own = samplePromptTokensWith(v3, v03, hp);
    expect(own).toBe(samplePromptIds(v3, hp.validation_prompt!, hp.layout).length);
    const plan = planMemory(v03, hp, { samplePromptTokens: samplePromptTokensWith(v1, v03, hp) });
    expect(plan.run.sample?.promptTokensFrom).toBe('bound');
    expect(plan.run.sample!.promptTokens).toBeGreaterThanOrEqual(own!);
    expect(samplePromptTokensWith(v1, mistral7b, parseHyperparams({ peft_method: 'qlora' }))).toBeUndefined();
    v3.dispose();
  });

  it("samplePromptTokenBound is never below the tokenizer's count, in either layout, for any script or byte-fallback text", async () => {
    const tok = await mistralTokenizer();
    for (const prompt of ['hi', ' leading space', 'naïve café — “quotes”', '日本語のテキスト', '🦀🦀 emoji 👩‍👩‍👧', '\u0000\u0007 controls', 'x'.repeat(300), '[INST] already tagged [/INST]', '   ']) {
      for (const layout of ['replicate', 'instruct'] as const) {
        expect(samplePromptTokenBound(prompt, layout), `${JSON.stringify(prompt)} ${layout}`).toBeGreaterThanOrEqual(samplePromptIds(tok, prompt, layout).length);
      }
    }
  });

  it('sizes the runner for the longest sequence the hyperparameters allow, or a shorter one asked for', () => {
    expect(longestSequenceBound(parseHyperparams({ max_seq_len: 1000 }))).toBe(1000);
    expect(longestSequenceBound(parseHyperparams({ pack_sequences: true, chunk_size: 512, max_seq_len: 1000 }))).toBe(1000);
    expect(longestSequenceBound(parseHyperparams({ pack_sequences: true, wrap_packed_sequences: true, chunk_size: 512, max_seq_len: 1000 }))).toBe(512);
    expect(planMemory(mistral7b, parseHyperparams({ max_seq_len: 1000 }), { seqLen: 300 }).run.seqLen).toBe(300);
    expect(() => planMemory(mistral7b, parseHyperparams({}), { seqLen: 0 })).toThrow(/positive integer/);
  });
});
