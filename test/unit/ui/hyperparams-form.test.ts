import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEMO_PRESET, formState, isQuickPreset, presetForm, QUICK_PRESET, SAMPLE_PROMPT } from '../../../src/ui/hyperparams-panel.ts';

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
