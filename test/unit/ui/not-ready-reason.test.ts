// Why Train cannot start yet (src/ui/training-panel.ts notReadyReason), for the model's quantization.
import { describe, expect, it } from 'vitest';
import { notReadyReason } from '../../../src/ui/training-panel.ts';
import { formState } from '../../../src/ui/hyperparams-panel.ts';
import type { ModelState, Shared } from '../../../src/ui/state.ts';
import type { ModelInfo } from '../../../src/worker/api.ts';

/** The cells notReadyReason reads, each with a value; the rest of Shared is not touched. */
function shared(model: ModelState): Shared {
  const cell = <T>(value: T) => ({ value });
  const file = { file: new File([], 'train.jsonl'), status: 'ready', error: null, report: { ok: true, summary: { errors: 0 } } };
  return {
    model: cell(model),
    form: cell(formState({ peft_method: 'qlora' })),
    data: cell({ train: file, validation: null }),
    plan: cell({ status: 'ready', stats: null, error: null }),
    runElsewhere: cell(false),
  } as unknown as Shared; // a partial Shared: only these cells are read
}

const loaded = (kind: 'demo' | 'files'): ModelState => ({
  status: 'ready',
  choice: { kind, label: kind === 'demo' ? 'mistral-nano-demo' : 'my-model' },
  quantization: 'none',
  info: { quantization: 'none' } as ModelInfo,
  progress: null,
  error: null,
  failure: null,
});

describe('notReadyReason and the loaded quantization', () => {
  it('asks to load a chosen model again in the quantization the run needs', () => {
    expect(notReadyReason(shared(loaded('files')))).toBe('The model is loaded as none; this run needs nf4-double. Load it again.');
  });

  it('says the demo model is being reloaded (the page does it by itself) instead of asking for it', () => {
    expect(notReadyReason(shared(loaded('demo')))).toBe('The demo model is being reloaded as nf4-double…');
  });
});
