// A resume trusts nothing it reads back from the store: a real run on tiny-mistral is stopped and saved, then its
// record, its state and its data are tampered with one way at a time. Each tampering is refused with a specific message (tampered
// hyperparameters before anything is allocated), and the genuine saved run still resumes to the end of its plan.
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { FinetuneError } from '../../src/core/errors.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import type { GpuContext } from '../../src/engine/gpu.ts';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.ts';
import { bytesSource } from '../../src/model/source.ts';
import { stateChecksum } from '../../src/run/saved-run-check.ts';
import { checkForgets, forgetSavedRunIn } from '../../src/run/saved-run.ts';
import { FinetuneSession, memoryRunStore, type RunStore, type TrainEvent } from '../../src/run/session.ts';
import { uniformSource } from '../../src/core/prng.ts';
import { createAdapter } from '../../src/model/lora-adapter.ts';
import { gpuContext } from './context.ts';

const ROWS = ['def add(a, b):\n    return a + b', 'def sub(a, b):\n    return a - b', 'x = [1, 2, 3]', 'print("hi")'];
const JSONL = ROWS.map((text) => JSON.stringify({ text })).join('\n');
const HP = {
  num_train_epochs: 1,
  train_batch_size: 1,
  micro_batch_size: 1,
  num_validation_samples: 1,
  run_validation: false,
  lora_rank: 2,
  lora_alpha: 4,
  learning_rate: 1e-3,
  max_seq_len: 16,
  save_steps: 1,
  peft_method: 'lora',
};
const RUN = 'run.json';
const STATE = 'state.safetensors';
const TRAIN = 'train.jsonl';

/** The state file rebuilt with one tensor's values or its metadata changed (a well-formed but wrong checkpoint). */
async function rewriteState(state: Uint8Array, change: { tensor?: string; value?: number; step?: string }): Promise<Uint8Array> {
  const f = await openSafetensors(bytesSource(state, 'state'));
  const tensors: TensorToWrite[] = [];
  for (const name of f.names()) {
    const data = new Float32Array((await f.read(name)).slice().buffer);
    if (name === change.tensor) data[0] = change.value!;
    tensors.push({ name, dtype: 'F32', shape: f.info(name).shape, data });
  }
  const meta = { ...(f.header.metadata ?? {}) };
  if (change.step !== undefined) meta.step = change.step;
  return writeSafetensors(tensors, meta);
}

