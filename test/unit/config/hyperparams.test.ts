import { describe, expect, it } from 'vitest';
import {
  FIELDS,
  defaultHyperparams,
  describeRule,
  nonDefault,
  parseHyperparams,
  parseTargetModules,
  safeParseHyperparams,
  targetModules,
} from '../../../src/config/hyperparams.ts';
import { isFinetuneError } from '../../../src/core/errors.ts';

function errors(input: Record<string, unknown>): string[] {
  const r = safeParseHyperparams(input);
  return r.ok ? [] : r.errors;
}

describe('the one hyperparameter schema', () => {
  it("has Replicate's training inputs with Replicate's names and defaults (docs/replicate-trainer.md)", () => {
    const replicate = Object.fromEntries(FIELDS.filter((f) => f.group === 'replicate').map((f) => [f.name, f.default]));
    expect(replicate).toEqual({
      train_data: undefined,
      num_train_epochs: 3,
      train_batch_size: 4,
      micro_batch_size: 4,
      num_validation_samples: 50,
      validation_data: undefined,
      validation_batch_size: 1,
      run_validation: true,
      validation_prompt: undefined,
      learning_rate: 1e-4,
      pack_sequences: false,
      wrap_packed_sequences: false,
      chunk_size: 2048,
      peft_method: 'lora',
      seed: 42,
      lora_rank: 8,
      lora_alpha: 16,
      lora_dropout: 0.05,
    });
    expect(FIELDS.find((f) => f.name === 'peft_method')).toMatchObject({ choices: ['lora', 'qlora'] });
  });

  it('has our extras with their defaults', () => {
    const extra = Object.fromEntries(FIELDS.filter((f) => f.group === 'extra').map((f) => [f.name, f.default]));
    expect(extra).toEqual({
      layout: 'replicate',
      lora_target_modules: 'q_proj,v_proj',
      padding_free: true,
      max_seq_len: 4096,
      lr_scheduler: 'linear',
      warmup_ratio: 0.03,
      weight_decay: 0,
      max_grad_norm: 1.0,
      max_steps: 0,
      eval_steps: 0,
      eval_on_start: false,
      save_steps: 0,
      save_every_minutes: 10,
      quantization: 'none',
    });
    expect(FIELDS.find((f) => f.name === 'lr_scheduler')).toMatchObject({ choices: ['constant', 'linear', 'cosine'] });
    expect(FIELDS.find((f) => f.name === 'quantization')).toMatchObject({ choices: ['nf4', 'nf4-double', 'none'] });
  });

  it('gives every field a label, help text, a type and (for numbers) a range the form can use', () => {
    for (const f of FIELDS) {
      expect(f.label.length, f.name).toBeGreaterThan(0);
      expect(f.help.length, f.name).toBeGreaterThan(10);
      expect(['replicate', 'extra']).toContain(f.group);
      if (f.type === 'int' || f.type === 'float') {
        expect(Number.isFinite(f.min)).toBe(true);
        expect(f.default).toBeGreaterThanOrEqual(f.min);
        if ('max' in f && f.max !== undefined) expect(f.default).toBeLessThanOrEqual(f.max);
      }
    }
  });

  it('fills every default', () => {
    const d = defaultHyperparams();
    for (const f of FIELDS) if (f.default !== undefined) expect(d[f.name], f.name).toBe(f.default);
    expect(d.train_data).toBeUndefined();
  });

  it('explains out-of-range values the way a person reads them', () => {
    expect(errors({ lora_rank: 0 })).toEqual(['lora_rank must be an integer from 1 to 256, got 0']);
    expect(errors({ lora_rank: 257 })).toEqual(['lora_rank must be an integer from 1 to 256, got 257']);
    expect(errors({ lora_rank: 2.5 })).toEqual(['lora_rank must be an integer from 1 to 256, got 2.5']);
    // Too large and past 2^53 at once: one message, not the same one twice.
    expect(errors({ max_seq_len: '99999999999999999999' })).toEqual(['max_seq_len must be an integer from 1 to 32768, got "99999999999999999999"']);
    expect(errors({ lora_rank: 'eight' })).toEqual(['lora_rank must be an integer from 1 to 256, got "eight"']);
    expect(errors({ num_train_epochs: 0 })).toEqual(['num_train_epochs must be an integer of at least 1, got 0']);
    expect(errors({ learning_rate: -1e-4 })).toEqual(['learning_rate must be a number greater than 0, got -0.0001']);
    expect(errors({ lora_dropout: 1.5 })).toEqual(['lora_dropout must be a number of at least 0 and below 1, got 1.5']);
    // A dropout of 1 drops every adapter input: nothing would train (and the kept inputs' scale 1 / (1 − p) is infinite).
    expect(errors({ lora_dropout: 1 })).toEqual(['lora_dropout must be a number of at least 0 and below 1, got 1']);
    expect(errors({ lora_dropout: 0.99 })).toEqual([]);
    expect(errors({ warmup_ratio: 0.6 })).toEqual(['warmup_ratio must be a number from 0 to 0.5, got 0.6']);
    expect(errors({ run_validation: 'maybe' })).toEqual(['run_validation must be true or false, got "maybe"']);
    expect(errors({ peft_method: 'full' })).toEqual(['peft_method must be one of lora, qlora, got "full"']);
    expect(errors({ layout: 3 })).toEqual(['layout must be one of replicate, instruct, got 3']);
    expect(errors({ validation_prompt: 5 })).toEqual(['validation_prompt must be a string, got 5']);
    expect(errors({ seed: 1.5 })).toEqual(['seed must be an integer from -(2^53 - 1) to 2^53 - 1, got 1.5']);
    expect(errors({ max_seq_len: null })).toEqual(['max_seq_len must be an integer from 1 to 32768, got null']);
  });

  it('says the range of a seed typed beyond 2^53 - 1 and echoes the text as typed, not the number Number() rounds it to', () => {
    const rule = 'seed must be an integer from -(2^53 - 1) to 2^53 - 1';
    expect(errors({ seed: '9007199254740993' })).toEqual([`${rule}, got "9007199254740993"`]);
    expect(errors({ seed: '99999999999999999999' })).toEqual([`${rule}, got "99999999999999999999"`]);
    expect(errors({ seed: '-9007199254740992' })).toEqual([`${rule}, got "-9007199254740992"`]);
    // A fraction typed in the form is echoed as typed too.
    expect(errors({ seed: '1.5' })).toEqual([`${rule}, got "1.5"`]);
    // The bounds themselves are whole numbers Number() reads exactly: accepted.
    expect(safeParseHyperparams({ seed: '9007199254740991' })).toMatchObject({ ok: true, value: { seed: Number.MAX_SAFE_INTEGER } });
    expect(safeParseHyperparams({ seed: '-9007199254740991' })).toMatchObject({ ok: true, value: { seed: Number.MIN_SAFE_INTEGER } });
  });

  it('echoes a number typed beyond what a double holds, and says so, not the 0 or Infinity Number() makes of it', () => {
    // Number('1e-400') is 0: "got 0" named a value nobody typed, and weight_decay took it as 0 without a word.
    expect(errors({ learning_rate: '1e-400' })).toEqual(['learning_rate must be a number greater than 0, got "1e-400", which is too small to hold (it rounds to 0)']);
    expect(errors({ weight_decay: '-0.5e-400' })).toEqual(['weight_decay must be a number from 0 to 1, got "-0.5e-400", which is too small to hold (it rounds to 0)']);
    // Number('1e400') is Infinity: "got Infinity".
    expect(errors({ max_grad_norm: '1e400' })).toEqual(['max_grad_norm must be a number of at least 0, got "1e400", which is too large to hold (it rounds to infinity)']);
    // A zero typed as one is 0, and the smallest numbers a double holds are read.
    expect(safeParseHyperparams({ weight_decay: '0e-400', max_grad_norm: '0.000' })).toMatchObject({ ok: true, value: { weight_decay: 0, max_grad_norm: 0 } });
    expect(safeParseHyperparams({ learning_rate: '5e-324' })).toMatchObject({ ok: true, value: { learning_rate: 5e-324 } });
  });

  it('checks every numeric bound of every field', () => {
    for (const f of FIELDS) {
      if (f.type !== 'int' && f.type !== 'float') continue;
      if (f.min > Number.MIN_SAFE_INTEGER) expect(errors({ [f.name]: f.min - 1 })).toEqual([`${f.name} must be ${describeRule(f)}, got ${f.min - 1}`]);
      if ('max' in f && f.max !== undefined && f.max < Number.MAX_SAFE_INTEGER) expect(errors({ [f.name]: f.max + 1 })).toHaveLength(1);
      if ('exclusiveMax' in f && f.exclusiveMax) expect(errors({ [f.name]: f.max })).toEqual([`${f.name} must be ${describeRule(f)}, got ${f.max}`]);
      expect(errors({ [f.name]: f.default })).toEqual([]);
    }
  });

  it('reports every problem at once, and unknown names with a suggestion', () => {
    expect(errors({ lora_rank: 0, lora_alpha: 0, lora_rnk: 8, learningrate: 1 })).toEqual([
      'lora_rank must be an integer from 1 to 256, got 0',
      'lora_alpha must be an integer of at least 1, got 0',
      'unknown hyperparameter "lora_rnk" (did you mean lora_rank?)',
      'unknown hyperparameter "learningrate" (did you mean learning_rate?)',
    ]);
    expect(errors({ banana: 1 })).toEqual(['unknown hyperparameter "banana"']);
  });

  it('accepts strings from flags and form inputs for numbers and booleans', () => {
    const hp = parseHyperparams({ learning_rate: '2e-4', lora_rank: '16', pack_sequences: 'true', run_validation: 'false', train_data: 'x.jsonl', validation_prompt: '' });
    expect([hp.learning_rate, hp.lora_rank, hp.pack_sequences, hp.run_validation, hp.train_data, hp.validation_prompt]).toEqual([2e-4, 16, true, false, 'x.jsonl', undefined]);
    expect(errors({ learning_rate: '' })).toEqual(['learning_rate must be a number greater than 0, got ""']);
    expect(errors({ learning_rate: '1e-4x' })).toHaveLength(1);
  });

  it('needs train_batch_size to be a multiple of micro_batch_size', () => {
    expect(errors({ train_batch_size: 8, micro_batch_size: 2 })).toEqual([]);
    expect(errors({ train_batch_size: 6, micro_batch_size: 4 })).toEqual([
      'train_batch_size (6) must be a multiple of micro_batch_size (4): each optimizer step accumulates train_batch_size / micro_batch_size micro-batches',
    ]);
  });

  it('derives quantization from peft_method, and refuses a contradiction', () => {
    expect(parseHyperparams({}).quantization).toBe('none');
    expect(parseHyperparams({ peft_method: 'qlora' }).quantization).toBe('nf4-double');
    expect(parseHyperparams({ peft_method: 'qlora', quantization: 'nf4' }).quantization).toBe('nf4');
    expect(errors({ peft_method: 'qlora', quantization: 'none' })).toEqual(['peft_method qlora needs a quantized base: quantization nf4 or nf4-double (or leave quantization unset)']);
    expect(errors({ quantization: 'nf4-double' })).toEqual(['quantization nf4-double is QLoRA: set peft_method qlora (or leave quantization unset)']);
  });

  it('reads lora_target_modules as a list or the all-linear preset', () => {
    expect(parseTargetModules('q_proj,v_proj')).toEqual(['q_proj', 'v_proj']);
    expect(parseTargetModules(' v_proj , q_proj ')).toEqual(['q_proj', 'v_proj']);
    expect(parseTargetModules('all-linear')).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(targetModules(parseHyperparams({ lora_target_modules: 'down_proj,gate_proj' }))).toEqual(['gate_proj', 'down_proj']);
    expect(errors({ lora_target_modules: 'q_proj,qproj' })).toEqual([
      'lora_target_modules: unknown module "qproj"; expected a comma-separated list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or "all-linear"',
    ]);
    expect(errors({ lora_target_modules: 'q_proj,,v_proj' })[0]).toMatch(/empty name/);
    // An emptied field is a mistake, not the default: `--lora_target_modules ''` trained q and v without a word.
    for (const empty of ['', '  ']) {
      expect(errors({ lora_target_modules: empty })).toEqual([
        'lora_target_modules is empty; expected a comma-separated list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or "all-linear"',
      ]);
    }
    expect(errors({ lora_target_modules: 'q_proj,q_proj' })).toEqual(['lora_target_modules names q_proj twice']);
  });

  it('throws bad-input listing every problem', () => {
    try {
      parseHyperparams({ lora_rank: 0, seed: 'x' });
      expect.unreachable();
    } catch (e) {
      expect(isFinetuneError(e, 'bad-input')).toBe(true);
      expect((e as Error).message).toBe('seed must be an integer from -(2^53 - 1) to 2^53 - 1, got "x"; lora_rank must be an integer from 1 to 256, got 0');
    }
  });

  it('lists only what differs from the defaults', () => {
    expect(nonDefault(defaultHyperparams())).toEqual({});
    expect(nonDefault(parseHyperparams({ peft_method: 'qlora', lora_rank: 16 }))).toEqual({ peft_method: 'qlora', lora_rank: 16 });
    expect(nonDefault(parseHyperparams({ peft_method: 'qlora', quantization: 'nf4' }))).toEqual({ peft_method: 'qlora', quantization: 'nf4' });
  });
});
