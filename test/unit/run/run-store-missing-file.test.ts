// A current.json that names a file no longer there (deleted by hand, a partial copy of OUT/run) is a damaged run: it
// read as "no run" (load gave null), so --resume said there was no saved run and a new run replaced the rest of it at
// its first checkpoint without a word.
import { describe, expect, it } from 'vitest';
import { memoryStoreFiles, pointerRunStore, POINTER_FILE } from '../../../src/run/run-store.ts';
import { isDamagedRun, readSavedRun, RUN_FILE, RUN_FILES, STATE_FILE } from '../../../src/run/saved-run.ts';
import type { FinetuneError } from '../../../src/core/errors.ts';
import { commitFakeCheckpoint } from '../../helpers/fake-checkpoint.ts';

describe('a current.json naming a missing file', () => {
  it('is a damaged run, naming the file; a forget clears it', async () => {
    const files = memoryStoreFiles();
    const store = pointerRunStore(files);
    await commitFakeCheckpoint(store, 1, 4, { train: new TextEncoder().encode('rows'), validation: null });
    await commitFakeCheckpoint(store, 2, 4);
    await files.remove('000002-run.json');
    const e = await readSavedRun(store, 'OUT/run').then(() => null, (x: unknown) => x as FinetuneError);
    expect(e?.message).toBe(`the saved run in "OUT/run" is unreadable (the run store's ${POINTER_FILE} names 000002-run.json for its run.json, and that file is missing)`);
    expect(isDamagedRun(e)).toBe(true);
    // The state it names is still read as it is.
    expect(await store.load(STATE_FILE)).not.toBeNull();
    await store.commit(Object.fromEntries(RUN_FILES.map((f) => [f, null])));
    expect(await readSavedRun(store)).toBeNull();
    expect(await store.load(RUN_FILE)).toBeNull();
  });
});
