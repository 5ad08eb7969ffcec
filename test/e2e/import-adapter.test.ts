// "Load an adapter" in the built app (headless Chromium): Replicate's training_output.zip, its adapter a torch.save
// adapter_model.bin, loads into the worker against the demo model; Export then downloads exactly its tensors; a long
// base model name stays inside the panel; a picked folder is read by its paths; a zip whose pickle calls os.system is
// refused with that name on the page.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniformSource } from '../../src/core/prng.ts';
import { parseMistralConfig } from '../../src/model/config.ts';
import { adapterConfigJson, createAdapter, peftKey, type LoraAdapter } from '../../src/model/lora-adapter.ts';
import { safetensorsTensors } from '../helpers/safetensors-file.ts';
import { PickleWriter, replicateTrainingZip, torchSaveStateDict, torchZip } from '../helpers/torch-save.ts';
import { openApp, type App } from './browser.ts';

const demo = parseMistralConfig(JSON.parse(readFileSync('public/models/mistral-nano-demo/config.json', 'utf8')));

/** A trained-looking adapter for the demo model (B not zero), as Replicate's trainer would return it. */
function demoAdapter(): LoraAdapter {
  const random = uniformSource(11);
  const a = createAdapter(demo, { r: 8, alpha: 16, targetModules: ['q_proj', 'v_proj'], baseModel: 'mistral-nano-demo', random });
  for (const layer of a.tensors) for (const p of Object.values(layer)) for (let i = 0; i < p.B.length; i++) p.B[i] = (random() - 0.5) * 0.02;
  return a;
}

/** The adapter's config text and its tensors as Replicate's torch.save adapter_model.bin. */
function peftBin(a: LoraAdapter): { config: string; bin: Uint8Array } {
  const tensors = a.tensors.flatMap((layer, l) =>
    Object.entries(layer).flatMap(([m, p]) => [
      { name: peftKey(l, m as 'q_proj', 'A'), dtype: 'F32' as const, shape: [8, a.dims[m as 'q_proj']!.in], data: p.A },
      { name: peftKey(l, m as 'q_proj', 'B'), dtype: 'F32' as const, shape: [a.dims[m as 'q_proj']!.out, 8], data: p.B },
    ]),
  );
  return { config: adapterConfigJson(a.config), bin: torchSaveStateDict(tensors, { archive: 'adapter_model' }) };
}

function trainingOutputZip(a: LoraAdapter): Uint8Array {
  const { config, bin } = peftBin(a);
  return replicateTrainingZip(config, bin);
}

