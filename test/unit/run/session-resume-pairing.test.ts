// A resume pairs the saved record (its step, its loss history) with the training state stored beside it. The record's
// stateChecksum binds the two, but records from before it have none: there the step in the state's metadata must be
// the record's, or the run would continue from one step's adapter with another step's history and data position.
// Driven through FinetuneSession.train on a stand-in GPU (tiny-mistral unquantised only uploads): the refusal comes
// before anything of the run is made on the GPU.
import { describe, expect, it } from 'vitest';
import type { TrainEvent } from '../../../src/run/session.ts';
import { fakeState } from '../../helpers/fake-checkpoint.ts';
import { savedRunSession, tinyRun } from '../../helpers/saved-run-session.ts';
import { errorOf } from '../model/helpers.ts';

describe('a resume pairs the record with its state', () => {
  it('a record without stateChecksum beside the state of another step is refused, naming both steps, before the run starts', async () => {
    const { session, made } = await savedRunSession(tinyRun(2), fakeState(3, 4));
    const events: TrainEvent[] = [];
    const e = await errorOf(() => session.train({}, null, (ev) => events.push(ev), { resume: true }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe('the saved run record says step 2 but its checkpoint holds step 3');
    expect(events.filter((ev) => ev.type === 'plan')).toEqual([]);
    expect(made).toEqual([]);
  });
});
