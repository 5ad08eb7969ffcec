// The model source tabs (Demo model, Hugging Face, Local files) as the WAI-ARIA tabs pattern has them, in headless
// Chromium: one Tab stop (the selected tab), the arrows (wrapping), Home and End move focus and select as a click does,
// the panel is a tabpanel named by its tab, and a disabled tab (all are, while a model loads) is never reached.
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { appForTests, waitModelReady } from './app-fixture.ts';

const KINDS = ['demo', 'hub', 'files'] as const;

/** The focused element's data-testid, or its role, or its id: where the keyboard is. */
function focused(page: Page): Promise<string> {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement | null;
    return el?.dataset.testid ?? el?.getAttribute('role') ?? el?.id ?? '';
  });
}

/** Each tab's aria-selected and tabindex, as "demo:true:0 hub:false:-1 …". */
function tabStates(page: Page): Promise<string> {
  return page.evaluate((kinds) => kinds.map((k) => {
    const t = document.querySelector(`[data-testid="model-source-${k}"]`);
    return `${k}:${t?.getAttribute('aria-selected')}:${t?.getAttribute('tabindex')}`;
  }).join(' '), [...KINDS]);
}

function selected(kind: (typeof KINDS)[number]): string {
  return KINDS.map((k) => `${k}:${k === kind}:${k === kind ? 0 : -1}`).join(' ');
}

describe('the model source tabs (headless Chromium)', () => {
  const app = appForTests(60_000);

  it('are one Tab stop, the selected tab, and the panel is a tabpanel named by it', async () => {
    const page = app().page;
    // The tabs are disabled while the demo model loads at the start.
    await waitModelReady(app());
    expect(await tabStates(page)).toBe(selected('demo'));
    const demo = page.getByTestId('model-source-demo');
    const panel = page.getByRole('tabpanel');
    expect(await panel.count()).toBe(1);
    const panelId = await panel.getAttribute('id');
    expect(panelId).toBeTruthy();
    for (const k of KINDS) expect(await page.getByTestId(`model-source-${k}`).getAttribute('aria-controls')).toBe(panelId);
    expect(await panel.getAttribute('aria-labelledby')).toBe(await demo.getAttribute('id'));
    expect(await page.getByRole('tabpanel', { name: 'Demo model', exact: true }).count()).toBe(1);

    // Tab leaves the tablist at once (to the panel: the demo's holds no control of its own), and Shift+Tab from there
    // comes back to the selected tab, not to the last one.
    await demo.focus();
    await page.keyboard.press('Tab');
    expect(await focused(page)).toBe('tabpanel');
    await page.keyboard.press('Shift+Tab');
    expect(await focused(page)).toBe('model-source-demo');
    await page.keyboard.press('Shift+Tab');
    expect(await focused(page)).not.toMatch(/^model-source-/);
  });

  it('move focus and the selection with the arrows (wrapping), Home and End, as a click does', async () => {
    const page = app().page;
    await page.getByTestId('model-source-demo').focus();
    const steps: [string, (typeof KINDS)[number]][] = [
      ['ArrowRight', 'hub'],
      ['ArrowRight', 'files'],
      ['ArrowRight', 'demo'],
      ['ArrowLeft', 'files'],
      ['Home', 'demo'],
      ['End', 'files'],
      ['ArrowLeft', 'hub'],
    ];
    for (const [key, kind] of steps) {
      await page.keyboard.press(key);
      expect(await focused(page), key).toBe(`model-source-${kind}`);
      expect(await tabStates(page), key).toBe(selected(kind));
    }
    // Selected as a click selects: the panel shows the Hugging Face inputs, and is named by its tab.
    expect(await page.locator('#hub-repo').isVisible()).toBe(true);
    expect(await page.getByRole('tabpanel', { name: 'Hugging Face', exact: true }).count()).toBe(1);
    // From the selected tab, Tab goes into the panel's first control.
    await page.keyboard.press('Tab');
    expect(await focused(page)).toBe('hub-repo');
    // A click moves the one Tab stop too.
    await page.getByTestId('model-source-files').click();
    expect(await tabStates(page)).toBe(selected('files'));
  });

  it('pass over a disabled tab, and are no Tab stop at all while every one is disabled', async () => {
    const page = app().page;
    const setDisabled = (kinds: string[]) =>
      page.evaluate((ks) => {
        for (const t of document.querySelectorAll<HTMLButtonElement>('[role="tab"]')) t.disabled = ks.includes(t.dataset.kind ?? '');
      }, kinds);
    await page.getByTestId('model-source-demo').click();
    // As the panel disables them (a model loading), here one alone: the arrows go round it.
    await setDisabled(['hub']);
    await page.getByTestId('model-source-demo').focus();
    await page.keyboard.press('ArrowRight');
    expect(await focused(page)).toBe('model-source-files');
    expect(await tabStates(page)).toBe(selected('files'));
    await setDisabled(['hub']);
    await page.keyboard.press('ArrowLeft');
    expect(await focused(page)).toBe('model-source-demo');
    await setDisabled(['hub']);
    await page.keyboard.press('ArrowLeft');
    expect(await focused(page)).toBe('model-source-files');

    // All disabled: Shift+Tab from the panel's first control passes the tablist by.
    await page.locator('#model-files').focus();
    await setDisabled([...KINDS]);
    await page.keyboard.press('Shift+Tab');
    expect(await focused(page)).not.toMatch(/^model-source-/);
    await setDisabled([]);
  });

  it("never shows the last source's plan under one with nothing to plan: Local files opened on nothing picked", async () => {
    const page = app().page;
    await page.getByTestId('model-source-demo').click();
    const plan = page.getByTestId('model-plan');
    await plan.filter({ hasText: /^Fits/ }).waitFor({ timeout: 30_000 });
    // Read in the same task as the click: before the 400 ms the next plan waits for, the demo's "Fits" stood here.
    const right = await page.evaluate(() => {
      (document.querySelector('[data-testid="model-source-files"]') as HTMLElement).click();
      return document.querySelector('[data-testid="model-plan"]')?.textContent ?? '';
    });
    expect(right).toBe('');
    await page.getByTestId('model-source-demo').click();
    await plan.filter({ hasText: /^Fits/ }).waitFor({ timeout: 30_000 });
    expect(await plan.evaluate((p) => p.classList.contains('stale'))).toBe(false);
    // The form changed under a plan on show: dimmed at once, then the new plan, no longer dimmed.
    const afterEdit = await page.evaluate(() => {
      const input = document.getElementById('lora_rank') as HTMLInputElement;
      input.value = '16';
      input.dispatchEvent(new Event('input', { bubbles: true }));
      const p = document.querySelector('[data-testid="model-plan"]') as HTMLElement;
      return { fits: /^Fits/.test(p.textContent ?? ''), stale: p.classList.contains('stale'), busy: p.getAttribute('aria-busy') };
    });
    expect(afterEdit).toEqual({ fits: true, stale: true, busy: 'true' });
    await page.waitForFunction(() => /LoRA 416/.test(document.querySelector('[data-testid="model-plan"]')?.textContent ?? ''), null, { timeout: 30_000 });
    expect(await plan.evaluate((p) => [p.classList.contains('stale'), p.getAttribute('aria-busy')])).toEqual([false, null]);
    expect(await plan.textContent()).toMatch(/^Fits/);
  });

  it('asks the browser for dark native controls (file pickers, scrollbars, number spinners), as the page is dark', async () => {
    // Without it the file pickers' buttons were drawn light on the dark panels.
    expect(await app().page.evaluate(() => getComputedStyle(document.documentElement).colorScheme)).toBe('dark');
  });
});
