// Try it in the page (headless Chromium, SwiftShader): the demo model continues a prompt with the tokens streaming
// into the page, tokens/s shown; Stop ends it after the token in progress; the prompt is shown as text, never as HTML;
// the settings are checked as `finetune generate` checks them, and an empty prompt continues <s> alone; a long prompt's
// reading shows its progress and stops on Stop.
import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { appForTests, waitModelReady } from './app-fixture.ts';
import { screenshot } from './browser.ts';
import { samplePromptIds } from '../../src/data/layout.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';

// Room for the Stop to land mid-way (the demo model makes several tokens a second here); a Stop that missed still ends.
const MAX = 24;

/**
 * Every text the element at `selector` shows, in order: a state that lasts one token (a fraction of a second) is missed
 * by polling, so the page records each as it is set. The element may come and go (a column is made per generation).
 */
async function recordTexts(page: Page, selector: string): Promise<() => Promise<string[]>> {
  await page.evaluate((sel) => {
    const seen: string[] = [];
    const w = window as unknown as { recorded?: Record<string, string[]> };
    (w.recorded ??= {})[sel] = seen;
    // Each worker message is a task of its own, and the observer hears each task's changes before the next one.
    new MutationObserver(() => {
      const text = document.querySelector(sel)?.textContent;
      if (text !== undefined && text !== null && text !== seen.at(-1)) seen.push(text);
    }).observe(document.body, { childList: true, subtree: true, characterData: true });
  }, selector);
  return () => page.evaluate((sel) => [...(window as unknown as { recorded: Record<string, string[]> }).recorded[sel]], selector);
}

