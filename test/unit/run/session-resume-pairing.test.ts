// A resume pairs the saved record (its step, its loss history) with the training state stored beside it. The record's
// stateChecksum binds the two, but records from before it have none: there the step in the state's metadata must be
// the record's, or the run would continue from one step's adapter with another step's history and data position.
// Driven through FinetuneSession.train on a stand-in GPU (tiny-mistral unquantised only uploads): the refusal comes
// before anything of the run is made on the GPU.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeDirectory } from '../../../src/cli/node-source.ts';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { loadTokenizer } from '../../../src/data/tokenizer.ts';
import { memoryRunStore } from '../../../src/run/run-store.ts';
import { checkpointFiles, type SavedRun } from '../../../src/run/saved-run.ts';
import { FinetuneSession, type TrainEvent } from '../../../src/run/session.ts';
import { fakeState } from '../../helpers/fake-checkpoint.ts';
import { byteArrayGpu } from '../../helpers/fake-gpu.ts';
import { errorOf, TINY_MISTRAL } from '../model/helpers.ts';

const train = new TextEncoder().encode('{"text":"a short row"}\n{"text":"another row"}\n');

/** The record of a run at `step`, as a session before stateChecksum wrote it (no checksum), or with one. */
function record(step: number, over: Partial<SavedRun> = {}): SavedRun {
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

async function sessionWith(run: SavedRun, state: Uint8Array): Promise<{ session: FinetuneSession; made: string[] }> {
  const store = memoryRunStore();
  await store.commit(checkpointFiles(run, state, { train, validation: null }));
  const { ctx, made } = byteArrayGpu();
  const session = new FinetuneSession(ctx, await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model'))), store);
  await session.loadModel(nodeDirectory(TINY_MISTRAL), 'tiny-mistral', 'none');
  made.length = 0;
  return { session, made };
}

describe('a resume pairs the record with its state', () => {
  it('a record without stateChecksum beside the state of another step is refused, naming both steps, before the run starts', async () => {
    const { session, made } = await sessionWith(record(2), fakeState(3, 4));
    const events: TrainEvent[] = [];
    const e = await errorOf(() => session.train({}, null, (ev) => events.push(ev), { resume: true }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe('the saved run record says step 2 but its checkpoint holds step 3');
    expect(events.filter((ev) => ev.type === 'plan')).toEqual([]);
    expect(made).toEqual([]);
  });
});
