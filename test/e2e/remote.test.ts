// "Train on Replicate" in the built page, headless Chromium, through the proxy of `npm run serve` pointed at the fake
// Replicate (loopback only): token check, cost estimate, send, live logs, cancel; a second job survives a reload (the
// job list is remembered without the token) and is reattached, succeeds, and its adapter is loaded into the worker —
// the adapter the page then exports equals the trainer's tensors exactly. The token appears in no log line, no
// storage and no export.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { unzipSync } from 'fflate';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMistralConfig } from '../../src/model/config.ts';
import { peftKey } from '../../src/model/lora-adapter.ts';
import { serveMain } from '../../src/server/serve.ts';
import { FakeReplicate } from '../helpers/fake-replicate.ts';
import { safetensorsTensors } from '../helpers/safetensors-file.ts';
import { trainedAdapter, trainerOutputZip } from '../helpers/trainer-output.ts';
import { CHROMIUM, CHROMIUM_ARGS, screenshot } from './browser.ts';

const TOKEN = 'r8_pagetesttoken0123456789abcdefghijklmno';
const demo = parseMistralConfig(JSON.parse(readFileSync('public/models/mistral-nano-demo/config.json', 'utf8')));
const adapter = trainedAdapter(demo, 23);

let fake: FakeReplicate;
let server: Server;
let browser: Browser;
let page: Page;
let url: string;
const serverLog: string[] = [];
const consoleLines: string[] = [];

async function waitForModelAndData(p: Page): Promise<void> {
  await p.locator('[data-testid="model-status"][data-state="ready"]').waitFor({ timeout: 180_000 }).catch(async () => {
    await screenshot(p, 'remote-model-not-ready');
    throw new Error(`the demo model did not load: "${await p.getByTestId('model-status').textContent()}"\n${consoleLines.slice(-30).join('\n')}`);
  });
  await p.getByTestId('remote-estimate').filter({ hasText: /Estimated: about \d+ min/ }).waitFor({ timeout: 60_000 });
}

/**
 * The demo model's weights are held back until the test has set the form and the data: the page measures a training
 * step on the software GPU each time the model is ready and the job changes, and on SwiftShader a step of the sample
 * dataset takes minutes. Set up first, the one measurement is of a tiny dataset.
 */
let releaseModel: () => void = () => {};
let modelGate: Promise<void> = Promise.resolve();
function holdModel(): void {
  modelGate = new Promise((resolve) => (releaseModel = resolve));
}

/** Five very short rows: one held out for validation, four steps of batch 1. */
const TINY = ['one', 'two', 'three', 'four', 'five'].map((w, i) => JSON.stringify({ prompt: `# ${w}`, completion: `x = ${i + 1}` })).join('\n') + '\n';

