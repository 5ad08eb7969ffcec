// The browser tier's harness: serves the built app on loopback and drives Debian's Chromium with WebGPU on
// SwiftShader (docs/testing.md).
import { mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { preview, type PreviewServer } from 'vite';
import { SOFTWARE_ADAPTER_BROWSER_FLAG } from '../../src/core/software-adapter.ts';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = 'test-artifacts';

export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-webgpu-adapter=swiftshader',
  // Workgroup memory zeroed in the shader, not by a Vulkan extension SwiftShader compiles one store per element (the
  // same results; the page's estimate ready in 10 s instead of 31): the tip the GPU panel gives on a software adapter.
  SOFTWARE_ADAPTER_BROWSER_FLAG,
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export interface App {
  url: string;
  browser: Browser;
  page: Page;
  /** Everything the page and its worker printed, for failure messages. */
  console: string[];
  /** Every request the app's server received, in order: path, Range header ('' when none), status (0 until answered). */
  requests: { path: string; range: string; status: number }[];
  close(): Promise<void>;
}

export async function openApp(path = '/', beforeLoad?: (page: Page) => Promise<unknown>): Promise<App> {
  const server: PreviewServer = await preview({ preview: { port: 0, host: '127.0.0.1', strictPort: false }, logLevel: 'warn' });
  const address = server.httpServer.address() as AddressInfo;
  const url = `http://127.0.0.1:${address.port}${path}`;
  const requests: App['requests'] = [];
  (server.httpServer as Server).on('request', (req, res) => {
    const r = { path: decodeURIComponent((req.url ?? '').split('?')[0]), range: req.headers.range ?? '', status: 0 };
    requests.push(r);
    res.on('finish', () => (r.status = res.statusCode));
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleLines: string[] = [];
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  page.on('worker', (w) => w.on('console', (m) => consoleLines.push(`[worker ${m.type()}] ${m.text()}`)));
  if (beforeLoad) await beforeLoad(page);
  await page.goto(url);
  return {
    url,
    browser,
    page,
    console: consoleLines,
    requests,
    async close() {
      await browser.close();
      await new Promise<void>((resolve) => server.httpServer.close(() => resolve()));
    },
  };
}

/** Saves `test-artifacts/<name>.png`: the whole page, or with `firstScreen` only the viewport (what a phone shows first). */
export async function screenshot(page: Page, name: string, firstScreen = false): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = `${ARTIFACTS}/${name}.png`;
  // A screenshot needs a frame from Chromium's GPU process, which on SwiftShader also compiles and runs the worker's
  // WebGPU work: a screenshot taken mid-run (training, the check) waits for the work in flight, tens of seconds on a
  // slow machine, so it gets more than playwright's 30 s default.
  await page.screenshot({ path, fullPage: !firstScreen, timeout: 180_000 });
  return path;
}

/** A uPlot chart's legend under the element with `testid`, as { label: value } (what a person reads beside the canvas). */
export async function chartLegend(page: Page, testid: string): Promise<Record<string, string>> {
  return page.getByTestId(testid).evaluate((el) => {
    const pairs: Record<string, string> = {};
    for (const row of el.querySelectorAll('.u-legend .u-series')) {
      pairs[row.querySelector('.u-label')?.textContent ?? ''] = row.querySelector('.u-value')?.textContent ?? '';
    }
    return pairs;
  });
}
