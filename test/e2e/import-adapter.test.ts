// "Load an adapter" in the built app (headless Chromium): Replicate's training_output.zip, its adapter a torch.save
// adapter_model.bin, loads into the worker against the demo model; Export then downloads exactly its tensors; a zip
// whose pickle calls os.system is refused with that name on the page.
import { readFileSync } from 'node:fs';
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

function trainingOutputZip(a: LoraAdapter): Uint8Array {
  const tensors = a.tensors.flatMap((layer, l) =>
    Object.entries(layer).flatMap(([m, p]) => [
      { name: peftKey(l, m as 'q_proj', 'A'), dtype: 'F32' as const, shape: [8, a.dims[m as 'q_proj']!.in], data: p.A },
      { name: peftKey(l, m as 'q_proj', 'B'), dtype: 'F32' as const, shape: [a.dims[m as 'q_proj']!.out, 8], data: p.B },
    ]),
  );
  return replicateTrainingZip(adapterConfigJson(a.config), torchSaveStateDict(tensors, { archive: 'adapter_model' }));
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
  });

  it('a training_output.zip whose adapter_model.bin calls os.system is refused, naming it', async () => {
    const page = app.page;
    const evil = new PickleWriter().proto(2).global('os', 'system').unicode('touch /tmp/pwned').tupleN(1).reduce().stop().finish();
    const zip = replicateTrainingZip(adapterConfigJson(demoAdapter().config), torchZip(evil, new Map()));
    await page.getByTestId('lora-import-zip').setInputFiles({ name: 'evil.zip', mimeType: 'application/zip', buffer: Buffer.from(zip) });
    const status = page.getByTestId('lora-import-status');
    await status.filter({ hasText: 'Could not load' }).waitFor();
    expect(await status.textContent()).toMatch(/Could not load the adapter: .*refused global os\.system/);
  });
});
