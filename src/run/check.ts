// `finetune check` and the page's "Check this GPU" for the whole model: runs the engine on a golden's input_ids and
// labels with an adapter and compares every tensor the golden holds (loss, logits, logsumexp, hidden states, LoRA
// gradients, one AdamW step, NF4 dequantisation) against the PyTorch/PEFT reference.

import { PROJECTIONS, type Quantization } from '../core/mistral.ts';
import { importAdapter, type AdapterInput } from '../model/adapter-import.ts';
import { peftKey } from '../model/lora-adapter.ts';
import { openBaseCheckpoint } from '../model/checkpoint.ts';
import { openSafetensors, toFloat32, toFloat64, typedView, type SafetensorsFile } from '../model/safetensors.ts';
import type { FileSet, ByteSource } from '../model/source.ts';
import { FinetuneError } from '../core/errors.ts';
import type { GpuContext } from '../engine/gpu.ts';
import { gemm } from '../engine/kernels/matmul.ts';
import { nf4_dequantize } from '../engine/kernels/nf4.ts';
import { IGNORE_INDEX } from '../engine/kernels/xent.ts';
import { destroyLora, downloadLoraGrads, uploadLora } from '../engine/mistral/lora.ts';
import { MistralRunner } from '../engine/mistral/model.ts';
import { unpackedBatch } from '../core/token-batch.ts';
import { destroyMistralWeights, layerWeights, loadMistralWeights, moduleName } from '../engine/mistral/weights.ts';
import { maxRelError } from '../engine/reference/common.ts';
import { compareInt8, withBaseMatmul, type Int8Agreement, type Int8Choice, type PassResult } from './int8-agreement.ts';

/**
 * docs/testing.md: loss relative error ≤ 1e-5; every other tensor ≤ 1e-3 of its max-abs; NF4 dequantisation exact; the
 * adapter equal to the golden's starting values (lora/*).
 */
export const TOLERANCE = { loss: 1e-5, tensor: 1e-3, nf4: 0, adapter: 0 } as const;

export interface GroupResult {
  /** Worst error in the group (relative: |a−b|max / |b|max; loss: |a−b|/|b|). */
  worst: number;
  /** The tensor with the worst error. */
  where: string;
  count: number;
  tolerance: number;
  ok: boolean;
}

export interface CheckReport {
  ok: boolean;
  quantization: Quantization;
  loss: { engine: number; golden: number } | null;
  groups: Record<string, GroupResult>;
  /** Where the LoRA values came from (the adapter) and whether the golden's own lora/* were compared. */
  adapterWeights: string;
  seconds: number;
  /** Every compared tensor's error (with `verbose`). */
  tensors?: Record<string, number>;
  /** With `int8Gates`: each int8 choice against this run's fp32 base products (docs/int8.md). */
  int8?: Partial<Record<Int8Choice, Int8Agreement>>;
}

export interface CheckInputs {
  model: FileSet;
  /** A PEFT folder, or a zip's bytes (a PEFT zip, the page's download, Replicate's training_output.zip). */
  adapter: AdapterInput;
  golden: ByteSource;
  quantization: Quantization;
  onProgress?: (text: string) => void;
  verbose?: boolean;
  /** Stream the layers from CPU memory (layer-stream.ts): the same numbers, bit for bit, on less GPU memory. */
  streamLayers?: boolean;
  /** Also run the pass with the NF4 base products as each of these choices says, and report their accuracy gates. */
  int8Gates?: readonly Int8Choice[];
}

class Groups {
  readonly groups: Record<string, GroupResult> = {};
  readonly tensors: Record<string, number> = {};
  add(group: string, where: string, err: number, tolerance: number): void {
    this.tensors[where] = err;
    const g = (this.groups[group] ??= { worst: 0, where: '', count: 0, tolerance, ok: true });
    g.count++;
    if (!(err <= g.worst)) {
      g.worst = Number.isNaN(err) ? Infinity : err;
      g.where = where;
    }
    g.ok = g.worst <= tolerance;
  }
}

async function f32(golden: SafetensorsFile, name: string): Promise<Float32Array> {
  return toFloat32(await golden.read(name), golden.info(name).dtype);
}

async function ints(golden: SafetensorsFile, name: string): Promise<{ values: number[]; shape: number[] }> {
  const info = golden.info(name);
  const bytes = await golden.read(name);
  if (info.dtype !== 'I32' && info.dtype !== 'I64') throw new FinetuneError('bad-input', `golden ${name}: expected I32 or I64, got ${info.dtype}`);
  const view = typedView(bytes, info.dtype);
  return { values: Array.from(view as ArrayLike<number | bigint>, Number), shape: info.shape };
}

/** Turns HF-convention labels (B, T) into the engine's shifted targets: targets[t] = labels[t+1], −100 at the end of each row. */
export function shiftLabels(labels: ArrayLike<number>, B: number, T: number): Int32Array {
  const t = new Int32Array(B * T).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) for (let i = 0; i + 1 < T; i++) t[b * T + i] = labels[b * T + i + 1];
  return t;
}