describe('resuming a saved run checks it first', () => {
  let ctx: GpuContext;
  let session: FinetuneSession;
  let store: RunStore;
  let record: Record<string, unknown>;
  let state: Uint8Array;

  beforeAll(async () => {
    ctx = await gpuContext();
    store = memoryRunStore();
    session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), store);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'none');
    const first = await session.train(HP, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, (e) => {
      if (e.type === 'step' && e.step === 1) session.stop();
    });
    expect(first).toMatchObject({ steps: 1, stopped: true });
    // The record's JSON, without its check line: the tests below write changed records back as JSON alone (a record
    // from before the line, which is read as it is).
    record = JSON.parse(new TextDecoder().decode((await store.load(RUN))!).replace(/\ncrc32:[0-9a-f]{8}\n$/, '')) as Record<string, unknown>;
    state = (await store.load(STATE))!;
  }, 600_000); // one training step on a software GPU

  /** Stores a (tampered) record and state, tries to resume, and returns the refusal. */
  async function resumeWith(run: Record<string, unknown>, st: Uint8Array = state): Promise<FinetuneError> {
    await store.commit({ [RUN]: new TextEncoder().encode(JSON.stringify(run)), [STATE]: st });
    const e = await session.train({}, null, () => {}, { resume: true }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(FinetuneError);
    expect((e as FinetuneError).kind, (e as Error).message).toBe('bad-input');
    return e as FinetuneError;
  }

  it('the saved record carries the state checksum, the data checksum and the epoch', async () => {
    expect(record).toMatchObject({ step: 1, totalSteps: 4, epoch: 0, stateChecksum: await stateChecksum(state), trainChecksum: await stateChecksum(new TextEncoder().encode(JSONL)) });
    expect(record).not.toHaveProperty('validationChecksum'); // the run has no validation file
  });

  it('the saved record names the tokenizer; a resume with another one is refused naming both, one from before the field resumes with a note', async () => {
    const checksum = await stateChecksum(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    expect(record.tokenizer).toEqual({ checksum, name: 'tokenizer.model' });
    const other = { checksum: `sha256:${'0'.repeat(64)}`, name: 'other/tokenizer.model' };
    expect((await resumeWith({ ...record, tokenizer: other })).message).toBe(
      `the saved run was trained with the tokenizer other/tokenizer.model (${other.checksum}), and this resume has tokenizer.model (${checksum}): another tokenizer gives the run's data other token ids, so the run cannot continue with it. Load the run's tokenizer to resume it, or start a new run`,
    );
    const { tokenizer: _, ...older } = record;
    await store.commit({ [RUN]: new TextEncoder().encode(JSON.stringify(older)), [STATE]: state });
    const events: TrainEvent[] = [];
    await session.train({}, null, (e) => events.push(e), { resume: true, restoreOnly: true });
    expect(events).toContainEqual({ type: 'status', text: "the saved run's record does not say which tokenizer it was trained with (it was saved before runs recorded it): it continues with tokenizer.model, which must be the one it started with" });
  });

  it('refuses stored data that is not the data the run trained on (another run’s rows, as two tabs once left)', async () => {
    const genuine = (await store.load(TRAIN))!;
    // The same rows, same length, one letter changed: the plan is the same, only the checksum tells.
    const other = new TextEncoder().encode(JSONL.replace('add', 'ADD'));
    await store.commit({ [TRAIN]: other });
    expect((await resumeWith(record)).message).toMatch(/^the saved run cannot be resumed: its training data \(rows\.jsonl\) is not the data it was trained on \(checksum sha256:[0-9a-f]{64}, saved with the run sha256:[0-9a-f]{64}\)$/);
    await store.commit({ [TRAIN]: genuine });
  });

  it('refuses tampered hyperparameters (lora_rank 1e6) before anything is allocated', async () => {
    const before = ctx.ledger.snapshot();
    const e = await resumeWith({ ...record, hp: { ...(record.hp as object), lora_rank: 1e6 } });
    expect(e.message).toBe('the saved run cannot be resumed: its hyperparameters are not valid: lora_rank must be an integer from 1 to 256, got 1000000');
    const after = ctx.ledger.snapshot();
    expect(after.currentBytes).toBe(before.currentBytes);
    expect(after.peakBytes).toBe(before.peakBytes);
  });

  it('refuses a step beyond the plan, and a record whose plan no longer matches its data', async () => {
    expect((await resumeWith({ ...record, step: 7 })).message).toMatch(/its step 7 is beyond its plan of 4 steps/);
    expect((await resumeWith({ ...record, step: 4, epoch: 1 })).message).toMatch(/says epoch 2 at step 4, the plan puts that step in epoch 1/);
    expect((await resumeWith({ ...record, step: 5, totalSteps: 9 })).message).toMatch(/planned with 9 steps, but its data and hyperparameters now give 4/);
  });

  it('refuses state bytes that are not the ones saved with the record: the checkpoint is corrupt', async () => {
    const flipped = state.slice();
    flipped[flipped.length - 3] ^= 0x40;
    expect((await resumeWith(record, flipped)).message).toMatch(/^the checkpoint is corrupt: its checksum .* does not match the one saved with the run/);
  });

  it('refuses a well-formed state holding a NaN, or a step beyond the plan, even with a matching checksum, and keeps the adapter it had', async () => {
    // An adapter the session holds (imported here; a finished run's would be the same): a refused resume keeps it.
    const had = createAdapter(session.baseConfig, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'], random: uniformSource(5) });
    for (const layer of had.tensors) for (const pair of Object.values(layer)) pair?.B.fill(0.25);
    await session.useImportedAdapter(had);
    const nan = await rewriteState(state, { tensor: 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight.exp_avg', value: NaN });
    expect((await resumeWith({ ...record, stateChecksum: await stateChecksum(nan) }, nan)).message).toMatch(/the checkpoint is corrupt: .*q_proj\.lora_B\.weight\.exp_avg holds NaN at index 0/);
    const far = await rewriteState(state, { step: '40' });
    expect((await resumeWith({ ...record, stateChecksum: await stateChecksum(far) }, far)).message).toMatch(/the checkpoint is at step 40, beyond the plan's 4 steps/);
    // The refusals came after the state was read: the adapter the session held is still there.
    const kept = await session.adapterNow();
    expect(kept.tensors[0].q_proj!.B).toEqual(had.tensors[0].q_proj!.B);
    expect(kept.tensors[1].v_proj!.A).toEqual(had.tensors[1].v_proj!.A);
  });

  it("refuses another model loaded under the run's name (local files are named by their file names alone)", async () => {
    // The record lists the files the weights came from, as they were loaded.
    const names = ['config.json', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
    const byName = (files: { name: string }[]) => [...files].sort((a, b) => a.name.localeCompare(b.name));
    expect(byName(record.modelFiles as { name: string }[])).toEqual(names.map((name) => ({ name, size: statSync(`test/fixtures/tiny-mistral/${name}`).size, version: expect.stringMatching(/^file \d+ [\d.]+ sampled-sha256:[0-9a-f]{64}$/), fingerprint: expect.stringMatching(/^sampled-sha256:[0-9a-f]{64}$/) })));
    // The same weights with a config.json of other bytes (one more key): another model as far as the run can tell.
    const dir = mkdtempSync(join(tmpdir(), 'other-model-'));
    for (const f of readdirSync('test/fixtures/tiny-mistral')) copyFileSync(join('test/fixtures/tiny-mistral', f), join(dir, f));
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, note: 'another model' }));
    await session.loadModel(nodeDirectory(dir), 'tiny-mistral', 'none');
    await store.commit({ [RUN]: new TextEncoder().encode(JSON.stringify(record)), [STATE]: state });
    const e = await session.train({}, null, () => {}, { resume: true }).then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toMatch(/^the loaded model "tiny-mistral" is not the one the saved run was trained on: its files are config\.json \([\d,]+ bytes\), .*; the run's were config\.json/);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'none');
  });

  it('refuses a model of the same file names and sizes with other weights (another fine-tune in a folder of that name)', async () => {
    // One weight of the last shard changed, near its end: names, sizes and config.json are the run's.
    const dir = mkdtempSync(join(tmpdir(), 'other-weights-'));
    for (const f of readdirSync('test/fixtures/tiny-mistral')) copyFileSync(join('test/fixtures/tiny-mistral', f), join(dir, f));
    const shard = join(dir, 'model-00003-of-00003.safetensors');
    const bytes = readFileSync(shard);
    bytes[bytes.length - 2] ^= 0x01;
    writeFileSync(shard, bytes);
    await session.loadModel(nodeDirectory(dir), 'tiny-mistral', 'none');
    await store.commit({ [RUN]: new TextEncoder().encode(JSON.stringify(record)), [STATE]: state });
    const e = await session.train({}, null, () => {}, { resume: true }).then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toBe(`the loaded model "tiny-mistral" is not the one the saved run was trained on: model-00003-of-00003.safetensors has the run's name and size but other contents (another model in a folder of the same name?). Load the run's model to resume it`);
    await session.loadModel(nodeDirectory('test/fixtures/tiny-mistral'), 'tiny-mistral', 'none');
  });

  it('resumes the genuine saved run to the end of its plan', async () => {
    await store.commit({ [RUN]: new TextEncoder().encode(JSON.stringify(record)), [STATE]: state });
    const events: TrainEvent[] = [];
    const r = await session.train({}, null, (e) => events.push(e), { resume: true });
    expect(r).toMatchObject({ steps: 4, skipped: 0, stopped: false });
    expect(events.filter((e) => e.type === 'step').map((e) => (e as { step: number }).step)).toEqual([2, 3, 4]);
  });

  it('a damaged saved run (run.json {}) is not "no run": a new run is refused before replacing it, and Forget clears it', async () => {
    await store.commit({ [RUN]: new TextEncoder().encode('{}') });
    await expect(session.savedRun()).rejects.toThrow('the saved run is unreadable (run.json: its record holds no hyperparameters)');
    const e = await session.train(HP, { train: new Blob([JSONL]), trainName: 'rows.jsonl', validation: null, validationName: null }, () => {}).then(() => null, (x: unknown) => x as Error);
    expect(e?.message).toBe('the saved run is unreadable (run.json: its record holds no hyperparameters): a new run here would replace it at its first checkpoint; forget the saved run first to start a new one');
    expect(new TextDecoder().decode((await store.load(RUN))!)).toBe('{}');
    // As the page's worker forgets it: checked, under its run lock, against the damaged run its box showed.
    await checkForgets(store, { damaged: true });
    await forgetSavedRunIn(store);
    expect(await session.savedRun()).toBeNull();
    session.unloadModel();
  });
});
