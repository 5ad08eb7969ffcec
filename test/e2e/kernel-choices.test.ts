// The GPU panel's "Kernels chosen for this GPU" (headless Chromium, SwiftShader): the decisions runs remembered in OPFS
// (src/run/kernel-tuning.ts) are listed with what they were measured for, a damaged entry is left out, and "Forget them"
// removes the file, so the next run measures again. SwiftShader never measures (its kernels stay the defaults), so the
// decisions are written into OPFS the way a run on a GPU writes them.
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { appForTests } from './app-fixture.ts';
import { screenshot } from './browser.ts';
import { formatDateTime } from '../../src/ui/format.ts';

const KEY = JSON.stringify({
  gpu: ['nvidia', 'hopper', '', 'NVIDIA H200'],
  shaders: '0123abcd',
  model: [4096, 14336, 32, 8, 128, 'nf4-double', false],
  batch: [2048, false],
  lora: [8, ['q_proj', 'v_proj'], true],
});
const FILE = {
  format: 'finetune-kernel-tuning',
  entries: {
    [KEY]: { gemm: 'tiled', attention: 'tiled', speedup: 1.8, measuredAt: '2026-11-30T01:02:03.000Z' },
    // Not a kernel this version has: dropped, not shown, not an error.
    damaged: { gemm: 'warp-specialised', attention: 'tiled', speedup: 3, measuredAt: '2026-11-30T02:00:00.000Z' },
  },
  // A combination that lost the GPU device while measured for the same key: listed with the decision.
  lost: { [KEY]: [{ gemm: 'basic', attention: 'tiled', lora: 'skinny', at: '2026-11-30T01:00:00.000Z' }] },
};

/** Reads or writes OPFS finetune-kernels/kernel-tuning.json from the page (null: no such file). */
async function cacheFile(page: Page, write?: string): Promise<string | null> {
  return page.evaluate(async (text) => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('finetune-kernels', { create: true });
    if (text !== null) {
      const w = await (await dir.getFileHandle('kernel-tuning.json', { create: true })).createWritable();
      await w.write(text);
      await w.close();
    }
    try {
      return await (await (await dir.getFileHandle('kernel-tuning.json')).getFile()).text();
    } catch {
      return null;
    }
  }, write ?? null);
}

describe('kernel choices in the GPU panel', () => {
  const opened = appForTests(120_000);

  it('lists the remembered choices and forgets them', async () => {
    const page = opened().page;
    await page.locator('[data-testid="adapter-status"][data-state="ready"]').waitFor();
    // Nothing remembered on a software adapter, and it says why.
    expect(await page.getByTestId('kernel-choices-none').textContent()).toMatch(/software adapter keeps the default kernels/);
    expect(await page.getByTestId('kernel-choices-forget').isHidden()).toBe(true);

    await cacheFile(page, JSON.stringify(FILE));
    await page.reload();
    const row = page.getByTestId('kernel-choice');
    await row.first().waitFor();
    expect(await row.count()).toBe(1);
    expect(await row.textContent()).toBe(
      // The date in this machine's time zone, which the page (same machine) uses too.
      `tiled GEMM, tiled attention (1.80× the defaults) for hidden 4096, ≤ 2048 tokens per micro-batch, rank 8 on nvidia · hopper · NVIDIA H200, measured ${formatDateTime(Date.parse('2026-11-30T01:02:03.000Z'))}; left out, having lost the GPU device when measured: basic GEMM, tiled attention, skinny LoRA products (2026-11-30)`,
    );

    await page.getByTestId('kernel-choices').scrollIntoViewIfNeeded();
    await screenshot(page, 'gpu-kernel-choices');
    await page.getByTestId('kernel-choices-forget').click();
    await page.getByTestId('kernel-choices-none').waitFor();
    expect(await row.count()).toBe(0);
    expect(await page.getByTestId('kernel-choices-forget').isHidden()).toBe(true);
    expect(await cacheFile(page)).toBeNull();
  }, 300_000);
});
