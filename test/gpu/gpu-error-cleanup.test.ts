// What a GPU error in the middle of making buffers leaves behind. Dawn reports a buffer it could not make (out of
// memory) as an uncaptured error when the buffer is created, and the context throws it at its next submit: often the
// write that fills the buffer just made, or one made a few buffers later. Whatever had been made by then must be
// freed, or every such failure keeps GPU memory (and the ledger's count, which plans what fits) until the page is
// reloaded. Here the device refuses one named buffer (a size past its limit: an error buffer and an uncaptured
// GPUValidationError, as an out-of-memory buffer is an error buffer and a GPUOutOfMemoryError).
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer, type Tokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { createAdapter, type LoraAdapter } from '../../src/model/lora-adapter.ts';
import { uniformSource } from '../../src/core/prng.ts';
import { kernelCandidates, kernelsOf, measureKernels } from '../../src/run/kernel-tuning.ts';
import { FinetuneSession } from '../../src/run/session.ts';
import { openBaseCheckpoint } from '../../src/model/checkpoint.ts';
import { destroyMistralWeights, loadMistralWeights } from '../../src/engine/mistral/weights.ts';
import { gpuContext } from './context.ts';

/** `work` with the device failing to make the buffer labelled `label` (once), restored after. */
async function refusingBuffer<T>(ctx: GpuContext, label: string, work: () => Promise<T>): Promise<{ refused: number; result: PromiseSettledResult<T> }> {
  const device = ctx.device;
  const create = device.createBuffer.bind(device);
  let refused = 0;
  const spy = vi.spyOn(device, 'createBuffer').mockImplementation((d: GPUBufferDescriptor) => {
    if (d.label !== label || refused > 0) return create(d);
    refused++;
    return create({ ...d, size: 2 * device.limits.maxBufferSize });
  });
  try {
    const [result] = await Promise.allSettled([work()]);
    return { refused, result };
  } finally {
    spy.mockRestore();
  }
}

