// The whole engine against the PyTorch/PEFT goldens (test/fixtures/README.md): loss, logits, logsumexp, hidden states,
// every LoRA gradient, one AdamW step, and exact NF4 dequantisation.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory, nodeFileSource } from '../../src/cli/node-source.ts';
import { runGoldenCheck, shiftLabels, TOLERANCE } from '../../src/run/check.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { destroyLora, uploadLora } from '../../src/engine/mistral/lora.ts';
import { MistralRunner } from '../../src/engine/mistral/model.ts';
import { destroyMistralWeights, loadMistralWeights } from '../../src/engine/mistral/weights.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { readAdapter } from '../../src/model/lora-adapter.ts';
import { openSafetensors, toFloat64, typedView, writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.ts';
import { bytesSource, memoryFileSet, type FileSet } from '../../src/model/source.ts';
import { gpuContext } from './context.ts';

const MODEL = 'test/fixtures/tiny-mistral';
const ADAPTER = 'test/fixtures/tiny-adapter';

async function check(ctx: GpuContext, golden: string, quantization: 'none' | 'nf4', adapter: FileSet = nodeDirectory(ADAPTER)) {
  return runGoldenCheck(ctx, { model: nodeDirectory(MODEL), adapter, golden: await nodeFileSource(golden), quantization });
}

/** tiny-adapter with its config's lora_dropout changed (the default our own exports carry is 0.05). */
function adapterWithDropout(dropout: number): FileSet {
  const config = JSON.parse(readFileSync(`${ADAPTER}/adapter_config.json`, 'utf8')) as Record<string, unknown>;
  return memoryFileSet({ 'adapter_config.json': JSON.stringify({ ...config, lora_dropout: dropout }), 'adapter_model.safetensors': new Uint8Array(readFileSync(`${ADAPTER}/adapter_model.safetensors`)) }, 'tiny-adapter');
}

describe('finetune check against the goldens', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it('matches golden_lora (bf16 base, LoRA on all seven projections) within tolerance', async () => {
    const r = await check(ctx, 'test/fixtures/golden_lora.safetensors', 'none');
    expect(Object.keys(r.groups).sort()).toEqual(['adamw_step1', 'adapter', 'grad', 'hidden_states', 'logits', 'logsumexp', 'loss']);
    // The adapter directory is loaded as it is and equals the golden's starting point exactly.
    expect(r.groups.adapter).toMatchObject({ count: 28, worst: 0 });
    expect(r.groups.grad.count).toBe(28);
    expect(r.groups.adamw_step1.count).toBe(28);
    expect(r.groups.hidden_states.count).toBe(3);
    for (const [name, g] of Object.entries(r.groups)) expect(g.worst, name).toBeLessThanOrEqual(g.tolerance);
    expect(Math.abs(r.loss!.engine - r.loss!.golden) / r.loss!.golden).toBeLessThanOrEqual(TOLERANCE.loss);
    expect(r.ok).toBe(true);
  });

  it('matches golden_qlora (NF4 base) and dequantises every NF4 weight exactly', async () => {
    const r = await check(ctx, 'test/fixtures/golden_qlora.safetensors', 'nf4');
    expect(r.groups.nf4_dequant.count).toBe(14);
    expect(r.groups.nf4_dequant.worst).toBe(0);
    expect(r.groups.grad.count).toBe(28);
    for (const [name, g] of Object.entries(r.groups)) expect(g.worst, name).toBeLessThanOrEqual(g.tolerance);
    expect(r.ok).toBe(true);
  });

  it('matches golden_qlora on the tiled attention, whose backward passes dS through the runner\'s scratch', async () => {
    const before = ctx.attention;
    const spillPipeline = (): boolean => ctx.registry.pipelineKeys.some((k) => k.startsWith('attention_flash|backward_dq|DS_SPILL=true|'));
    expect(spillPipeline()).toBe(false);
    ctx.attention = 'tiled';
    try {
      const r = await check(ctx, 'test/fixtures/golden_qlora.safetensors', 'nf4');
      expect(r.groups.grad.count).toBe(28);
      for (const [name, g] of Object.entries(r.groups)) expect(g.worst, name).toBeLessThanOrEqual(g.tolerance);
      expect(r.ok).toBe(true);
    } finally {
      ctx.attention = before;
    }
    // The runner made the scratch and the backward took it: the kernel that reads dS back ran.
    expect(spillPipeline()).toBe(true);
  });

  it('fails when the engine computes something else (full-precision base against the NF4 golden)', async () => {
    // The NF4 golden without its nf4_dequant/* tensors, which would give its quantization away before any compute.
    const full = await openSafetensors(await nodeFileSource('test/fixtures/golden_qlora.safetensors'));
    const kept: TensorToWrite[] = [];
    for (const name of full.names()) {
      if (name.startsWith('nf4_dequant/')) continue;
      const info = full.info(name);
      kept.push({ name, dtype: info.dtype, shape: info.shape, data: (await full.read(name)).slice() });
    }
    const golden = bytesSource(writeSafetensors(kept, full.header.metadata ?? {}), 'golden_qlora without nf4_dequant');
    const r = await runGoldenCheck(ctx, { model: nodeDirectory(MODEL), adapter: nodeDirectory(ADAPTER), golden, quantization: 'none' });
    expect(r.ok).toBe(false);
    expect(r.groups.loss.ok).toBe(false);
    expect(r.groups.grad.ok).toBe(false);
  });

  it('says which --quant a golden needs, before loading the model, when it is checked with the other', async () => {
    await expect(check(ctx, 'test/fixtures/golden_qlora.safetensors', 'none')).rejects.toThrow('this golden was made with NF4 base weights (it holds nf4_dequant/*): check it with --quant nf4');
    await expect(check(ctx, 'test/fixtures/golden_lora.safetensors', 'nf4')).rejects.toThrow('this golden was made with unquantised base weights (it holds no nf4_dequant/*): check it with --quant none, not nf4');
  });

  it('passes golden_lora with an adapter whose lora_dropout is 0.05: the check runs in inference mode', async () => {
    const r = await check(ctx, 'test/fixtures/golden_lora.safetensors', 'none', adapterWithDropout(0.05));
    for (const [name, g] of Object.entries(r.groups)) expect(g.worst, name).toBeLessThanOrEqual(g.tolerance);
    expect(r.groups.grad.count).toBe(28);
    expect(r.ok).toBe(true);
  });

  it('fails when the adapter directory is not the golden\'s starting point', async () => {
    const bytes = new Uint8Array(readFileSync(`${ADAPTER}/adapter_model.safetensors`));
    const moved = bytes.slice();
    // The file's last f32 (a value of one adapter tensor), nudged.
    const view = new DataView(moved.buffer);
    view.setFloat32(moved.length - 4, view.getFloat32(moved.length - 4, true) + 0.25, true);
    const adapter = memoryFileSet({ 'adapter_config.json': readFileSync(`${ADAPTER}/adapter_config.json`, 'utf8'), 'adapter_model.safetensors': moved }, 'tiny-adapter');
    const r = await check(ctx, 'test/fixtures/golden_lora.safetensors', 'none', adapter);
    expect(r.groups.adapter.ok).toBe(false);
    expect(r.groups.adapter.worst).toBeGreaterThan(0);
    expect(r.ok).toBe(false);
  });
});

