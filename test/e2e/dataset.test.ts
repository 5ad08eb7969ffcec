// The dataset panel and the hyperparameter form in the built app (headless Chromium, the worker reads the files):
// the sample dataset is preselected with its summary; a broken JSONL shows every problem with its line (and column),
// errors and warnings apart, capped with "… and N more"; the form validates as you type and shows the worker's
// planning errors under the field they name.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chartLegend, openApp, screenshot, type App } from './browser.ts';
import { waitModelReady } from './app-fixture.ts';
import { lengthHistogram } from '../../src/data/dataset.ts';
import { histogramLabel } from '../../src/ui/length-histogram.ts';
import { learningRateCurve } from '../../src/run/schedule.ts';
import { lrCurveLabel } from '../../src/ui/lr-chart.ts';
import { layoutIds } from '../../src/data/layout.ts';
import { loadTokenizer } from '../../src/data/tokenizer.ts';
import { wideVocabModel } from '../helpers/wide-vocab-model.ts';

const SAMPLE = readFileSync('public/datasets/sample.jsonl', 'utf8');

const BROKEN = [
  '{"prompt": "# fine", "completion": "ok"}', // 1
  '{"prompt": "# missing comma" "completion": "x"}', // 2: JSON syntax error, with a column
  '', // 3: blank, skipped
  '[1, 2, 3]', // 4: not an object
  '{"prompt": "# no completion"}', // 5: completion missing
  '{"prompt": 7, "completion": "seven"}', // 6: not a string
  '{"prompt": "# extra", "completion": "y", "note": "ignored"}', // 7: unknown field (a warning)
  '{"prompt": "# also fine", "completion": "ok"}', // 8
].join('\n');

async function upload(page: Page, name: string, text: string): Promise<void> {
  await page.getByTestId('train-file').setInputFiles({ name, mimeType: 'application/jsonl', buffer: Buffer.from(text) });
  await page.getByTestId('train-name').filter({ hasText: name }).waitFor();
  await page.locator('[data-testid="train-view"] .file-head .badge').filter({ hasNotText: 'reading' }).waitFor();
}

async function fact(page: Page, key: string): Promise<string> {
  return ((await page.locator(`[data-testid="train-summary"] dd[data-key="${key}"]`).textContent()) ?? '').trim();
}

/**
 * A chart's axis of whole numbers (tokens, rows, steps): every tick it drew (recorded as value=label pairs) is at a
 * whole number and labelled with it. uPlot's own steps once put ticks at 2.5 tokens, labelled "3".
 */
async function expectWholeTicks(page: Page, testid: string, axis: 'x' | 'y'): Promise<void> {
  const ticks = (await page.getByTestId(testid).getAttribute(`data-${axis}-ticks`)) ?? '';
  const pairs = ticks.split(' ').filter(Boolean).map((p) => p.split('='));
  expect(pairs.length, `${testid} ${axis}: ${ticks}`).toBeGreaterThan(1);
  for (const [value, label] of pairs) {
    expect(Number.isInteger(Number(value)), `${testid} ${axis}: ${ticks}`).toBe(true);
    expect(label, `${testid} ${axis}: ${ticks}`).toBe(Number(value).toLocaleString('en-US'));
  }
}