describe('loading an adapter in the page (headless Chromium)', () => {
  let app: App;
  beforeAll(async () => {
    app = await openApp();
    app.page.setDefaultTimeout(120_000);
    await app.page.locator('[data-testid="model-status"][data-state="ready"]').waitFor();
    // On open the page measures a training step for its time estimate; the GPU queue is busy until it ends (minutes on
    // SwiftShader), and an export would wait behind it. Let it finish first (if the page has no estimate, go on).
    const estimate = app.page.locator('[data-testid="train-estimate"], [data-testid="train-estimate-pending"]');
    await estimate.first().waitFor({ timeout: 60_000 }).catch(() => undefined);
    await app.page.locator('[data-testid="train-estimate-pending"]').waitFor({ state: 'detached', timeout: 480_000 });
  });
  afterAll(async () => {
    await app?.close();
  });

  it("Replicate's training_output.zip loads, and Export downloads exactly its tensors", async () => {
    const page = app.page;
    const adapter = demoAdapter();
    await page.getByTestId('lora-import-zip').setInputFiles({ name: 'training_output.zip', mimeType: 'application/zip', buffer: Buffer.from(trainingOutputZip(adapter)) });
    const status = page.getByTestId('lora-import-status');
    await status.filter({ hasText: 'Loaded' }).waitFor().catch(async () => {
      throw new Error(`not loaded: ${await status.textContent()}\n${app.console.join('\n')}`);
    });
    expect(await status.textContent()).toContain('Loaded training_output.zip (training_output/adapter_model.bin): r 8, lora_alpha 16, q_proj, v_proj, 4 layers');

    const button = page.getByTestId('export-download');
    await expect.poll(() => button.isEnabled()).toBe(true);
    const [download] = await Promise.all([
      page.waitForEvent('download').catch(async (e: unknown) => {
        throw new Error(`no download (${String(e)}): ${await page.getByTestId('export-status').textContent()}\n${app.console.join('\n')}`);
      }),
      button.click(),
    ]);
    // Named as imported, not after a step of this page's runs ("step0" before the fix).
    expect(download.suggestedFilename()).toBe('adapter-mistral-nano-demo-imported.zip');
    expect(await page.getByTestId('export-name').textContent()).toBe('adapter-mistral-nano-demo-imported.zip');
    const files = unzipSync(new Uint8Array(readFileSync(await download.path())));
    const got = safetensorsTensors(files['adapter_model.safetensors']);
    let n = 0;
    adapter.tensors.forEach((layer, l) => {
      for (const [m, p] of Object.entries(layer)) {
        for (const [f, v] of [['A', p.A], ['B', p.B]] as const) {
          const t = got.get(peftKey(l, m as 'q_proj', f))!;
          expect(Buffer.from(t.bytes).equals(Buffer.from(v.buffer, v.byteOffset, v.byteLength)), `${peftKey(l, m as 'q_proj', f)}`).toBe(true);
          n++;
        }
      }
    });
    expect(n).toBe(got.size);

    // The whole bundle next: the name under the buttons is the file just downloaded, not the PEFT pair's from before.
    const [full] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-full').click()]);
    expect(full.suggestedFilename()).toBe('adapter-mistral-nano-demo-imported-gguf.zip');
    await page.getByTestId('export-status').filter({ hasText: 'Saved adapter-mistral-nano-demo-imported-gguf.zip' }).waitFor();
    expect(await page.getByTestId('export-name').textContent()).toBe('adapter-mistral-nano-demo-imported-gguf.zip');
  });

  it("the imported adapter's validation loss shows its passes, and stops after the pass going on at Stop or at a model load, which says it waits", async () => {
    const page = app.page;
    // Many passes: a validation file of 100 rows of ~40 tokens, all of them used (the demo's 6 rows make one pass).
    const samples = page.locator('#num_validation_samples');
    const samplesBefore = await samples.inputValue();
    await samples.fill('100');
    const rows = Array.from({ length: 100 }, (_, i) => JSON.stringify({ text: `def scale_${i}(values):\n    # Multiply every value by ${i} and add one.\n    return [v * ${i} + 1 for v in values]` })).join('\n');
    await page.getByTestId('validation-file').setInputFiles({ name: 'many.jsonl', mimeType: 'application/jsonl', buffer: Buffer.from(rows) });
    await page.locator('[data-testid="validation-summary"] dd[data-key="rows"]').filter({ hasText: /^100$/ }).waitFor();
    await page.locator('.plan:not(:has(.stale)) [data-testid="plan-facts"]').filter({ hasText: /validation rows\s*100/ }).waitFor();
    const out = page.getByTestId('lora-import-eval');
    const stop = page.getByTestId('lora-import-evaluate-stop');
    expect(await stop.isDisabled()).toBe(true);
    await page.getByTestId('lora-import-evaluate').click();
    expect(await stop.isEnabled()).toBe(true);
    await out.filter({ hasText: /^Evaluating… 1 \/ \d+ passes, .+ left$/ }).waitFor({ timeout: 300_000 });
    const passes = Number(/\/ (\d+) passes/.exec((await out.textContent())!)![1]);
    expect(passes).toBeGreaterThan(4);
    await stop.click();
    expect(await stop.isDisabled()).toBe(true);
    await out.filter({ hasText: /^Validation loss stopped / }).waitFor({ timeout: 120_000 });
    const done = Number(/^Validation loss stopped after (\d+) of (\d+) passes\.$/.exec((await out.textContent())!)?.[1]);
    expect(done >= 1 && done < passes).toBe(true);
    expect(await page.getByTestId('lora-import-evaluate').isEnabled()).toBe(true);

    // Load model during it: the model comes from the weight cache in a second, then waits for the pass going on (seconds
    // here), saying so under its full bar, and the validation loss ends there, saying why.
    await page.getByTestId('lora-import-evaluate').click();
    await out.filter({ hasText: /^Evaluating… 1 \/ \d+ passes, .+ left$/ }).waitFor({ timeout: 300_000 });
    await page.getByTestId('model-load').click();
    await page
      .getByTestId('model-progress-text')
      .filter({ hasText: 'Loaded; waiting for the work on the previous model to stop (a generation at its next token, a validation loss at its next pass, a time estimate at its end)…' })
      .waitFor({ timeout: 60_000 });
    await out.filter({ hasText: /^Validation loss stopped after \d+ of \d+ passes: a model load or a new run replaced what it scored\.$/ }).waitFor({ timeout: 120_000 });
    await page.locator('[data-testid="model-status"][data-state="ready"]').waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('lora-import-status').textContent()).toBe('The model changed: load the adapter again for this model.');
    await page.getByTestId('clear-validation').click();
    await samples.fill(samplesBefore);
  });

  it('a 3,000-character base_model_name_or_path stays inside the panel, the whole of it in a tooltip', async () => {
    const page = app.page;
    const adapter = demoAdapter();
    // One word with no place to break a line (hyphens would let it wrap by itself).
    const longName = `org/${'MistralInstructFineTuned'.repeat(130)}`.slice(0, 3000);
    adapter.config.baseModel = longName;
    await page.getByTestId('lora-import-zip').setInputFiles({ name: 'long-base.zip', mimeType: 'application/zip', buffer: Buffer.from(trainingOutputZip(adapter)) });
    const status = page.getByTestId('lora-import-status');
    await status.filter({ hasText: 'Loaded long-base.zip' }).waitFor();
    expect(await status.textContent()).toContain(`trained on ${longName}.`);
    // It once ran the panel's content, and the page with it, 23,000 pixels wide.
    const sizes = await page.locator('#panel-adapter-import').evaluate((panel) => ({
      panel: panel.getBoundingClientRect().width,
      container: (panel.parentElement as HTMLElement).clientWidth,
      content: panel.scrollWidth,
      inside: panel.clientWidth,
      page: document.documentElement.scrollWidth,
      viewport: window.innerWidth,
    }));
    expect(sizes.panel).toBeLessThanOrEqual(sizes.container);
    expect(sizes.content).toBeLessThanOrEqual(sizes.inside);
    expect(sizes.page).toBeLessThanOrEqual(sizes.viewport);
    expect(await page.getByTestId('lora-import-base').getAttribute('title')).toBe(longName);
  });

  it('a picked folder is named as picked, and the adapter in it is read by its path (not a checkpoint below it)', async () => {
    const page = app.page;
    const adapter = demoAdapter();
    const { bin, config } = peftBin(adapter);
    // download/out/ holds the final adapter, download/out/checkpoint-10/ an earlier one whose config says r 4 (so reading
    // its config with the final weights fails): the folder is found by its path, not by the bare file name.
    const root = mkdtempSync(join(tmpdir(), 'import-folder-'));
    try {
      mkdirSync(join(root, 'download/out/checkpoint-10'), { recursive: true });
      writeFileSync(join(root, 'download/out/checkpoint-10/adapter_config.json'), JSON.stringify({ ...JSON.parse(config), r: 4 }));
      writeFileSync(join(root, 'download/out/checkpoint-10/adapter_model.bin'), bin);
      writeFileSync(join(root, 'download/out/adapter_config.json'), config);
      writeFileSync(join(root, 'download/out/adapter_model.bin'), bin);
      // The README the adapter came with: its "Training" section is kept in the README of the page's export.
      writeFileSync(join(root, 'download/out/README.md'), '# out\n\n## Training\n\nTrained elsewhere for `12` steps.\n');
      const status = page.getByTestId('lora-import-status');
      const before = await status.textContent();
      await page.getByTestId('lora-import-folder').setInputFiles(join(root, 'download'));
      await expect.poll(async () => {
        const now = (await status.textContent()) ?? '';
        return now !== before && /^(Loaded|Could not load)/.test(now);
      }, { timeout: 120_000 }).toBe(true);
      // Once: "Loaded adapter_config.json, adapter_model.bin, adapter_config.json, adapter_model.bin (adapter_model.bin)".
      expect(await status.textContent()).toMatch(/^Loaded download \(out\/adapter_model\.bin\): r 8, lora_alpha 16, q_proj, v_proj, 4 layers/);
      const bundle = await page.evaluate(async () => {
        const e = (window as unknown as { finetuneEngine: { exportAdapterZip(o: { full: boolean; step: string }): Promise<{ bytes: Uint8Array }> } }).finetuneEngine;
        return Array.from((await e.exportAdapterZip({ full: true, step: 'imported' })).bytes);
      });
      const readme = new TextDecoder().decode(unzipSync(new Uint8Array(bundle))['README.md']);
      expect(readme.endsWith('\n\n## Training\n\nTrained elsewhere for `12` steps.\n')).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a training_output.zip whose adapter_model.bin calls os.system is refused, naming it', async () => {
    const page = app.page;
    const evil = new PickleWriter().proto(2).global('os', 'system').unicode('touch /tmp/pwned').tupleN(1).reduce().stop().finish();
    const zip = replicateTrainingZip(adapterConfigJson(demoAdapter().config), torchZip(evil, new Map()));
    await page.getByTestId('lora-import-zip').setInputFiles({ name: 'evil.zip', mimeType: 'application/zip', buffer: Buffer.from(zip) });
    const status = page.getByTestId('lora-import-status');
    await status.filter({ hasText: 'Could not load' }).waitFor();
    expect(await status.textContent()).toMatch(/Could not load the adapter: .*refused global "os\.system"/);
  });
});
