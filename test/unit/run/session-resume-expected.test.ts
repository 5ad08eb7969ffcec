// A resume (or restore) asked for one checkpoint continues that one or nothing. Every tab of the page has its own worker
// and session, and all of them share the run store: the page checks that the store still holds the checkpoint it
// offers, but another tab can save a different run between that check and the worker's resume. The session reads the
// record under the worker's run lock (worker.ts runStoreLock) and refuses one that is not the checkpoint expected,
// before it gives anything up: the adapter it holds (here an imported one) stays, and nothing is made on the GPU. A new
// run is held to the run it was to replace (or to none) in the same way (the second describe).
// Driven through FinetuneSession.train on a stand-in GPU that keeps each buffer as bytes (tiny-mistral unquantised).
import { describe, expect, it } from 'vitest';
import { defaultHyperparams, targetModules } from '../../../src/config/hyperparams.ts';
import { isFinetuneError } from '../../../src/core/errors.ts';
import { mulberry32 } from '../../../src/engine/reference/common.ts';
import { createAdapter, type LoraAdapter } from '../../../src/model/lora-adapter.ts';
import { memoryRunStore, memoryStoreFiles, pointerRunStore, type RunStore } from '../../../src/run/run-store.ts';
import { checkpointFiles, type SavedRun } from '../../../src/run/saved-run.ts';
import type { TrainEvent } from '../../../src/run/session.ts';
import { adapterState, fakeState } from '../../helpers/fake-checkpoint.ts';
import { savedRunSession, TINY_ROWS as train, tinyRun } from '../../helpers/saved-run-session.ts';
import { errorOf } from '../model/helpers.ts';

/** The run this tab's page offered: step 2, saved at its own time. */
const record = (over: Partial<SavedRun> = {}): SavedRun => tinyRun(2, over);

/** What another tab saved since: the same files, a later step, its own commit. */
const theirs = record({ trainName: 'theirs.jsonl', step: 3, savedAt: '2026-11-01T00:05:00.000Z' });

