import { describe, expect, it } from 'vitest';
import { formState, isQuickPreset, presetForm, QUICK_PRESET } from '../../../src/ui/hyperparams-panel.ts';

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
