import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEMO_PRESET, formState, groupMessages, isQuickPreset, presetForm, QUICK_PRESET, SAMPLE_PROMPT } from '../../../src/ui/hyperparams-panel.ts';

describe('the hyperparameter form read as a job', () => {
  it('leaves an emptied optional text out (no validation prompt)', () => {
    const s = formState({ validation_prompt: '' });
    expect(s.errors).toEqual({});
    expect(s.hp?.validation_prompt).toBeUndefined();
  });

  it('says an emptied LoRA target list is empty instead of training q_proj and v_proj without a word', () => {
    const s = formState({ lora_target_modules: '' });
    expect(s.hp).toBeNull();
    expect(s.errors.lora_target_modules?.[0]).toMatch(/^lora_target_modules is empty; expected a comma-separated list/);
  });
});

describe('the quick preset', () => {
  it('is recognised once applied, so a run already on it is not offered it again', () => {
    expect(isQuickPreset(formState(presetForm(QUICK_PRESET)).hp)).toBe(true);
    expect(isQuickPreset(formState({}).hp)).toBe(false);
    expect(isQuickPreset(formState({ ...presetForm(QUICK_PRESET), max_steps: '9' }).hp)).toBe(false);
    expect(isQuickPreset(null)).toBe(false);
  });
});

describe('the presets', () => {
  it("write a sample after each validation for a prompt of the sample dataset that neither trains on", () => {
    const rows = readFileSync('public/datasets/sample.jsonl', 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string });
    for (const preset of [DEMO_PRESET, QUICK_PRESET]) {
      const hp = formState(presetForm(preset)).hp!;
      expect(hp.validation_prompt).toBe(SAMPLE_PROMPT);
      // Held out: the last num_validation_samples rows validate and are not trained on; the prompt is among them.
      const held = rows.slice(-Number(hp.num_validation_samples));
      expect(held.map((r) => r.prompt)).toContain(SAMPLE_PROMPT);
      expect(rows.slice(0, -Number(hp.num_validation_samples)).map((r) => r.prompt)).not.toContain(SAMPLE_PROMPT);
    }
  });
});

describe('where the form shows a message', () => {
  // A rule between two fields is broken by either: the person who just typed into one of them must see why under it
  // (on a phone the other field's card can be a screen away), so the message shows under every field it names.
  const crossField: [string, Record<string, string>, string[]][] = [
    ['a batch size that is no multiple of a larger micro-batch', { train_batch_size: '4', micro_batch_size: '8' }, ['train_batch_size', 'micro_batch_size']],
    ['a batch size that is no multiple of the micro-batch', { train_batch_size: '4', micro_batch_size: '3' }, ['train_batch_size', 'micro_batch_size']],
    ['QLoRA on an unquantized base', { peft_method: 'qlora', quantization: 'none' }, ['peft_method', 'quantization']],
    ['a quantized base under plain LoRA', { peft_method: 'lora', quantization: 'nf4' }, ['peft_method', 'quantization']],
  ];
  for (const [what, values, fields] of crossField) {
    it(`shows ${what} under each field the rule is between (${fields.join(', ')})`, () => {
      const s = formState({ ...presetForm(DEMO_PRESET), ...values });
      expect(s.hp).toBeNull();
      const [message] = s.errors[fields[0]!] ?? [];
      expect(message).toBeDefined();
      for (const f of fields) expect(s.errors[f], f).toEqual([message]);
      // Nowhere else, and not in the general list above the form either.
      expect(Object.keys(s.errors).sort()).toEqual([...fields].sort());
    });
  }

  it('keeps a message about one field under that field alone, and one naming none above the form', () => {
    expect(groupMessages(['lora_rank must be an integer from 1 to 256, got 0'])).toEqual({ lora_rank: ['lora_rank must be an integer from 1 to 256, got 0'] });
    // Named twice, listed once.
    expect(groupMessages(['quantization nf4 is QLoRA (or leave quantization unset)'])).toEqual({ quantization: ['quantization nf4 is QLoRA (or leave quantization unset)'] });
    // A name inside a longer name is not that field (validation_prompt is not num_validation_samples).
    expect(groupMessages(['max_steps must be an integer ≥ 0, got -1'])).toEqual({ max_steps: ['max_steps must be an integer ≥ 0, got -1'] });
    expect(groupMessages(['hyperparameters must be an object'])).toEqual({ '': ['hyperparameters must be an object'] });
  });

  it('lists a message once per field in the order given, with the others of that field', () => {
    const both = 'train_batch_size (4) must be a multiple of micro_batch_size (8): …';
    const own = 'micro_batch_size must be an integer ≥ 1, got x';
    expect(groupMessages([own, both])).toEqual({ micro_batch_size: [own, both], train_batch_size: [both] });
  });
});
