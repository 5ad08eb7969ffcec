// A FinetuneSession with tiny-mistral loaded (unquantised: loading only uploads) on a stand-in GPU, over a run store
// holding a saved run of two short rows: what the unit tests of a resume's checks (test/unit/run/session-resume-*.ts)
// drive FinetuneSession.train on. The checks come before anything of the run is made on the GPU.
import { readFileSync } from 'node:fs';
import { nodeDirectory } from '../../src/cli/node-source.ts';
import { defaultHyperparams } from '../../src/config/hyperparams.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { memoryRunStore, type RunStore } from '../../src/run/run-store.ts';
import { checkpointFiles, type SavedRun } from '../../src/run/saved-run.ts';
import { FinetuneSession, type RunStoreSource } from '../../src/run/session.ts';
import { TINY_MISTRAL } from '../unit/model/helpers.ts';
import { bufferBytesGpu } from './fake-gpu.ts';

/** The saved run's training data. */
export const TINY_ROWS = new TextEncoder().encode('{"text":"a short row"}\n{"text":"another row"}\n');

/** The record of a tiny-mistral run (LoRA, unquantised) at `step` of 3, its loss history to that step. */
export function tinyRun(step = 2, over: Partial<SavedRun> = {}): SavedRun {
  return {
    modelSource: 'tiny-mistral',
    quantization: 'none',
    hp: { ...defaultHyperparams(), quantization: 'none', peft_method: 'lora' },
    trainName: 'rows.jsonl',
    validationName: null,
    step,
    totalSteps: 3,
    history: Array.from({ length: step }, (_, i) => ({ step: i + 1, loss: 2 - i / 10 })),
    savedAt: '2026-11-01T00:00:00.000Z',
    ...over,
  };
}

/**
 * A session over `store` holding `saved` with `state` and TINY_ROWS (nothing, for null), tiny-mistral loaded. `made`
 * and `destroyed` list the GPU buffers made and freed since the load. `source`: what the session is given for its
 * store (by default the store itself; the worker gives a function that opens it when asked).
 */
export async function savedRunSession(saved: SavedRun | null, state: Uint8Array, store: RunStore = memoryRunStore(), source: RunStoreSource = store) {
  if (saved) await store.commit(checkpointFiles(saved, state, { train: TINY_ROWS, validation: null }));
  const gpu = bufferBytesGpu();
  const session = new FinetuneSession(gpu.ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), source);
  await session.loadModel(nodeDirectory(TINY_MISTRAL), 'tiny-mistral', 'none');
  gpu.made.length = 0;
  gpu.destroyed.length = 0;
  return { session, store, ...gpu };
}
