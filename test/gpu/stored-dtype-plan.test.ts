// The load's streaming decision counts the weights as the safetensors store them, not as config.json's torch_dtype
// says: tiny-mistral stored in float32 under a config that says bfloat16, on a GPU whose memory the bf16 model fits and
// the f32 one does not. Planned from config.json, the load said nothing (and would run out of memory on a real GPU);
// planned from the headers, it says the run does not fit (two layers: streaming saves nothing here; with more it
// streams them), and why the plan differs from config.json.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { parseHyperparams } from '../../src/config/index.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.ts';
import { planMemory } from '../../src/run/planner.ts';
import { FinetuneSession } from '../../src/run/session.ts';
import { gpuContext } from './context.ts';

describe('the load plans from the stored dtype', () => {
  let ctx: GpuContext;
  let dir: string;
  beforeAll(async () => {
    ctx = await gpuContext();
    dir = mkdtempSync(join(tmpdir(), 'finetune-f32-'));
    const ckpt = await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral'));
    const tensors: TensorToWrite[] = [];
    for (const name of ckpt.tensorNames) tensors.push({ name, dtype: 'F32', shape: ckpt.info(name).shape, data: await ckpt.readFloat32(name) });
    writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(tensors, { format: 'pt' }));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...ckpt.configJson, torch_dtype: 'bfloat16', dtype: undefined }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('says the f32 weights do not fit where bf16 ones would, and that the config disagrees with the files', async () => {
    const ckpt = await openBaseCheckpoint(nodeDirectory(dir));
    expect(ckpt.config.dtype).toBe('bfloat16');
    expect(ckpt.storedDtype).toBe('float32');
    const hp = parseHyperparams({ quantization: 'none', peft_method: 'lora', max_seq_len: 64, lora_rank: 2 });
    const asConfig = planMemory(ckpt.config, hp, { gpu: { memoryBytes: 1e12 } }).peakBytes;
    const asStored = planMemory({ ...ckpt.config, dtype: 'float32' }, hp, { gpu: { memoryBytes: 1e12 } }).peakBytes;
    expect(asStored).toBeGreaterThan(asConfig);
    // Enough for the bf16 plan with room (not tight), not for the f32 one.
    const memoryBytes = Math.ceil(asConfig / 0.8);
    expect(memoryBytes).toBeLessThan(asStored);
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    const info = await session.loadModel(nodeDirectory(dir), 'f32', 'none', undefined, { streamLayers: { hp, gpu: { memoryBytes } } });
    expect(info.notices?.join(' ')).toMatch(/^the plan says this run does not fit the GPU's 67\.4 MiB: needs 69\.0 MiB/);
    expect(info.warnings.join(' ')).toContain('config.json says the weights are bfloat16; the safetensors store the weight matrices as float32');
    session.unloadModel();
  });
});