export async function runGoldenCheck(ctx: GpuContext, input: CheckInputs): Promise<CheckReport> {
  const started = Date.now();
  const say = input.onProgress ?? (() => {});
  const golden = await openSafetensors(input.golden);
  const has = (n: string): boolean => golden.header.tensors.has(n);
  const ckpt = await openBaseCheckpoint(input.model);
  const adapter = await importAdapter(input.adapter, { base: ckpt.config });
  if (!has('input_ids') || !has('labels')) throw new FinetuneError('bad-input', 'the golden file needs input_ids and labels');
  const ids = await ints(golden, 'input_ids');
  const labels = await ints(golden, 'labels');
  const [B, T] = ids.shape;
  if (ids.shape.length !== 2 || labels.shape.join() !== ids.shape.join()) throw new FinetuneError('bad-input', 'golden input_ids and labels must both be (B, T)');

  // The golden's gradients were taken at its `lora/<key>` values: when it holds them, the adapter must hold
  // exactly those (group 'adapter', tolerance 0), or every gradient comparison would be against another point.
  const g = new Groups();
  let fromGolden = 0;
  for (let l = 0; l < adapter.layers; l++) {
    for (const m of PROJECTIONS) {
      const pair = adapter.tensors[l]?.[m];
      if (!pair) continue;
      for (const factor of ['A', 'B'] as const) {
        const key = `lora/${peftKey(l, m, factor)}`;
        if (!has(key)) continue;
        const values = await f32(golden, key);
        if (values.length !== pair[factor].length) throw new FinetuneError('bad-input', `golden ${key} has ${values.length} values, the adapter ${pair[factor].length}`);
        g.add('adapter', key, maxRelError(pair[factor], values), TOLERANCE.adapter);
        fromGolden++;
      }
    }
  }
  const adapterWeights =
    fromGolden > 0
      ? `the adapter, compared with the golden's lora/* (${fromGolden} tensors)`
      : "the adapter (the golden holds no lora/* to compare it with)";

  say(`loading ${ckpt.files.length} ${ckpt.files.length === 1 ? 'file' : 'files'}, quantization ${input.quantization}${input.streamLayers ? ', layers streamed' : ''}`);
  // A golden made with NF4 holds the exact dequantised weights: checked without NF4, every group fails with no word of
  // why (and the other way round). Said before the model is loaded.
  const nf4Golden = [...golden.header.tensors.keys()].some((k) => k.startsWith('nf4_dequant/'));
  if (nf4Golden && input.quantization === 'none') throw new FinetuneError('bad-input', 'this golden was made with NF4 base weights (it holds nf4_dequant/*): check it with --quant nf4');
  if (!nf4Golden && input.quantization !== 'none') throw new FinetuneError('bad-input', `this golden was made with unquantised base weights (it holds no nf4_dequant/*): check it with --quant none, not ${input.quantization}`);
  const weights = await loadMistralWeights(ctx, ckpt, { quantization: input.quantization, streamLayers: input.streamLayers });
  const d = weights.dims;
  let runner: MistralRunner | null = null;
  const lora = uploadLora(ctx, d, adapter);
  try {
    // NF4: the dequantised base weights must equal PyTorch's exactly.
    if (input.quantization !== 'none') {
      for (let l = 0; l < d.L; l++) {
        for (const m of PROJECTIONS) {
          const key = `nf4_dequant/${moduleName(l, m)}`;
          if (!has(key)) continue;
          const w = layerWeights(weights, l).linears[m];
          if (w.kind !== 'nf4') continue;
          const out = ctx.createBuffer('dequantised', w.out * w.in * 4, 'scratch');
          nf4_dequantize(ctx, out, w.weight);
          const got = await ctx.readF32(out);
          ctx.destroy(out);
          g.add('nf4_dequant', key, maxRelError(got, await f32(golden, key)), TOLERANCE.nf4);
        }
      }
    }

    runner = new MistralRunner(ctx, weights, lora, { B, T, seed: 0, head: 'all' }); // every position's logsumexp is compared
    const targets = shiftLabels(labels.values, B, T);
    const batch = unpackedBatch(B, T, ids.values, targets);
    const counted = targets.reduce((s, t) => s + (t === IGNORE_INDEX ? 0 : 1), 0);
    if (counted === 0) throw new FinetuneError('bad-input', 'the golden labels leave no token to compute a loss on');
    runner.setBatch(batch);
    const run = runner;
    const pass = (): void => {
      run.zeroGrads();
      run.resetLoss();
      // Inference mode, as PEFT's model.eval(): the golden was made without dropout, whatever the adapter's config says.
      run.forwardBackward(1 / counted, 1 / counted, 'eval');
    };
    say('forward and backward');
    pass();
    const loss = await runner.readLoss();

    let lossReport: CheckReport['loss'] = null;
    if (has('loss')) {
      // Compared in float64: the golden's loss is a float64 value, the engine's an f32 one.
      const golden1 = toFloat64(await golden.read('loss'), golden.info('loss').dtype)[0];
      lossReport = { engine: loss, golden: golden1 };
      g.add('loss', 'loss', Math.abs(loss - golden1) / Math.max(Math.abs(golden1), 1e-30), TOLERANCE.loss);
    }
    // The runner's buffers after forwardBackward: xs[0] embeddings, xs[1] after layer 0, xf after the final norm, lse.
    if (has('logsumexp')) g.add('logsumexp', 'logsumexp', maxRelError(await ctx.readF32(runner.lse, 0, B * T), await f32(golden, 'logsumexp')), TOLERANCE.tensor);
    const hiddenCount = golden.names().filter((n) => n.startsWith('hidden_states/')).length;
    for (let i = 0; i < hiddenCount; i++) {
      const key = `hidden_states/${i}`;
      if (!has(key)) continue;
      // HF's hidden_states: embeddings, the output of each layer, and the last one after the final norm.
      const buf = i === hiddenCount - 1 ? runner.xf : runner.xs[i];
      g.add('hidden_states', key, maxRelError(await ctx.readF32(buf, 0, B * T * d.C), await f32(golden, key)), TOLERANCE.tensor);
    }
    if (has('logits_first256')) {
      const V0 = golden.info('logits_first256').shape[2];
      const logits = ctx.createBuffer('logits (first columns)', B * T * V0 * 4, 'scratch');
      gemm(ctx, { C: logits, A: runner.xf, B: weights.lmHead.buffer, M: B * T, N: V0, K: d.C, transB: true, bStorage: weights.lmHead.storage });
      const got = await ctx.readF32(logits);
      ctx.destroy(logits);
      g.add('logits', 'logits_first256', maxRelError(got, await f32(golden, 'logits_first256')), TOLERANCE.tensor);
    }
    const grads = await downloadLoraGrads(ctx, lora);
    let int8: CheckReport['int8'];
    if (input.int8Gates?.length) {
      if (input.quantization === 'none') throw new FinetuneError('bad-input', 'the int8 gates need a quantised base (--quant nf4 or nf4-double): int8 replaces the NF4 products');
      const named = (gs: typeof grads): Map<string, Float32Array> => {
        const out = new Map<string, Float32Array>();
        gs.forEach((layer, l) => {
          for (const m of PROJECTIONS) {
            const gr = layer[m];
            if (gr) out.set(peftKey(l, m, 'A'), gr.dA).set(peftKey(l, m, 'B'), gr.dB);
          }
        });
        return out;
      };
      const fp32: PassResult = { loss, grads: named(grads) };
      int8 = {};
      for (const choice of input.int8Gates) {
        say(`forward and backward with the base products as ${choice}`);
        const q: PassResult = await withBaseMatmul(ctx, choice, pass, async () => ({ loss: await run.readLoss(), grads: named(await downloadLoraGrads(ctx, lora)) }));
        int8[choice] = compareInt8(fp32, q);
      }
      // The AdamW step below must see this run's fp32 gradients again: the pass is deterministic, so rerun it.
      pass();
    }
    for (let l = 0; l < d.L; l++) {
      for (const m of PROJECTIONS) {
        const gr = grads[l][m];
        if (!gr) continue;
        for (const [factor, value] of [['A', gr.dA], ['B', gr.dB]] as const) {
          const key = `grad/${peftKey(l, m, factor)}`;
          if (has(key)) g.add('grad', key, maxRelError(value, await f32(golden, key)), TOLERANCE.tensor);
        }
      }
    }
    if (golden.names().some((n) => n.startsWith('adamw_step1/'))) {
      say('one AdamW step');
      runner.optimizerStep({ lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0 });
      for (let l = 0; l < d.L; l++) {
        for (const m of PROJECTIONS) {
          const mod = lora.modules[l][m];
          if (!mod) continue;
          for (const [factor, buf] of [['A', mod.A], ['B', mod.B]] as const) {
            const key = `adamw_step1/${peftKey(l, m, factor)}`;
            if (has(key)) g.add('adamw_step1', key, maxRelError(await ctx.readF32(buf), await f32(golden, key)), TOLERANCE.tensor);
          }
        }
      }
    }
    const ok = Object.values(g.groups).every((x) => x.ok) && Object.keys(g.groups).length > 0;
    return { ok, quantization: input.quantization, loss: lossReport, groups: g.groups, adapterWeights, seconds: (Date.now() - started) / 1000, ...(input.verbose ? { tensors: g.tensors } : {}), ...(int8 ? { int8 } : {}) };
  } finally {
    runner?.destroy();
    destroyLora(ctx, lora);
    destroyMistralWeights(ctx, weights);
  }
}
