// The weight cache in the browser: the demo model, loaded through the page, is cached in the origin-private file
// system; loading it again reads it from there (the server sees no weight bytes); the Model panel lists it with its
// size and deletes it; a corrupted entry (one byte flipped in OPFS, which the page and its worker share) is detected,
// removed and rebuilt, and the page says so.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSafetensorsHeaderBytes } from '../../src/model/safetensors.ts';
import { ARTIFACTS, openApp, type App } from './browser.ts';

const WEIGHTS = '/models/mistral-nano-demo/model.safetensors';
/** Where the demo's tensor data begins: reads before it are the header (every load reads it), reads after it weights. */
const DATA_OFFSET = parseSafetensorsHeaderBytes(new Uint8Array(readFileSync(`public${WEIGHTS}`))).dataOffset;

describe('the weight cache in the browser (OPFS)', () => {
  let app: App;
  beforeAll(async () => {
    // No sample dataset: with one, the page measures a training step after every load (the time estimate), which on
    // SwiftShader holds the GPU for a minute and stalls the next load behind it. Loads are all this file is about.
    app = await openApp('/', (page) => page.route('**/datasets/sample.jsonl', (route) => route.fulfill({ status: 404, body: '' })));
  });
  afterAll(async () => {
    await app?.close();
  });

  /** Weight bytes asked of the server since request number `from` (Range requests at or past the data offset). */
  const weightBytesAsked = (from: number): number =>
    app.requests.slice(from).reduce((sum, r) => {
      const m = /bytes=(\d+)-(\d+)/.exec(r.range);
      return r.path === WEIGHTS && m ? sum + Math.max(0, Number(m[2]) - Math.max(Number(m[1]), DATA_OFFSET) + 1) : sum;
    }, 0);
  const status = () => app.page.getByTestId('model-status');
  const rows = () => app.page.locator('[data-testid="cache-list"] > li');
  /**
   * Clicks Load model (the demo) and waits for the load to end; returns whether it came from the cache, the weight
   * bytes asked of the server, and the phases the progress line showed (with their bytes).
   */
  const loadAgain = async (): Promise<{ fromCache: string | null; asked: number; progress: string[] }> => {
    const from = app.requests.length;
    await app.page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { progressSeen: string[] }).progressSeen = seen;
      const line = document.querySelector('#panel-model .progress-text') as Element;
      new MutationObserver(() => seen.push(line.textContent ?? '')).observe(line, { childList: true, characterData: true, subtree: true });
    });
    await app.page.getByTestId('model-load').click();
    await app.page.locator('[data-testid="model-status"]:not([data-state="ready"])').waitFor({ timeout: 30_000 }).catch(() => undefined);
    await app.page.locator('[data-testid="model-status"][data-state="ready"]').waitFor({ timeout: 300_000 }).catch(async () => {
      throw new Error(`no model: "${await status().textContent()}"\n${app.console.join('\n')}`);
    });
    const progress = await app.page.evaluate(() => (window as unknown as { progressSeen: string[] }).progressSeen);
    return { fromCache: await status().getAttribute('data-from-cache'), asked: weightBytesAsked(from), progress };
  };

  it('caches the demo model on its first load, lists it, and loads it from the cache the second time: no weight bytes downloaded', async () => {
    // The page loads the demo model when it opens: from the server, then written to the cache.
    await app.page.locator('[data-testid="model-status"][data-state="ready"]').waitFor({ timeout: 300_000 }).catch(async () => {
      throw new Error(`no model: "${await status().textContent()}"\n${app.console.join('\n')}`);
    });
    expect(await status().getAttribute('data-from-cache')).toBe('false');
    expect(weightBytesAsked(0)).toBeGreaterThan(1_000_000);
    await rows().first().waitFor({ timeout: 30_000 });
    expect(await rows().count()).toBe(1);
    expect(await rows().first().textContent()).toMatch(/^mistral-nano-demounquantised · \d+\.\d MiB · \d{4}-\d\d-\d\d \d\d:\d\d/);
    expect(await app.page.getByTestId('cache-total').textContent()).toMatch(/^1 cached model · \d+\.\d MiB in all$/);
    expect(await app.page.getByTestId('storage-usage').textContent()).toMatch(/^\d+\.\d MiB of \d+\.\d GiB used by this site/);
    // And as a bar: the site's usage (the cached model's bytes at least) against its quota.
    const meter = await app.page.getByTestId('storage-meter').evaluate((m: HTMLMeterElement) => ({ hidden: m.hidden, value: m.value, max: m.max }));
    expect(meter.hidden).toBe(false);
    expect(meter.value).toBeGreaterThan(1_000_000);
    expect(meter.max).toBeGreaterThan(meter.value);

    const second = await loadAgain();
    expect(second.fromCache).toBe('true');
    expect(await status().textContent()).toMatch(/from the weight cache in this browser: nothing downloaded/);
    expect(second.asked).toBe(0);
    expect(second.progress.some((t) => /^loading from cache · \d+ \/ \d+ tensors · [\d.]+ \w?i?B \/ [\d.]+ MiB/.test(t))).toBe(true);
    expect(second.progress.some((t) => t.startsWith('caching') || t.startsWith('downloading'))).toBe(false);
  });

  it('asks for persistent storage when told to, and says what the browser answered', async () => {
    const state = app.page.getByTestId('storage-persist-state');
    expect(await state.textContent()).toMatch(/not persistent: .*may delete the cached models/i);
    await app.page.getByTestId('storage-persist').click();
    // Headless Chromium declines (no engagement, no bookmark): the page says so, and why it matters.
    await expect.poll(() => state.textContent(), { timeout: 10_000 }).toMatch(/declined.*may be deleted under storage pressure/);
  });

  it('a corrupted entry is detected by its hash, removed and rebuilt, and the page says so', async () => {
    const flipped = await app.page.evaluate(async () => {
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('finetune-weights');
      const names: string[] = [];
      for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
      const name = names.find((n) => /^weights-[0-9a-f]{40}\.bin$/.test(n));
      if (!name) return null;
      const handle = await dir.getFileHandle(name);
      const at = 1000; // inside the first part (the embeddings)
      const old = new Uint8Array(await (await handle.getFile()).slice(at, at + 1).arrayBuffer())[0];
      const w = await handle.createWritable({ keepExistingData: true });
      await w.write({ type: 'write', position: at, data: new Uint8Array([old ^ 0xff]) });
      await w.close();
      return name;
    });
    expect(flipped).toMatch(/^weights-/);
    const third = await loadAgain();
    expect(third.fromCache).toBe('false');
    expect(third.asked).toBeGreaterThan(1_000_000);
    expect(await app.page.locator('#panel-model .warnings').textContent()).toMatch(/cached weights were unusable \(part embed does not match its hash\): removed, loading from the source again/);
    // Rebuilt: one entry again, which the next load uses.
    await expect.poll(() => rows().count(), { timeout: 30_000 }).toBe(1);
  });

  it('Delete (confirmed) removes the entry: the list is empty and the next load downloads again', async () => {
    await app.page.getByTestId('cache-delete').click();
    await app.page.getByTestId('cache-confirm-delete').click();
    await expect.poll(() => rows().count(), { timeout: 30_000 }).toBe(0);
    expect(await app.page.getByTestId('cache-total').textContent()).toBe('Nothing cached yet.');
    const fourth = await loadAgain();
    expect(fourth.fromCache).toBe('false');
    expect(fourth.asked).toBeGreaterThan(1_000_000);
    // Downloaded, then written to the cache: the progress line shows both phases with their bytes.
    expect(fourth.progress.some((t) => /^downloading · /.test(t))).toBe(true);
    expect(fourth.progress.some((t) => /^caching · \d+ \/ \d+ tensors · [\d.]+ \w?i?B \/ [\d.]+ MiB/.test(t))).toBe(true);
    await expect.poll(() => rows().count(), { timeout: 30_000 }).toBe(1);
  });

  it("shows another tab's deletion when this tab is looked at again (the list kept a deleted entry)", async () => {
    expect(await rows().count()).toBe(1);
    // Another tab of the page deletes the entry: every tab of the origin shares this OPFS folder, so removing the file
    // from here, behind this tab's panel, is what that tab's Delete does.
    const removed = await app.page.evaluate(async () => {
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('finetune-weights');
      const names: string[] = [];
      for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
      const name = names.find((n) => /^weights-[0-9a-f]{40}\.bin$/.test(n));
      if (name) await dir.removeEntry(name);
      return name ?? null;
    });
    expect(removed).not.toBeNull();
    expect(await rows().count()).toBe(1); // not known here yet
    // Back to this tab: the window gets the focus again, and the list is read again.
    await app.page.evaluate(() => window.dispatchEvent(new Event('focus')));
    await expect.poll(() => rows().count(), { timeout: 30_000 }).toBe(0);
    expect(await app.page.getByTestId('cache-total').textContent()).toBe('Nothing cached yet.');
  });

  it('the cached-models section fits a 390 px screen', async () => {
    expect(await narrowScreenOverflow(app, 'cache-panel-390')).toEqual([]);
  });
});

