// An adapter brought home (Replicate's training_output.zip with a torch.save adapter_model.bin) loaded into the session:
// it is the adapter on the GPU exactly, it changes the validation loss, and a new run starts from it.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { PROJECTIONS } from '../../src/core/mistral.ts';
import { parseHyperparams } from '../../src/config/index.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { importAdapter } from '../../src/model/adapter-import.ts';
import type { LoraAdapter } from '../../src/model/lora-adapter.ts';
import { FinetuneSession, memoryRunStore, quantizationFor } from '../../src/run/session.ts';
import { peftFiles } from '../../src/export/index.ts';
import type { EvaluationProgress } from '../../src/run/trainer.ts';
import { safetensorsTensors } from '../helpers/safetensors-file.ts';
import { replicateTrainingZip, torchSaveStateDict } from '../helpers/torch-save.ts';
import { gpuContext } from './context.ts';

// Rows of a few tokens: SwiftShader runs the 32000-word lm_head at about a second per token.
const ROWS = ['x = 1', 'y = 2', 'z = 3', 'print(x)'];
const JSONL = new Blob([ROWS.map((text) => JSON.stringify({ text })).join('\n')]);
// The tiny-adapter's shape: r 4, alpha 8, all seven projections. No warmup: the first step moves the weights by ~lr.
const HP = { num_train_epochs: 1, train_batch_size: 1, micro_batch_size: 1, num_validation_samples: 1, lora_rank: 4, lora_alpha: 8, lora_target_modules: 'all-linear', lora_dropout: 0, learning_rate: 1e-4, warmup_ratio: 0, lr_scheduler: 'constant', max_seq_len: 8 };

function maxAbsDiff(a: LoraAdapter, b: LoraAdapter): number {
  let m = 0;
  a.tensors.forEach((layer, l) => {
    for (const p of PROJECTIONS) {
      const x = layer[p];
      const y = b.tensors[l][p];
      if (!x || !y) continue;
      for (const [u, v] of [[x.A, y.A], [x.B, y.B]]) for (let i = 0; i < u.length; i++) m = Math.max(m, Math.abs(u[i] - v[i]));
    }
  });
  return m;
}

