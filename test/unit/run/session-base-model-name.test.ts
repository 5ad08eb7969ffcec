// The name a run's adapter gives its base model (base_model_name_or_path): train --base-model NAME hands it to the
// session, which names the adapter by it and records it with the run, so that a resume (or the page's restore) and an
// export of the run's checkpoint name it too. A record without it (one saved before, or a run given none) names the
// loaded model, as before. Driven through FinetuneSession.train on a stand-in GPU: the run goes as far as it lets it,
// which is past the adapter's creation.
import { describe, expect, it } from 'vitest';
import { targetModules } from '../../../src/config/hyperparams.ts';
import { mulberry32 } from '../../../src/engine/reference/common.ts';
import { createAdapter } from '../../../src/model/lora-adapter.ts';
import type { SavedRun } from '../../../src/run/saved-run.ts';
import { adapterState } from '../../helpers/fake-checkpoint.ts';
import { savedRunSession, TINY_ROWS, tinyRun } from '../../helpers/saved-run-session.ts';
import { errorOf } from '../model/helpers.ts';

const hp = tinyRun().hp;
const files = { train: new Blob([TINY_ROWS]), trainName: 'rows.jsonl', validation: null, validationName: null };

/** A session holding a run at step 1 (its record with `over`) whose state fits tiny-mistral with the run's hp. */
async function sessionWithRun(over: Partial<SavedRun>) {
  const probe = await savedRunSession(null, new Uint8Array());
  const adapter = createAdapter(probe.session.baseConfig, { r: hp.lora_rank, alpha: hp.lora_alpha, targetModules: targetModules(hp), baseModel: 'tiny-mistral', random: mulberry32(1) });
  const { totalSteps } = await probe.session.plan(hp, new Blob([TINY_ROWS]), null);
  return savedRunSession(tinyRun(1, { totalSteps, history: [], ...over }), adapterState(adapter, 1));
}

describe('the base model name a run was given', () => {
  it('a restored run names the base model its record names, and the loaded model when it names none', async () => {
    const named = await sessionWithRun({ baseModelName: 'my-org/tiny-mistral' });
    await named.session.train({}, null, () => undefined, { resume: true, restoreOnly: true }).catch(() => undefined);
    expect((await named.session.adapterNow()).config.baseModel).toBe('my-org/tiny-mistral');
    expect(named.session.baseModelName).toBe('my-org/tiny-mistral');
    const older = await sessionWithRun({});
    await older.session.train({}, null, () => undefined, { resume: true, restoreOnly: true }).catch(() => undefined);
    expect((await older.session.adapterNow()).config.baseModel).toBe('tiny-mistral');
    expect(older.session.baseModelName).toBe('tiny-mistral');
  });

  it('a resume given a name names the base model by it rather than by the record', async () => {
    const t = await sessionWithRun({ baseModelName: 'my-org/tiny-mistral' });
    await t.session.train({}, null, () => undefined, { resume: true, baseModelName: 'other-org/tiny' }).catch(() => undefined);
    expect((await t.session.adapterNow()).config.baseModel).toBe('other-org/tiny');
  });

  it('a new run given a name names the base model by it; a name a typed --base-model is refused for is refused', async () => {
    const t = await savedRunSession(null, new Uint8Array());
    await t.session.train(hp, files, () => undefined, { baseModelName: 'my-org/tiny-mistral' }).catch(() => undefined);
    expect((await t.session.adapterNow()).config.baseModel).toBe('my-org/tiny-mistral');
    expect(t.session.baseModelName).toBe('my-org/tiny-mistral');
    const e = await errorOf(() => t.session.train(hp, files, () => undefined, { baseModelName: 'my-org/\u202etiny' }));
    expect(e.message).toBe('the base model name holds U+202E (right-to-left override), a bidirectional control, which reorders the text around it so that the name reads as another: remove it');
  });
});
