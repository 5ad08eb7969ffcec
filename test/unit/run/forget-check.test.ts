// What a Forget may delete (checkForgets, src/run/saved-run.ts). The page's box of a run that cannot be read is also shown
// when a Resume was refused for a run whose record reads but whose files do not (a checkpoint file removed from the
// store by hand, a state of another step): that Forget named `{ damaged: true }`, "a run that cannot be read", and was
// refused, since the record read, so such a run could never be forgotten from the page. The box now also names the
// record its Resume was refused for; a Forget deletes that record's run, and still nothing another tab saved since.
import { describe, expect, it } from 'vitest';
import { memoryStoreFiles, pointerRunStore } from '../../../src/run/run-store.ts';
import { checkForgets, readSavedRun, readStoredCheckpoint } from '../../../src/run/saved-run.ts';
import { commitFakeCheckpoint } from '../../helpers/fake-checkpoint.ts';

const rows = { train: new TextEncoder().encode('{"text":"a"}\n'), validation: null };

/** A store whose run record (step 2) reads and whose state file is gone, as the e2e two-tabs test leaves it. */
async function stateFileGone() {
  const files = memoryStoreFiles();
  const store = pointerRunStore(files);
  await commitFakeCheckpoint(store, 2, 4, rows, 'a.jsonl');
  const state = (await files.list()).find((n) => n.endsWith('-state.safetensors'))!;
  await files.remove(state);
  const record = (await readSavedRun(store))!;
  await expect(readStoredCheckpoint(store)).rejects.toMatchObject({ details: { damagedRun: true } });
  return { store, record };
}

describe('a Forget of a run whose record reads but whose files do not', () => {
  it('deletes nothing when it names only "a run that cannot be read": the record reads', async () => {
    const { store } = await stateFileGone();
    await expect(checkForgets(store, { damaged: true })).rejects.toMatchObject({ details: { savedRunChanged: true } });
  });

  it('is let through when it names the record its Resume was refused for', async () => {
    const { store, record } = await stateFileGone();
    await expect(checkForgets(store, { damaged: true, record: { step: record.step, savedAt: record.savedAt } })).resolves.toBeUndefined();
  });

  it('is refused once another tab saved another run over it, naming that run', async () => {
    const { store, record } = await stateFileGone();
    await commitFakeCheckpoint(store, 3, 4, rows, 'b.jsonl');
    const refused = checkForgets(store, { damaged: true, record: { step: record.step, savedAt: record.savedAt } });
    await expect(refused).rejects.toMatchObject({ kind: 'bad-input', details: { savedRunChanged: true, expected: { damaged: true, record: { step: 2 } } } });
    await expect(refused).rejects.toThrow('it now holds "b.jsonl" at step 3');
  });

  it('is let through when the record itself cannot be read now (another tab left it so)', async () => {
    const { store, record } = await stateFileGone();
    await store.commit({ 'run.json': new TextEncoder().encode('{not json') });
    await expect(checkForgets(store, { damaged: true, record: { step: record.step, savedAt: record.savedAt } })).resolves.toBeUndefined();
  });

  it('is refused when it names a record in a form the page never sends', async () => {
    const { store } = await stateFileGone();
    await expect(checkForgets(store, { damaged: true, record: { step: '2' } })).rejects.toThrow('the saved run to forget is named by');
  });
});
