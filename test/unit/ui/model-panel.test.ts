// What the Model panel's Local files tab makes of a pick (src/ui/model-panel.ts localPick): a folder names the model,
// loose files are named by their names, and a pick that cannot load (no config.json, no safetensors weights) is said
// before Load instead of after it.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadProgressText, localPick, memoryFigure, memoryView, modelFacts, modelLostText, qloraOfferText } from '../../../src/ui/model-panel.ts';
import { asFake, installFakeDocument } from '../../helpers/fake-dom.ts';
import type { ModelInfo } from '../../../src/worker/api.ts';

/** A File as a folder pick gives it: its path below the picked folder's parent in webkitRelativePath. */
function picked(path: string): File {
  const f = new File([new Uint8Array(4)], path.split('/').pop()!);
  Object.defineProperty(f, 'webkitRelativePath', { value: path.includes('/') ? path : '' });
  return f;
}

describe('localPick', () => {
  it('names the model after a picked folder, and after the files when they were picked loose', () => {
    expect(localPick(['Mistral-7B/config.json', 'Mistral-7B/model-00001-of-00002.safetensors', 'Mistral-7B/model-00002-of-00002.safetensors', 'Mistral-7B/model.safetensors.index.json', 'Mistral-7B/original/consolidated.pth'].map(picked))).toEqual({
      label: 'Mistral-7B',
      folder: 'Mistral-7B',
    });
    expect(localPick(['config.json', 'model.safetensors'].map(picked))).toEqual({ label: 'config.json, model.safetensors', folder: null });
  });

  it('says what is missing before Load: config.json, or safetensors weights at the top of the pick', () => {
    expect(localPick([])).toBe('Pick the model’s files first: config.json and the *.safetensors weights.');
    expect(localPick(['config.json'].map(picked))).toBe('The picked files include no *.safetensors weights: pick them with config.json (PyTorch .bin weights are not read).');
    expect(localPick(['model.safetensors'].map(picked))).toBe('The picked files include no config.json: pick it with the weights.');
    // A folder whose config sits one level down (the parent of the model's folder was picked).
    expect(localPick(['models/mistral/config.json', 'models/mistral/model.safetensors'].map(picked))).toBe('The folder models holds no config.json: pick the folder that holds it.');
    expect(localPick(['m/config.json', 'm/pytorch_model.bin', 'm/sub/model.safetensors'].map(picked))).toBe('The folder m holds no *.safetensors weights: pick the folder that holds them (PyTorch .bin weights are not read).');
  });
});

describe('modelFacts', () => {
  it('lists the loaded model in words: its quantisation as the status line says it, not the setting\'s value', () => {
    const info = { source: 'mistral-nano-demo', params: 19_794_176, layers: 4, hidden: 256, vocab: 32000, gpuBytes: 39_592_960, streamedLayers: false } as const;
    const facts = (quantization: string) => new Map(modelFacts({ ...info, quantization } as unknown as ModelInfo));
    expect(facts('none').get('quantization')).toBe('unquantised');
    expect(facts('nf4-double').get('quantization')).toBe('NF4, double-quantised');
    expect(facts('nf4').get('quantization')).toBe('NF4');
    expect(facts('none').get('parameters')).toBe('19.8 M');
    expect(facts('none').get('weights on the GPU')).toBe('37.8 MiB');
  });
});