/** A session with tiny-mistral loaded, `saved` in its store (none: nothing saved), and an imported adapter current. */
async function sessionWith(saved: SavedRun | null, state = fakeState(2, 4), store: RunStore = memoryRunStore()) {
  const t = await savedRunSession(saved, state, store);
  const adapter: LoraAdapter = createAdapter(t.session.baseConfig, { r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj'], baseModel: 'tiny-mistral', random: mulberry32(5) });
  // PEFT starts B at zero; a B of its own tells this adapter from a fresh one read back.
  for (const layer of adapter.tensors) for (const pair of Object.values(layer)) pair?.B.fill(0.25);
  await t.session.useImportedAdapter(adapter);
  t.made.length = 0;
  t.destroyed.length = 0;
  return { ...t, adapter };
}

describe('a resume asked for one checkpoint', () => {
  for (const restoreOnly of [false, true]) {
    const what = restoreOnly ? 'restore' : 'resume';
    it(`${what}: refuses the run another tab saved since, before it gives up the adapter it holds`, async () => {
      const t = await sessionWith(theirs, fakeState(3, 4));
      const events: TrainEvent[] = [];
      const e = await errorOf(() => t.session.train({}, null, (ev) => events.push(ev), { resume: true, restoreOnly, expected: { step: 2, savedAt: '2026-11-01T00:00:00.000Z' } }));
      expect(e.kind).toBe('bad-input');
      expect(e.details).toMatchObject({ checkpointGone: true });
      expect(e.message).toBe(
        `the run saved here is no longer the checkpoint asked for (step 2, saved 2026-11-01T00:00:00.000Z): it now holds "theirs.jsonl" at step 3 of 3, saved 2026-11-01T00:05:00.000Z. Nothing was ${restoreOnly ? 'restored' : 'resumed'}`,
      );
      expect(events).toEqual([]);
      expect(t.made).toEqual([]);
      expect(t.destroyed).toEqual([]);
      // The adapter the session held is still the current one, as it was.
      expect(t.session.hasImportedAdapter).toBe(true);
      expect((await t.session.adapterNow()).tensors).toEqual(t.adapter.tensors);
    });
  }

  it('refuses the same step of another save (the run taken on and stopped there elsewhere, or a new one)', async () => {
    const t = await sessionWith(record({ savedAt: theirs.savedAt }));
    const e = await errorOf(() => t.session.train({}, null, () => undefined, { resume: true, expected: { step: 2, savedAt: '2026-11-01T00:00:00.000Z' } }));
    expect(e.details).toMatchObject({ checkpointGone: true });
    expect(t.destroyed).toEqual([]);
  });

  it('refuses when nothing is saved any more, saying it is gone', async () => {
    const t = await sessionWith(null);
    const e = await errorOf(() => t.session.train({}, null, () => undefined, { resume: true, expected: { step: 2, savedAt: '2026-11-01T00:00:00.000Z' } }));
    expect(e.kind).toBe('bad-input');
    expect(e.details).toMatchObject({ checkpointGone: true });
    expect(e.message).toBe('the run saved here is no longer the checkpoint asked for (step 2, saved 2026-11-01T00:00:00.000Z): no run is saved any more. Nothing was resumed');
    expect(t.session.hasImportedAdapter).toBe(true);
  });

  it('goes on with the checkpoint expected (here to the state check after it), and without an expectation as the CLI asks', async () => {
    // The record at step 2 beside a state of step 3: the resume passes the expectation and is then refused for the pair.
    const pairing = 'the saved run record says step 2 but its checkpoint holds step 3';
    const asked = await sessionWith(record(), fakeState(3, 4));
    expect((await errorOf(() => asked.session.train({}, null, () => undefined, { resume: true, expected: { step: 2, savedAt: '2026-11-01T00:00:00.000Z' } }))).message).toBe(pairing);
    const cli = await sessionWith(record({ savedAt: theirs.savedAt }), fakeState(3, 4));
    expect((await errorOf(() => cli.session.train({}, null, () => undefined, { resume: true }))).message).toBe(pairing);
  });

  // The page offered the run when its record read well enough to be summed up; one whose fields are wrong is refused
  // as a damaged run (details.damagedRun), so that the page offers to forget it instead of showing a failed run.
  it('refuses a record it cannot resume as a damaged run, before it gives up the adapter it holds', async () => {
    const t = await sessionWith(record({ hp: { ...record().hp, lora_rank: 0 } }));
    const e = await errorOf(() => t.session.train({}, null, () => undefined, { resume: true, restoreOnly: true, expected: { step: 2, savedAt: '2026-11-01T00:00:00.000Z' } }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toMatch(/^the saved run cannot be resumed: its hyperparameters are not valid: .*lora_rank/);
    expect(e.details).toMatchObject({ damagedRun: true });
    expect(t.made).toEqual([]);
    expect(t.session.hasImportedAdapter).toBe(true);
  });

  it('refuses an expectation that is not a step and a time, as it came from the page', async () => {
    const t = await sessionWith(record());
    const bad = { step: '2', savedAt: 2 } as unknown as { step: number; savedAt: string };
    const e = await errorOf(() => t.session.train({}, null, () => undefined, { resume: true, expected: bad }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe('the checkpoint to resume is named by its step (a whole number) and its savedAt (text)');
  });
});

// A new run replaces the run saved in this browser at its first checkpoint. The page asks before it starts one, naming
// the run saved then ("Replace it and train"), or none (it starts at once), but another tab can save a different run, or
// forget that one, between the page's read and the worker's start. The page hands over what it named: the session reads
// the store under the same run lock and starts only over exactly that (the same record, or still nothing).
describe('a new run asked to replace one saved run, or none', () => {
  // The imported adapter's shape (rank 2, alpha 4, q_proj and v_proj): a run of it would start from that adapter.
  const hp = { ...defaultHyperparams(), quantization: 'none', peft_method: 'lora', lora_rank: 2, lora_alpha: 4 };
  const files = { train: new Blob([train]), trainName: 'rows.jsonl', validation: null, validationName: null };
  const named = { step: 2, savedAt: '2026-11-01T00:00:00.000Z' };

  it('refuses when another tab saved another run since the page named one, before it gives up the adapter it holds', async () => {
    const t = await sessionWith(theirs, fakeState(3, 4));
    const events: TrainEvent[] = [];
    const e = await errorOf(() => t.session.train(hp, files, (ev) => events.push(ev), { replaces: named }));
    expect(e.kind).toBe('bad-input');
    expect(e.details).toMatchObject({ savedRunChanged: true, expected: named });
    expect(e.message).toBe(
      'the run saved here is no longer the one this run was to replace (step 2, saved 2026-11-01T00:00:00.000Z): it now holds "theirs.jsonl" at step 3 of 3, saved 2026-11-01T00:05:00.000Z. Nothing was started',
    );
    expect(events).toEqual([]);
    expect(t.made).toEqual([]);
    expect(t.destroyed).toEqual([]);
    expect(t.session.hasImportedAdapter).toBe(true);
    expect((await t.session.adapterNow()).tensors).toEqual(t.adapter.tensors);
    // The store still holds the other tab's run, untouched.
    expect(await t.session.savedRun()).toMatchObject({ trainName: 'theirs.jsonl', savedAt: theirs.savedAt });
  });

  it('refuses when a run was saved since the page found none', async () => {
    const t = await sessionWith(theirs, fakeState(3, 4));
    const e = await errorOf(() => t.session.train(hp, files, () => undefined, { replaces: null }));
    expect(e.details).toMatchObject({ savedRunChanged: true, expected: null });
    expect(e.message).toBe('this run was to replace no saved run, but one was saved here since: it now holds "theirs.jsonl" at step 3 of 3, saved 2026-11-01T00:05:00.000Z. Nothing was started');
    expect(t.made).toEqual([]);
  });

  it('refuses the same step of another save, and a run forgotten since', async () => {
    const same = await sessionWith(record({ savedAt: theirs.savedAt }));
    expect((await errorOf(() => same.session.train(hp, files, () => undefined, { replaces: named }))).details).toMatchObject({ savedRunChanged: true });
    const gone = await sessionWith(null);
    const e = await errorOf(() => gone.session.train(hp, files, () => undefined, { replaces: named }));
    expect(e.details).toMatchObject({ savedRunChanged: true });
    expect(e.message).toBe('the run saved here is no longer the one this run was to replace (step 2, saved 2026-11-01T00:00:00.000Z): no run is saved any more. Nothing was started');
  });

  it('refuses a store that cannot be read now, where the page found none', async () => {
    const t = await sessionWith(null);
    await t.store.commit({ 'run.json': new TextEncoder().encode('{') });
    const e = await errorOf(() => t.session.train(hp, files, () => undefined, { replaces: null }));
    expect(e.details).toMatchObject({ savedRunChanged: true });
    expect(e.message).toMatch(/^this run was to replace no saved run, but one was saved here since: it now holds a run that cannot be read: the saved run is unreadable \(run\.json: .*\)\. Nothing was started$/);
    expect(t.made).toEqual([]);
  });

  it('starts over the run named (or none), and without an expectation as the CLI asks', async () => {
    // The run goes as far as the stand-in GPU lets it: its plan is out, so the store's check was passed.
    const began = async (saved: SavedRun | null, replaces?: { step: number; savedAt: string } | null): Promise<TrainEvent[]> => {
      const t = await sessionWith(saved);
      const events: TrainEvent[] = [];
      await t.session.train(hp, files, (ev) => events.push(ev), replaces === undefined ? {} : { replaces }).catch((e: unknown) => {
        if (isFinetuneError(e) && e.details?.savedRunChanged) throw e;
      });
      return events;
    };
    expect((await began(record(), named))[0]?.type).toBe('plan');
    expect((await began(null, null))[0]?.type).toBe('plan');
    expect((await began(theirs))[0]?.type).toBe('plan');
  });

  it('refuses an expectation that is neither a step and a time nor null, as it came from the page', async () => {
    const t = await sessionWith(null);
    const bad = { step: 2 } as unknown as { step: number; savedAt: string };
    const e = await errorOf(() => t.session.train(hp, files, () => undefined, { replaces: bad }));
    expect(e.kind).toBe('bad-input');
    expect(e.message).toBe('the saved run a new run replaces is named by its step (a whole number) and its savedAt (text), or null for none');
  });
});

// The page shows a resumed (or restored) run's data in the dataset panel once the worker has begun it. A restore lets
// the run lock go as soon as it has loaded the adapter, and the page's read of the data came after that: read from the
// store again, file by file, it could take the record of the checkpoint restored and the data of a run another tab
// saved in between, under the first one's names. The data the page is given are those the resume itself read, under
// the lock, and checked against the record.
describe('the data a resume read, as the page is given them', () => {
  const theirRows = new TextEncoder().encode('{"text":"their row"}\n');

  /** tiny-mistral's adapter for `hp` (its shape is all a state is checked against). */
  async function runAt(step: number) {
    const probe = await sessionWith(null);
    const hp = record().hp;
    const adapter = createAdapter(probe.session.baseConfig, { r: hp.lora_rank, alpha: hp.lora_alpha, targetModules: targetModules(hp), baseModel: 'tiny-mistral', random: mulberry32(1) });
    const { totalSteps } = await probe.session.plan(hp, new Blob([train]), null);
    return { run: record({ step, totalSteps, history: [] }), state: adapterState(adapter, step) };
  }

  it('are the checkpoint restored, not those of a save in another tab while the page reads them', async () => {
    const ours = await runAt(1);
    // The store's reads, with another tab's save let in after the next read of a record.
    const files = memoryStoreFiles();
    let otherTabSaves: (() => Promise<void>) | null = null;
    const store = pointerRunStore({
      ...files,
      read: async (name) => {
        const bytes = await files.read(name);
        const save = otherTabSaves;
        if (save && name.endsWith('-run.json')) {
          otherTabSaves = null;
          await save();
        }
        return bytes;
      },
    });
    const t = await sessionWith(ours.run, ours.state, store);
    const expected = { step: ours.run.step, savedAt: ours.run.savedAt };
    const events: TrainEvent[] = [];
    // The restore goes as far as the stand-in GPU lets it: its plan is out, so the checkpoint was read and checked.
    await t.session.train({}, null, (ev) => events.push(ev), { resume: true, restoreOnly: true, expected }).catch(() => undefined);
    expect(events.map((e) => e.type)).toContain('plan');
    // The lock is let go; another tab starts a run and saves its first checkpoint, with its data.
    otherTabSaves = () => store.commit(checkpointFiles(theirs, fakeState(3, 4), { train: theirRows, validation: null }));
    const shown = await t.session.savedRunFiles(expected);
    expect(shown?.train.name).toBe('rows.jsonl');
    expect(new Uint8Array(await shown!.train.arrayBuffer())).toEqual(train);
    expect(shown?.validation).toBeNull();
    // The other tab's save has landed by now: in the middle of the page's read, or just after one that read nothing.
    const pending = otherTabSaves;
    otherTabSaves = null;
    await pending?.();
    expect((await t.session.savedRun())?.trainName).toBe('theirs.jsonl');
    // Asked for another checkpoint than the one it resumed, it gives none.
    expect(await t.session.savedRunFiles({ step: theirs.step, savedAt: theirs.savedAt })).toBeNull();
  });
});
