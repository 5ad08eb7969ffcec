// What a resume checks before it trusts a saved run (src/run/saved-run-check.ts), and the trainer's rule for which
// steps it may apply (src/run/trainer.ts nonFiniteReason). The same checks on a real saved run: test/gpu/resume-check.test.ts.
import { describe, expect, it } from 'vitest';
import { defaultHyperparams } from '../../../src/config/index.ts';
import { FinetuneError } from '../../../src/core/errors.ts';
import type { DataStats } from '../../../src/data/batches.ts';
import { checkDataChecksums, checkModelFiles, checkSavedRun, checkSavedRunAgainstPlan, checkStateChecksum, epochOfStep, stateChecksum } from '../../../src/run/saved-run-check.ts';
import type { SavedRun } from '../../../src/run/saved-run.ts';
import { nonFiniteReason } from '../../../src/run/trainer.ts';

/** A record as session.ts writes it, through JSON as the store holds it. */
function record(over: Record<string, unknown> = {}): Record<string, unknown> {
  const run = {
    modelSource: 'tiny-mistral',
    quantization: 'none',
    hp: { ...defaultHyperparams(), lora_rank: 4 },
    trainName: 'rows.jsonl',
    validationName: null,
    step: 3,
    totalSteps: 6,
    history: [{ step: 1, loss: 2.5 }, { step: 2, loss: 2.4 }, { step: 3, loss: 2.3, valLoss: 2.6 }],
    savedAt: '2026-11-29T10:00:00.000Z',
    epoch: 1,
  };
  return JSON.parse(JSON.stringify({ ...run, ...over })) as Record<string, unknown>;
}

