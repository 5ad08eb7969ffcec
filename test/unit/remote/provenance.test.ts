// What an adapter imported from a Replicate training says of it in its README: the trainer, the training, and every
// hyperparameter as sent (defaults marked), never a URL (a file's URL on Replicate can carry a signature).
import type { Training } from 'replicate';
import { describe, expect, it } from 'vitest';
import { remoteTrainingSummary } from '../../../src/remote/provenance.ts';
import { remoteTrainingCardLines } from '../../../src/export/training-card.ts';
import { adapterReadme } from '../../../src/export/peft.ts';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import type { LoraAdapter } from '../../../src/model/lora-adapter.ts';

const SIGNED = 'https://api.replicate.com/v1/files/abc/download?expiry=1&owner=alice&signature=s3cr3t';

function training(input: Record<string, unknown>): Training {
  return {
    id: 'tr4in1ng',
    status: 'succeeded',
    model: 'replicate/mistral-7b-instruct-v0.2',
    version: 'v3rs10n',
    input,
    source: 'api',
    created_at: '2026-12-04T08:00:00Z',
    completed_at: '2026-12-04T08:21:40.5Z',
    metrics: { predict_time: 1299.6 },
    urls: { get: '', cancel: '' },
  } as unknown as Training;
}

describe('remoteTrainingSummary', () => {
  it('lists every Replicate input as sent or at its default, marks the changed ones, and leaves the data files out', () => {
    const s = remoteTrainingSummary(training({ train_data: SIGNED, validation_data: SIGNED, learning_rate: 2e-4, lora_rank: 16, num_train_epochs: 3, validation_prompt: 'Say | hi `now`' }));
    expect(s).toMatchObject({ id: 'tr4in1ng', trainer: 'replicate/mistral-7b-instruct-v0.2', version: 'v3rs10n', completedAt: '2026-12-04T08:21:40.5Z', seconds: 1299.6 });
    const byName = Object.fromEntries(s.inputs.map((i) => [i.name, i]));
    expect(byName.learning_rate).toEqual({ name: 'learning_rate', value: 2e-4, isDefault: false });
    expect(byName.lora_rank).toEqual({ name: 'lora_rank', value: 16, isDefault: false });
    // Sent at the default value, and not sent at all: both the default.
    expect(byName.num_train_epochs).toEqual({ name: 'num_train_epochs', value: 3, isDefault: true });
    expect(byName.train_batch_size).toEqual({ name: 'train_batch_size', value: defaultHyperparams().train_batch_size, isDefault: true });
    expect(byName.validation_prompt).toEqual({ name: 'validation_prompt', value: 'Say | hi `now`', isDefault: false });
    expect(byName.train_data).toBeUndefined();
    expect(byName.validation_data).toBeUndefined();
    // Only Replicate's inputs: none of our extras (a Replicate training has none).
    expect(byName.lr_scheduler).toBeUndefined();
    expect(JSON.stringify(s)).not.toContain('s3cr3t');
  });

  it('keeps the inputs of another trainer as they were, but never a URL, and shortens a long object', () => {
    const s = remoteTrainingSummary(training({ base_model_url: SIGNED, dataset_data: SIGNED, rank_pattern: { q: Array.from({ length: 100 }, (_, i) => i) }, flag: false }));
    const byName = Object.fromEntries(s.inputs.map((i) => [i.name, i.value]));
    expect(byName.base_model_url).toBe('(a URL, not written here)');
    expect(byName.dataset_data).toBeUndefined();
    expect(byName.flag).toBe(false);
    expect(String(byName.rank_pattern)).toMatch(/^\{"q":\[0,1,2,.*…$/);
    expect(String(byName.rank_pattern).length).toBe(201);
    const long = remoteTrainingSummary(training({ validation_prompt: 'x'.repeat(5000) })).inputs.find((i) => i.name === 'validation_prompt');
    expect(long?.value).toBe(`${'x'.repeat(1000)}…`);
    expect(long?.isDefault).toBe(false);
    expect(JSON.stringify(s)).not.toContain('s3cr3t');
  });

  it('says a run time that is no duration (negative, not finite, beyond a year) as unknown', () => {
    for (const odd of [-5, Number.POSITIVE_INFINITY, 1e300]) {
      const t = { ...training({}), metrics: { predict_time: odd } } as unknown as Training;
      expect(remoteTrainingSummary(t).seconds).toBeNull();
    }
  });

  it('says what it does not know as null (no model, version or metrics in the object)', () => {
    const t = { ...training({}), model: '', version: undefined, completed_at: undefined, metrics: undefined } as unknown as Training;
    expect(remoteTrainingSummary(t)).toMatchObject({ trainer: null, version: null, completedAt: null, seconds: null });
  });
});

describe('the README of an adapter from a Replicate training', () => {
  const summary = remoteTrainingSummary(training({ train_data: SIGNED, learning_rate: 2e-4, validation_prompt: 'Say | hi `now`' }));

  it('says where and how it was trained, with the inputs as a table whose user text cannot break it', () => {
    const lines = remoteTrainingCardLines(summary);
    expect(lines.slice(0, 3)).toEqual([
      '## Training',
      '',
      'Trained on Replicate by `replicate/mistral-7b-instruct-v0.2` (version `v3rs10n`) as training `tr4in1ng`, which ran 1300 s and finished `2026-12-04T08:21:40.5Z`; these files are its output, read back by finetune.',
    ]);
    expect(lines).toContain('| `learning_rate` * | `0.0002` |');
    expect(lines).toContain('| `num_train_epochs` | `3` |');
    expect(lines).toContain('| `validation_prompt` * | `` Say \\| hi `now` `` |');
    expect(lines.join('\n')).not.toContain('s3cr3t');
  });

  it('is the README\'s last section, and a run trained here takes its place', () => {
    const adapter = { config: { r: 8, loraAlpha: 16, targetModules: ['q_proj', 'v_proj'], baseModel: 'mistralai/Mistral-7B-Instruct-v0.2', useRslora: false, layersToTransform: null }, scaling: 2 } as unknown as LoraAdapter;
    const readme = adapterReadme(adapter, { training: { kind: 'remote', training: summary } });
    expect(readme).toContain('\n## Training\n\nTrained on Replicate by');
    expect(readme.indexOf('## Training')).toBeGreaterThan(readme.indexOf('## PEFT'));
    expect(adapterReadme(adapter)).not.toContain('## Training');
  });
});