describe('an imported adapter in the session', () => {
  let ctx: GpuContext;
  let session: FinetuneSession;
  let imported: LoraAdapter;
  beforeAll(async () => {
    ctx = await gpuContext();
    session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', quantizationFor(parseHyperparams(HP)));
    const st = safetensorsTensors(new Uint8Array(readFileSync('test/fixtures/tiny-adapter/adapter_model.safetensors')));
    const bin = torchSaveStateDict([...st].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: new Float32Array(t.bytes.slice().buffer) })));
    const zip = replicateTrainingZip(readFileSync('test/fixtures/tiny-adapter/adapter_config.json', 'utf8'), bin);
    imported = await importAdapter(zip, { base: session.baseConfig });
  });

  it('is the current adapter exactly, changes the validation loss, and a run of another rank is refused without losing it', async () => {
    const baseOnly = await session.evaluate(HP, JSONL, null);
    // Pass by pass, as the GPU finishes them (the page shows it): two held-out rows, too long to share a row.
    const seen: EvaluationProgress[] = [];
    await session.evaluate({ ...HP, num_validation_samples: 2 }, JSONL, null, (p) => void seen.push(p));
    expect(seen.map((p) => [p.done, p.passes])).toEqual([[0, 2], [1, 2], [2, 2]]);
    await session.useImportedAdapter(imported);
    expect(maxAbsDiff(await session.adapterNow(), imported)).toBe(0);
    // No run of ours trained it, and it came with nothing: its export README has no "Training" section.
    expect(session.trainingSummary()).toBeNull();
    expect(session.trainingCard()).toBeNull();
    // One imported with a README's section keeps it, until another adapter replaces it.
    const carried = { kind: 'carried', section: '## Training\n\nTrained elsewhere.' } as const;
    await session.useImportedAdapter(imported, carried);
    expect(session.trainingCard()).toEqual(carried);
    await session.useImportedAdapter(imported);
    expect(session.trainingCard()).toBeNull();
    const withAdapter = await session.evaluate(HP, JSONL, null);
    expect(withAdapter.tokens).toBe(baseOnly.tokens);
    expect(Number.isFinite(withAdapter.loss)).toBe(true);
    expect(withAdapter.loss).not.toBe(baseOnly.loss);

    await expect(session.train({ ...HP, lora_rank: 2 }, { train: JSONL, trainName: 'rows.jsonl', validation: null, validationName: null }, () => undefined)).rejects.toThrow(/set lora_rank 4 \(the run has 2\)/);
    expect(maxAbsDiff(await session.adapterNow(), imported)).toBe(0);
  });

  it('an export being read when another adapter replaces it is the old adapter, whole; a new run waits for it too', async () => {
    await session.useImportedAdapter(imported);
    const doubled: LoraAdapter = { ...imported, tensors: imported.tensors.map((l) => Object.fromEntries(Object.entries(l).map(([p, t]) => [p, { A: t.A.map((x) => 2 * x), B: t.B.map((x) => 2 * x) }]))) };
    // The adapter is read back tensor by tensor; freed under the reading, the next read failed ("used in submit while
    // destroyed").
    const reading = session.adapterNow();
    await session.useImportedAdapter(doubled);
    expect(maxAbsDiff(await reading, imported)).toBe(0);
    expect(maxAbsDiff(await session.adapterNow(), doubled)).toBe(0);
    const exported = session.adapterNow();
    const run = session.train(HP, { train: JSONL, trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      if (e.type === 'step' && e.step === 1) session.stop();
    });
    expect(maxAbsDiff(await exported, doubled)).toBe(0);
    expect((await run).steps).toBe(1);
  });

  it('a new run starts from it: one AdamW step of lr 1e-4 moves no weight by more than 2e-4', async () => {
    await session.useImportedAdapter(imported, { kind: 'carried', section: '## Training\n\nTrained elsewhere.' });
    const largest = Math.max(...imported.tensors.flatMap((l) => Object.values(l).map((p) => Math.max(...p.B.map(Math.abs)))));
    // A fresh PEFT init has B = 0: far from the imported B, so "close" below means the run really started from it.
    expect(largest).toBeGreaterThan(0.01);
    const r = await session.train(HP, { train: JSONL, trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      if (e.type === 'step' && e.step === 1) session.stop();
    });
    expect(r.steps).toBe(1);
    // The run that trained it, which started from the imported adapter, is what its README will say.
    expect(session.trainingSummary()).toMatchObject({ trainName: 'rows.jsonl', step: 1, fromImported: true, history: [{ step: 1 }] });
    // The run's card, not the one the imported adapter came with (it says the run started from an imported adapter).
    expect(session.trainingCard()).toMatchObject({ kind: 'local', run: { trainName: 'rows.jsonl', fromImported: true } });
    const after = await session.adapterNow();
    const moved = maxAbsDiff(after, imported);
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThanOrEqual(2e-4);
  });

  it('an rsLoRA adapter keeps its scale through a saved run: a restore in a new session has scaling 4 and exports use_rslora', async () => {
    // The tiny-adapter with use_rslora: r 4, alpha 8, so its scale is 8 / √4 = 4 (2 without rsLoRA).
    const config = JSON.parse(readFileSync('test/fixtures/tiny-adapter/adapter_config.json', 'utf8')) as Record<string, unknown>;
    const st = safetensorsTensors(new Uint8Array(readFileSync('test/fixtures/tiny-adapter/adapter_model.safetensors')));
    const bin = torchSaveStateDict([...st].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, data: new Float32Array(t.bytes.slice().buffer) })));
    const rs = await importAdapter(replicateTrainingZip(JSON.stringify({ ...config, use_rslora: true }), bin), { base: session.baseConfig });
    expect(rs.scaling).toBe(4);
    const store = memoryRunStore();
    const first = new FinetuneSession(ctx, session.tokenizer, store);
    await first.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', quantizationFor(parseHyperparams(HP)));
    await first.useImportedAdapter(rs);
    const r = await first.train(HP, { train: JSONL, trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      if (e.type === 'step' && e.step === 1) first.stop();
    });
    expect(r.steps).toBe(1);
    expect((await first.adapterNow()).scaling).toBe(4);
    first.unloadModel();

    const second = new FinetuneSession(ctx, session.tokenizer, store);
    await second.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', quantizationFor(parseHyperparams(HP)));
    await second.train({}, null, () => undefined, { resume: true, restoreOnly: true });
    const restored = await second.adapterNow();
    expect(restored.config.useRslora).toBe(true);
    expect(restored.scaling).toBe(4);
    const written = JSON.parse(new TextDecoder().decode(peftFiles(restored)['adapter_config.json'])) as Record<string, unknown>;
    expect(written.use_rslora).toBe(true);
    second.unloadModel();
  });

  it('its validation loss stops between passes on request, and when a load, an imported adapter or a run replaces what it reads', async () => {
    const own = new FinetuneSession(ctx, session.tokenizer, null);
    const load = (): Promise<unknown> => own.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', quantizationFor(parseHyperparams(HP)));
    await load();
    await own.useImportedAdapter(imported);
    const TWO = { ...HP, num_validation_samples: 2 }; // two passes (see the first test)
    const whole = await own.evaluate(TWO, JSONL, null);
    expect(whole.stopped).toBe(false);
    // Each of these, started as the evaluation's first pass is queued, ends it after the pass going on when it needs
    // the GPU to itself; the load quantises its model first (beside the evaluation): many short passes outlast that.
    const LONG = { ...HP, num_validation_samples: 40 };
    const rows = new Blob([Array.from({ length: 44 }, (_, i) => JSON.stringify({ text: `v = ${i}` })).join('\n')]);
    const during = async (start: () => Promise<unknown> | void): Promise<[boolean, number, boolean, boolean]> => {
      let started: Promise<unknown> | void = undefined;
      let last: EvaluationProgress | null = null;
      const r = await own.evaluate(LONG, rows, null, (p) => {
        last = p;
        if (p.done === 0) started = start();
      });
      await started;
      const p = last as EvaluationProgress | null;
      return [r.stopped, r.loss, p !== null && p.passes > 10, p !== null && p.done < p.passes];
    };
    expect(await during(() => own.stopEvaluation())).toEqual([true, NaN, true, true]);
    // A model load used to wait for every pass (minutes for Mistral-7B), its progress bar full, for a number about the
    // model it replaces; an imported adapter or a new run, likewise for the adapter.
    expect(await during(load)).toEqual([true, NaN, true, true]);
    await own.useImportedAdapter(imported);
    expect(await during(() => own.useImportedAdapter(imported))).toEqual([true, NaN, true, true]);
    const run = (): Promise<unknown> => own.train(HP, { train: JSONL, trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => void (e.type === 'step' && own.stop()));
    expect(await during(run)).toEqual([true, NaN, true, true]);
    // A Stop while it waits for an estimate's measurement ends it before its first pass.
    own.forgetEstimate();
    const measuring = own.estimate(HP, JSONL, null);
    const waiting = own.evaluate(TWO, JSONL, null);
    own.stopEvaluation();
    expect(await waiting).toEqual({ loss: NaN, tokens: 0, stopped: true });
    await measuring;
    // The next one is not stopped by the last one's Stop, and equals the first with the same adapter.
    await own.useImportedAdapter(imported);
    expect(await own.evaluate(TWO, JSONL, null)).toEqual(whole);
    own.unloadModel();
  });
});