function refusal(fn: () => unknown): FinetuneError {
  try {
    fn();
  } catch (e) {
    if (e instanceof FinetuneError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

const stats = { totalSteps: 6, stepsByEpoch: [2, 2, 2] } as DataStats;

describe('a saved run record, checked before a resume', () => {
  it('accepts the record a session writes, with its hyperparameters parsed by the schema', () => {
    const run = checkSavedRun(record());
    expect(run.hp.lora_rank).toBe(4);
    expect(run.hp).toEqual({ ...defaultHyperparams(), lora_rank: 4 });
    expect(run.step).toBe(3);
  });

  it('resumes a record from before padding_free padded, as that run trained, and keeps the choice of a newer one', () => {
    const { padding_free: _, ...before } = defaultHyperparams();
    expect(checkSavedRun(record({ hp: before })).hp.padding_free).toBe(false);
    expect(checkSavedRun(record()).hp.padding_free).toBe(true);
    expect(checkSavedRun(record({ hp: { ...defaultHyperparams(), padding_free: false } })).hp.padding_free).toBe(false);
  });

  it('refuses hyperparameters the schema refuses, naming the field: a tampered lora_rank of 1e6', () => {
    const e = refusal(() => checkSavedRun(record({ hp: { ...defaultHyperparams(), lora_rank: 1e6 } })));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe('the saved run cannot be resumed: its hyperparameters are not valid: lora_rank must be an integer from 1 to 256, got 1000000');
  });

  it('keeps the validation before training a record holds, and refuses one that is not a loss and a sample', () => {
    expect(checkSavedRun(record({ baseline: { valLoss: 2.9, sample: ' def f():' } })).baseline).toEqual({ valLoss: 2.9, sample: ' def f():' });
    expect(checkSavedRun(record({ baseline: { valLoss: 2.9 } })).baseline).toEqual({ valLoss: 2.9 });
    expect(checkSavedRun(record()).baseline).toBeUndefined();
    expect(refusal(() => checkSavedRun(record({ baseline: 2.9 }))).message).toMatch(/its validation before training is not a record/);
    expect(refusal(() => checkSavedRun(record({ baseline: { valLoss: '2.9' } }))).message).toMatch(/its validation loss before training "2\.9" is not a loss/);
    // JSON has no NaN: a record that held one reads null.
    expect(refusal(() => checkSavedRun(record({ baseline: { valLoss: Number.NaN } }))).message).toMatch(/its validation loss before training null is not a loss/);
    expect(refusal(() => checkSavedRun(record({ baseline: { valLoss: 2.9, sample: 7 } }))).message).toMatch(/its sample before training is not text/);
    expect(refusal(() => checkSavedRun(record({ baseline: { valLoss: 2.9, sample: 'x'.repeat(100_001) } }))).message).toMatch(/its sample before training has 100,001 characters/);
  });

  it('refuses a malformed record of the tokenizer, and accepts a well-formed one', () => {
    expect(refusal(() => checkSavedRun(record({ tokenizer: { checksum: 'md5:1', name: 'x' } }))).message).toBe('the saved run cannot be resumed: its record of the tokenizer is malformed');
    expect(refusal(() => checkSavedRun(record({ tokenizer: 'tokenizer.model' }))).message).toBe('the saved run cannot be resumed: its record of the tokenizer is malformed');
    const tokenizer = { checksum: `sha256:${'a'.repeat(64)}`, name: 'tok' };
    expect(checkSavedRun(record({ tokenizer })).tokenizer).toEqual(tokenizer);
  });

  it('quotes a huge value of a tampered field cut short, not whole (what the fuzz test found: messages of 1 MB)', () => {
    const huge = 'x'.repeat(1 << 20);
    for (const over of [{ kernels: huge }, { quantization: huge }, { baseMatmul: huge }, { hp: { ...defaultHyperparams(), lora_rank: huge } }]) {
      const e = refusal(() => checkSavedRun(record(over)));
      expect(e.message).toMatch(/^the saved run cannot be resumed: .*"x{1,200}"?…/);
      expect(e.message.length).toBeLessThan(500);
    }
    const keys = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i]));
    const many = refusal(() => checkSavedRun(record({ hp: { ...defaultHyperparams(), ...keys } })));
    expect(many.message).toMatch(/^the saved run cannot be resumed: its hyperparameters are not valid: unknown hyperparameter "k0"; .*unknown hyperparameter "k7"; … \(20000 problems\)$/);
  });

  it('refuses a use_rslora that is not a boolean', () => {
    expect(refusal(() => checkSavedRun(record({ useRslora: 'yes' }))).message).toBe('the saved run cannot be resumed: its use_rslora "yes" is not true or false');
    expect(checkSavedRun(record({ useRslora: true })).useRslora).toBe(true);
  });

  it('refuses a step beyond its own plan, a step that is not a count, a missing field, a record that is not an object', () => {
    expect(refusal(() => checkSavedRun(record({ step: 7 }))).message).toMatch(/its step 7 is beyond its plan of 6 steps/);
    expect(refusal(() => checkSavedRun(record({ step: -1 }))).message).toMatch(/its step -1 is not a step number/);
    expect(refusal(() => checkSavedRun(record({ step: 2.5 }))).message).toMatch(/its step 2.5 is not a step number/);
    expect(refusal(() => checkSavedRun(record({ totalSteps: 0 }))).message).toMatch(/planned step count 0 is not a positive integer/);
    expect(refusal(() => checkSavedRun(record({ quantization: 'int8' }))).message).toMatch(/quantization "int8" is not one of none, nf4, nf4-double/);
    expect(refusal(() => checkSavedRun(record({ hp: null }))).message).toMatch(/holds no hyperparameters/);
    expect(refusal(() => checkSavedRun(record({ history: [{ step: 9, loss: 1 }] }))).message).toMatch(/loss history/);
    expect(refusal(() => checkSavedRun(record({ history: [{ step: 1, loss: 1, seconds: -3 }] }))).message).toMatch(/training time -3 that is not a duration/);
    expect(refusal(() => checkSavedRun(record({ history: [{ step: 1, loss: 1, seconds: '12' }] }))).message).toMatch(/training time "12"/);
    expect(checkSavedRun(record({ history: [{ step: 1, loss: 1, seconds: 12.5 }] })).history[0].seconds).toBe(12.5);
    // A validation_prompt sample kept with its step: text, and no longer than a sample can be.
    expect(checkSavedRun(record({ history: [{ step: 1, loss: 1, sample: ' f(x)' }] })).history[0].sample).toBe(' f(x)');
    expect(refusal(() => checkSavedRun(record({ history: [{ step: 1, loss: 1, sample: 7 }] }))).message).toMatch(/loss history holds a sample that is not text/);
    expect(refusal(() => checkSavedRun(record({ history: [{ step: 1, loss: 1, sample: 'x'.repeat(100_001) }] }))).message).toMatch(/loss history holds a sample of 100,001 characters/);
    expect(refusal(() => checkSavedRun(record({ stateChecksum: 'md5:abc' }))).message).toMatch(/checksum is malformed/);
    expect(refusal(() => checkSavedRun(record({ trainChecksum: 7 }))).message).toMatch(/its training data checksum is malformed/);
    expect(refusal(() => checkSavedRun(record({ validationChecksum: 'sha256:xyz' }))).message).toMatch(/its validation data checksum is malformed/);
    expect(refusal(() => checkSavedRun([])).message).toMatch(/not a JSON object/);
  });

  it('keeps the kernels and base products a run was trained with, and refuses those this engine does not have', () => {
    expect(checkSavedRun(record({ kernels: { gemm: 'tiled', attention: 'tiled' } })).kernels).toEqual({ gemm: 'tiled', attention: 'tiled' });
    expect(checkSavedRun(record()).kernels).toBeUndefined();
    expect(refusal(() => checkSavedRun(record({ kernels: { gemm: 'cublas', attention: 'rows' } }))).message).toMatch(/its kernels .* are not kernels this engine has/);
    expect(checkSavedRun(record({ baseMatmul: 'int8-mlp' })).baseMatmul).toBe('int8-mlp');
    expect(refusal(() => checkSavedRun(record({ baseMatmul: 'int4' }))).message).toMatch(/its base products "int4" are not one of fp32, int8, int8-mlp/);
  });

  it('checks the record against the plan its data gives now: the step count, a step within it, the epoch', () => {
    expect(() => checkSavedRunAgainstPlan(checkSavedRun(record()), stats)).not.toThrow();
    expect(refusal(() => checkSavedRunAgainstPlan(checkSavedRun(record()), { ...stats, totalSteps: 9, stepsByEpoch: [3, 3, 3] })).message).toMatch(
      /planned with 6 steps, but its data and hyperparameters now give 9/,
    );
    // A finished run is within its plan: resuming it restores its adapter and trains nothing.
    expect(() => checkSavedRunAgainstPlan(checkSavedRun(record({ step: 6, epoch: 2 })), stats)).not.toThrow();
    expect(refusal(() => checkSavedRunAgainstPlan(checkSavedRun(record({ epoch: 0 })), stats)).message).toMatch(/says epoch 1 at step 3, the plan puts that step in epoch 2/);
  });

  it("checks the loaded model's files against the run's: other names or sizes refused, a Hub file's new version said", () => {
    const files = [
      { name: 'config.json', size: 571, version: 'http "abc"' },
      { name: 'model.safetensors', size: 39_636_520, version: 'http "def"' },
    ];
    const run = checkSavedRun(record({ modelSource: 'owner/model', modelFiles: files }));
    expect(checkModelFiles(run, files)).toBeNull();
    // A record from before the field: nothing to compare.
    expect(checkModelFiles(checkSavedRun(record()), files)).toBeNull();
    // Another single-file model under the same name ("local files (config.json, model.safetensors)", say).
    const other = refusal(() => checkModelFiles(run, [files[0], { ...files[1], size: 39_636_528 }]));
    expect(other.message).toBe(
      'the loaded model "owner/model" is not the one the saved run was trained on: its files are config.json (571 bytes), model.safetensors (39,636,528 bytes); the run\'s were config.json (571 bytes), model.safetensors (39,636,520 bytes). Load the run\'s model to resume it',
    );
    expect(refusal(() => checkModelFiles(run, [files[1]])).message).toMatch(/its files are model\.safetensors \(39,636,520 bytes\); the run's were config\.json/);
    // The same sizes, another ETag: the Hub's file changed since; said, not refused.
    expect(checkModelFiles(run, [files[0], { ...files[1], version: 'http "xyz"' }])).toBe(
      "model.safetensors of owner/model changed on the server since the run's last checkpoint (the same size, another version): the run continues on the files as they are now",
    );
    // A run saved before the Hub's X-Linked-Etag was read recorded the CDN's ETag: the file as the server versioned it
    // then (its former version) is the same file, not a changed one; another former version is a change.
    const sha = [files[0], { ...files[1], version: 'http "sha256-of-it"' }];
    expect(checkModelFiles(run, sha, [files[0], files[1]])).toBeNull();
    expect(checkModelFiles(run, sha, [files[0], { ...files[1], version: 'http "other-cdn-etag"' }])).toMatch(/^model\.safetensors of owner\/model changed on the server/);
    // A local file's version is its mtime, which every copy changes: not compared.
    const local = checkSavedRun(record({ modelFiles: [{ name: 'model.safetensors', size: 10, version: 'file 10 1700000000000' }] }));
    expect(checkModelFiles(local, [{ name: 'model.safetensors', size: 10, version: 'file 10 1800000000000' }])).toBeNull();
    // A malformed list is refused when the record is read.
    expect(refusal(() => checkSavedRun(record({ modelFiles: [{ name: 'x', size: -1, version: null }] }))).message).toBe("the saved run cannot be resumed: its list of the model's files is malformed");
    expect(refusal(() => checkSavedRun(record({ modelFiles: 'config.json' }))).message).toMatch(/list of the model's files is malformed/);
  });

  it('puts a step count in the epoch of its last step', () => {
    expect([0, 1, 2, 3, 4, 5, 6].map((s) => epochOfStep([2, 2, 2], s))).toEqual([0, 0, 0, 1, 1, 2, 2]);
  });

  it('refuses data that is not the bytes the run trained on, and takes a record from before the data checksums', async () => {
    const train = new TextEncoder().encode('{"text": "a"}\n');
    const validation = new TextEncoder().encode('{"text": "b"}\n');
    const run = checkSavedRun(record({ validationName: 'val.jsonl', trainChecksum: await stateChecksum(train), validationChecksum: await stateChecksum(validation) })) as SavedRun;
    await expect(checkDataChecksums(run, train, validation)).resolves.toBeUndefined();
    await expect(checkDataChecksums(run, validation, validation)).rejects.toThrow(/^the saved run cannot be resumed: its training data \(rows\.jsonl\) is not the data it was trained on/);
    await expect(checkDataChecksums(run, train, train)).rejects.toThrow(/its validation data \(val\.jsonl\) is not the data/);
    await expect(checkDataChecksums(run, train, null)).rejects.toThrow(/its validation data \(val\.jsonl\) is not the data it was trained on \(checksum none,/);
    await expect(checkDataChecksums(checkSavedRun(record()) as SavedRun, validation, null)).resolves.toBeUndefined();
  });

  it('refuses state bytes whose SHA-256 differs from the one saved with the record, and says the checkpoint is corrupt', async () => {
    // FIPS 180-2's first SHA-256 example.
    expect(await stateChecksum(new TextEncoder().encode('abc'))).toBe('sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const state = new Uint8Array([1, 2, 3, 4]);
    const run = checkSavedRun(record({ stateChecksum: await stateChecksum(state) })) as SavedRun;
    await expect(checkStateChecksum(run, state)).resolves.toBeUndefined();
    const flipped = state.slice();
    flipped[2] ^= 1;
    await expect(checkStateChecksum(run, flipped)).rejects.toThrow(/the checkpoint is corrupt: its checksum \(sha256:[0-9a-f]{64}\) does not match the one saved with the run/);
  });
});

describe('which optimizer steps the trainer applies', () => {
  it('only those whose loss and gradient norm are both finite numbers (a null norm is not)', () => {
    expect(nonFiniteReason(2.5, 0.7)).toBeNull();
    expect(nonFiniteReason(NaN, 0.7)).toBe('the loss is NaN');
    expect(nonFiniteReason(Infinity, 0.7)).toBe('the loss is Infinity');
    expect(nonFiniteReason(2.5, NaN)).toBe('the gradient norm is NaN');
    expect(nonFiniteReason(2.5, -Infinity)).toBe('the gradient norm is -Infinity');
    expect(nonFiniteReason(2.5, null)).toBe('the gradient norm is null');
  });
});
