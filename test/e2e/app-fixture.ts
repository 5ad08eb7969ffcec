// What the browser-tier tests share beyond the harness: one app per describe block, and the waits every journey needs
// (the model loaded, the run in a phase), each failing with what the page said instead of a bare timeout.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { openApp, type App } from './browser.ts';

/** Opens the app before the block's tests and closes it after; the returned function gives the open app. */
export function appForTests(defaultTimeoutMs: number, path = '/'): () => App {
  let app: App | undefined;
  beforeAll(async () => {
    app = await openApp(path);
    app.page.setDefaultTimeout(defaultTimeoutMs);
  });
  afterAll(async () => {
    await app?.close();
  });
  return () => {
    if (!app) throw new Error('the app is not open (beforeAll failed)');
    return app;
  };
}

/** Waits until the model panel says a model is loaded; else fails with the status and everything the page logged. */
export async function waitModelReady(app: App, timeout = 180_000): Promise<void> {
  await app.page.locator('[data-testid="model-status"][data-state="ready"]').waitFor({ timeout }).catch(async () => {
    throw new Error(`the model did not load: "${await app.page.getByTestId('model-status').textContent()}"\n${app.console.join('\n')}`);
  });
}

/** Waits until the training panel's run is in `name` (running, paused, done, error …); else fails with where it is. */
export async function waitRunPhase(page: Page, name: string, timeout: number): Promise<void> {
  await page.locator(`[data-testid="train-status"][data-phase="${name}"]`).waitFor({ timeout }).catch(async () => {
    const now = await page.getByTestId('train-status').getAttribute('data-phase');
    throw new Error(`the run did not reach "${name}" (it is "${now}"): ${await page.getByTestId('train-result').textContent()}`);
  });
}
