// A lost GPU device in the middle of a run, in the real browser: Chromium's GPU process is crashed through the
// DevTools protocol while the demo model trains, which loses the worker's WebGPU device the way a driver reset or a
// GPU crash does. The page must say what happened, keep the checkpoint, and offer "Get the GPU back and resume": a new
// device, the model reloaded, the run continued from its last checkpoint to the end.
import { describe, expect, it } from 'vitest';
import { appForTests, waitModelReady, waitRunPhase } from './app-fixture.ts';
import { screenshot } from './browser.ts';

/** Two very short rows and one held out: two steps of batch 1 (SwiftShader is slow). */
const ROWS = ['one', 'two', 'three'].map((w, i) => JSON.stringify({ prompt: `# ${w}`, completion: `x = ${i + 1}` })).join('\n') + '\n';
const RUN = { num_train_epochs: '1', train_batch_size: '1', micro_batch_size: '1', num_validation_samples: '1', max_seq_len: '24', save_steps: '1', validation_prompt: '' };

describe('GPU device lost while training in the page (headless Chromium, SwiftShader)', () => {
  const opened = appForTests(120_000);

  it('says the GPU was lost, then gets it back and resumes from the last checkpoint to the end', async () => {
    const app = opened();
    const page = app.page;
    await waitModelReady(app);
    for (const [name, value] of Object.entries(RUN)) await page.locator(`#${name}`).fill(value);
    await page.getByTestId('train-file').setInputFiles({ name: 'short.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(ROWS) });
    await page.getByTestId('plan-facts').filter({ hasText: /steps\s*2 \(2 per epoch\)/ }).waitFor();
    await page.getByTestId('train-start').click();
    const counter = page.getByTestId('step-counter');
    await counter.filter({ hasText: /^1 \/ 2$/ }).waitFor({ timeout: 240_000 });
    await page.getByTestId('train-event').filter({ hasText: 'Checkpoint saved in this browser at step 1.' }).waitFor({ timeout: 60_000 });

    const cdp = await app.browser.newBrowserCDPSession();
    await cdp.send('Browser.crashGpuProcess');
    await waitRunPhase(page, 'error', 120_000);
    // In words, with the checkpoint named; the run's data stays; the way back is offered.
    const error = page.getByTestId('train-error');
    expect(await error.textContent()).toMatch(/^The GPU stopped working during training .* The checkpoint at step \d+ is safe in this browser/);
    const savedAt = Number(/checkpoint at step (\d+)/.exec((await error.textContent()) ?? '')?.[1]);
    expect(savedAt >= 1 && savedAt < 2).toBe(true);
    const recover = page.getByTestId('train-recover');
    expect(await recover.isVisible()).toBe(true);
    expect(await page.getByTestId('train-resume-here').isVisible()).toBe(false);
    await screenshot(page, 'train-device-lost');

    // A new device, the model reloaded, and the run continues from its checkpoint to the end.
    await recover.click();
    await page.getByTestId('train-event').filter({ hasText: `from the checkpoint at step ${savedAt}` }).waitFor({ timeout: 240_000 });
    await waitRunPhase(page, 'done', 400_000);
    expect(await counter.textContent()).toBe('2 / 2');
    expect(await page.getByTestId('train-result').textContent()).toMatch(/^Finished: 2 steps/);
    expect(await recover.isVisible()).toBe(false);
    expect(await page.locator('[data-testid="model-status"][data-state="ready"]').count()).toBe(1);
    }, 900_000);
});