describe('dataset panel and form (headless Chromium)', () => {
  let app: App;
  beforeAll(async () => {
    app = await openApp();
    app.page.setDefaultTimeout(60_000);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('preselects the sample dataset and shows its summary with token counts', async () => {
    const page = app.page;
    await page.getByTestId('train-name').filter({ hasText: 'sample.jsonl' }).waitFor().catch(async () => {
      throw new Error(`no sample: ${await page.getByTestId('train-view').textContent()}\n${app.console.join('\n')}`);
    });
    await page.getByTestId('train-summary').waitFor();
    expect(await fact(page, 'rows')).toBe('62');
    expect(await fact(page, 'rejected rows')).toBe('0');
    expect(await fact(page, 'shape')).toBe('prompt / completion');
    expect(await fact(page, 'layout')).toBe('replicate');

    // The token counts are the engine's own: tokenise the same file in the worker and compare.
    const lengths = await page.evaluate(async (text) => {
      const engine = (window as unknown as { finetuneEngine: { encodeDataset(t: string, l: string): Promise<{ examples: { ids: number[] }[] }> } }).finetuneEngine;
      const r = await engine.encodeDataset(text, 'replicate');
      return r.examples.map((e) => e.ids.length);
    }, SAMPLE);
    expect(lengths).toHaveLength(62);
    const total = lengths.reduce((a, b) => a + b, 0);
    const sorted = [...lengths].sort((a, b) => a - b);
    expect(await fact(page, 'tokens')).toBe(total.toLocaleString('en-US'));
    expect(await fact(page, 'per row')).toBe(`min ${sorted[0]} · median ${(sorted[30] + sorted[31]) / 2} · max ${sorted[61]}`);
    expect(await page.locator('[data-testid="train-view"] .file-head .badge').textContent()).toBe('ready');
    expect(await page.getByTestId('train-problems').count()).toBe(0);
    // The rows by length as bars: drawn (a canvas with pixels), in the bins the engine's lengths give, said in words.
    const bars = page.getByTestId('train-lengths');
    const want = lengthHistogram(lengths, 256);
    expect(await bars.getAttribute('data-bins')).toBe(String(want.fits.length));
    expect(await bars.getAttribute('data-bin-width')).toBe(String(want.binWidth));
    expect(await bars.getAttribute('data-truncated-rows')).toBe('0');
    expect(await bars.getAttribute('aria-label')).toBe(histogramLabel(want, 256));
    const inked = await bars.locator('canvas').evaluate((c: HTMLCanvasElement) => {
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    expect(inked).toBeGreaterThan(100);
    // Its legend, the pointer off the bars, gives the totals (it once said "—" for each); over a bar, that bin's rows.
    await page.mouse.move(0, 0);
    const fits = want.fits.reduce((a, b) => a + b, 0);
    expect(await chartLegend(page, 'train-lengths')).toEqual({ tokens: 'all lengths', truncated: '0', fit: String(fits) });
    const fullest = want.fits.indexOf(Math.max(...want.fits));
    const over = (await bars.locator('.u-over').boundingBox())!;
    await page.mouse.move(over.x + ((fullest + 0.5) / want.fits.length) * over.width, over.y + over.height - 2);
    const lo = fullest * want.binWidth + 1;
    const hi = (fullest + 1) * want.binWidth;
    await expect.poll(() => chartLegend(page, 'train-lengths')).toEqual({ tokens: `${lo}–${hi}`, truncated: '0', fit: String(want.fits[fullest]) });
    await page.mouse.move(0, 0);
    await expect.poll(() => chartLegend(page, 'train-lengths')).toEqual({ tokens: 'all lengths', truncated: '0', fit: String(fits) });

    // The demo preset: a short run on the sample, Replicate's defaults shown beside the changed values.
    expect(await page.locator('#num_validation_samples').inputValue()).toBe('6');
    expect(await page.getByTestId('default-num_validation_samples').textContent()).toBe('default 50');
    expect(await page.locator('#num_train_epochs').inputValue()).toBe('1');
    expect(await page.getByTestId('default-num_train_epochs').textContent()).toBe('default 3');
    expect(await page.locator('#max_seq_len').inputValue()).toBe('256');
    expect(await page.locator('#learning_rate').inputValue()).toBe('0.001');
    expect(await page.getByTestId('default-learning_rate').textContent()).toBe('default 0.0001');
    await page.getByTestId('plan-facts').filter({ hasText: /training rows\s*56/ }).waitFor();
    expect(await page.getByTestId('plan-facts').textContent()).toMatch(/validation rows\s*6/);
    // The planned learning rate by step, drawn: every step of the run, rate 0 at the first (warmup ceil(0.03 · steps)).
    const steps = Number(/steps\s*([\d,]+)/.exec((await page.getByTestId('plan-facts').textContent()) ?? '')![1]);
    const lr = page.getByTestId('plan-lr');
    expect(await lr.getAttribute('data-points')).toBe(String(steps));
    // No run yet: no step marked on it.
    expect(await lr.getAttribute('data-current-step')).toBeNull();
    expect(await lr.getAttribute('aria-label')).toMatch(new RegExp(`^Learning rate by step: 0 at step 1, reaches 1\\.00e-3 at step 2, [0-9.e-]+ at step ${steps}\\.$`));
    expect(await chartLegend(page, 'plan-lr')).toEqual({ step: `1–${steps}`, 'learning rate': 'peak 1.00e-3' });
    // Another schedule in the form is drawn at once: the curve the trainer's own schedule gives.
    await page.locator('#lr_scheduler').selectOption('cosine');
    const cosine = lrCurveLabel(learningRateCurve(1e-3, steps, 0.03, 'cosine'));
    await page.locator(`[data-testid="plan-lr"][aria-label="${cosine}"]`).waitFor();
    await page.locator('#lr_scheduler').selectOption('linear');
    await page.locator(`[data-testid="plan-lr"][aria-label="${lrCurveLabel(learningRateCurve(1e-3, steps, 0.03, 'linear'))}"]`).waitFor();
    await expectWholeTicks(page, 'train-lengths', 'x');
    await expectWholeTicks(page, 'train-lengths', 'y');
    await expectWholeTicks(page, 'plan-lr', 'x');
    await screenshot(page, 'dataset-sample');
  });

  it('reads the file again for max_seq_len as the form holds it, also after passing through an invalid value', async () => {
    const page = app.page;
    const truncation = page.locator('[data-testid="train-summary"] dd[data-key="truncated rows"]');
    await truncation.filter({ hasText: 'none (max_seq_len 256)' }).waitFor();
    // Typed over 256: 4, 40, 409, 4096 (valid), 40960 (over the limit), then Backspace back to 4096. The figures once
    // stayed at "max_seq_len 40,960", read with the invalid value, while the form said 4096.
    await page.locator('#max_seq_len').selectText();
    await page.keyboard.type('40960', { delay: 60 });
    expect(await page.getByTestId('error-max_seq_len').textContent()).not.toBe('');
    await page.waitForTimeout(800);
    await page.keyboard.press('Backspace');
    await truncation.filter({ hasText: 'none (max_seq_len 4,096)' }).waitFor();
    await page.waitForTimeout(800);
    expect(await truncation.textContent()).toBe('none (max_seq_len 4,096)');
    // And a value that truncates: read again with it.
    await page.locator('#max_seq_len').fill('48');
    await truncation.filter({ hasText: /at 48 tokens/ }).waitFor();
    // The bars count the same truncated rows, and max_seq_len is named under them.
    const cut = /^([\d,]+) at 48 tokens/.exec((await truncation.textContent()) ?? '')![1].replace(/,/g, '');
    expect(await page.getByTestId('train-lengths').getAttribute('data-truncated-rows')).toBe(cut);
    expect(await page.locator('[data-testid="train-lengths"] figcaption').textContent()).toMatch(/the line is max_seq_len 48\.$/);
    await screenshot(page, 'dataset-lengths-truncated');
    await page.locator('#max_seq_len').fill('256');
    await truncation.filter({ hasText: 'none (max_seq_len 256)' }).waitFor();
  });

  it('shows every problem of a broken JSONL with its line number, errors and warnings apart', async () => {
    const page = app.page;
    await upload(page, 'broken.jsonl', BROKEN);
    const items = page.locator('[data-testid="train-problems"] li');
    const problems = await items.evaluateAll((lis) => lis.map((li) => ({ line: li.getAttribute('data-line'), severity: li.getAttribute('data-severity'), text: li.textContent ?? '' })));
    const errorLines = problems.filter((p) => p.severity === 'error').map((p) => p.line);
    const warningLines = problems.filter((p) => p.severity === 'warning').map((p) => p.line);
    expect(errorLines).toEqual(['2', '4', '5', '6']);
    expect(warningLines).toEqual(['7']);
    // The syntax error names its column; the others their line.
    expect(problems[0].text).toMatch(/^line 2, column \d+error/);
    expect(problems.find((p) => p.line === '4')?.text).toMatch(/^line 4error/);
    expect(problems.find((p) => p.line === '7')?.text).toMatch(/^line 7warning.*note/);
    expect(await page.locator('[data-testid="train-view"] .file-head .badge').textContent()).toBe('4 errors');
    expect(await fact(page, 'rows')).toBe('3'); // lines 1, 7 (its extra field ignored) and 8
    expect(await fact(page, 'rejected rows')).toBe('4');
    // Three short rows: lengths 0 to about 20 tokens, where uPlot's own steps were 2.5.
    await expectWholeTicks(page, 'train-lengths', 'x');
    await expectWholeTicks(page, 'train-lengths', 'y');
    // No training on a file with errors, and the page says why.
    expect(await page.getByTestId('train-start').isDisabled()).toBe(true);
    expect(await page.getByTestId('train-reason').textContent()).toBe('The training file has 4 errors: see the Dataset panel.');
    await screenshot(page, 'dataset-broken');

    // On a 390 px phone the location stands above the message, which gets the row's whole width (a column beside it
    // once left the message about 80 px, broken mid-word).
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      const boxes = await items.evaluateAll((lis) =>
        lis.map((li) => {
          const box = (sel: string) => (li.querySelector(sel) as HTMLElement).getBoundingClientRect();
          const row = li.getBoundingClientRect();
          return { row: row.width, where: box('.where'), message: box('.message') };
        }),
      );
      for (const b of boxes) {
        expect(b.message.top).toBeGreaterThanOrEqual(b.where.bottom - 1);
        expect(b.message.width).toBeGreaterThan(b.row * 0.8);
      }
      await page.getByTestId('train-problems').screenshot({ path: 'test-artifacts/dataset-problems-390.png' });
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  it('caps a long list of problems with "… and N more"', async () => {
    const page = app.page;
    // 250 broken rows (a syntax error, a number for text, in turn) and one good one.
    const lines = Array.from({ length: 250 }, (_, i) => (i % 2 === 0 ? `{"prompt": "row ${i}", "completion": ` : '{"text": 5}'));
    await upload(page, 'many.jsonl', [...lines, '{"text": "fine"}'].join('\n'));
    expect(await page.locator('[data-testid="train-view"] .file-head .badge').textContent()).toBe('250 errors');
    const items = page.locator('[data-testid="train-problems"] li');
    expect(await items.count()).toBe(100);
    expect(await items.first().getAttribute('data-line')).toBe('1');
    expect(await items.nth(99).getAttribute('data-line')).toBe('100');
    expect(await page.getByTestId('train-problems-more').textContent()).toBe('… and 150 more');
  });

  // A 150 MB file took half a minute with nothing but "reading…" on the panel.
  it('shows how far a large file has been read while it is read, and no bar once it is', async () => {
    const page = app.page;
    const row = `${JSON.stringify({ prompt: `Summarise: ${'lorem ipsum dolor sit amet '.repeat(6)}`, completion: 'A short summary.' })}\n`;
    const big = Buffer.from(row.repeat(Math.ceil(12e6 / row.length)));
    await page.getByTestId('train-file').setInputFiles({ name: 'big.jsonl', mimeType: 'application/jsonl', buffer: big });
    const words = page.getByTestId('train-reading').locator('.progress-text');
    await words.filter({ hasText: /^[\d.]+ (KiB|MiB) of 11\.\d MiB \(\d+ %\)/ }).waitFor({ timeout: 120_000 });
    // Both read at one moment: the reading goes on meanwhile.
    const { said, bar } = await page.getByTestId('train-reading').evaluate((el) => ({ said: el.querySelector('.progress-text')?.textContent ?? '', bar: (el.querySelector('progress') as HTMLProgressElement).value }));
    expect(bar).toBeGreaterThan(0);
    expect(bar).toBeLessThanOrEqual(1);
    expect(Number(/\((\d+) %\)/.exec(said)?.[1])).toBeCloseTo(bar * 100, -1);
    await page.locator('[data-testid="train-view"] .file-head .badge').filter({ hasText: /^ready/ }).waitFor({ timeout: 300_000 });
    expect(await page.getByTestId('train-reading').count()).toBe(0);
    expect(await fact(page, 'rows')).toBe(String(Math.ceil(12e6 / row.length).toLocaleString('en-US')));
  }, 400_000);

  it('sums up a file without usable rows, a CSV file and a binary file with no meaningless figures', async () => {
    const page = app.page;
    const badge = page.locator('[data-testid="train-view"] .file-head .badge');
    const items = page.locator('[data-testid="train-problems"] li');
    // 20 rows, each missing "completion": 20 errors, and "no usable rows" said in words, not counted as a 21st.
    await upload(page, 'prompts.jsonl', Array.from({ length: 20 }, (_, i) => JSON.stringify({ prompt: `p${i}` })).join('\n'));
    expect(await badge.textContent()).toBe('20 errors · no usable rows');
    expect(await page.getByTestId('train-reason').textContent()).toBe('The training file has 20 errors: see the Dataset panel.');
    expect(await items.last().getAttribute('data-severity')).toBe('note');
    expect(await fact(page, 'tokens')).toBe('no usable rows');
    for (const k of ['per row', 'loss tokens', 'truncated rows']) expect(await page.locator(`[data-testid="train-summary"] dd[data-key="${k}"]`).count()).toBe(0);

    // CSV: one note about the file first, then each line's own error.
    await upload(page, 'data.csv', 'prompt,completion\nhello,world\n');
    expect(await items.first().getAttribute('data-code')).toBe('looks-like-csv');
    expect(await items.first().textContent()).toMatch(/^filenotethis looks like CSV\/TSV, not JSONL/);
    expect(await items.nth(1).getAttribute('data-line')).toBe('1');
    expect(await badge.textContent()).toBe('2 errors · no usable rows');

    // A PNG: the summary's size is the file's, not the few bytes read before it was refused.
    const png = Buffer.alloc(2048, 7);
    png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    await page.getByTestId('train-file').setInputFiles({ name: 'image.png', mimeType: 'image/png', buffer: png });
    await page.getByTestId('train-name').filter({ hasText: 'image.png' }).waitFor();
    await badge.filter({ hasNotText: 'reading' }).waitFor();
    expect(await fact(page, 'size')).toBe('2.0 KiB');
    expect(await fact(page, 'content')).toBe('not a JSONL text file (binary data)');
    expect(await page.locator('[data-testid="train-summary"] dd[data-key="lines"]').count()).toBe(0);
    expect(await badge.textContent()).toBe('1 error');
  });

  it('keeps a file picked while the sample is still being fetched (the sample arriving later does not replace it)', async () => {
    const page = app.page;
    // Hold the sample's download until a file has been picked.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    await page.route('**/datasets/sample.jsonl', async (route) => {
      await held;
      await route.continue();
    });
    await page.getByTestId('use-sample').click();
    await upload(page, 'mine.jsonl', '{"text": "my own row"}\n{"text": "and another"}');
    release();
    // The sample's fetch finishes now; give its inspection time to land, as it did before the fix.
    await page.waitForResponse('**/datasets/sample.jsonl');
    await page.waitForTimeout(1500);
    await page.unroute('**/datasets/sample.jsonl');
    expect(await page.getByTestId('train-name').textContent()).toBe('mine.jsonl');
    expect(await fact(page, 'rows')).toBe('2');
  });

  it('takes an optional validation file: its rows validate, and no training rows are held out', async () => {
    const page = app.page;
    await page.getByTestId('use-sample').click();
    await page.getByTestId('train-name').filter({ hasText: 'sample.jsonl' }).waitFor();
    const rows = ['one', 'two', 'three'].map((w) => JSON.stringify({ prompt: `# ${w}`, completion: w })).join('\n');
    await page.getByTestId('validation-file').setInputFiles({ name: 'held-out.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(rows) });
    await page.getByTestId('validation-name').filter({ hasText: 'held-out.jsonl' }).waitFor();
    await page.locator('[data-testid="validation-summary"] dd[data-key="rows"]').filter({ hasText: /^3$/ }).waitFor();
    expect(await page.getByTestId('file-validation_data').textContent()).toBe('held-out.jsonl');
    const plan = page.locator('.plan:not(:has(.stale)) [data-testid="plan-facts"]');
    await plan.filter({ hasText: /training rows\s*62/ }).waitFor();
    expect(await plan.textContent()).toMatch(/validation rows\s*3/);
    await page.getByTestId('clear-validation').click();
    await plan.filter({ hasText: /training rows\s*56/ }).waitFor();
    expect(await plan.textContent()).toMatch(/validation rows\s*6/);
    expect(await page.getByTestId('validation-name').count()).toBe(0);
  });

  it('ticks a short dataset\'s lengths and a two-step run\'s learning rate at whole numbers only', async () => {
    // uPlot's own tick steps put ticks at 2.5 tokens (labelled "3", as a count rounds) over lengths up to about 25, and
    // at tenths of a step (unlabelled) under a run of two steps.
    const page = app.page;
    const rows = Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `# ${'word '.repeat(3 + 2 * i)}`, completion: `x = ${i}` })).join('\n') + '\n';
    await upload(page, 'short.jsonl', rows);
    await page.locator('#num_validation_samples').fill('2');
    await page.locator('#train_batch_size').fill('2');
    await page.locator('#micro_batch_size').fill('2');
    await page.locator('#num_train_epochs').fill('1');
    await page.getByTestId('plan-facts').filter({ hasText: /steps\s*2 \(/ }).waitFor();
    // Drawn at the panel's width (a chart is first drawn 320 px wide, then fitted).
    const fitted = (testid: string) =>
      page.waitForFunction((id) => {
        const figure = document.querySelector(`[data-testid="${id}"]`);
        const canvas = figure?.querySelector('canvas');
        return !!figure?.getAttribute('data-x-ticks') && !!canvas && canvas.getBoundingClientRect().width > 400;
      }, testid);
    await page.locator('[data-testid="plan-lr"][data-points="2"]').waitFor();
    await fitted('plan-lr');
    await fitted('train-lengths');
    await expectWholeTicks(page, 'train-lengths', 'x');
    await expectWholeTicks(page, 'train-lengths', 'y');
    await expectWholeTicks(page, 'plan-lr', 'x');
    await screenshot(page, 'dataset-short-ticks');
    await page.getByTestId('preset-demo').click();
  });

  it('validates the form as you type and shows the planning errors under their field', async () => {
    const page = app.page;
    await page.getByTestId('use-sample').click();
    await page.getByTestId('train-name').filter({ hasText: 'sample.jsonl' }).waitFor();
    await page.getByTestId('plan-facts').waitFor();
    await page.locator('[data-testid="model-status"][data-state="ready"]').waitFor({ timeout: 180_000 });

    await page.locator('#lora_rank').fill('0');
    const rankError = page.getByTestId('error-lora_rank');
    expect(await rankError.textContent()).toBe('lora_rank must be an integer from 1 to 256, got 0');
    expect(await page.locator('[data-field="lora_rank"]').getAttribute('class')).toContain('invalid');
    expect(await page.getByTestId('train-start').isDisabled()).toBe(true);
    expect(await page.getByTestId('train-reason').textContent()).toMatch(/hyperparameters/);
    await page.locator('#lora_rank').fill('16');
    expect(await rankError.textContent()).toBe('');
    expect(await page.getByTestId('default-lora_rank').textContent()).toBe('default 8');

    // A rule between fields, from the schema.
    await page.locator('#micro_batch_size').fill('3');
    expect(await page.getByTestId('error-train_batch_size').textContent()).toMatch(/must be a multiple of micro_batch_size \(3\)/);
    await page.locator('#micro_batch_size').fill('2');
    expect(await page.getByTestId('error-train_batch_size').textContent()).toBe('');

    // Against the data, from the worker's planRun: 62 rows cannot hold out 70, so the plan holds out a tenth and says
    // so (with the flags that choose otherwise) instead of refusing the run.
    await page.locator('#num_validation_samples').fill('70');
    const notice = page.getByTestId('plan-notice');
    await notice.waitFor();
    expect(await notice.textContent()).toMatch(/num_validation_samples/);
    expect(await page.getByTestId('plan-facts').textContent()).toMatch(/validation rows\s*6/);
    expect(await page.getByTestId('error-num_validation_samples').textContent()).toBe('');
    await screenshot(page, 'dataset-form-errors');

    // The inputs survive a reload (localStorage), and "Replicate's defaults" puts every field back.
    await page.reload();
    await page.locator('#lora_rank').waitFor();
    expect(await page.locator('#lora_rank').inputValue()).toBe('16');
    expect(await page.locator('#num_validation_samples').inputValue()).toBe('70');
    await page.getByTestId('preset-defaults').click();
    expect(await page.locator('#lora_rank').inputValue()).toBe('8');
    expect(await page.locator('#num_validation_samples').inputValue()).toBe('50');
    expect(await page.getByTestId('changed-count').textContent()).toBe('all at Replicate’s defaults');
  });

  it('reloads the demo model as NF4 with double quantization when peft_method becomes qlora', async () => {
    const page = app.page;
    const status = page.locator('[data-testid="model-status"][data-state="ready"]');
    await status.waitFor({ timeout: 180_000 }); // after the reload above: the demo model loads again
    expect(await status.textContent()).toMatch(/\(unquantised\)/);
    await page.locator('#peft_method').selectOption('qlora');
    expect(await page.getByTestId('model-quantization').textContent()).toMatch(/nf4-double \(peft_method qlora\)/);
    await status.filter({ hasText: 'Loaded mistral-nano-demo (NF4, double-quantised)' }).waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('model-mismatch').isHidden()).toBe(true);
    expect(await page.getByTestId('model-info').textContent()).toMatch(/quantizationNF4, double-quantised/);
    // An explicit quantization that contradicts peft_method is refused by the schema, under its field.
    await page.locator('#quantization').selectOption('none');
    expect(await page.getByTestId('error-peft_method').textContent()).toMatch(/qlora needs a quantized base/);
    await page.locator('#quantization').selectOption('');
    expect(await page.getByTestId('error-peft_method').textContent()).toBe('');
  });

  it('loads a model from local files, and keeps it loaded and usable when a Hub load then fails, saying why and keeping the inputs', async () => {
    const page = app.page;
    // (Not while a model is loading: then Load is disabled for that, and the status line says so.)
    await page.locator('[data-testid="model-status"][data-state="ready"]').waitFor({ timeout: 180_000 });
    await page.getByTestId('model-source-files').click();
    // Nothing picked yet: Load is disabled, and the line under it says what to pick (it once stayed enabled).
    expect(await page.getByTestId('model-load').isDisabled()).toBe(true);
    expect(await page.getByTestId('model-load-reason').isVisible()).toBe(true);
    expect(await page.getByTestId('model-load-reason').textContent()).toBe('Pick the model’s files first: config.json and the *.safetensors weights.');
    // config.json alone cannot load: said beside Load, which stays disabled (it once said "Fits" and failed on the click).
    await page.locator('#model-files').setInputFiles(['public/models/mistral-nano-demo/config.json']);
    expect(await page.getByTestId('model-load').isDisabled()).toBe(true);
    expect(await page.getByTestId('model-load-reason').textContent()).toBe('The picked files include no *.safetensors weights: pick them with config.json (PyTorch .bin weights are not read).');
    // Weights that are not safetensors, and a config.json that is not JSON: the plan finds the files unreadable, so Load
    // is disabled with the reason (it stood enabled under a green "Fits" and failed on the click).
    const broken = mkdtempSync(join(tmpdir(), 'model-broken-'));
    writeFileSync(join(broken, 'model.safetensors'), 'garbage!garbage!garbage');
    await page.locator('#model-files').setInputFiles(['public/models/mistral-nano-demo/config.json', join(broken, 'model.safetensors')]);
    await page.getByTestId('model-load-reason').filter({ hasText: /^The picked weights cannot be read \(model\.safetensors: not a safetensors file: .+\): pick the model's files again\.$/ }).waitFor();
    expect(await page.getByTestId('model-load').isDisabled()).toBe(true);
    expect(await page.getByTestId('model-plan').locator('.status').first().textContent()).toMatch(/^Cannot be loaded: the weights cannot be read\. Planned from config\.json alone: fits, /);
    writeFileSync(join(broken, 'config.json'), '{"oops":');
    await page.locator('#model-files').setInputFiles([join(broken, 'config.json'), 'public/models/mistral-nano-demo/model.safetensors']);
    await page.getByTestId('model-load-reason').filter({ hasText: /config\.json.*: pick the model's files again\.$/ }).waitFor();
    expect(await page.getByTestId('model-load').isDisabled()).toBe(true);
    // A config.json whose torch_dtype is not what the safetensors store: the plan counts the stored dtype and says so.
    const f32Config = join(mkdtempSync(join(tmpdir(), 'model-f32-config-')), 'config.json');
    writeFileSync(f32Config, JSON.stringify({ ...JSON.parse(readFileSync('public/models/mistral-nano-demo/config.json', 'utf8')), dtype: 'float32' }));
    await page.locator('#model-files').setInputFiles([f32Config, 'public/models/mistral-nano-demo/model.safetensors']);
    await page.getByTestId('model-plan-warning').filter({ hasText: 'config.json says the weights are float32; the safetensors store the weight matrices as bfloat16: planned as stored' }).waitFor();
    expect(await page.getByTestId('model-plan-dtype').textContent()).toBe('Weights planned as bfloat16, from the safetensors headers (config.json says float32).');
    await page.locator('#model-files').setInputFiles(['public/models/mistral-nano-demo/config.json', 'public/models/mistral-nano-demo/model.safetensors']);
    await page.getByTestId('model-plan-dtype').filter({ hasText: /^Weights planned as bfloat16, from the safetensors headers\.$/ }).waitFor();
    expect(await page.getByTestId('model-plan-warning').count()).toBe(0);
    expect(await page.getByTestId('model-load').isEnabled()).toBe(true);
    expect(await page.getByTestId('model-load-reason').isHidden()).toBe(true);
    await page.getByTestId('model-load').click();
    const ready = page.locator('[data-testid="model-status"][data-state="ready"]');
    await ready.filter({ hasText: 'Loaded local files (config.json, model.safetensors)' }).waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('model-info').textContent()).toMatch(/layers4/);
    // Local files name no model: the export panel asks for the base model's name instead of offering the files' list.
    expect(await page.getByTestId('export-base-model').getAttribute('placeholder')).toBe('e.g. mistralai/Mistral-7B-Instruct-v0.2');
    expect(await page.getByTestId('export-base-model-hint').textContent()).toMatch(/^The model came from local files, which do not say which model they are: write its Hugging Face id here/);
    // A picked folder names the model, as the CLI names it after its --model folder.
    const folder = join(mkdtempSync(join(tmpdir(), 'model-folder-')), 'my-nano');
    mkdirSync(folder);
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join('public/models/mistral-nano-demo', f), join(folder, f));
    await page.locator('#model-folder').setInputFiles(folder);
    await page.getByTestId('model-load').click();
    await ready.filter({ hasText: /^Loaded my-nano \(/ }).waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('export-base-model').getAttribute('placeholder')).toBe('my-nano');

    // The Hub, answered here: the token goes in the Authorization header; the refusal is shown beside the model that
    // stays loaded (the failed load never replaced it).
    const auth: string[] = [];
    await page.context().route('https://huggingface.co/**', (route) => {
      auth.push(route.request().headers().authorization ?? '');
      return route.fulfill({ status: 401, body: 'Invalid credentials' });
    });
    await page.getByTestId('model-source-hub').click();
    await page.locator('#hub-token').fill('hf_not_a_real_token');
    await page.getByTestId('model-load').click();
    const failure = page.getByTestId('model-load-failure');
    await failure.filter({ hasText: /^Could not load mistralai\/Mistral-7B-Instruct-v0\.2: .+\. my-nano is still loaded and ready\.$/ }).waitFor({ timeout: 60_000 });
    expect(await failure.textContent()).not.toMatch(/bad-input|network|internal/);
    await ready.filter({ hasText: 'Loaded my-nano' }).waitFor();
    // (The fit check may ask for config.json before a token is typed; the load sends the token.)
    expect(auth.length).toBeGreaterThan(0);
    expect(auth[auth.length - 1]).toBe('Bearer hf_not_a_real_token');
    expect(await page.locator('#hub-token').inputValue()).toBe('hf_not_a_real_token');
    expect(await page.locator('#hub-repo').inputValue()).toBe('mistralai/Mistral-7B-Instruct-v0.2');
    expect(await page.getByTestId('train-reason').textContent()).not.toMatch(/Load a model/);
    await screenshot(page, 'dataset-hub-error');
  });

  // Mistral-7B-Instruct-v0.3's way: 32,768 tokens and its own tokenizer.model (mistral-common's v3) picked with its
  // weights. The model reads with it, and the dataset's tokens are counted with it: under the instruct layout its
  // [INST] and [/INST] are one control id each, where the app's tokenizer spells them in seven pieces.
  it("loads a model of another vocabulary with its own tokenizer.model, and counts the dataset's tokens with it", async () => {
    const page = app.page;
    await page.locator('[data-testid="model-status"][data-state="ready"]').waitFor({ timeout: 180_000 });
    const rows = [
      { prompt: 'What is 2 + 2?', completion: '4' },
      { prompt: 'Name a colour.', completion: 'Blue.' },
      { prompt: 'Say hi.', completion: 'Hi!' },
    ];
    await upload(page, 'chat.jsonl', rows.map((r) => JSON.stringify(r)).join('\n'));
    await page.locator('#layout').selectOption('instruct');
    const count = async (file: string): Promise<string> => {
      const tok = await loadTokenizer(new Uint8Array(readFileSync(file)));
      const n = rows.reduce((sum, r, i) => sum + layoutIds(tok, { line: i + 1, shape: 'prompt_completion', ...r }, 'instruct').ids.length, 0);
      return n.toLocaleString('en-US');
    };
    const [app32000, own32768] = [await count('public/tokenizer/tokenizer.model'), await count('test/fixtures/mistral-tokenizer-v3/tokenizer.model')];
    expect(own32768).not.toBe(app32000);
    await expect.poll(() => fact(page, 'tokens'), { timeout: 30_000 }).toBe(app32000);

    const dir = await wideVocabModel(32768);
    copyFileSync('test/fixtures/mistral-tokenizer-v3/tokenizer.model', join(dir, 'tokenizer.model'));
    await page.getByTestId('model-source-files').click();
    await page.locator('#model-files').setInputFiles([join(dir, 'config.json'), join(dir, 'model.safetensors'), join(dir, 'tokenizer.model')]);
    await page.getByTestId('model-load').click();
    const ready = page.locator('[data-testid="model-status"][data-state="ready"]');
    await ready.filter({ hasText: 'Loaded local files (config.json, model.safetensors, tokenizer.model)' }).waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('model-info').textContent()).toContain("vocabulary32,768tokenizerthe model's own tokenizer.model (32,768 tokens)");
    await expect.poll(() => fact(page, 'tokens'), { timeout: 30_000 }).toBe(own32768);

    // Without its tokenizer.model the same model is refused, saying how to give one; the loaded one stays.
    await page.locator('#model-files').setInputFiles([join(dir, 'config.json'), join(dir, 'model.safetensors')]);
    await page.getByTestId('model-load').click();
    await page.getByTestId('model-load-failure').filter({ hasText: /the model's files hold no tokenizer\.model of its own: .*pick the model's files or folder with it/ }).waitFor({ timeout: 60_000 });
    expect(await fact(page, 'tokens')).toBe(own32768);

    // The demo model again: the app's tokenizer, and the counts it gives.
    await page.getByTestId('model-source-demo').click();
    await page.getByTestId('model-load').click();
    await ready.filter({ hasText: /^Loaded mistral-nano-demo/ }).waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('model-info').textContent()).not.toContain('tokenizer');
    await expect.poll(() => fact(page, 'tokens'), { timeout: 30_000 }).toBe(app32000);
    await page.locator('#layout').selectOption('replicate');
  });
});

describe('a file picked as the page opens (headless Chromium)', () => {
  it('keeps a file picked before the GPU is ready: the sample, preselected once it is, does not replace it', async () => {
    // The worker's script is held until the file is picked, so the pick comes before the GPU probe answers, as a quick
    // user's does on a slow adapter. The sample was then fetched and inspected after the pick, and replaced it.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const app = await openApp('/', (page) =>
      page.route('**/assets/worker-*.js', async (route) => {
        await held;
        await route.continue();
      }),
    );
    try {
      const page = app.page;
      page.setDefaultTimeout(120_000);
      await page.getByTestId('train-file').setInputFiles({ name: 'early.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from('{"text": "picked early"}\n{"text": "and kept"}\n') });
      await page.getByTestId('train-name').filter({ hasText: 'early.jsonl' }).waitFor();
      release();
      await waitModelReady(app);
      // What the sample's preselection would take to land, as it did before the fix.
      await page.locator('[data-testid="train-view"] .file-head .badge').filter({ hasNotText: 'reading' }).waitFor();
      await page.waitForTimeout(2000);
      expect(await page.getByTestId('train-name').textContent()).toBe('early.jsonl');
      expect(await fact(page, 'rows')).toBe('2');
      expect(app.requests.some((r) => r.path.endsWith('/datasets/sample.jsonl'))).toBe(false);
      // The button still gives the sample.
      await page.getByTestId('use-sample').click();
      await page.getByTestId('train-name').filter({ hasText: 'sample.jsonl' }).waitFor();
    } finally {
      await app.close();
    }
  });
});