/** The tiny dataset instead of the sample, then the model. */
async function tinyDataThenModel(p: Page): Promise<void> {
  await p.locator('[data-testid="train-summary"] dd[data-key="rows"]').filter({ hasText: /^62$/ }).waitFor({ timeout: 120_000 });
  await p.getByTestId('train-file').setInputFiles({ name: 'tiny.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(TINY) });
  await p.locator('[data-testid="train-summary"] dd[data-key="rows"]').filter({ hasText: /^5$/ }).waitFor();
  releaseModel();
  await waitForModelAndData(p);
}

/**
 * Clicks a button of the remote panel once it is enabled. Dispatched rather than pointer-clicked: panels above this
 * one change height while the page measures things on the software GPU, so the button seldom holds still.
 */
async function press(l: Locator): Promise<void> {
  await expect.poll(() => l.isEnabled(), { timeout: 30_000 }).toBe(true);
  await l.dispatchEvent('click');
}

async function jobStatus(p: Page, id: string, status: string): Promise<void> {
  await p.locator(`[data-testid="remote-job"][data-id="${id}"][data-status="${status}"]`).waitFor({ timeout: 30_000 }).catch(async () => {
    throw new Error(`job ${id} did not become ${status}: ${await p.getByTestId('remote-jobs').textContent()} / ${await p.getByTestId('remote-status').textContent()}`);
  });
}

beforeAll(async () => {
  fake = await FakeReplicate.start({ token: TOKEN, outputZip: trainerOutputZip(adapter) });
  server = await serveMain(['--port', '0', '--dist', 'dist', '--upstream', fake.apiBase], (l) => serverLog.push(l));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/?remote-poll-ms=50`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.setDefaultTimeout(60_000);
  page.on('console', (m) => consoleLines.push(m.text()));
  holdModel();
  await page.route('**/mistral-nano-demo/model.safetensors', async (route) => {
    await modelGate;
    await route.continue();
  });
  await page.goto(url);
});

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await fake?.close();
});

describe('Train on Replicate (page → proxy → fake Replicate)', () => {
  let canceled = '';
  let second = '';

  it('checks the token, shows the estimate, sends the job, shows live logs, and cancels it', async () => {
    await page.getByTestId('remote-estimate').filter({ hasText: /Estimated: about \d+ min/ }).waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('remote-proxy-status').textContent()).toMatch(/through this server's proxy/);
    // The proxy was found here: the box for another proxy's address stays out of sight.
    expect(await page.getByTestId('remote-proxy-base').isVisible()).toBe(false);
    expect(await page.getByTestId('remote-proxy-use').isVisible()).toBe(false);
    // No token yet: both buttons wait for it, and the line beside them says so.
    expect(await page.getByTestId('remote-send').isDisabled()).toBe(true);
    expect(await page.getByTestId('remote-send-reason').textContent()).toBe('Paste your Replicate API token (r8_…) to check it and to send the job.');
    await page.getByTestId('remote-token').fill(TOKEN);

    // Replicate out of reach: the proxy answers 502 itself, and the page says the proxy answered, not Replicate. Once
    // the check gives up, the status line no longer says it is retrying.
    fake.failNext({ method: 'GET', path: /^\/account$/, status: 'drop', times: 5 });
    await press(page.getByTestId('remote-check-token'));
    await page.getByTestId('remote-status').filter({ hasText: /^The proxy answered 502 while checking the API token: Replicate could not be reached/ }).waitFor();
    await page.getByTestId('remote-account').filter({ hasText: /^The proxy could not get an answer from Replicate/ }).waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('remote-status').textContent()).not.toMatch(/retrying/i);

    await press(page.getByTestId('remote-check-token'));
    await page.getByTestId('remote-account').filter({ hasText: 'Token works: alice' }).waitFor();
    expect(await page.getByTestId('remote-destination').inputValue()).toBe('alice/mistral-finetune');
    expect(await page.getByTestId('remote-estimate').textContent()).toMatch(/about \$\d+\.\d\d/);
    // The demo preset cuts rows at 256 tokens; Replicate's trainer always cuts at 4096: refused, with the reason, until fixed.
    await page.getByTestId('remote-refusals').filter({ hasText: /max_seq_len 256: Replicate's trainer always cuts rows at 4096 tokens/ }).waitFor();
    expect(await page.getByTestId('remote-send').isDisabled()).toBe(true);
    expect(await page.getByTestId('remote-send-reason').textContent()).toBe('Replicate’s trainer cannot run this form as it stands: see the reasons above.');
    await page.locator('#max_seq_len').fill('4096');
    await expect.poll(() => page.getByTestId('remote-refusals').textContent(), { timeout: 30_000 }).toBe('');
    // Replicate's trainer would hold out every row of the sample (62) and train on nothing (local training holds out a
    // tenth instead): refused too, until fewer rows are held out.
    await page.locator('#num_validation_samples').fill('62');
    await expect.poll(() => page.getByTestId('remote-refusals').textContent(), { timeout: 30_000 }).toMatch(/^the training data has 62 rows and num_validation_samples is 62: .*leaves nothing to train on/);
    expect(await page.getByTestId('remote-send').isDisabled()).toBe(true);
    for (const [name, value] of Object.entries({ num_validation_samples: '1', train_batch_size: '1', micro_batch_size: '1' })) await page.locator(`#${name}`).fill(value);
    await expect.poll(() => page.getByTestId('remote-refusals').textContent(), { timeout: 30_000 }).toBe('');
    // No model is needed to send a job: the demo model stays held back for now (see holdModel).

    // Before the first job the list says it is empty; the estimate counts one epoch as one.
    expect(await page.getByTestId('remote-no-jobs').isVisible()).toBe(true);
    // The form's changes make the page read the file again (max_seq_len), and the estimate follows when it is read.
    await page.getByTestId('remote-estimate').filter({ hasText: /tokens × 1 epoch;/ }).waitFor({ timeout: 60_000 }).catch(async () => {
      throw new Error(`the estimate did not come back: "${await page.getByTestId('remote-estimate').textContent()}", train rows "${await page.locator('[data-testid="train-summary"] dd[data-key="rows"]').textContent()}"`);
    });
    fake.script = { processingPolls: 3, outcome: 'succeeded', hold: true };
    await press(page.getByTestId('remote-send'));
    const row = page.getByTestId('remote-job').first();
    await row.waitFor();
    expect(await page.getByTestId('remote-no-jobs').isVisible()).toBe(false);
    canceled = (await row.getAttribute('data-id')) as string;
    await jobStatus(page, canceled, 'processing');
    await page.getByTestId('remote-logs').filter({ hasText: /step \d+: loss/ }).waitFor();
    expect(fake.models.get('alice/mistral-finetune')).toMatchObject({ visibility: 'private' });
    expect(fake.trainings.get(canceled)!.input).toMatchObject({ num_train_epochs: 1, lora_rank: 8, train_batch_size: 1, num_validation_samples: 1 });
    await press(row.getByTestId('remote-job-cancel'));
    await jobStatus(page, canceled, 'canceled');
    expect(await page.locator(`[data-testid="remote-job"][data-id="${canceled}"]`).textContent()).toContain('alice/mistral-finetune');
  });

  it('remembers jobs across a reload without the token, reattaches, and loads the result into the page', async () => {
    fake.script = { processingPolls: 3, outcome: 'succeeded', hold: true };
    await press(page.getByTestId('remote-send'));
    // The new job goes to the top of the list.
    await page.locator(`[data-testid="remote-job"]:not([data-id="${canceled}"])`).waitFor().catch(async () => {
      // Say what the panel said instead (a refusal, an error from the fake server) rather than only that nothing came.
      throw new Error(`no second job: ${await page.getByTestId('remote-status').textContent()} / ${await page.getByTestId('remote-jobs').textContent()}`);
    });
    second = (await page.getByTestId('remote-job').first().getAttribute('data-id')) as string;
    expect(second).not.toBe(canceled);
    await jobStatus(page, second, 'processing');

    holdModel();
    await page.reload();
    await page.getByTestId('remote-proxy-status').filter({ hasText: /through this server's proxy/ }).waitFor();
    await jobStatus(page, canceled, 'canceled');
    await page.locator(`[data-testid="remote-job"][data-id="${second}"]`).waitFor();
    const stored = await page.evaluate(() => Object.entries(localStorage).map(([k, v]) => `${k}=${v}`).join('\n'));
    expect(stored).toContain(second);
    expect(stored).not.toContain(TOKEN.slice(3));
    expect(await page.getByTestId('remote-token').inputValue()).toBe('');
    // The other form values come back, the destination among them.
    expect(await page.getByTestId('remote-destination').inputValue()).toBe('alice/mistral-finetune');

    await page.getByTestId('remote-token').fill(TOKEN);
    const row = page.locator(`[data-testid="remote-job"][data-id="${second}"]`);
    await press(row.getByTestId('remote-job-follow'));
    await page.getByTestId('remote-logs').filter({ hasText: /step \d+: loss/ }).waitFor();
    fake.release();
    await jobStatus(page, second, 'succeeded');
    // Followed again (not sent from this page since the reload), it is not loaded by itself: the line says how to.
    await page.getByTestId('remote-status').filter({ hasText: `Training ${second} succeeded` }).waitFor();
    expect(await page.getByTestId('remote-status').textContent()).toMatch(/Press “Load into this page” on its row to use its adapter here\.$/);

    // Loading the result needs the model: now it may load (with a tiny dataset, so the page's own step measurement
    // on the software GPU is short).
    await tinyDataThenModel(page);
    await press(row.getByTestId('remote-job-import'));
    await page.getByTestId('remote-status').filter({ hasText: `Loaded the adapter of ${second}` }).waitFor({ timeout: 300_000 });

    // The worker's current adapter is now the trainer's: what the page exports equals it exactly.
    const zip = await page.evaluate(async () => {
      const e = (window as unknown as { finetuneEngine: { exportAdapterZip(o: { full: boolean; step: number }): Promise<{ bytes: Uint8Array }> } }).finetuneEngine;
      return Array.from((await e.exportAdapterZip({ full: false, step: 0 })).bytes);
    });
    const files = unzipSync(new Uint8Array(zip));
    const name = Object.keys(files).find((n) => n.endsWith('adapter_model.safetensors'))!;
    const tensors = safetensorsTensors(files[name]);
    for (let l = 0; l < adapter.layers; l++) {
      for (const m of ['q_proj', 'v_proj'] as const) {
        const A = tensors.get(peftKey(l, m, 'A'))!;
        expect(new Float32Array(A.bytes.buffer, A.bytes.byteOffset, A.bytes.byteLength / 4)).toEqual(adapter.tensors[l][m]!.A);
        const B = tensors.get(peftKey(l, m, 'B'))!;
        expect(new Float32Array(B.bytes.buffer, B.bytes.byteOffset, B.bytes.byteLength / 4)).toEqual(adapter.tensors[l][m]!.B);
      }
    }
    const exported = Object.values(files).map((b) => Buffer.from(b).includes(Buffer.from(TOKEN.slice(3))));
    expect(exported.every((x) => !x)).toBe(true);
    // The full bundle's README says which training made the adapter and with which inputs (no URL, no token).
    const bundle = await page.evaluate(async () => {
      const e = (window as unknown as { finetuneEngine: { exportAdapterZip(o: { full: boolean; step: string }): Promise<{ bytes: Uint8Array }> } }).finetuneEngine;
      return Array.from((await e.exportAdapterZip({ full: true, step: 'imported' })).bytes);
    });
    const readme = new TextDecoder().decode(unzipSync(new Uint8Array(bundle))['README.md']);
    expect(readme).toContain('\n## Training\n\nTrained on Replicate by ');
    expect(readme).toContain(`as training \`${second}\``);
    expect(readme).toMatch(/\| `num_train_epochs` \*? \| `\d+` \|/);
    expect(readme).not.toContain('127.0.0.1'); // the data's upload URL (the fake Replicate's address)
    expect(readme).not.toContain(TOKEN.slice(3));
    await screenshot(page, 'remote-imported');
  });

  it('kept the token out of the proxy log, the console, and the fake saw only valid requests', () => {
    expect(serverLog.some((l) => l.includes('/replicate/v1/trainings/'))).toBe(true);
    expect(serverLog.filter((l) => l.includes(TOKEN.slice(3)))).toEqual([]);
    expect(consoleLines.filter((l) => l.includes(TOKEN.slice(3)))).toEqual([]);
    expect(fake.violations).toEqual([]);
  });
});
