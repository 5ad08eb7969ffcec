import { existsSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApp, screenshot, type App } from './browser.ts';

describe('the app in headless Chromium (WebGPU on SwiftShader, inside the worker)', () => {
  let app: App;
  beforeAll(async () => {
    app = await openApp();
  });
  afterAll(async () => {
    await app?.close();
  });

  it('finds a WebGPU adapter from inside the worker and shows what it is', async () => {
    const status = app.page.getByTestId('adapter-status');
    await status.filter({ hasText: 'GPU ready' }).waitFor({ timeout: 60_000 }).catch(async () => {
      throw new Error(`no adapter: "${await status.textContent()}"\n${app.console.join('\n')}`);
    });
    const facts = await app.page.getByTestId('adapter-facts').textContent();
    expect(facts).toContain('maxStorageBufferBindingSize');
    expect(facts).toMatch(/subgroups(yes|no)/);
    expect(await status.textContent()).toMatch(/swiftshader/i);
  });

  it('runs the matmul family in the worker and it matches the float64 reference', async () => {
    await app.page.getByTestId('selftest').click();
    const verdict = app.page.getByTestId('selftest-verdict');
    await verdict.waitFor({ timeout: 300_000 });
    expect(await verdict.textContent()).toBe('pass');
    const table = await app.page.getByTestId('selftest-result').textContent();
    expect(table).toContain('130×7×300');
  });

  it('saves a screenshot of the page as a test artifact', async () => {
    const path = await screenshot(app.page, 'gpu-panel');
    expect(existsSync(path) && statSync(path).size).toBeGreaterThan(10_000);
  });
});

describe('a browser without WebGPU', () => {
  it('gets a clear message naming the browsers and flags that work, not a blank page', async () => {
    const app = await openApp('/', (page) => page.addInitScript(() => delete (Navigator.prototype as unknown as Record<string, unknown>).gpu));
    try {
      const help = app.page.getByTestId('webgpu-help');
      await help.waitFor({ timeout: 30_000 });
      const text = await help.textContent();
      expect(text).toMatch(/Chrome/);
      expect(text).toMatch(/enable-unsafe-webgpu/);
      expect(await app.page.getByTestId('adapter-status').textContent()).toMatch(/does not offer WebGPU/);
      await screenshot(app.page, 'no-webgpu');
    } finally {
      await app.close();
    }
  });
});
