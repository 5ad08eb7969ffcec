import { describe, expect, it } from 'vitest';
import { FIELDS, parseHyperparams } from '../../../src/config/hyperparams.ts';
import { REPLICATE_INPUT_NAMES, toReplicateInput } from '../../../src/config/replicate.ts';
import { isFinetuneError } from '../../../src/core/errors.ts';

const URL = 'https://api.replicate.com/v1/files/abc/download';

function refusals(input: Record<string, unknown>): string[] {
  try {
    toReplicateInput(parseHyperparams(input), { train_data: URL });
  } catch (e) {
    expect(isFinetuneError(e, 'bad-input')).toBe(true);
    return (e as { details: { refusals: string[] } }).details.refusals;
  }
  return [];
}

describe('the hyperparameters as a Replicate training input', () => {
  it("sends exactly Replicate's fields with our values, and notes each extra left out", () => {
    const hp = parseHyperparams({ lora_rank: 16, learning_rate: '2e-4', pack_sequences: true, peft_method: 'qlora', seed: 7, validation_prompt: 'def add(' });
    const { input, notes } = toReplicateInput(hp, { train_data: URL });
    expect(input).toEqual({
      train_data: URL,
      num_train_epochs: 3,
      train_batch_size: 4,
      micro_batch_size: 4,
      num_validation_samples: 50,
      validation_batch_size: 1,
      run_validation: true,
      validation_prompt: 'def add(',
      learning_rate: 2e-4,
      pack_sequences: true,
      wrap_packed_sequences: false,
      chunk_size: 2048,
      peft_method: 'qlora',
      seed: 7,
      lora_rank: 16,
      lora_alpha: 16,
      lora_dropout: 0.05,
    });
    for (const k of Object.keys(input)) expect(REPLICATE_INPUT_NAMES).toContain(k);
    const extras = FIELDS.filter((f) => f.group === 'extra').map((f) => f.name);
    expect(notes).toHaveLength(extras.length);
    extras.forEach((name, i) => expect(notes[i].startsWith(name)).toBe(true));
    expect(notes[0]).toBe("layout replicate is how Replicate's trainer lays rows out anyway; not sent");
  });

  it('sends validation_data when given, as a URL', () => {
    const { input } = toReplicateInput(parseHyperparams({ validation_data: 'https://x.test/val.jsonl' }), { train_data: URL });
    expect(input.validation_data).toBe('https://x.test/val.jsonl');
    expect(input).not.toHaveProperty('validation_prompt');
  });

  it('refuses extras Replicate cannot honour, saying why and what to do', () => {
    expect(refusals({ layout: 'instruct' })).toEqual([
      "layout instruct: Replicate's trainer uses the replicate layout (loss on every token, no [INST] tags added). Write the [INST] tags into your prompts and use layout replicate, or train locally.",
    ]);
    expect(refusals({ lora_target_modules: 'all-linear' })[0]).toMatch(/q_proj and v_proj only/);
    expect(refusals({ lora_target_modules: 'v_proj,q_proj' })).toEqual([]);
    expect(refusals({ max_seq_len: 2048 })[0]).toMatch(/cuts rows at 4096/);
    expect(refusals({ lr_scheduler: 'cosine' })[0]).toMatch(/decays the learning rate linearly/);
    expect(refusals({ warmup_ratio: 0.1 })[0]).toMatch(/3 %/);
    expect(refusals({ weight_decay: 0.01 })[0]).toMatch(/no weight decay/);
    expect(refusals({ max_grad_norm: 0.5 })[0]).toMatch(/no gradient clipping input/);
    expect(refusals({ eval_steps: 10 })[0]).toMatch(/once per epoch/);
    expect(refusals({ peft_method: 'qlora', quantization: 'nf4' })[0]).toMatch(/stores the base as nf4-double/);
    expect(refusals({ save_steps: 10 })).toEqual([]);
    expect(refusals({ save_every_minutes: 0 })).toEqual([]);
    expect(refusals({ layout: 'instruct', max_seq_len: 100 })).toHaveLength(2);
  });

  it('needs the data as URLs', () => {
    const hp = parseHyperparams({ train_data: 'data/train.jsonl' });
    expect(() => toReplicateInput(hp)).toThrow(/train_data "data\/train\.jsonl" is not a URL/);
    expect(() => toReplicateInput(parseHyperparams({}))).toThrow(/needs the training data as a URL/);
    expect(toReplicateInput(parseHyperparams({ train_data: URL })).input.train_data).toBe(URL);
    expect(() => toReplicateInput(parseHyperparams({ validation_data: 'v.jsonl' }), { train_data: URL })).toThrow(/validation_data "v\.jsonl" is not a URL/);
  });
});

describe('time-based checkpoints on Replicate', () => {
  it('strips save_every_minutes with a note, whatever its value', () => {
    for (const v of [0, 10, 2.5]) {
      const { input, notes } = toReplicateInput(parseHyperparams({ save_every_minutes: v }), { train_data: URL });
      expect(input).not.toHaveProperty('save_every_minutes');
      expect(notes).toContain("save_every_minutes: Replicate keeps its own checkpoints and returns only the final adapter; not sent");
    }
  });
});

describe('padding-free batches on Replicate', () => {
  it('strips padding_free with a note either way: a layout of the local GPU, not a setting of what is trained', () => {
    for (const v of [true, false]) {
      const { input, notes } = toReplicateInput(parseHyperparams({ padding_free: v }), { train_data: URL });
      expect(input).not.toHaveProperty('padding_free');
      expect(notes).toContain(`padding_free ${v}: how this GPU lays out its batches, not what is trained (Replicate's trainer pads its rows); not sent`);
    }
  });
});

describe('the validation before training on Replicate', () => {
  it('strips eval_on_start with a note either way: it changes no weight, and Replicate validates after its epochs only', () => {
    for (const v of [true, false]) {
      const { input, notes } = toReplicateInput(parseHyperparams({ eval_on_start: v }), { train_data: URL });
      expect(input).not.toHaveProperty('eval_on_start');
      expect(notes).toContain(`eval_on_start ${v}: a validation before training changes no weight, and Replicate's trainer validates after its epochs only; not sent`);
    }
  });
});
