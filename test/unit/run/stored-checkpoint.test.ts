// A saved run's checkpoint is paired with its record by the step in the checkpoint's metadata (readStoredCheckpoint);
// a step that is missing or garbled is said so, not compared as NaN.
import { describe, expect, it } from 'vitest';
import { memoryRunStore } from '../../../src/run/run-store.ts';
import { writeSafetensors } from '../../../src/model/safetensors.ts';
import { checkpointFiles, isDamagedRun, readStoredCheckpoint } from '../../../src/run/saved-run.ts';
import { stateChecksum } from '../../../src/run/saved-run-check.ts';
import { fakeRun, fakeState } from '../../helpers/fake-checkpoint.ts';
import { errorOf } from '../model/helpers.ts';

const train = new TextEncoder().encode('{"text":"a"}\n');

/** A store holding the record of step 2 and a state whose metadata is `metadata`. */
async function storeWith(metadata: Record<string, string>): Promise<ReturnType<typeof memoryRunStore>> {
  const store = memoryRunStore();
  const state = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [4], data: new Float32Array(4).fill(2) }], metadata);
  await store.commit(checkpointFiles(fakeRun(2), state, { train, validation: null }));
  return store;
}

describe('the step a saved checkpoint holds', () => {
  it('a state without a step is said to hold none (it read "holds step NaN")', async () => {
    const e = await errorOf(async () => readStoredCheckpoint(await storeWith({ format: 'finetune-state' })));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe("the saved run record says step 2 but its checkpoint holds no step (its metadata has none): the checkpoint is damaged or not this app's");
  });

  it('a garbled step is quoted as unreadable, and one that Number() would take (0x2, " 2") is not read as 2', async () => {
    for (const step of ['two', '2.5', '0x2', ' 2', '']) {
      const e = await errorOf(async () => readStoredCheckpoint(await storeWith({ format: 'finetune-state', step })));
      expect(e.kind).toBe('bad-input');
      expect(e.message).toBe(`the saved run record says step 2 but its checkpoint's step ${JSON.stringify(step)} is not a step number: the checkpoint is damaged or not this app's`);
    }
  });

  it('a readable step that differs is named, and the matching one is read', async () => {
    const store = memoryRunStore();
    await store.commit(checkpointFiles(fakeRun(2), fakeState(3, 4), { train, validation: null }));
    expect((await errorOf(() => readStoredCheckpoint(store))).message).toBe('the saved run record says step 2 but its checkpoint holds step 3');
    await store.commit(checkpointFiles(fakeRun(2), fakeState(2, 4), { train, validation: null }));
    expect((await readStoredCheckpoint(store)).run.step).toBe(2);
  });

  it('a state that is not safetensors (truncated) is a damaged run, said so (it was "checkpoint: header length …")', async () => {
    const store = memoryRunStore();
    await store.commit(checkpointFiles(fakeRun(2), fakeState(2, 4).subarray(0, 100), { train, validation: null }));
    const e = await errorOf(() => readStoredCheckpoint(store));
    expect(isDamagedRun(e)).toBe(true);
    expect(e.message).toMatch(/^the saved run's checkpoint \(step 2\) cannot be read: header length \d+ goes beyond the end of the file \(100 bytes\)/);
    expect(e.message).toMatch(/: the checkpoint is damaged or not this app's$/);
  });

  it('a record with the state\'s checksum checks it first: a damaged state is said corrupt by it', async () => {
    const store = memoryRunStore();
    const state = fakeState(2, 4);
    await store.commit(checkpointFiles({ ...fakeRun(2), stateChecksum: await stateChecksum(state) }, state.subarray(0, 100), { train, validation: null }));
    const e = await errorOf(() => readStoredCheckpoint(store));
    expect(isDamagedRun(e)).toBe(true);
    expect(e.message).toMatch(/^the checkpoint is corrupt: its checksum \(.+\) does not match the one saved with the run \(.+\)$/);
  });
});