describe('loadProgressText', () => {
  const p = { tensor: 'model.layers.0.mlp.up_proj.weight', done: 7, total: 291, bytesDone: 1.5 * 2 ** 30, bytesTotal: 14.5 * 2 ** 30, bytesPerSecond: 52e6, etaSeconds: 267.3 };
  it('says the phase, the tensors, the bytes, the rate, the time left and the tensor; local files are read, not downloaded', () => {
    expect(loadProgressText({ ...p, phase: 'downloading' }, false)).toBe('downloading · 7 / 291 tensors · 1.5 GiB / 14.5 GiB · 52.0 MB/s · 268 s left · model.layers.0.mlp.up_proj.weight');
    expect(loadProgressText({ ...p, phase: 'downloading' }, true)).toMatch(/^reading · 7 \/ 291 tensors · /);
    expect(loadProgressText({ ...p, phase: 'quantising', bytesPerSecond: undefined, etaSeconds: null }, false)).toBe('quantising · 7 / 291 tensors · 1.5 GiB / 14.5 GiB · model.layers.0.mlp.up_proj.weight');
  });

  it('says what a load whose weights are on the GPU waits for, instead of a full bar with nothing beside it', () => {
    expect(loadProgressText({ ...p, done: 291, bytesDone: p.bytesTotal, phase: 'waiting', etaSeconds: null }, false)).toBe(
      'Loaded; waiting for the work on the previous model to stop (a generation at its next token, a validation loss at its next pass, a time estimate at its end)…',
    );
  });

  it('says a failed request that is tried again, with how far the load had got', () => {
    const retry = 'someone/m/config.json: network failure (Failed to fetch): check the connection and the URL. Trying again in 2 s (retry 2 of 5).';
    expect(loadProgressText({ tensor: '', done: 0, total: 0, bytesDone: 0, bytesTotal: 0, retry }, false)).toBe(retry);
    expect(loadProgressText({ ...p, phase: 'downloading', retry }, false)).toBe(`${retry} 7 / 291 tensors so far.`);
  });
});

describe('qloraOfferText', () => {
  it('says what QLoRA would need, in the verdict’s words and with the plan’s own reason', () => {
    const reason = 'needs 5.0 GiB of 8.0 GiB (62 %)';
    expect(qloraOfferText({ verdict: 'fits', peakBytes: 5 * 2 ** 30, memoryBytes: 8 * 2 ** 30, reason })).toBe(
      "With QLoRA (peft_method qlora: the base in 4-bit NF4, as Replicate's QLoRA stores it) it fits: needs 5.0 GiB of 8.0 GiB (62 %).",
    );
    expect(qloraOfferText({ verdict: 'tight', peakBytes: 0, memoryBytes: 0, reason })).toMatch(/ it fits, tightly: needs/);
    expect(qloraOfferText({ verdict: 'fits-with-streaming', peakBytes: 0, memoryBytes: 0, reason })).toMatch(/ it fits with layer streaming: needs/);
  });
});

describe('memoryView', () => {
  let restore: () => void;
  beforeEach(() => (restore = installFakeDocument()));
  afterEach(() => restore());

  it('without a GPU device says so, true before the first device and after a lost one alike', () => {
    // The worker answers null while it holds no device: none made yet, or one lost and dropped. "No GPU memory in use
    // yet." read as if a device were coming, after a loss that took the model with it.
    expect(asFake(memoryView(null)).textContent).toBe('No GPU memory in use: no GPU device is open.');
  });
});

describe('memoryFigure', () => {
  it("gives a category's peak beside what it holds when the peak was well above it (the faint bar)", () => {
    expect(memoryFigure({ currentBytes: 452, peakBytes: 13 * 2 ** 20 })).toBe('452 B (peak 13.0 MiB)');
    expect(memoryFigure({ currentBytes: 37.8 * 2 ** 20, peakBytes: 37.8 * 2 ** 20 })).toBe('37.8 MiB');
    expect(memoryFigure({ currentBytes: 100 * 2 ** 20, peakBytes: 104 * 2 ** 20 })).toBe('100.0 MiB');
  });
});

describe('modelLostText', () => {
  it('names "Get the GPU back and resume" only where a run that failed with the device offers it', () => {
    expect(modelLostText('mistral-nano-demo', 'the GPU device was lost (unknown)', true)).toBe(
      'mistral-nano-demo is no longer loaded: the GPU device it was on was lost (the GPU device was lost (unknown)). Load it again, or use "Get the GPU back and resume" in the Training panel.',
    );
    // Lost under Try it, an estimate or an export: no run failed, and the training panel offers no such button.
    expect(modelLostText(null, 'gone', false)).toBe('The model is no longer loaded: the GPU device it was on was lost (gone). Load it again in this panel.');
  });
});
