// The page served without the proxy (static hosting): it says so, and takes the address of a proxy of its own —
// here `npm run serve`'s, started with --allow-origin for the static page — through which the token check then works
// (cross-origin, with CORS from the proxy). Loopback only; the fake Replicate stands behind the proxy.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { serveMain } from '../../src/server/serve.ts';
import { serveStatic } from '../../src/server/static-files.ts';
import { FakeReplicate } from '../helpers/fake-replicate.ts';
import { CHROMIUM, CHROMIUM_ARGS } from './browser.ts';

const TOKEN = 'r8_statictesttoken0123456789abcdefghijklm';

let fake: FakeReplicate;
let staticSite: Server;
let proxy: Server;
let browser: Browser;
let page: Page;
let pageOrigin: string;
let proxyOrigin: string;

beforeAll(async () => {
  fake = await FakeReplicate.start({ token: TOKEN, outputZip: new Uint8Array([80, 75, 5, 6, ...new Array(18).fill(0)]) });
  staticSite = createServer(serveStatic('dist'));
  await new Promise<void>((r) => staticSite.listen(0, '127.0.0.1', r));
  pageOrigin = `http://127.0.0.1:${(staticSite.address() as AddressInfo).port}`;
  proxy = await serveMain(['--port', '0', '--dist', 'dist', '--upstream', fake.apiBase, '--allow-origin', pageOrigin], () => {});
  proxyOrigin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  page = await browser.newPage();
  page.setDefaultTimeout(60_000);
  // The model is not needed here: its weights are never answered, so the software GPU stays idle.
  await page.route('**/mistral-nano-demo/model.safetensors', () => new Promise(() => {}));
  await page.goto(`${pageOrigin}/`);
});

afterAll(async () => {
  await browser?.close();
  for (const s of [staticSite, proxy]) {
    s?.closeAllConnections();
    await new Promise((r) => s?.close(r));
  }
  await fake?.close();
});

it('says the proxy is missing, then works through the proxy URL it is given', async () => {
  const status = page.getByTestId('remote-proxy-status');
  await status.filter({ hasText: /served without the Replicate proxy/ }).waitFor();
  expect(await status.textContent()).toContain(`--allow-origin ${pageOrigin}`);
  expect(await page.getByTestId('remote-send').isDisabled()).toBe(true);

  await page.getByTestId('remote-proxy-base').fill(proxyOrigin);
  await page.getByTestId('remote-proxy-use').dispatchEvent('click');
  await status.filter({ hasText: `through the proxy at ${proxyOrigin}` }).waitFor();
  await page.getByTestId('remote-token').fill(TOKEN);
  await page.getByTestId('remote-check-token').dispatchEvent('click');
  await page.getByTestId('remote-account').filter({ hasText: 'Token works: alice' }).waitFor();
  expect(fake.requests.filter((r) => r.path === '/v1/account').map((r) => r.authorized)).toEqual([true]);
  expect(fake.violations).toEqual([]);
});