/**
 * The cached-models section on a 390 px screen: the elements that reach past its right edge or scroll sideways (none,
 * when it fits). A screenshot goes to the test artifacts as `name`.png; the viewport is put back after.
 */
async function narrowScreenOverflow(app: App, name: string): Promise<string[]> {
  const before = app.page.viewportSize();
  await app.page.setViewportSize({ width: 390, height: 844 });
  try {
    const wide = await app.page.evaluate(() => {
      const el = document.querySelector('[data-testid="cache-panel"]') as HTMLElement;
      return [el, ...el.querySelectorAll('*')].filter((e) => e.getBoundingClientRect().right > 391 || e.scrollWidth > e.clientWidth + 1).map((e) => e.outerHTML.slice(0, 80));
    });
    mkdirSync(ARTIFACTS, { recursive: true });
    await app.page.getByTestId('cache-panel').screenshot({ path: `${ARTIFACTS}/${name}.png` });
    return wide;
  } finally {
    if (before) await app.page.setViewportSize(before);
  }
}

describe('a Hub model in the page: pinned by the Hub API and cached by its content, whatever ETags the CDN gives', () => {
  const COMMIT = 'c0ffee0000000000000000000000000000000abc';
  const DEMO = 'public/models/mistral-nano-demo';
  const files: Record<string, Buffer> = { 'config.json': readFileSync(`${DEMO}/config.json`), 'model.safetensors': readFileSync(`${DEMO}/model.safetensors`) };
  const sha = createHash('sha256').update(files['model.safetensors']).digest('hex');
  const cors = { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'content-range, content-length, etag, x-error-code' };
  let app: App;
  /** Every request the fake Hub got: method, path, Range, Authorization. */
  const hubRequests: { method: string; path: string; range: string; auth: string }[] = [];
  let node = 0;
  /** The Hub unreachable: every request to it fails as it does without a network. */
  let offline = false;
  beforeAll(async () => {
    app = await openApp('/', async (page) => {
      await page.route('**/datasets/sample.jsonl', (route) => route.fulfill({ status: 404, body: '' }));
      await page.context().route('https://huggingface.co/**', async (route) => {
        const req = route.request();
        const path = new URL(req.url()).pathname;
        const headers = await req.allHeaders();
        hubRequests.push({ method: req.method(), path, range: headers.range ?? '', auth: headers.authorization ?? '' });
        if (offline) return route.abort('internetdisconnected');
        if (req.method() === 'OPTIONS') {
          return route.fulfill({ status: 204, headers: { ...cors, 'access-control-allow-headers': 'authorization, content-type, range', 'access-control-allow-methods': 'GET, POST' } });
        }
        if (path === '/api/models/someone/nano/revision/main') return route.fulfill({ status: 200, headers: cors, contentType: 'application/json', body: JSON.stringify({ id: 'someone/nano', sha: COMMIT }) });
        if (path === `/api/models/someone/nano/paths-info/${COMMIT}` && req.method() === 'POST') {
          const { paths } = JSON.parse(req.postData() ?? '{}') as { paths: string[] };
          const listed = paths.flatMap((p) =>
            p === 'config.json'
              ? [{ type: 'file', path: p, size: files[p].length, oid: 'b'.repeat(40) }]
              : p === 'model.safetensors'
                ? [{ type: 'file', path: p, size: files[p].length, oid: 'f'.repeat(40), lfs: { oid: sha, size: files[p].length, pointerSize: 134 } }]
                : [],
          );
          return route.fulfill({ status: 200, headers: cors, contentType: 'application/json', body: JSON.stringify(listed) });
        }
        // The branch resolves too (to the same files), as the Hub's does: the test asks that the load read the commit.
        const m = new RegExp(`^/someone/nano/resolve/(?:main|${COMMIT})/(.+)$`).exec(path);
        const body = m ? files[m[1]] : undefined;
        if (!body) return route.fulfill({ status: 404, headers: { ...cors, 'x-error-code': 'EntryNotFound' }, body: '' });
        const r = /^bytes=(\d+)-(\d+)$/.exec(headers.range ?? '');
        const [start, end] = r ? [Number(r[1]), Math.min(Number(r[2]), body.length - 1)] : [0, body.length - 1];
        // Each answer from another CDN node, with its own ETag.
        return route.fulfill({ status: 206, headers: { ...cors, 'content-range': `bytes ${start}-${end}/${body.length}`, etag: `"cdn-node-${node++}"` }, body: body.subarray(start, end + 1) });
      });
    });
    app.page.setDefaultTimeout(120_000);
  });
  afterAll(async () => {
    await app?.close();
  });

  const loadHub = async (): Promise<string | null> => {
    const from = hubRequests.length;
    await app.page.getByTestId('model-load').click();
    await app.page.locator('[data-testid="model-status"]:not([data-state="ready"])').waitFor({ timeout: 30_000 }).catch(() => undefined);
    // Loaded, or refused (the page says why beside the model that stays loaded): whichever comes first.
    const loaded = app.page.locator('[data-testid="model-status"][data-state="ready"]').filter({ hasText: 'someone/nano' }).waitFor({ timeout: 300_000 });
    const refused = app.page.getByTestId('model-load-failure').waitFor({ timeout: 300_000 }).then(() => 'refused');
    if ((await Promise.race([loaded, refused])) === 'refused') {
      throw new Error(`no model: "${await app.page.getByTestId('model-load-failure').textContent()}"\n${hubRequests.slice(from).map((r) => `${r.method} ${r.path} ${r.range}`).join('\n')}`);
    }
    return app.page.getByTestId('model-status').getAttribute('data-from-cache');
  };

  it('loads it with every file read at the commit the API named, then again from the cache with no weight byte asked', async () => {
    await app.page.locator('[data-testid="model-status"][data-state="ready"]').waitFor({ timeout: 300_000 });
    await app.page.getByTestId('model-source-hub').click();
    await app.page.locator('#hub-repo').fill('someone/nano');
    await app.page.locator('#hub-token').fill('hf_fake_token_for_the_test');
    expect(await loadHub()).toBe('false');
    const reads = hubRequests.filter((r) => r.path.includes('/resolve/'));
    expect(reads.length).toBeGreaterThan(2);
    for (const r of reads) expect(r.path).toContain(`/resolve/${COMMIT}/`);
    // The token went to the API and the files in the Authorization header, as the load asked (not in any path).
    expect(hubRequests.filter((r) => r.method !== 'OPTIONS').every((r) => r.auth === 'Bearer hf_fake_token_for_the_test')).toBe(true);
    expect(hubRequests.some((r) => r.path.includes('hf_fake'))).toBe(false);
    // The CDN's ETags differed from read to read; the cache entry is keyed by the content, so the next load finds it.
    const from = hubRequests.length;
    expect(await loadHub()).toBe('true');
    const weightReads = hubRequests.slice(from).filter((r) => r.path.endsWith('/model.safetensors') && r.method === 'GET' && r.range !== 'bytes=0-0');
    expect(weightReads.map((r) => r.range).filter((range) => Number(/bytes=(\d+)/.exec(range)?.[1]) >= DATA_OFFSET)).toEqual([]);
  });

  it('without the network, loads it again from its offline copy and the cache, and says so', async () => {
    offline = true;
    try {
      const from = hubRequests.length;
      expect(await loadHub()).toBe('true');
      // The Hub was asked (and did not answer) before the copy was read.
      expect(hubRequests.length).toBeGreaterThan(from);
      // Loaded, not refused beside the model loaded before (a single-file model: its sharded index, not found at the
      // online load, is not found in the copy either).
      expect(await app.page.getByTestId('model-load-failure').isHidden()).toBe(true);
      const warnings = await app.page.getByTestId('model-warnings').textContent();
      expect(warnings).toMatch(/offline: the server could not be reached \(someone\/nano\/config\.json: .*\); config\.json, model\.safetensors read from the offline copy of \d{4}-\d\d-\d\d \d\d:\d\d UTC \(kept at an earlier load\): the server may hold newer files/);
    } finally {
      offline = false;
    }
  });

  it("where the browser knows it is offline, reads the copy at once, without asking the Hub", async () => {
    await app.page.context().setOffline(true);
    try {
      const from = hubRequests.length;
      expect(await loadHub()).toBe('true');
      expect(await app.page.getByTestId('model-load-failure').isHidden()).toBe(true);
      expect(await app.page.getByTestId('model-warnings').textContent()).toMatch(/offline: this machine is offline; config\.json, model\.safetensors read from the offline copy of/);
      expect(hubRequests.slice(from).filter((r) => r.path.includes('/resolve/'))).toEqual([]);
    } finally {
      await app.page.context().setOffline(false);
    }
  });

  it('a model never loaded, the Hub unreachable: Load after the failed plan goes to the load at once (it asked the plan again first)', async () => {
    offline = true;
    try {
      const asked = (from: number): number => hubRequests.slice(from).filter((r) => r.method === 'GET' && r.path.includes('/never-loaded/')).length;
      const typed = hubRequests.length;
      await app.page.getByTestId('model-source-hub').click();
      // Pasted as its page's address, the repository is read as owner/name, and the revision the address names taken.
      await app.page.locator('#hub-repo').fill('https://huggingface.co/someone/never-loaded/tree/v1');
      expect(await app.page.locator('#hub-repo').inputValue()).toBe('someone/never-loaded');
      expect(await app.page.locator('#hub-revision').inputValue()).toBe('v1');
      await app.page.locator('#hub-revision').fill('');
      await app.page.locator('#hub-repo').fill('https://huggingface.co/someone/never-loaded');
      expect(await app.page.locator('#hub-repo').inputValue()).toBe('someone/never-loaded');
      expect(await app.page.locator('#hub-revision').inputValue()).toBe('');
      await app.page.getByTestId('model-plan').filter({ hasText: /^Cannot tell whether it fits: someone\/never-loaded\/config\.json: / }).waitFor({ timeout: 120_000 });
      const planAsks = asked(typed);
      // What the status line says from the click on, and what the Hub is asked.
      await app.page.evaluate(() => {
        const status = document.querySelector('[data-testid="model-status"]') as HTMLElement;
        const seen: string[] = [];
        (window as unknown as { statusSeen: string[] }).statusSeen = seen;
        new MutationObserver(() => seen.push(status.textContent ?? '')).observe(status, { childList: true, characterData: true, subtree: true });
      });
      const from = hubRequests.length;
      await app.page.getByTestId('model-load').click();
      // The load's retries are said as they come (it sat at "Reading the header…" for 15 s).
      await app.page.getByTestId('model-progress-text').filter({ hasText: /network failure.*\. Trying again in \d+ s \(retry \d of 5\)\.$/ }).waitFor({ timeout: 60_000 });
      await app.page.getByTestId('model-load-failure').filter({ hasText: /someone\/never-loaded\/config\.json: network failure/ }).waitFor({ timeout: 120_000 });
      const seen = await app.page.evaluate(() => (window as unknown as { statusSeen: string[] }).statusSeen);
      expect(seen.filter((t) => t.includes('Checking whether it fits'))).toEqual([]);
      // One round of the load's own retries, no more asks than the plan's round made, not a plan's round and then the load's.
      expect(asked(from)).toBeGreaterThan(0);
      expect(asked(from)).toBeLessThanOrEqual(planAsks);
    } finally {
      offline = false;
    }
  });

  const row = (name: string) => app.page.locator('[data-testid="cache-list"] > li').filter({ hasText: name });
  /** Loads the demo from its tab (as the form asks), and waits until it is the model on the GPU. */
  const loadDemo = async (): Promise<void> => {
    await app.page.getByTestId('model-source-demo').click();
    await app.page.getByTestId('model-load').click();
    await app.page.locator('[data-testid="model-status"][data-state="ready"]').filter({ hasText: 'mistral-nano-demo' }).waitFor({ timeout: 300_000 });
  };
  /** Weight bytes of the Hub model's file asked since request `from` (Range reads past its header). */
  const hubWeightReads = (from: number): string[] =>
    hubRequests
      .slice(from)
      .filter((r) => r.path.endsWith('/model.safetensors') && r.method === 'GET' && Number(/bytes=(\d+)/.exec(r.range)?.[1] ?? 0) >= DATA_OFFSET)
      .map((r) => r.range);

  it('Load on its row in Cached models loads it again as cached, from another tab: its repository put back, no weight byte asked', async () => {
    // Another repository typed in the Hub tab, then the demo loaded from its own tab.
    await app.page.getByTestId('model-source-hub').click();
    await app.page.locator('#hub-repo').fill('other/repo');
    await loadDemo();
    await expect.poll(() => row('mistral-nano-demo').textContent(), { timeout: 30_000 }).toMatch(/loaded now/);
    // The demo's own row offers no Load (its tab does), the Hub model's does.
    expect(await row('mistral-nano-demo').getByTestId('cache-load').count()).toBe(0);
    await app.page.getByTestId('cache-panel').screenshot({ path: `${ARTIFACTS}/cache-panel-hub.png` });
    const from = hubRequests.length;
    await row('someone/nano').getByTestId('cache-load').click();
    await app.page.locator('[data-testid="model-status"][data-state="ready"]').filter({ hasText: 'someone/nano' }).waitFor({ timeout: 300_000 });
    expect(await app.page.getByTestId('model-status').getAttribute('data-from-cache')).toBe('true');
    expect(hubWeightReads(from)).toEqual([]);
    expect(await app.page.getByTestId('model-source-hub').getAttribute('aria-selected')).toBe('true');
    expect(await app.page.locator('#hub-repo').inputValue()).toBe('someone/nano');
    expect(await app.page.locator('#hub-revision').inputValue()).toBe('');
    // The token typed in the tab went with it (this repository is gated as far as the test's Hub is concerned).
    expect(hubRequests.slice(from).filter((r) => r.method !== 'OPTIONS').every((r) => r.auth === 'Bearer hf_fake_token_for_the_test')).toBe(true);
    // Now the loaded one: marked so, without a Load of its own.
    await expect.poll(() => row('someone/nano').textContent(), { timeout: 30_000 }).toMatch(/loaded now/);
    expect(await row('someone/nano').getByTestId('cache-load').count()).toBe(0);
  });

  it('with the form asking for another quantization, Load asks first; confirmed, it sets the form to the cached one and loads from the cache', async () => {
    await app.page.locator('#peft_method').selectOption('qlora');
    await loadDemo(); // NF4, double-quantised, as the form now asks
    const load = row('someone/nano').getByTestId('cache-load');
    await load.click();
    const question = row('someone/nano').getByRole('alertdialog');
    expect(await question.textContent()).toMatch(/^These weights are cached unquantised; the hyperparameters ask for NF4, double-quantised\. Loading them sets peft_method lora in the form\./);
    // A row with its question, Load and Delete beside the others, on a phone's screen.
    expect(await narrowScreenOverflow(app, 'cache-panel-load-390')).toEqual([]);
    // Escape (the focus on its Set and load) answers Cancel: nothing set, nothing loaded, the focus back on Load.
    expect(await row('someone/nano').getByTestId('cache-confirm-load').evaluate((b) => b === document.activeElement)).toBe(true);
    await app.page.keyboard.press('Escape');
    expect(await question.count()).toBe(0);
    expect(await load.evaluate((b) => b === document.activeElement)).toBe(true);
    expect(await app.page.locator('#peft_method').inputValue()).toBe('qlora');
    expect(await app.page.getByTestId('model-status').textContent()).toMatch(/^Loaded mistral-nano-demo/);
    // Again, confirmed.
    const from = hubRequests.length;
    await load.click();
    await row('someone/nano').getByTestId('cache-confirm-load').click();
    await app.page.locator('[data-testid="model-status"][data-state="ready"]').filter({ hasText: 'someone/nano' }).waitFor({ timeout: 300_000 });
    expect(await app.page.getByTestId('model-status').textContent()).toMatch(/^Loaded someone\/nano \(unquantised\) in [\d.]+ s, from the weight cache in this browser: nothing downloaded/);
    expect(hubWeightReads(from)).toEqual([]);
    expect(await app.page.locator('#peft_method').inputValue()).toBe('lora');
    expect(await app.page.getByTestId('model-mismatch').isHidden()).toBe(true);
  });

  it('Delete of its cached weights takes its offline copy too (it serves only a load whose weights are cached)', async () => {
    const copies = (): Promise<string[]> =>
      app.page.evaluate(async () => {
        const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('finetune-weights');
        const names: string[] = [];
        for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(name);
        return names.filter((n) => n.startsWith('offline-copy-'));
      });
    expect(await copies()).toHaveLength(1);
    const row = app.page.locator('[data-testid="cache-list"] > li').filter({ hasText: 'someone/nano' });
    // Asked, with the focus on Keep (an Enter deletes nothing); Escape keeps it; asked again, confirmed.
    await row.getByTestId('cache-delete').click();
    expect(await row.getByTestId('cache-keep').evaluate((b) => b === document.activeElement)).toBe(true);
    await app.page.keyboard.press('Escape');
    expect(await row.getByRole('alertdialog').count()).toBe(0);
    expect(await row.getByTestId('cache-delete').evaluate((b) => b === document.activeElement)).toBe(true);
    await row.getByTestId('cache-delete').click();
    await row.getByTestId('cache-confirm-delete').click();
    await expect.poll(() => app.page.locator('[data-testid="cache-list"] > li').filter({ hasText: 'someone/nano' }).count(), { timeout: 30_000 }).toBe(0);
    await expect.poll(copies, { timeout: 30_000 }).toEqual([]);
  });
});
