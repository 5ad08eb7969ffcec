// "Check this GPU against PyTorch" in the built app: the worker fetches the tiny model, its adapter and the golden
// from /check/… (served by vite.config.ts's plugin), runs the whole engine on WebGPU (SwiftShader here) and the page
// shows the verdict and the worst error of every group.
import { existsSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApp, screenshot, type App } from './browser.ts';

const NF4_GROUPS = ['adapter', 'nf4_dequant', 'hidden_states', 'logits', 'logsumexp', 'loss', 'grad', 'adamw_step1'];

describe('Check this GPU against PyTorch (whole engine in the worker, headless Chromium)', () => {
  let app: App;
  beforeAll(async () => {
    app = await openApp();
    const status = app.page.getByTestId('adapter-status');
    await status.filter({ hasText: 'GPU ready' }).waitFor({ timeout: 60_000 }).catch(async () => {
      throw new Error(`no adapter: "${await status.textContent()}"\n${app.console.join('\n')}`);
    });
  });
  afterAll(async () => {
    await app?.close();
  });

  it('runs the NF4 check against golden_qlora: progress while running, then pass with every group ok', async () => {
    const page = app.page;
    await page.getByTestId('golden-quant-nf4').check();
    await page.getByTestId('golden-check').click();
    const progress = page.getByTestId('golden-progress');
    await progress.waitFor({ state: 'visible', timeout: 10_000 });
    // The worker's progress lines reach the page through the Comlink.proxy callback.
    await progress.filter({ hasText: /loading|forward and backward|AdamW/ }).waitFor({ timeout: 300_000 });
    expect(await page.getByTestId('golden-check').isDisabled()).toBe(true);
    await screenshot(page, 'gpu-check-running');

    const verdict = page.getByTestId('golden-verdict');
    await verdict.waitFor({ timeout: 540_000 }).catch(async () => {
      const shown = await page.getByTestId('golden-result').textContent();
      throw new Error(`no verdict: "${shown}"\n${app.console.join('\n')}`);
    });
    expect(await verdict.textContent(), (await page.getByTestId('golden-result').textContent()) ?? '').toBe('pass');
    expect(await progress.isHidden()).toBe(true);

    for (const group of NF4_GROUPS) {
      const row = page.locator(`[data-testid="golden-table"] tr[data-group="${group}"]`);
      expect(await row.count(), `row for ${group}`).toBe(1);
      expect(await row.getAttribute('data-ok'), group).toBe('true');
      expect(await row.locator('td').last().textContent()).toBe('ok');
      expect((await row.locator('td.where').textContent())?.trim(), `where for ${group}`).not.toBe('');
    }
    expect(await page.locator('[data-testid="golden-table"] tbody tr').count()).toBe(NF4_GROUPS.length);
    expect(await page.locator('[data-group="nf4_dequant"] td').nth(2).textContent()).toBe('exact');

    const engineLoss = Number(await page.getByTestId('golden-loss-engine').getAttribute('data-value'));
    const goldenLoss = Number(await page.getByTestId('golden-loss-golden').getAttribute('data-value'));
    expect(Number.isFinite(goldenLoss) && goldenLoss > 0).toBe(true);
    expect(Math.abs(engineLoss - goldenLoss)).toBeLessThanOrEqual(1e-5);
    expect(await page.getByTestId('golden-result').textContent()).toMatch(/Took \d+\.\d s/);

    const path = await screenshot(page, 'gpu-check');
    expect(existsSync(path) && statSync(path).size).toBeGreaterThan(10_000);
  });

  it('shows a failure to fetch the reference as an error in words, not a verdict', async () => {
    const page = app.page;
    await page.context().route('**/check/golden_lora.safetensors', (route) => route.fulfill({ status: 404, body: '' }));
    await page.getByTestId('golden-quant-none').check();
    await page.getByTestId('golden-check').click();
    const error = page.getByTestId('golden-error');
    await error.waitFor({ timeout: 60_000 });
    const text = await error.textContent();
    expect(text).toMatch(/^The check could not run: /);
    expect(text).not.toMatch(/bad-input/);
    expect(text).toMatch(/golden_lora\.safetensors: not found \(HTTP 404\)/);
    expect(await page.getByTestId('golden-verdict').count()).toBe(0);
    expect(await page.getByTestId('golden-check').isEnabled()).toBe(true);
  });
});
