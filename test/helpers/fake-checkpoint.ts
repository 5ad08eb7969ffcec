// Checkpoints without a GPU, for the store's crash tests: a state file in the trainer's format whose every value is
// its step (so a torn or mixed-up file shows), and the run record that belongs to it.
import { defaultHyperparams } from '../../src/config/hyperparams.ts';
import type { Projection } from '../../src/core/mistral.ts';
import { peftKey, type LoraAdapter } from '../../src/model/lora-adapter.ts';
import { openSafetensors, toFloat32, writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.ts';
import { bytesSource } from '../../src/model/source.ts';
import { checkpointFiles, readStoredCheckpoint, type RunData, type SavedRun } from '../../src/run/saved-run.ts';
import type { RunStore } from '../../src/run/run-store.ts';

export const FAKE_TOTAL_STEPS = 1000;

export function fakeRun(step: number, trainName = 'rows.jsonl'): SavedRun {
  return {
    modelSource: 'tiny-mistral',
    quantization: 'nf4-double',
    hp: defaultHyperparams(),
    trainName,
    validationName: null,
    step,
    totalSteps: FAKE_TOTAL_STEPS,
    history: Array.from({ length: step }, (_, i) => ({ step: i + 1, loss: 1 / (i + 1) })),
    savedAt: new Date(0).toISOString(),
  };
}

export function fakeState(step: number, values: number): Uint8Array {
  return writeSafetensors([{ name: 'w', dtype: 'F32', shape: [values], data: new Float32Array(values).fill(step) }], { format: 'finetune-state', step: String(step) });
}

/**
 * A training state of `adapter` at `step`, in the trainer's layout (saveTrainState), its AdamW moments zero: one a
 * session's resume of a run of that adapter's shape takes, on a stand-in GPU.
 */
export function adapterState(adapter: LoraAdapter, step: number): Uint8Array {
  const r = adapter.config.r;
  const tensors: TensorToWrite[] = [];
  adapter.tensors.forEach((modules, layer) => {
    for (const [name, pair] of Object.entries(modules)) {
      if (!pair) continue;
      for (const [factor, data] of [['A', pair.A], ['B', pair.B]] as const) {
        const key = peftKey(layer, name as Projection, factor);
        const shape = factor === 'A' ? [r, data.length / r] : [data.length / r, r];
        const zeros = new Float32Array(data.length);
        tensors.push({ name: key, dtype: 'F32', shape, data }, { name: `${key}.exp_avg`, dtype: 'F32', shape, data: zeros }, { name: `${key}.exp_avg_sq`, dtype: 'F32', shape, data: zeros });
      }
    }
  });
  return writeSafetensors(tensors, { format: 'finetune-state', step: String(step), rank: String(r) });
}

/** Commits step `step` of a fake run the way the session does (with its data when `data` is given). */
export async function commitFakeCheckpoint(store: RunStore, step: number, values: number, data: RunData | null = null, trainName?: string): Promise<void> {
  await store.commit(checkpointFiles(fakeRun(step, trainName), fakeState(step, values), data));
}

/**
 * Reads the saved pair back as a resume would, and checks it is whole: the record, the state's metadata and every
 * value of the state agree on one step. Returns that step and the run's training data.
 */
export async function readConsistentStep(store: RunStore): Promise<{ step: number; train: string; trainName: string }> {
  const { run, state, data } = await readStoredCheckpoint(store);
  const file = await openSafetensors(bytesSource(state, 'state'));
  const w = toFloat32(await file.read('w'), file.info('w').dtype);
  const off = w.findIndex((v) => v !== run.step);
  if (off >= 0) throw new Error(`state value ${off} is ${w[off]}, the record says step ${run.step}`);
  if (run.history.length !== run.step) throw new Error(`the record's history has ${run.history.length} steps, its step is ${run.step}`);
  return { step: run.step, train: new TextDecoder().decode(data.train), trainName: run.trainName };
}
