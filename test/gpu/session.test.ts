// The session behind the page and `finetune train`: a run stopped mid-way is saved to its store and resumed from
// there; the CLI trains end to end and writes a PEFT adapter that reads back.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { FinetuneSession, memoryRunStore, type TrainEvent } from '../../src/run/session.ts';
import { readAdapter } from '../../src/model/lora-adapter.ts';
import { readGguf } from '../helpers/gguf-reader.ts';
import { wideVocabModel } from '../helpers/wide-vocab-model.ts';
import { gpuContext } from './context.ts';

const ROWS = ['def add(a, b):\n    return a + b', 'def sub(a, b):\n    return a - b', 'x = [1, 2, 3]', 'print("hi")'];
const JSONL = ROWS.map((text) => JSON.stringify({ text })).join('\n');
const HP = {
  num_train_epochs: 1,
  train_batch_size: 1,
  micro_batch_size: 1,
  num_validation_samples: 1,
  lora_rank: 2,
  lora_alpha: 4,
  learning_rate: 1e-3,
  max_seq_len: 24,
  save_steps: 1,
  peft_method: 'qlora',
};

describe('fine-tuning session', () => {
  let ctx: GpuContext;
  beforeAll(async () => {
    ctx = await gpuContext();
  });

  it("refuses a model whose vocabulary is not the tokenizer's, saying how to give the model's own", async () => {
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    const dir = await wideVocabModel(32768);
    const e = await session.loadModel(nodeDirectory(dir), 'wide', 'nf4-double').then(() => null, (err: Error) => err);
    rmSync(dir, { recursive: true, force: true });
    expect(e?.message).toMatch(/^the model's vocabulary has 32768 tokens, the tokenizer 32000, and the model's files hold no tokenizer\.model of its own: the model needs its own tokenizer: put its tokenizer\.model beside its weights \(on the page: pick the model's files or folder with it, or a Hub repository that has one\), or give the command line --tokenizer DIR, a folder with it$/);
    expect(session.model).toBeNull();
  });

  it('reports dataset problems with line numbers before training', async () => {
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    const r = await session.inspectDataset(new Blob(['{"text": "ok"}\n{"text": 3}\nnot json\n']), 'bad.jsonl', 'replicate', 64);
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => p.line)).toEqual([2, 3]);
  });

  it('saves a stopped run to its store and resumes it from the saved step', async () => {
    const store = memoryRunStore();
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), store);
    const info = await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    expect(info.layers).toBe(2);
    expect(info.gpuBytes).toBeGreaterThan(0);
    const events: TrainEvent[] = [];
    const first = await session.train(HP, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      events.push(e);
      if (e.type === 'step' && e.step === 1) session.stop();
    });
    expect(first).toMatchObject({ steps: 1, stopped: true });
    const saved = await session.savedRun();
    expect(saved).toMatchObject({ step: 1, totalSteps: 3, trainName: 'rows.jsonl', modelSource: 'tiny-mistral' });
    expect(saved!.history.map((h) => h.step)).toEqual([1]);
    // The training time up to the checkpoint is saved with it, and the resumed run counts on from there.
    const before = saved!.history[0].seconds!;
    expect(before).toBe((events.find((e) => e.type === 'step') as { elapsedSeconds: number }).elapsedSeconds);

    const resumed: TrainEvent[] = [];
    const second = await session.train({}, null, (e) => resumed.push(e), { resume: true });
    expect(second).toMatchObject({ steps: 3, stopped: false });
    const resumedStep = resumed.find((e) => e.type === 'step') as { elapsedSeconds: number };
    expect(resumedStep.elapsedSeconds).toBeGreaterThan(before);
    expect(second.seconds).toBeGreaterThan(resumedStep.elapsedSeconds);
    expect(resumed.find((e) => e.type === 'plan')).toMatchObject({ resumedAt: 1 });
    expect(resumed.filter((e) => e.type === 'step').map((e) => (e as { step: number }).step)).toEqual([2, 3]);
    expect(resumed.some((e) => e.type === 'eval')).toBe(true);
    const finalHistory = (await session.savedRun())!.history;
    expect(finalHistory.map((h) => h.step)).toEqual([1, 2, 3]);
    // The saved training time of a validated step includes its validation pass: a finished run restored after a reload
    // says how long it took as the run itself said, and a run resumed there counts on from after the pass.
    const lastStep = resumed.filter((e) => e.type === 'step').at(-1) as { elapsedSeconds: number };
    const lastEval = resumed.filter((e) => e.type === 'eval').at(-1) as { step: number; seconds: number };
    expect(lastEval.step).toBe(3);
    expect(lastEval.seconds).toBeGreaterThan(0);
    expect(finalHistory[2].seconds).toBeCloseTo(lastStep.elapsedSeconds + lastEval.seconds, 9);
    expect(finalHistory[2].seconds!).toBeLessThanOrEqual(second.seconds);
    session.unloadModel();
  });

  it("reads a run's adapter only while the run is paused; a Resume waits for the reading and stops a generation: never two steps as one", async () => {
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    const flat = (a: Awaited<ReturnType<FinetuneSession['adapterNow']>>): number[] => a.tensors.flatMap((l) => Object.values(l).flatMap((p) => [...p.A, ...p.B]));
    let refused: unknown = null;
    let whole: number[] = [];
    let acrossResume: Promise<number[]> | null = null;
    let later: number[] = [];
    let generated: Awaited<ReturnType<FinetuneSession['generateStream']>> | null = null;
    const done = session.train({ ...HP, save_steps: 0 }, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      if (e.type === 'step' && e.step === 1) {
        // Between steps, the next one about to be queued: read across it, its tensors were half of each step.
        refused = session.adapterNow().then(() => null, (err: Error) => err.message);
        session.pause();
      }
      if (e.type === 'paused' && e.step === 1) {
        void (async () => {
          whole = flat(await session.adapterNow());
          // Resumed as the export starts: the run waits for it to read the adapter of step 1 whole.
          acrossResume = session.adapterNow().then(flat);
          await session.resume();
        })();
      }
      if (e.type === 'step' && e.step === 2) session.pause();
      if (e.type === 'paused' && e.step === 2) {
        void (async () => {
          later = flat(await session.adapterNow());
          // Try it while paused, then Resume: the generation stops at its next token (it would go on with step 3's).
          let resumed: Promise<void> | null = null;
          generated = await session.generateStream('def', { maxNewTokens: 200 }, (t) => void (t.index === 1 && (resumed = session.resume())));
          await resumed;
        })();
      }
      if (e.type === 'step' && e.step === 3) session.stop();
    });
    expect((await done).steps).toBe(3);
    expect(generated!.stopReason).toBe('stopped');
    expect(generated!.ids.length).toBeLessThan(200);
    expect(await refused).toBe('a run is training this adapter: pause it (or let it end) to read it, since its tensors change with every step');
    expect(whole.length).toBeGreaterThan(0);
    expect(await acrossResume!).toEqual(whole);
    expect(later).not.toEqual(whole); // step 2 moved it
    // Once the run has ended, its adapter reads as ever (step 3's).
    expect(flat(await session.adapterNow())).not.toEqual(later);
    session.unloadModel();
  });

  it("restores a stopped run's adapter at its checkpoint without training, and leaves the checkpoint for a later resume", async () => {
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), memoryRunStore());
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    const hp = { ...HP, validation_prompt: 'def' };
    await session.train(hp, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      if (e.type === 'step' && e.step === 1) session.stop();
    });
    const trained = await session.adapterNow();
    const saved = await session.savedRun();
    expect(saved).toMatchObject({ step: 1, totalSteps: 3 });
    session.unloadModel();

    // As after a reload: a new session on the same store.
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    const restoring: TrainEvent[] = [];
    const restored = await session.train({}, null, (e) => restoring.push(e), { resume: true, restoreOnly: true });
    expect(restored).toMatchObject({ steps: 1, stopped: true });
    expect(restoring.find((e) => e.type === 'plan')).toMatchObject({ resumedAt: 1 });
    expect(restoring.filter((e) => ['step', 'validating', 'eval', 'sample', 'checkpoint'].includes(e.type))).toEqual([]);
    // The adapter is the one the run had at its checkpoint, and the store is untouched (same record, same state).
    const adapter = await session.adapterNow();
    expect(adapter.tensors).toEqual(trained.tensors);
    expect(await session.savedRun()).toEqual(saved);

    // Resume afterwards continues from that checkpoint to the end.
    const resumed: TrainEvent[] = [];
    expect(await session.train({}, null, (e) => resumed.push(e), { resume: true })).toMatchObject({ steps: 3, stopped: false });
    expect(resumed.filter((e) => e.type === 'step').map((e) => (e as { step: number }).step)).toEqual([2, 3]);
    session.unloadModel();
  });

  it('a run stopped inside a validation pass resumes with that pass, so its history misses no validation loss', async () => {
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), memoryRunStore());
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    const hp = { ...HP, eval_steps: 1 };
    const first = await session.train(hp, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      if (e.type === 'validating' && e.step === 1) session.stop();
    });
    expect(first).toMatchObject({ steps: 1, stopped: true });
    const saved = await session.savedRun();
    expect(saved!.history).toEqual([{ step: 1, loss: expect.any(Number), seconds: expect.any(Number) }]);

    const resumed: TrainEvent[] = [];
    await session.train({}, null, (e) => resumed.push(e), { resume: true });
    expect(resumed.filter((e) => e.type === 'eval').map((e) => (e as { step: number }).step)).toEqual([1, 2, 3]);
    // The pass after step 1 comes before step 2.
    expect(resumed.findIndex((e) => e.type === 'eval')).toBeLessThan(resumed.findIndex((e) => e.type === 'step'));
    const history = (await session.savedRun())!.history;
    expect(history.map((h) => [h.step, Number.isFinite(h.valLoss)])).toEqual([[1, true], [2, true], [3, true]]);
    session.unloadModel();
  });

  it('eval_on_start: the validation and sample before the first step are kept with the run, its resume and its README', async () => {
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), memoryRunStore());
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    const hp = { ...HP, eval_on_start: true, validation_prompt: 'def' };
    const events: TrainEvent[] = [];
    const first = await session.train(hp, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      events.push(e);
      if (e.type === 'step' && e.step === 1) session.stop();
    }, { sampleMaxTokens: 3 });
    expect(first).toMatchObject({ steps: 1, stopped: true, finalValLoss: null });
    // Before the first step: the pass, its loss and its sample, in that order, then the step.
    const order = events.filter((e) => e.type === 'eval' || e.type === 'sample' || e.type === 'step').map((e) => `${e.type} ${(e as { step: number }).step}`);
    expect(order).toEqual(['eval 0', 'sample 0', 'step 1']);
    const evalBefore = events.find((e) => e.type === 'eval') as { valLoss: number };
    const sampleBefore = events.find((e) => e.type === 'sample') as { text: string };
    expect(first.baselineValLoss).toBe(evalBefore.valLoss);
    expect(events.some((e) => e.type === 'status' && e.text === 'writing a sample for the validation prompt before training…')).toBe(true);
    // Kept with the checkpoint after step 1, beside the history (which holds steps only).
    const saved = (await session.savedRun())!;
    expect(saved.baseline).toEqual({ valLoss: evalBefore.valLoss, sample: sampleBefore.text });
    expect(saved.history.map((h) => h.step)).toEqual([1]);

    // The resume makes no second pass before training, and reports the one it read.
    const resumed: TrainEvent[] = [];
    const second = await session.train({}, null, (e) => resumed.push(e), { resume: true, sampleMaxTokens: 3 });
    expect(resumed.filter((e) => e.type === 'eval').map((e) => (e as { step: number }).step)).toEqual([3]);
    expect(second).toMatchObject({ steps: 3, stopped: false, baselineValLoss: evalBefore.valLoss });
    expect((await session.savedRun())!.baseline).toEqual({ valLoss: evalBefore.valLoss, sample: sampleBefore.text });
    // The README's card lists it first, and shows the sample before training.
    const summary = session.trainingSummary()!;
    expect(summary.baseline).toEqual({ valLoss: evalBefore.valLoss, sample: sampleBefore.text });
    session.unloadModel();
  });

  it('a run with its base products in int8 is saved as such, and its resume continues in int8 on the same numbers', async () => {
    const tokenizer = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    const hp = { ...HP, run_validation: false };
    const files = { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null };
    const whole = new FinetuneSession(ctx, tokenizer, null);
    await whole.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    const wholeLosses: number[] = [];
    await whole.train(hp, files, (e) => e.type === 'step' && wholeLosses.push(e.loss), { baseMatmul: 'int8-mlp' });
    expect(ctx.baseMatmul).toBe('fp32'); // the run's choice ends with the run
    whole.unloadModel();

    const session = new FinetuneSession(ctx, tokenizer, memoryRunStore());
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    const losses: number[] = [];
    await session.train(hp, files, (e) => {
      if (e.type === 'step') {
        losses.push(e.loss);
        session.stop();
      }
    }, { baseMatmul: 'int8-mlp' });
    expect((await session.savedRun())!.baseMatmul).toBe('int8-mlp');
    // Resumed with nothing asked (as `finetune train --resume` without --base-matmul): int8 again, said so.
    const resumed: TrainEvent[] = [];
    await session.train({}, null, (e) => resumed.push(e), { resume: true });
    expect(resumed.some((e) => e.type === 'status' && e.text === 'NF4 base products in int8 (int8-mlp), as the saved run was trained')).toBe(true);
    losses.push(...resumed.filter((e) => e.type === 'step').map((e) => (e as { loss: number }).loss));
    expect(losses).toEqual(wholeLosses);
    session.unloadModel();
  });

  it('told the GPU memory, a run keeps every layer instead of recomputing it, and says so', async () => {
    // That kept layers give the recomputing run's numbers bit for bit is test/gpu/kept-layers.test.ts's; here the choice.
    const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), null);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'nf4-double');
    session.gpuMemoryBytes = 64 * 1024 ** 3;
    const events: TrainEvent[] = [];
    const r = await session.train({ ...HP, run_validation: false }, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      events.push(e);
      if (e.type === 'step') session.stop();
    });
    expect(r).toMatchObject({ steps: 1, stopped: true });
    const notice = events.find((e) => e.type === 'status' && /^recomputation/.test(e.text));
    expect(notice).toMatchObject({ text: expect.stringMatching(/^recomputation: none: every layer keeps .*chosen for the GPU's 64\.0 GiB/) });
    // Before the first step: the runner is made with the choice.
    expect(events.indexOf(notice!)).toBeLessThan(events.findIndex((e) => e.type === 'step'));
    session.unloadModel();
  });

  it('finetune train writes a PEFT adapter that reads back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'finetune-train-'));
    writeFileSync(join(dir, 'rows.jsonl'), JSONL);
    // --keep-layers: the flag reaches the run (its status line says so).
    const args = ['bin/finetune.mjs', 'train', '--model', 'test/fixtures/tiny-mistral', '--data', join(dir, 'rows.jsonl'), '--out', join(dir, 'out'), '--keep-layers', '1', '--cache-dir', join(dir, 'cache')];
    for (const [k, v] of Object.entries(HP)) args.push(`--${k}`, String(v));
    const { stdout } = await promisify(execFile)('node', args, { timeout: 300_000 });
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events[0].type).toBe('model');
    expect(events.find((e) => e.type === 'status' && /^recomputation/.test(e.text))?.text).toMatch(/the last 1 of 2 layers keep their intermediates/);
    // A software adapter keeps the default kernels without measuring them (a run on a GPU measures: kernel-tuning.test.ts).
    expect(events.find((e) => e.type === 'kernels')).toMatchObject({ source: 'software', kernels: { gemm: 'basic', attention: 'rows' }, trials: [] });
    expect(events.filter((e) => e.type === 'step')).toHaveLength(3);
    expect(events.at(-1)).toMatchObject({ type: 'done', steps: 3 });
    const adapter = await readAdapter(nodeDirectory(join(dir, 'out', 'adapter')));
    expect(adapter.config.r).toBe(2);
    expect(adapter.config.targetModules).toEqual(['q_proj', 'v_proj']);
    expect(adapter.tensors[0].q_proj!.B.some((v) => v !== 0)).toBe(true); // trained: B left zero init
    const gguf = readGguf(new Uint8Array(readFileSync(join(dir, 'out', 'adapter', 'adapter.gguf'))));
    expect(gguf.kv.get('adapter.type')?.value).toBe('lora');
    expect(gguf.tensors.has('blk.1.attn_v.weight.lora_b')).toBe(true);
    expect(readFileSync(join(dir, 'out', 'adapter', 'README.md'), 'utf8')).toContain('llama');
  });
});