describe('inference mode and training mode of the runner (LoRA dropout)', () => {
  it('evaluates without dropout and trains with it: eval loss = the golden loss, the training loss differs', async () => {
    const ctx = await gpuContext();
    const golden = await openSafetensors(bytesSource(new Uint8Array(readFileSync('test/fixtures/golden_lora.safetensors'))));
    const ints = async (name: string): Promise<number[]> => {
      expect(golden.info(name).dtype).toBe('I32');
      return Array.from(typedView(await golden.read(name), 'I32'));
    };
    const [B, T] = golden.info('input_ids').shape;
    const targets = shiftLabels(await ints('labels'), B, T);
    const counted = targets.filter((t) => t !== -100).length;
    const goldenLoss = toFloat64(await golden.read('loss'), golden.info('loss').dtype)[0];
    const ckpt = await openBaseCheckpoint(nodeDirectory(MODEL));
    const weights = await loadMistralWeights(ctx, ckpt, { quantization: 'none' });
    // A large dropout so that a mask, if drawn, moves the loss far beyond rounding.
    const lora = uploadLora(ctx, weights.dims, await readAdapter(adapterWithDropout(0.3), { base: ckpt.config }));
    const runner = new MistralRunner(ctx, weights, lora, { B, T, seed: 0 });
    try {
      runner.setBatch({ B, T, inputIds: await ints('input_ids'), targets, segmentIds: new Uint32Array(B * T).fill(1), positionIds: Uint32Array.from({ length: B * T }, (_, i) => i % T) });
      const lossOf = async (pass: () => void): Promise<number> => {
        runner.resetLoss();
        runner.zeroGrads();
        pass();
        return runner.readLoss();
      };
      const validation = await lossOf(() => runner.evaluate(1 / counted));
      const evalGrad = await lossOf(() => runner.forwardBackward(1 / counted, 1 / counted, 'eval'));
      const train = await lossOf(() => runner.forwardBackward(1 / counted, 1 / counted, 'train', 0));
      expect(Math.abs(validation - goldenLoss) / goldenLoss).toBeLessThanOrEqual(TOLERANCE.loss);
      expect(evalGrad).toBe(validation);
      expect(Math.abs(train - validation) / validation).toBeGreaterThan(1e-4);
    } finally {
      runner.destroy();
      destroyLora(ctx, lora);
      destroyMistralWeights(ctx, weights);
    }
  });
});
