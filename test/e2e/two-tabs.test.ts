// Two tabs of the page in one browser profile share the run saved in this browser (one OPFS folder). While tab A
// trains, tab B says so instead of offering Resume, Forget and "Replace it and train" for a run that is live elsewhere,
// and its Train does not start a second run over A's checkpoints (src/worker/run-lock.ts: a Web Lock held by A's
// worker). Once A's run stops, B offers the saved run as usual. Two tabs used to train at once, each deleting the
// other's checkpoint files, and one run's record could be saved beside the other's data. The confirm box B shows before a
// new run replaces the saved one shows A's run too when A began meanwhile: it used to go to the worker, whose run lock
// refused, and B showed 'Training failed'. Last, B resumes the saved run once its checkpoint file is gone from the
// store: B shows the run as one that cannot be read, says why nothing was resumed, keeps its form and dataset, and
// forgets the run when asked.
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { appForTests, waitRunPhase } from './app-fixture.ts';
import { screenshot } from './browser.ts';

/**
 * Twenty very short rows: one held out for validation, nineteen steps of batch 1 (a checkpoint after each), so that the
 * run is still going when the other tab has loaded and looked, on any machine.
 */
const ROWS = Array.from({ length: 20 }, (_, i) => JSON.stringify({ prompt: `# ${i}`, completion: `x = ${i + 1}` })).join('\n') + '\n';
const RUN = { num_train_epochs: '1', train_batch_size: '1', micro_batch_size: '1', num_validation_samples: '1', max_seq_len: '24', save_steps: '1', validation_prompt: '' };

async function modelReady(page: Page): Promise<void> {
  await page.locator('[data-testid="model-status"][data-state="ready"]').waitFor({ timeout: 180_000 });
}