describe('GPU errors while buffers are made', () => {
  let ctx: GpuContext;
  let tok: Tokenizer;
  let session: FinetuneSession;
  beforeAll(async () => {
    ctx = await gpuContext();
    tok = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    session = new FinetuneSession(ctx, tok, null);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'none');
  });

  it('a load whose lm_head the GPU cannot hold fails, keeps the previous model, and leaves nothing of its own behind', async () => {
    const previous = session.model;
    const before = ctx.ledger.snapshot().currentBytes;
    const { refused, result } = await refusingBuffer(ctx, 'lm_head.weight', () => session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral again', 'none'));
    expect(refused).toBe(1);
    expect(result.status).toBe('rejected');
    expect(String((result as PromiseRejectedResult).reason)).toMatch(/GPU error: Buffer size/);
    expect(session.model).toBe(previous);
    expect(session.modelName).toBe('tiny-mistral');
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
  });

  it("a load whose last buffer's error the device reports late (as a browser does) fails the load, not the first use", async () => {
    const previous = session.model;
    const before = ctx.ledger.snapshot().currentBytes;
    const device = ctx.device;
    const create = device.createBuffer.bind(device);
    // A browser delivers an out-of-memory error as an event some time after the call that made the buffer; Dawn in
    // Node delivers it at once. Here the lm_head's buffer is made, and its error arrives after the call returned.
    const spy = vi.spyOn(device, 'createBuffer').mockImplementation((d: GPUBufferDescriptor) => {
      const b = create(d);
      if (d.label === 'lm_head.weight') {
        queueMicrotask(() => {
          const ev = new Event('uncapturederror');
          Object.defineProperty(ev, 'error', { value: { message: 'Out of memory (late)' } });
          device.dispatchEvent(ev);
        });
      }
      return b;
    });
    try {
      await expect(session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral late', 'none')).rejects.toThrow(/GPU error: Out of memory \(late\)/);
    } finally {
      spy.mockRestore();
    }
    expect(session.model).toBe(previous);
    expect(session.modelName).toBe('tiny-mistral');
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
  });

  it('a generation whose KV cache the GPU cannot hold fails, frees the caches it made, and the next one runs', async () => {
    const before = ctx.ledger.snapshot().currentBytes;
    // The last layer's value cache: every other cache is made by then, and the rope table's upload throws the error.
    const last = `v cache ${session.model!.dims.L - 1}`;
    const { refused, result } = await refusingBuffer(ctx, last, () => session.generateStream('def add', { maxNewTokens: 4 }));
    expect(refused).toBe(1);
    expect(result.status).toBe('rejected');
    expect(String((result as PromiseRejectedResult).reason)).toMatch(/GPU error: Buffer size/);
    expect(ctx.ledger.snapshot().byCategory['kv-cache'].currentBytes).toBe(0);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
    const next = await session.generateStream('def add', { maxNewTokens: 2 });
    expect(next.ids).toHaveLength(2);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
  });

  it('an imported adapter whose optimizer state the GPU cannot hold is refused, and the current adapter stays', async () => {
    const adapter = (seed: number): LoraAdapter =>
      createAdapter(session.baseConfig, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'], random: uniformSource(seed) });
    const first = adapter(1);
    for (const layer of first.tensors) for (const pair of Object.values(layer)) pair?.B.fill(0.25);
    await session.useImportedAdapter(first);
    const before = ctx.ledger.snapshot().currentBytes;
    const { refused, result } = await refusingBuffer(ctx, 'lora exp_avg_sq [0]', () => session.useImportedAdapter(adapter(2)));
    expect(refused).toBe(1);
    expect(result.status).toBe('rejected');
    expect(String((result as PromiseRejectedResult).reason)).toMatch(/GPU error: Buffer size/);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
    expect((await session.adapterNow()).tensors[0].q_proj!.B).toEqual(first.tensors[0].q_proj!.B);
  });

  it("a time estimate whose training runner the GPU cannot hold fails and frees the runner's buffers and its adapter", async () => {
    const train = new Blob([['def add(a, b):', 'x = [1, 2, 3]', 'print("hi")'].map((text) => JSON.stringify({ text })).join('\n')]);
    const hp = { num_train_epochs: 1, train_batch_size: 1, micro_batch_size: 1, num_validation_samples: 1, lora_rank: 2, lora_alpha: 4, max_seq_len: 24 };
    const before = ctx.ledger.snapshot().currentBytes;
    // An io buffer made before the runner uploads its rope table: that upload throws the error, in the constructor.
    const { refused, result } = await refusingBuffer(ctx, 'head targets', () => session.estimate(hp, train, null));
    expect(refused).toBe(1);
    expect(result.status).toBe('rejected');
    expect(String((result as PromiseRejectedResult).reason)).toMatch(/GPU error: Buffer size/);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
    // And the next estimate measures.
    expect((await session.estimate(hp, train, null)).secondsPerToken).toBeGreaterThan(0);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
  });

  it('a kernel measurement whose runner the GPU cannot hold fails and frees its throwaway adapter', async () => {
    const lora = { r: 2, alpha: 4, dropout: 0, targets: ['q_proj', 'v_proj'] as const };
    const before = ctx.ledger.snapshot().currentBytes;
    const { refused, result } = await refusingBuffer(ctx, 'head targets', () => measureKernels(ctx, session.model!, session.baseConfig, lora, { B: 1, T: 8 }, kernelCandidates({}, kernelsOf(ctx)), { minMs: 1, maxReps: 1 }));
    expect(refused).toBe(1);
    expect(result.status).toBe('rejected');
    expect(String((result as PromiseRejectedResult).reason)).toMatch(/GPU error: Buffer size/);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
  });
});

describe('GPU errors while a model is quantised', () => {
  it('an NF4 load whose double-quant buffers the GPU cannot hold fails and leaves nothing behind, its source included', async () => {
    const ctx = await gpuContext();
    const tok = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    const session = new FinetuneSession(ctx, tok, null);
    const before = ctx.ledger.snapshot().currentBytes;
    // Made inside the quantisation of the second layer's k_proj, after its source and its 4-bit codes: the table's
    // upload, two buffers later, throws the error.
    const { refused, result } = await refusingBuffer(ctx, 'model.layers.1.self_attn.k_proj.weight dq codes', () =>
      session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double'),
    );
    expect(refused).toBe(1);
    expect(result.status).toBe('rejected');
    expect(String((result as PromiseRejectedResult).reason)).toMatch(/GPU error: Buffer size/);
    expect(session.model).toBeNull();
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
    // And the next load quantises the whole model.
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    expect(session.model!.layers[1].linears.k_proj.kind).toBe('nf4');
  });
});

describe('clean-up with a GPU error pending', () => {
  it("freeing a model's weights while an error waits to be reported frees them all and leaves the error to be reported", async () => {
    const ctx = await gpuContext();
    const before = ctx.ledger.snapshot().currentBytes;
    const weights = await loadMistralWeights(ctx, await openBaseCheckpoint(nodeDirectory('test/fixtures/tiny-mistral')), { quantization: 'nf4-double' });
    expect(ctx.ledger.snapshot().currentBytes).toBeGreaterThan(before);
    // Work recorded and not submitted, then an error the device reports later (as it reports an out-of-memory buffer).
    ctx.clear(weights.finalNorm);
    ctx.device.createBuffer({ label: 'refused', size: 2 * ctx.device.limits.maxBufferSize, usage: GPUBufferUsage.STORAGE });
    await ctx.device.queue.onSubmittedWorkDone();
    destroyMistralWeights(ctx, weights);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
    // The error is still reported, once, and the context works after it.
    expect(() => ctx.checkHealthy()).toThrow(/GPU error: Buffer size/);
    const b = ctx.upload('after', new Float32Array([1, 2]), 'scratch');
    expect(new Float32Array(await ctx.read(b))).toEqual(new Float32Array([1, 2]));
    ctx.destroy(b);
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
  });
});

describe('a wait with a GPU error pending', () => {
  it('throws the error and keeps its fence: the next wait reuses it, nothing more is made', async () => {
    const ctx = await gpuContext();
    await ctx.sync();
    const before = ctx.ledger.snapshot().currentBytes;
    const ev = new Event('uncapturederror');
    Object.defineProperty(ev, 'error', { value: { message: 'Out of memory (pending)' } });
    ctx.device.dispatchEvent(ev);
    await expect(ctx.sync()).rejects.toThrow('GPU error: Out of memory (pending)');
    await ctx.sync();
    expect(ctx.ledger.snapshot().currentBytes).toBe(before);
  });
});
