// The fine-tuning journey in the built app, headless Chromium, WebGPU on SwiftShader inside the worker: the demo model
// loads by itself, a tiny dataset is uploaded, the form is set for a run of two short steps, training runs to the end
// with a live chart, validation loss and step counter; the adapter downloads as a PEFT zip and generates text. A
// second run is paused and stopped half-way; after a reload its adapter so far is restored (nothing trained), then it
// continues from its checkpoint to the end, and a further reload asks before forgetting it and restores the very same
// adapter. SwiftShader is slow (about a second per trained
// token of the demo model), so the rows are a few tokens long.
import { readFileSync } from 'node:fs';
import { strFromU8, unzipSync } from 'fflate';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartLegend, openApp, screenshot, type App } from './browser.ts';
import { waitModelReady, waitRunPhase } from './app-fixture.ts';
import { safetensorsTensors } from '../helpers/safetensors-file.ts';

const ROWS = [
  { prompt: '# Add two numbers.', completion: 'def add(a, b):\n    return a + b' },
  { prompt: '# Double a number.', completion: 'def double(x):\n    return 2 * x' },
  { prompt: '# Negate a number.', completion: 'def neg(x):\n    return -x' },
  { prompt: '# Square a number.', completion: 'def sq(x):\n    return x * x' },
];
const JSONL = ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n';
/** Five very short rows: one held out for validation, four steps of batch 1. */
const SHORT = ['one', 'two', 'three', 'four', 'five'].map((w, i) => JSON.stringify({ prompt: `# ${w}`, completion: `x = ${i + 1}` })).join('\n') + '\n';
const TINY_RUN = { num_train_epochs: '1', train_batch_size: '1', micro_batch_size: '1', num_validation_samples: '1', max_seq_len: '24', validation_prompt: '' };

async function downloadZip(page: Page, button = 'export-download'): Promise<{ name: string; files: Record<string, Uint8Array> }> {
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId(button).click()]);
  const path = await download.path();
  return { name: download.suggestedFilename(), files: unzipSync(new Uint8Array(readFileSync(path))) };
}

async function setForm(page: Page, values: Record<string, string>): Promise<void> {
  for (const [name, value] of Object.entries(values)) await page.locator(`#${name}`).fill(value);
}

async function upload(page: Page, name: string, text: string, rows: number): Promise<void> {
  await page.getByTestId('train-file').setInputFiles({ name, mimeType: 'application/jsonl', buffer: Buffer.from(text) });
  await page.getByTestId('train-name').filter({ hasText: name }).waitFor();
  await page.locator('[data-testid="train-summary"] dd[data-key="rows"]').filter({ hasText: new RegExp(`^${rows}$`) }).waitFor();
}