/** The hyperparameter form as typed: each field's value (a checkbox's checked state), by name. */
async function formOf(page: Page): Promise<Record<string, string | boolean>> {
  return page.locator('#panel-hyperparams').evaluate((panel) =>
    Object.fromEntries(
      [...panel.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input[name], select[name]')].map((f) => [f.name, f instanceof HTMLInputElement && f.type === 'checkbox' ? f.checked : f.value]),
    ),
  );
}

/** What the dataset panel shows: the training file's name and summary, and the validation file's view. */
async function datasetOf(page: Page): Promise<(string | null)[]> {
  return Promise.all([page.getByTestId('train-name').textContent(), page.getByTestId('train-summary').textContent(), page.getByTestId('validation-view').textContent()]);
}

/** Asserts that nothing says 'Training failed', and that the tab's run is still one that has not begun. */
async function trainedNothing(page: Page): Promise<void> {
  expect(await page.getByTestId('train-error').allTextContents()).toEqual([]);
  expect(await page.getByTestId('train-status').getAttribute('data-phase')).toBe('idle');
}

describe('two tabs of the page', () => {
  const opened = appForTests(120_000);
  /** The tabs the first test leaves, A's run stopped and B offering it, for the next one (no second model load). */
  let tabs: { a: Page; b: Page; profile: BrowserContext } | undefined;
  afterAll(async () => {
    await tabs?.profile.close();
  });

  it('lets one tab at a time train the run saved in this browser, and says so in the other', async () => {
    const app = opened();
    // Two tabs need one context (the harness's page has one of its own, which cannot open a second).
    await app.page.close();
    const profile = await app.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const a = await profile.newPage();
    await a.goto(app.url);
    await modelReady(a);
    for (const [name, value] of Object.entries(RUN)) await a.locator(`#${name}`).fill(value);
    await a.getByTestId('train-file').setInputFiles({ name: 'short.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(ROWS) });
    await a.getByTestId('plan-facts').filter({ hasText: /steps\s*19 \(19 per epoch\)/ }).waitFor();
    const startA = a.getByTestId('train-start');
    await expect.poll(() => startA.isEnabled(), { timeout: 30_000 }).toBe(true);
    await startA.click();
    await a.getByTestId('step-counter').filter({ hasText: /^1 \/ 19$/ }).waitFor({ timeout: 240_000 });

    // Tab B opens while A trains: no Resume, Forget or Replace for A's live run, only where it is.
    const b = await profile.newPage();
    await b.goto(app.url);
    const banner = b.locator('[data-testid="saved-run"][data-state="elsewhere"]');
    await banner.waitFor({ timeout: 180_000 });
    expect(await banner.locator('h3').textContent()).toBe('A run is training in another tab of this page');
    expect(await b.getByTestId('saved-run-resume').count()).toBe(0);
    expect(await b.getByTestId('saved-run-forget').count()).toBe(0);
    expect(await b.getByTestId('header-status').textContent()).toBe('Training in another tab ↓');

    // B's Train (the sample dataset is picked by itself) is off, saying why: A's run holds the saved run. It was
    // enabled, and its click did nothing to see.
    await modelReady(b);
    const startB = b.getByTestId('train-start');
    await b.getByTestId('plan-facts').waitFor();
    await expect.poll(() => b.getByTestId('train-reason').textContent(), { timeout: 60_000 }).toBe('A run is training in another tab of this page: this tab can train once it ends or its tab is closed.');
    expect(await startB.isDisabled()).toBe(true);
    expect(await b.getByTestId('train-status').getAttribute('data-phase')).toBe('idle');
    await screenshot(b, 'two-tabs-elsewhere');

    // A stops; B then offers A's saved run as usual (it looks again every few seconds).
    await a.getByTestId('train-stop').click();
    await waitRunPhase(a, 'stopped', 240_000);
    const resume = b.getByTestId('saved-run-resume');
    await resume.waitFor({ timeout: 30_000 });
    expect(await resume.textContent()).toMatch(/^Resume from step \d+$/);
    // The header's chip says so too (it said "Ready to train", though Train then asks to replace the run).
    expect(await b.getByTestId('header-status').textContent()).toMatch(/^Saved run at step \d+ \/ 19 · resume ↓$/);
    expect(await b.getByTestId('saved-run-summary').textContent()).toMatch(/^short\.jsonl · mistral-nano-demo \(unquantised\) · step \d+ \/ 19 · saved \d{4}-\d\d-\d\d \d\d:\d\d/);

    // B's Train asks before a new run replaces the saved one; A resumes while B's box is open. The box's "Replace it and
    // train" then starts nothing and shows A's run, as Train does: no 'Training failed', the form and dataset as they were.
    await expect.poll(() => startB.isEnabled(), { timeout: 60_000 }).toBe(true);
    const formB = await formOf(b);
    const dataB = await datasetOf(b);
    await startB.click();
    const replace = b.getByTestId('train-confirm-replace');
    await replace.waitFor({ timeout: 30_000 });
    await a.getByTestId('train-resume-here').click();
    await waitRunPhase(a, 'running', 120_000);
    await replace.click();
    // A's run shown, or (as it was) the worker's refusal shown as a failed run.
    await b.locator('[data-testid="saved-run"][data-state="elsewhere"], [data-testid="train-error"]').first().waitFor({ timeout: 30_000 });
    await trainedNothing(b);
    expect(await banner.locator('h3').textContent()).toBe('A run is training in another tab of this page');
    expect(await b.getByTestId('train-confirm').isHidden()).toBe(true);
    expect(await b.getByTestId('train-reason').textContent()).toBe('A run is training in another tab of this page: this tab can train once it ends or its tab is closed.');
    expect(await formOf(b)).toEqual(formB);
    expect(await datasetOf(b)).toEqual(dataB);
    await a.getByTestId('train-stop').click();
    await waitRunPhase(a, 'stopped', 240_000);
    await resume.waitFor({ timeout: 30_000 });

    // A resumes while B still offers the run: B's Forget then deletes nothing and says where the run is.
    await a.getByTestId('train-resume-here').click();
    await a.locator('[data-testid="train-status"][data-phase="running"]').waitFor({ timeout: 120_000 });
    await b.getByTestId('saved-run-forget').click();
    // Forget asks first; the answer finds the run held by A.
    expect(await b.getByTestId('saved-run-confirm-forget').getAttribute('role')).toBe('alertdialog');
    await b.getByTestId('saved-run-confirm-forget-yes').click();
    await banner.waitFor({ timeout: 30_000 });
    // Said in answer to the Forget, in place of the "another tab" box's general note.
    expect(await b.getByTestId('saved-run-note').textContent()).toBe(
      'Nothing was forgotten: a run is training in another tab of this page, on the run saved in this browser. Follow it there; this tab can forget it once that run ends or its tab is closed.',
    );
    await a.getByTestId('train-stop').click();
    await waitRunPhase(a, 'stopped', 240_000);
    await resume.waitFor({ timeout: 30_000 }); // the run is still saved: nothing was forgotten
    await trainedNothing(b);
    tabs = { a, b, profile };
  });

  it('refuses to resume a saved run whose checkpoint file is gone, keeps the form and dataset, and forgets it when asked', async () => {
    if (!tabs) throw new Error("the previous test did not leave its tabs (it failed): this one resumes the run it saved");
    const { b } = tabs;
    // A value of B's own, so that the run's values, had the form taken them for the refused resume, could be told from B's.
    await b.locator('#max_seq_len').fill('32');
    // The dataset panel reads the data again for the new length.
    await b.getByTestId('train-summary').filter({ hasText: 'max 32' }).waitFor({ timeout: 60_000 });
    const formB = await formOf(b);
    expect(formB.max_seq_len).toBe('32');
    const dataB = await datasetOf(b);
    // The record still reads (the page offers it), but the training state it names is gone: the worker's resume finds
    // the file missing before it gives anything up.
    const gone = await b.evaluate(async () => {
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('finetune-run');
      const pointer = JSON.parse(await (await (await dir.getFileHandle('current.json')).getFile()).text()) as { files: Record<string, string> };
      const state = pointer.files['state.safetensors'];
      await dir.removeEntry(state);
      return state;
    });
    expect(gone).toMatch(/^\d{6,}-state\.safetensors$/);
    await b.getByTestId('saved-run-resume').click();

    const problem = `the run store's current.json names ${gone} for its state.safetensors, and that file is missing`;
    const saved = b.getByTestId('saved-run');
    await saved.locator('h3').filter({ hasText: 'The run saved in this browser cannot be read' }).waitFor({ timeout: 120_000 });
    expect(await b.getByTestId('saved-run-summary').textContent()).toBe(`${problem}.`);
    expect(await b.getByTestId('saved-run-resume').count()).toBe(0);
    expect(await b.getByTestId('saved-run-note').textContent()).toBe(`Nothing was resumed: ${problem}. Forget it above to train a new run here; the form and the dataset are as they were.`);
    await trainedNothing(b);
    expect(await formOf(b)).toEqual(formB);
    // The same file and summary: not the run's data (the form never took the run's values, so nothing is read again).
    await expect.poll(() => datasetOf(b), { timeout: 60_000 }).toEqual(dataB);
    await screenshot(b, 'two-tabs-damaged-resume');

    // Forget asks first, then deletes the run: the store names no file of it any more.
    await b.getByTestId('saved-run-forget').click();
    await b.getByTestId('saved-run-confirm-forget-yes').click();
    await saved.waitFor({ state: 'hidden', timeout: 30_000 });
    const named = (): Promise<string[]> =>
      b.evaluate(async () => {
        const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('finetune-run');
        const pointer = JSON.parse(await (await (await dir.getFileHandle('current.json')).getFile()).text()) as { files: Record<string, string> };
        return Object.keys(pointer.files);
      });
    expect(await named()).toEqual([]);
  });
});