describe('streaming generation in the page', () => {
  const opened = appForTests(120_000);

  it('streams tokens with tokens/s, stops on Stop, and shows the prompt as text', async () => {
    const app = opened();
    const page = app.page;
    await waitModelReady(app);
    const prompt = '<b>bold?</b> def add(';
    await page.getByTestId('generate-prompt').fill(prompt);
    await page.getByTestId('generate-max').fill(String(MAX));
    expect(await page.getByTestId('generate-temperature').inputValue()).toBe('0'); // greedy by default
    const figures = await recordTexts(page, '[data-testid="generate-stats-base"]');
    const run = page.getByTestId('generate-run');
    await run.click();
    expect(await page.getByTestId('generate-stop').isEnabled()).toBe(true);
    expect(await run.isDisabled()).toBe(true);

    // No adapter yet: the base model's column. Its figures while it goes: waiting (the page measures its estimate as it
    // opens, and a generation waits for that), the prompt, then the first token's prompt time, then tokens/s over the
    // tokens after the first, as the final line counts them.
    const stats = page.getByTestId('generate-stats-base');
    await stats.filter({ hasText: /^\d+ tokens · [\d.]+ tokens\/s so far$/ }).waitFor({ timeout: 180_000 });
    await page.getByTestId('generate-stop').click();
    const column = page.getByTestId('generate-column-base');
    await page.locator('[data-testid="generate-column-base"][data-stop]').waitFor({ timeout: 120_000 });
    expect(await column.getAttribute('data-stop')).toBe('stopped');
    const made = Number(/^(\d+) tokens/.exec((await stats.textContent()) ?? '')?.[1]);
    expect(made >= 1 && made < MAX).toBe(true);
    expect(await stats.textContent()).toMatch(/ · greedy · stopped$/);
    const going = (await figures()).slice(0, -1); // the last is the final line
    expect(going.slice(0, 2)).toEqual(['waiting for the GPU…', 'reading the prompt…']);
    const parts = going.slice(2).filter((f) => /^reading the prompt: \d+ of \d+ tokens…$/.test(f)).length; // 8-row parts here
    const tokens = going.slice(2 + parts);
    expect(tokens[0]).toMatch(/^1 token · prompt [\d.]+ s$/);
    expect(tokens.length).toBeGreaterThan(1);
    expect(tokens.slice(1).every((f, i) => f.startsWith(`${i + 2} tokens · `) && f.endsWith(' tokens/s so far'))).toBe(true);
    // The rate so far is the final line's rate (it counted the wait for the estimate too: 0.61 against 5.61 tokens/s).
    const rateIn = (f: string): number => Number(/([\d.]+) tokens\/s/.exec(f)![1]);
    const ratio = rateIn(tokens.at(-1)!) / rateIn((await stats.textContent())!);
    expect(ratio > 0.5 && ratio < 2).toBe(true);
    expect((await page.getByTestId('generate-text-base').textContent())!.length).toBeGreaterThan(0);
    expect(await run.isEnabled()).toBe(true);
    expect(await page.getByTestId('generate-stop').isDisabled()).toBe(true);
    // Nothing holds it back now, so nothing is said beside it (the reason during a run: train.test.ts).
    expect(await page.getByTestId('generate-reason').isHidden()).toBe(true);

    // The prompt is text: its markup is shown literally and makes no element.
    const shown = page.locator('[data-testid="generate-column-base"] pre .prompt');
    expect(await shown.textContent()).toBe(prompt);
    expect(await page.locator('[data-testid="generate-output"] b').count()).toBe(0);
    await screenshot(page, 'generate-stopped');

    // The settings are read as `finetune generate` reads them (src/config/generation.ts): no hex, the same words.
    await page.getByTestId('generate-max').fill('0x10');
    await run.click();
    expect(await page.getByTestId('generate-output').textContent()).toBe('New tokens must be a whole number from 1 to 4,096, got "0x10"');

    // An empty prompt continues <s> alone, as the CLI's --prompt "" does.
    await page.getByTestId('generate-prompt').fill('');
    await page.getByTestId('generate-max').fill('1');
    await run.click();
    await page.locator('[data-testid="generate-column-base"][data-stop]').waitFor({ timeout: 180_000 });
    expect(['max-tokens', 'eos']).toContain(await column.getAttribute('data-stop'));
    expect(await stats.textContent()).toMatch(/^(1 token|0 tokens) · /);

    // A long prompt is read in parts, shown as it goes; Stop is heard between them, before any token.
    await page.getByTestId('generate-prompt').fill('def largest(a, b):\n    # Return the larger of two numbers, or a when they are equal.\n    return');
    await page.getByTestId('generate-max').fill('4');
    await run.click();
    await stats.filter({ hasText: /^reading the prompt: \d+ of \d+ tokens…$/ }).waitFor({ timeout: 180_000 });
    await page.getByTestId('generate-stop').click();
    await page.locator('[data-testid="generate-column-base"][data-stop]').waitFor({ timeout: 120_000 });
    expect(await column.getAttribute('data-stop')).toBe('stopped');
    expect(await stats.textContent()).toMatch(/^0 tokens · prompt \d+ tokens, [\d.]+ s · greedy · stopped$/);

    // Sampled text is repeatable by its seed, which greedy generation has no use for.
    const seed = page.getByTestId('generate-seed');
    expect(await seed.isDisabled()).toBe(true);
    await page.getByTestId('generate-temperature').fill('1.5');
    expect(await seed.isEnabled()).toBe(true);
    await seed.fill('7');
    await page.getByTestId('generate-prompt').fill('def');
    await page.getByTestId('generate-max').fill('3');
    const sampled = async (): Promise<string> => {
      await run.click();
      await page.locator('[data-testid="generate-column-base"][data-stop]').waitFor({ timeout: 180_000 });
      expect(await stats.textContent()).toMatch(/ · temperature 1\.5, top-p 1, seed 7 · /);
      return (await page.getByTestId('generate-text-base').textContent()) ?? '';
    };
    const first = await sampled();
    expect(first.length).toBeGreaterThan(0);
    expect(await sampled()).toBe(first);
    // The prompt is laid out as the form's layout lays out the rows' prompts: as written under replicate (<s> def),
    // in [INST] tags under instruct, as a run's validation_prompt sample is.
    const tok = await loadTokenizer(new Uint8Array(readFileSync('public/tokenizer/tokenizer.model')));
    expect(await stats.textContent()).toContain(`· prompt ${samplePromptIds(tok, 'def', 'replicate').length} tokens, `);
    await page.locator('#layout').selectOption('instruct');
    await sampled();
    expect(await stats.textContent()).toContain(`· prompt ${samplePromptIds(tok, 'def', 'instruct').length} tokens, `);
    expect(samplePromptIds(tok, 'def', 'instruct').length).toBeGreaterThan(samplePromptIds(tok, 'def', 'replicate').length);
    await page.locator('#layout').selectOption('replicate');
    await seed.fill('-');
    await run.click();
    expect(await page.getByTestId('generate-output').textContent()).toBe('Seed must be a whole number from -(2^53 - 1) to 2^53 - 1, got "-"');

    // On a 390 px phone each setting's name stays on the line of its box.
    await page.setViewportSize({ width: 390, height: 844 });
    const split = await page.evaluate(() =>
      [...document.querySelectorAll('.try-it label.pair')].filter((l) => l.getClientRects().length !== 1 || (l.querySelector('input') as HTMLElement).getBoundingClientRect().top > l.getBoundingClientRect().top + 4).map((l) => l.textContent),
    );
    expect(split).toEqual([]);
    expect(await page.locator('.try-it label.pair input').count()).toBe(4); // new tokens, temperature, top-p, seed
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('Load model during a generation: it stops at its next token, then the new model generates', async () => {
    const app = opened();
    const page = app.page;
    await waitModelReady(app);
    await page.getByTestId('generate-temperature').fill('0');
    await page.getByTestId('generate-prompt').fill('def');
    await page.getByTestId('generate-max').fill('200');
    await page.getByTestId('generate-run').click();
    const stats = page.getByTestId('generate-stats-base');
    await stats.filter({ hasText: /tokens\/s so far$/ }).waitFor({ timeout: 180_000 });
    await page.getByTestId('model-load').click();
    await page.locator('[data-testid="generate-column-base"][data-stop]').waitFor({ timeout: 180_000 });
    expect(await page.getByTestId('generate-column-base').getAttribute('data-stop')).toBe('stopped');
    await waitModelReady(app);
    // (What the load says while it waits: import-adapter.test.ts, where a validation pass holds it for seconds.)
    await page.getByTestId('generate-max').fill('2');
    await page.getByTestId('generate-run').click();
    await page.locator('[data-testid="generate-column-base"][data-stop]').waitFor({ timeout: 180_000 });
    expect(await page.getByTestId('generate-column-base').getAttribute('data-stop')).toBe('max-tokens');
  });
});
