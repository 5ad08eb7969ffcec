// The Cached models list's Load (src/ui/cache-panel.ts): which entries it is offered for (a Hub repository's, never
// picked files' nor an unreadable entry's), and the form values a load of cached weights of another quantization sets.
import { describe, expect, it } from 'vitest';
import { cachedHubModel, cachedLoadQuestion } from '../../../src/ui/cache-panel.ts';
import { formValuesForQuantization } from '../../../src/ui/state.ts';
import { parseHyperparams } from '../../../src/config/index.ts';
import { QUANTIZATIONS } from '../../../src/core/mistral.ts';

describe('cachedHubModel', () => {
  it('reads a Hub entry’s repository and revision, with the quantization it was cached in', () => {
    expect(cachedHubModel({ source: 'mistralai/Mistral-7B-Instruct-v0.2', quantization: 'nf4-double' })).toEqual({ repo: 'mistralai/Mistral-7B-Instruct-v0.2', revision: null, quantization: 'nf4-double' });
    expect(cachedHubModel({ source: 'someone/nano@refs/pr/3', quantization: 'none' })).toEqual({ repo: 'someone/nano', revision: 'refs/pr/3', quantization: 'none' });
  });

  it('offers nothing for entries that are not a Hub repository’s, or cannot be read', () => {
    // A picked folder's name, loose files, the demo: loaded from their own tabs (the files must be picked again).
    for (const source of ['Mistral-7B', 'local files (config.json, model.safetensors)', 'mistral-nano-demo', 'https://example.com/m/model.safetensors']) {
      expect(cachedHubModel({ source, quantization: 'nf4' })).toBeNull();
    }
    expect(cachedHubModel({ source: undefined, quantization: undefined })).toBeNull();
    expect(cachedHubModel({ source: 'someone/nano', quantization: undefined })).toBeNull();
  });
});

describe('formValuesForQuantization', () => {
  it('gives form values that validate and ask for that quantization, leaving quantization to follow peft_method where it can', () => {
    expect(formValuesForQuantization('none')).toEqual({ peft_method: 'lora', quantization: '' });
    expect(formValuesForQuantization('nf4-double')).toEqual({ peft_method: 'qlora', quantization: '' });
    expect(formValuesForQuantization('nf4')).toEqual({ peft_method: 'qlora', quantization: 'nf4' });
    for (const q of QUANTIZATIONS) {
      // From a form that asks for each other quantization, the values set make the form ask for q.
      for (const from of [{}, { peft_method: 'qlora', quantization: 'nf4' }, { peft_method: 'lora' }]) {
        expect(parseHyperparams({ train_data: 'x.jsonl', ...from, ...formValuesForQuantization(q) }).quantization).toBe(q);
      }
    }
  });
});

describe('cachedLoadQuestion', () => {
  it('says what the cached weights are, what the form asks for, and what loading them sets', () => {
    expect(cachedLoadQuestion('nf4-double', 'none')).toBe(
      'These weights are cached NF4, double-quantised; the hyperparameters ask for unquantised. Loading them sets peft_method qlora in the form.',
    );
    expect(cachedLoadQuestion('nf4', 'nf4-double')).toBe('These weights are cached NF4; the hyperparameters ask for NF4, double-quantised. Loading them sets peft_method qlora and quantization nf4 in the form.');
    expect(cachedLoadQuestion('none', null)).toBe('These weights are cached unquantised; the hyperparameters have errors. Loading them sets peft_method lora in the form.');
  });
});