describe('train the demo model in the page (headless Chromium, SwiftShader)', () => {
  let app: App;
  beforeAll(async () => {
    app = await openApp();
    app.page.setDefaultTimeout(120_000);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('opens with the demo model loaded, then trains a tiny dataset to the end with a live chart', async () => {
    const page = app.page;
    await waitModelReady(app, 120_000);
    expect(await page.getByTestId('model-info').textContent()).toContain('32,000');

    // Before anything trains, the page measures a step here and says how long the demo preset would take. On this
    // software adapter that is minutes (over three), so it offers the quick preset, which plans a run of eight short steps.
    const estimate = page.getByTestId('train-estimate');
    await estimate.waitFor({ timeout: 240_000 });
    expect(await estimate.textContent()).toMatch(/^This run should take about [\d.]+ (s|min|hours|days) here \(.*tokens\/s measured on this software adapter\)\.$/);
    // Its validation passes priced apart, by a validation pass measured on this model, and the preset's sample of its
    // validation prompt after each, by the decoder timed on that prompt: the preset validates before training
    // (eval_on_start) and at the end.
    expect(await estimate.textContent()).toMatch(/, 2 validation passes, about [\d.]+ (s|min) in all, 2 samples of the validation prompt, about [\d.]+ (s|min) in all;/);
    await page.getByTestId('preset-quick').click();
    await page.getByTestId('plan-facts').filter({ hasText: /steps\s*8 \(29 per epoch; max_steps ends it\)/ }).waitFor();
    await page.getByTestId('train-estimate').filter({ hasText: /should take about/ }).waitFor({ timeout: 60_000 });
    // Three validations (before training, after steps 4 and 8), each followed by its sample.
    expect(await page.getByTestId('train-estimate').textContent()).toMatch(/, 3 validation passes, about [\d.]+ (s|min) in all, 3 samples of the validation prompt, about [\d.]+ (s|min) in all;/);
    // Priced by the steps it makes (8 of 2 rows, each at most 32 tokens), not by the whole epoch max_steps cuts short.
    const quickTokens = /\(([\d,]+) training tokens/.exec((await page.getByTestId('train-estimate').textContent()) ?? '');
    expect(Number(quickTokens?.[1].replace(/,/g, ''))).toBeGreaterThan(0);
    expect(Number(quickTokens?.[1].replace(/,/g, ''))).toBeLessThanOrEqual(8 * 2 * 32);
    await screenshot(page, 'train-estimate-quick-preset');
    await page.getByTestId('preset-demo').click();

    // Two rows held out for validation, one per batch, too long to share a row: two forward passes, whose progress the
    // page shows.
    await setForm(page, { ...TINY_RUN, num_validation_samples: '2' });
    await upload(page, 'tiny.jsonl', JSONL, 4);
    // 4 rows, 2 held out for validation, batch 1: two optimizer steps.
    await page.getByTestId('plan-facts').filter({ hasText: /steps\s*2 \(2 per epoch\)/ }).waitFor();
    expect(await page.getByTestId('default-num_validation_samples').textContent()).toBe('default 50');

    // Beside Train, a button asks the browser's permission to say on the desktop when a run ends; once allowed, it
    // gives way to a line saying so.
    const notify = page.getByTestId('train-notify');
    expect(await notify.isVisible()).toBe(true);
    await page.context().grantPermissions(['notifications'], { origin: new URL(app.url).origin });
    await notify.click();
    await page.getByTestId('train-notify-hint').filter({ hasText: 'A notification will say when a run ends while this tab is hidden.' }).waitFor();
    expect(await notify.isVisible()).toBe(false);

    // While it trains the page is out of sight (another tab): its end is to be told by a notification, which a stand-in
    // for the browser's Notification records here (headless Chromium shows none that a test could read).
    await page.evaluate(() => {
      const shown: { title: string; body?: string }[] = [];
      class Recorded {
        static permission = 'granted';
        static requestPermission = async (): Promise<string> => 'granted';
        onclick: (() => void) | null = null;
        constructor(title: string, options?: { body?: string }) {
          shown.push({ title, body: options?.body });
        }
        close(): void {}
      }
      Object.assign(window, { shownNotifications: shown });
      Object.defineProperty(window, 'Notification', { value: Recorded, configurable: true, writable: true });
      Object.defineProperty(document, 'hidden', { get: () => true, configurable: true });
    });

    const start = page.getByTestId('train-start');
    await expect.poll(() => start.isEnabled(), { timeout: 30_000 }).toBe(true);
    await start.click();
    // A reload or a closed tab now would lose the run's steps: beforeunload is cancelled, so the browser asks first.
    const leaveAsks = (): Promise<boolean> => page.evaluate(() => !window.dispatchEvent(new Event('beforeunload', { cancelable: true })));
    // The click first asks the worker about the run saved in this browser (a round trip or two, slower on a loaded
    // machine), then the run starts: from then on, leaving asks.
    await expect.poll(() => leaveAsks(), { timeout: 30_000 }).toBe(true);
    await page.getByTestId('step-counter').filter({ hasText: /^1 \/ 2$/ }).waitFor({ timeout: 240_000 });
    expect(await page.getByTestId('train-pause').isEnabled()).toBe(true);
    // Try it waits while steps run, and says why beside its button.
    expect(await page.getByTestId('generate-run').isDisabled()).toBe(true);
    expect(await page.getByTestId('generate-reason').textContent()).toBe('Training is using the GPU: pause the run (or wait until it ends) to generate.');
    expect(await page.locator('#learning_rate').isDisabled()).toBe(true);
    // One step so far, and the validation before it (the demo preset's eval_on_start) at step 0: the step axis runs
    // from that point to the plan's last step, with no tick before it (uPlot pads a single point's range on both sides).
    await page.locator('[data-testid="loss-chart"][data-train-points="1"][data-x-ticks]').waitFor();
    expect(await page.getByTestId('loss-chart').getAttribute('data-val-points')).toBe('1');
    expect(await page.getByTestId('loss-chart').getAttribute('aria-label')).toMatch(/validation loss \d\.\d{3} before training\.$/);
    const ticks = (await page.getByTestId('loss-chart').getAttribute('data-x-ticks')) ?? '';
    expect(ticks.split(' ').map((t) => Number(t.split('=')[0])), ticks).toEqual([0, 1, 2]);
    // Each step's loss with its smoothed trend over it (TensorBoard's weight for a run this short), named in the legend.
    expect(await page.getByTestId('loss-chart').getAttribute('data-smoothing')).toBe('0.6');
    expect(await page.getByTestId('loss-chart').locator('.u-legend').textContent()).toMatch(/train loss.*validation loss.*smoothed/);
    // The learning-rate chart marks where the run is.
    await page.locator('[data-testid="plan-lr"][data-current-step="1"]').waitFor();
    expect(await page.title()).toMatch(/^([\d.]+ % · (\d+:\d\d left · )?step [12] \/ 2|Finished · 2 steps) · finetune$/);
    await screenshot(page, 'train-running');
    // The validation after the last step, pass by pass (each takes seconds here).
    await Promise.all([
      page.getByTestId('train-status').filter({ hasText: /^Validating the adapter after step 2: 1 \/ 2 passes…$/ }).waitFor({ timeout: 240_000 }),
      page.getByTestId('header-status').filter({ hasText: /^Validating · step 2 · 1 \/ 2$/ }).waitFor({ timeout: 240_000 }),
    ]);
    await waitRunPhase(page, 'done', 240_000);

    expect(await page.getByTestId('step-counter').textContent()).toBe('2 / 2');
    expect(await page.getByTestId('plan-lr').getAttribute('data-current-step')).toBe('2');
    const chart = page.getByTestId('loss-chart');
    expect(await chart.getAttribute('data-train-points')).toBe('2');
    // Before training and after the last step.
    expect(await chart.getAttribute('data-val-points')).toBe('2');
    expect(await chart.locator('canvas').count()).toBeGreaterThan(0);
    const trainLoss = Number(await page.getByTestId('train-loss').textContent());
    expect(trainLoss).toBeGreaterThan(0);
    const valLoss = Number(await page.getByTestId('val-loss').getAttribute('data-value'));
    expect(Number.isFinite(valLoss) && valLoss > 0).toBe(true);
    expect(await page.getByTestId('val-loss').textContent()).toBe(valLoss.toPrecision(4));
    // The legends, the pointer off the charts, give the latest values (they once said "—" for each series).
    await page.mouse.move(0, 0);
    const legend = await chartLegend(page, 'loss-chart');
    expect(legend).toMatchObject({ step: '2', 'train loss': trainLoss.toPrecision(4), 'validation loss': valLoss.toPrecision(4) });
    expect(legend.smoothed).toMatch(/^\d\.\d{3}$/);
    expect(await chartLegend(page, 'plan-lr')).toMatchObject({ step: '2 (now)' });
    // The pointer on the loss curve at step 1 (the middle of its x range, −0.5 to 2.5: the validation at step 0 and
    // the 2 steps) puts the learning-rate chart's cursor, and its legend, at step 1 too; off it, both rest again.
    const over = chart.locator('.u-over');
    const box = await over.boundingBox();
    await over.hover({ position: { x: box!.width / 2, y: box!.height / 2 } });
    expect(await chartLegend(page, 'loss-chart')).toMatchObject({ step: '1', 'train loss': expect.stringMatching(/^\d\.\d{3}$/) });
    expect(await chartLegend(page, 'plan-lr')).toMatchObject({ step: '1', 'learning rate': expect.stringMatching(/^\d/) });
    await page.mouse.move(0, 0);
    expect(await chartLegend(page, 'plan-lr')).toMatchObject({ step: '2 (now)' });
    expect(await page.getByTestId('train-result').textContent()).toMatch(/^Finished: 2 steps .* · validation loss \d\.\d{3} \(\d\.\d{3} before training\)$/);
    expect(await page.getByTestId('val-loss-sub').textContent()).toMatch(/^at step 2 · .* · \d\.\d{3} before training$/);
    expect(await page.getByTestId('tokens-per-second').textContent()).toMatch(/^\d/);
    expect(await page.getByTestId('eta').textContent()).toBe('done');
    // The estimate beside Train again is of the next run, not of the one shown finished ("This run should take…").
    expect(await page.getByTestId('train-estimate').textContent()).toMatch(/^A new run of these settings should take about /);
    // The tab's title carries the news to a user watching another tab.
    expect(await page.title()).toBe('Finished · 2 steps · finetune');
    // And, the page being out of sight, one notification with its steps, time and losses.
    const shown = await page.evaluate(() => (window as unknown as { shownNotifications: { title: string; body?: string }[] }).shownNotifications);
    expect(shown.map((n) => n.title)).toEqual(['Training finished']);
    expect(shown[0].body).toMatch(/^2 steps in \d+:\d\d · final loss [\d.]+ · validation loss [\d.]+ \([\d.]+ before training\)\. The adapter is ready to export\.$/);
    await page.evaluate(() => Reflect.deleteProperty(document, 'hidden'));
    expect(await page.evaluate(() => document.hidden)).toBe(false);
    // Ended, its checkpoint saved: leaving loses nothing, and nothing asks.
    expect(await leaveAsks()).toBe(false);
    // The run says which kernels it trained with: on this software adapter, the defaults, unmeasured.
    expect(await page.getByTestId('train-kernels').textContent()).toMatch(/^kernels: basic GEMM, row-split attention \(not measured: on a software adapter/);
    expect(await page.locator('#learning_rate').isEnabled()).toBe(true);
    await screenshot(page, 'train-done');
    await page.locator('#panel-training').screenshot({ path: 'test-artifacts/train-panel-done.png' });
  });

  it('downloads the adapter as a zip with adapter_config.json and adapter_model.safetensors, and generates with it', async () => {
    const page = app.page;
    const zip = await downloadZip(page);
    expect(zip.name).toBe('adapter-mistral-nano-demo-step2.zip');
    expect(Object.keys(zip.files).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const config = JSON.parse(strFromU8(zip.files['adapter_config.json'])) as Record<string, unknown>;
    expect(config.peft_type).toBe('LORA');
    expect(config.r).toBe(8);
    expect(config.lora_alpha).toBe(16);
    expect([...(config.target_modules as string[])].sort()).toEqual(['q_proj', 'v_proj']);
    const tensors = Object.fromEntries(safetensorsTensors(zip.files['adapter_model.safetensors']));
    // 4 layers × (q_proj, v_proj) × (lora_A, lora_B); A is [r, in], B is [out, r] (hidden 256; 2 kv-heads × 32).
    expect(Object.keys(tensors)).toHaveLength(16);
    expect(tensors['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'].shape).toEqual([8, 256]);
    expect(tensors['base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight'].shape).toEqual([64, 8]);
    expect(await page.getByTestId('export-status').textContent()).toContain('adapter-mistral-nano-demo-step2.zip');

    // The fuller zip: the same adapter, plus adapter.gguf for llama.cpp / Ollama and a README.
    const full = await downloadZip(page, 'export-full');
    expect(full.name).toBe('adapter-mistral-nano-demo-step2-gguf.zip');
    expect(Object.keys(full.files)).toEqual(expect.arrayContaining(['adapter_config.json', 'adapter_model.safetensors', 'adapter.gguf', 'README.md']));
    expect(strFromU8(full.files['adapter.gguf'].subarray(0, 4))).toBe('GGUF');
    // Its README ends with how the adapter was trained: this run's data, steps and losses.
    const readme = strFromU8(full.files['README.md']);
    expect(readme).toContain('for 2 optimizer steps on `tiny.jsonl` (2 training rows), validated on 2 rows held out from it.');
    const cardLoss = /Training loss at step 2: (\d+\.\d{4}) /.exec(readme)?.[1];
    expect(Number(cardLoss).toPrecision(4)).toBe(await page.getByTestId('train-loss').textContent());
    expect(readme).toContain('| max_seq_len * | `24` |');
    expect(Buffer.from(full.files['adapter_model.safetensors']).equals(Buffer.from(zip.files['adapter_model.safetensors']))).toBe(true);
    expect(JSON.parse(strFromU8(zip.files['adapter_config.json'])).base_model_name_or_path).toBe('mistral-nano-demo');

    // The base model's name, as the user writes it (local files name no model): in the config and the file's name.
    const baseName = page.getByTestId('export-base-model');
    expect(await baseName.getAttribute('placeholder')).toBe('mistral-nano-demo');
    await baseName.fill('x'.repeat(301));
    expect(await page.getByTestId('export-base-model-hint').textContent()).toBe('Not this name: the base model name has 301 characters; at most 300 are taken.');
    expect(await page.getByTestId('export-download').isEnabled()).toBe(false);
    await baseName.fill('my-org/nano-demo');
    expect(await page.getByTestId('export-name').textContent()).toBe('adapter-my-org-nano-demo-step2.zip');
    const renamed = await downloadZip(page);
    expect(renamed.name).toBe('adapter-my-org-nano-demo-step2.zip');
    expect(JSON.parse(strFromU8(renamed.files['adapter_config.json'])).base_model_name_or_path).toBe('my-org/nano-demo');
    expect(Buffer.from(renamed.files['adapter_model.safetensors']).equals(Buffer.from(zip.files['adapter_model.safetensors']))).toBe(true);
    await baseName.fill('');

    await page.getByTestId('generate-prompt').fill('# Add two numbers.');
    await page.getByTestId('generate-max').fill('2');
    await page.getByTestId('generate-run').click();
    const out = page.getByTestId('generate-output');
    await out.locator('pre').waitFor({ timeout: 120_000 });
    expect(await out.locator('pre').textContent()).toMatch(/^# Add two numbers\..+/s);
    expect(await out.textContent()).toContain('with the adapter at step 2');
  });

  it('pauses a second run (the step counter holds), then stops it with the adapter so far', async () => {
    const page = app.page;
    await setForm(page, TINY_RUN);
    await upload(page, 'short.jsonl', SHORT, 5);
    await page.getByTestId('plan-facts').filter({ hasText: /steps\s*4 \(4 per epoch\)/ }).waitFor();
    await page.getByTestId('train-start').click();
    // The first run is saved in this browser: a new one asks before replacing it.
    // Asked once the worker has said what is saved (it may be busy measuring the new data's time estimate first).
    await page.getByTestId('train-confirm').filter({ hasText: /replaces the run saved in this browser \(tiny\.jsonl, step 2 of 2\)/ }).waitFor({ timeout: 240_000 });
    // The focus on Keep it (an Enter loses no run), and Escape answers that: nothing starts, the saved run stays.
    expect(await page.getByTestId('train-cancel-replace').evaluate((b) => b === document.activeElement)).toBe(true);
    await page.keyboard.press('Escape');
    expect(await page.getByTestId('train-confirm').isHidden()).toBe(true);
    // The focus back on Train, not on the page's body.
    expect(await page.getByTestId('train-start').evaluate((b) => b === document.activeElement)).toBe(true);
    expect(await page.getByTestId('train-status').getAttribute('data-phase')).not.toBe('running');
    await page.getByTestId('train-start').click();
    await page.getByTestId('train-confirm').filter({ hasText: /replaces the run saved in this browser/ }).waitFor({ timeout: 240_000 });
    await page.getByTestId('train-confirm-replace').click();
    const counter = page.getByTestId('step-counter');
    await counter.filter({ hasText: /^1 \/ 4$/ }).waitFor({ timeout: 240_000 });
    await page.getByTestId('train-pause').click();
    // Pausing until the worker says the step under way has ended: export and Try it wait for it, and say so.
    expect(await page.getByTestId('header-status').textContent()).toMatch(/^(Pausing|Paused) · step /);
    if ((await page.getByTestId('header-status').textContent())?.startsWith('Pausing')) {
      expect(await page.getByTestId('train-status').textContent()).toBe('Pausing after the current step…');
      expect(await page.getByTestId('generate-reason').textContent()).toBe('The run is pausing: Try it can run once the work under way ends.');
      expect(await page.getByTestId('export-download').isDisabled()).toBe(true);
    }
    await waitRunPhase(page, 'paused', 120_000);
    expect(await page.getByTestId('train-pause').textContent()).toBe('Resume');
    expect(await page.title()).toMatch(/^Paused at [\d.]+ % · finetune$/);
    // Paused means stopped at a step's end: nothing moves from here.
    const held = await counter.textContent();
    await page.waitForTimeout(6_000);
    expect(await counter.textContent()).toBe(held);
    expect(await page.getByTestId('export-download').isEnabled()).toBe(true);
    await screenshot(page, 'train-paused');
    await page.locator('#panel-training').screenshot({ path: 'test-artifacts/train-panel-paused.png' });

    // Stop from the keyboard: the button disables itself; once stopped the focus is on what comes next, Resume.
    await page.getByTestId('train-stop').focus();
    await page.keyboard.press('Enter');
    await waitRunPhase(page, 'stopped', 120_000);
    expect(await page.getByTestId('train-resume-here').evaluate((b) => b === document.activeElement)).toBe(true);
    const result = await page.getByTestId('train-result').textContent();
    const stoppedAt = Number(/Stopped at step (\d+) of 4/.exec(result ?? '')?.[1]);
    expect(stoppedAt >= 1 && stoppedAt < 4, result ?? '').toBe(true);
    expect(await counter.textContent()).toBe(`${stoppedAt} / 4`);
    expect(await page.getByTestId('export-download').isEnabled()).toBe(true);
    expect(await page.getByTestId('export-name').textContent()).toBe(`adapter-mistral-nano-demo-step${stoppedAt}.zip`);
    expect(await page.getByTestId('eta').textContent()).toBe('—');

    // Resume is offered right there, without a reload: it continues from the checkpoint; stopping again keeps it.
    const resumeHere = page.getByTestId('train-resume-here');
    expect(await resumeHere.textContent()).toBe(`Resume from step ${stoppedAt}`);
    await resumeHere.click();
    await page.getByTestId('train-event').filter({ hasText: `from the checkpoint at step ${stoppedAt}` }).waitFor({ timeout: 120_000 });
    await page.getByTestId('train-stop').click();
    await waitRunPhase(page, 'stopped', 120_000);
    const again = Number(/Stopped at step (\d+) of 4/.exec((await page.getByTestId('train-result').textContent()) ?? '')?.[1]);
    expect(again >= stoppedAt && again < 4).toBe(true);
    expect(await counter.textContent()).toBe(`${again} / 4`);
  });

  it("after a reload, restores the stopped run's adapter at its step, resumes it from its checkpoint to the end; a second reload asks before Forget and restores the same adapter", async () => {
    const page = app.page;
    const before = await page.getByTestId('step-counter').textContent();
    const stoppedAt = Number(before?.split(' / ')[0]);
    const stoppedZip = await downloadZip(page);
    await page.reload();
    const saved = page.getByTestId('saved-run');
    await saved.waitFor({ state: 'visible', timeout: 60_000 });
    const summary = await page.getByTestId('saved-run-summary').textContent();
    expect(summary).toContain('short.jsonl');
    expect(summary).toContain('mistral-nano-demo (unquantised)');
    expect(summary).toContain(`step ${stoppedAt} / 4`);
    expect(await page.getByTestId('saved-run-resume').textContent()).toBe(`Resume from step ${stoppedAt}`);
    await waitModelReady(app, 120_000);
    // The header's chip says so too, from any panel (it said "Ready to train · 4 steps").
    await page.getByTestId('header-status').filter({ hasText: `Saved run at step ${stoppedAt} / 4 · resume ↓` }).waitFor({ timeout: 30_000 });
    await screenshot(page, 'train-saved-run');
    await page.getByTestId('saved-run').screenshot({ path: 'test-artifacts/saved-run-unfinished.png' });

    // Its adapter so far, as the page promised before the reload: restored at its step, nothing trained.
    expect(await page.getByTestId('saved-run-restore').textContent()).toBe(`Restore the adapter at step ${stoppedAt}`);
    await page.getByTestId('saved-run-restore').click();
    await waitRunPhase(page, 'stopped', 120_000);
    expect(await page.getByTestId('step-counter').textContent()).toBe(`${stoppedAt} / 4`);
    const sofar = await downloadZip(page);
    expect(sofar.name).toBe(`adapter-mistral-nano-demo-step${stoppedAt}.zip`);
    expect(Buffer.from(sofar.files['adapter_model.safetensors']).equals(Buffer.from(stoppedZip.files['adapter_model.safetensors']))).toBe(true);

    // Resume then continues from the same checkpoint (the restore left it as it was).
    expect(await page.getByTestId('train-resume-here').textContent()).toBe(`Resume from step ${stoppedAt}`);
    await page.getByTestId('train-resume-here').click();
    await page.getByTestId('train-event').filter({ hasText: `from the checkpoint at step ${stoppedAt}` }).waitFor({ timeout: 120_000 });
    // The dataset panel shows the data the resumed run trains on (the page opened with the sample dataset).
    await page.getByTestId('train-name').filter({ hasText: 'short.jsonl' }).waitFor({ timeout: 60_000 });
    await waitRunPhase(page, 'done', 300_000);
    expect(await page.getByTestId('step-counter').textContent()).toBe('4 / 4');
    // The chart holds the saved history and the steps run after the resume.
    expect(await page.getByTestId('loss-chart').getAttribute('data-train-points')).toBe('4');
    expect(Number(await page.getByTestId('val-loss').getAttribute('data-value'))).toBeGreaterThan(0);
    await screenshot(page, 'train-resumed');
    await page.locator('#panel-training').screenshot({ path: 'test-artifacts/train-panel-resumed.png' });
    const zip = await downloadZip(page);
    expect(zip.name).toBe('adapter-mistral-nano-demo-step4.zip');

    await page.reload();
    await page.getByTestId('saved-run-summary').filter({ hasText: 'step 4 / 4' }).waitFor({ timeout: 60_000 });
    await waitModelReady(app, 120_000);
    expect(await page.getByTestId('saved-run-resume').textContent()).toBe('Restore the adapter');
    expect(await page.getByTestId('saved-run-restore').count()).toBe(0);
    // Forget asks first, saying what is lost; Keep it keeps the run.
    await page.getByTestId('saved-run-forget').click();
    const question = page.getByTestId('saved-run-confirm-forget');
    expect(await question.getAttribute('role')).toBe('alertdialog');
    expect(await question.textContent()).toContain('(short.jsonl, step 4 of 4)? Its checkpoint at step 4 is deleted with it');
    await page.getByTestId('saved-run').screenshot({ path: 'test-artifacts/saved-run-forget-confirm.png' });
    await page.getByTestId('saved-run-keep').click();
    expect(await question.isHidden()).toBe(true);
    await page.getByTestId('saved-run-resume').click();
    await waitRunPhase(page, 'done', 120_000);
    const restored = await downloadZip(page);
    expect(restored.name).toBe('adapter-mistral-nano-demo-step4.zip');
    expect(Buffer.from(restored.files['adapter_model.safetensors']).equals(Buffer.from(zip.files['adapter_model.safetensors']))).toBe(true);
  });

  it("lists each validation's sample of validation_prompt, the newest first in full, and shows them again after a reload", async () => {
    const page = app.page;
    // Two steps, a validation before the first (the demo preset's eval_on_start) and after each: three samples.
    await setForm(page, { ...TINY_RUN, num_validation_samples: '2', eval_steps: '1', validation_prompt: '# Add' });
    await upload(page, 'tiny.jsonl', JSONL, 4);
    await page.getByTestId('plan-facts').filter({ hasText: /steps\s*2 \(2 per epoch\)/ }).waitFor();
    await page.getByTestId('train-start').click();
    await page.getByTestId('train-confirm-replace').click();
    await waitRunPhase(page, 'done', 300_000);
    const sample = page.getByTestId('sample');
    expect(await sample.getAttribute('data-count')).toBe('3');
    expect(await sample.locator('h3').textContent()).toBe('Sample at step 2');
    const latest = await page.getByTestId('sample-text').textContent();
    expect(latest?.length).toBeGreaterThan(0);
    const earlier = page.getByTestId('earlier-samples');
    expect(await earlier.locator('summary').textContent()).toBe('Earlier samples (2)');
    expect(await earlier.locator('li').evaluateAll((items) => items.map((li) => li.getAttribute('data-step')))).toEqual(['1', '0']);
    // The untrained adapter's, said as such.
    expect(await earlier.locator('li[data-step="0"] .hint').textContent()).toBe('before training');
    const first = await earlier.locator('li p').first().textContent();
    expect(first?.length).toBeGreaterThan(0);
    await earlier.locator('summary').click();
    await page.locator('#panel-training').screenshot({ path: 'test-artifacts/train-panel-samples.png' });

    // The checkpoint after each pass kept its sample: a reload and a restore show the same two.
    await page.reload();
    await page.getByTestId('saved-run-summary').filter({ hasText: 'step 2 / 2' }).waitFor({ timeout: 60_000 });
    await waitModelReady(app, 120_000);
    await page.getByTestId('saved-run-resume').click();
    await waitRunPhase(page, 'done', 120_000);
    expect(await sample.getAttribute('data-count')).toBe('3');
    expect(await page.getByTestId('sample-text').textContent()).toBe(latest);
    expect(await earlier.locator('li p').first().textContent()).toBe(first);
    expect(await earlier.locator('li[data-step="0"]').count()).toBe(1);
  });
});
