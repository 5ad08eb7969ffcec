// The worker hands its session a function that opens the run store (the browser's private file system) when asked,
// rather than the store itself: a browser may refuse its storage for a moment, and a session given what the open
// answered when the session was made (null) kept no store for its life, so that its runs saved no checkpoint and it
// found no saved run even once the storage worked again (and the worker's own calls, opening again, found a store).
// The session asks at each run, and for its savedRun. Driven through FinetuneSession.train on a stand-in GPU.
import { describe, expect, it } from 'vitest';
import { memoryRunStore, type RunStore } from '../../../src/run/run-store.ts';
import { fakeState } from '../../helpers/fake-checkpoint.ts';
import { savedRunSession, TINY_ROWS, tinyRun } from '../../helpers/saved-run-session.ts';
import { errorOf } from '../model/helpers.ts';

const hp = tinyRun().hp;
const files = { train: new Blob([TINY_ROWS]), trainName: 'rows.jsonl', validation: null, validationName: null };

describe('a session whose run store is opened when asked', () => {
  it('asks at each run: a store refused when the session was made is the store of a later run', async () => {
    const store = memoryRunStore();
    let refused = true;
    const answers: (RunStore | null)[] = [];
    const open = async (): Promise<RunStore | null> => {
      const answer = refused ? null : store;
      answers.push(answer);
      return answer;
    };
    const t = await savedRunSession(tinyRun(2, { trainName: 'saved.jsonl' }), fakeState(2, 4), store, open);
    // Refused: no store, as a browser without one answers.
    expect(await t.session.savedRun()).toBeNull();
    expect((await errorOf(() => t.session.train({}, null, () => undefined, { resume: true }))).message).toBe('there is no saved run to resume');
    refused = false;
    expect(await t.session.savedRun()).toMatchObject({ trainName: 'saved.jsonl', step: 2 });
    // A new run reads the store it now has, under the run lock: the run saved there is not the none it was to replace.
    const e = await errorOf(() => t.session.train(hp, files, () => undefined, { replaces: null }));
    expect(e.details).toMatchObject({ savedRunChanged: true, expected: null });
    expect(answers).toEqual([null, null, store, store]);
  });
});
