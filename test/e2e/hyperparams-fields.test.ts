// The hyperparameter form as a person meets it (headless Chromium): a message about a rule between two fields stands
// under both, so it is beside the one just typed into (on a phone the other field's card is a screen away), and each
// checkbox is named once: its card's heading, as every other field is, not that and its inline label both.
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { appForTests } from './app-fixture.ts';

/** The name Chromium's own accessibility tree gives the element with this id: what a screen reader is told. */
async function chromiumName(page: Page, id: string): Promise<string> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { root } = await cdp.send('DOM.getDocument', { depth: 0 });
    const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector: `#${id}` });
    const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { nodeId, fetchRelatives: false });
    return String(nodes[0]?.name?.value ?? '');
  } finally {
    await cdp.detach();
  }
}

describe('the hyperparameter form (headless Chromium)', () => {
  const app = appForTests(60_000);

  it('shows a message about two fields under both, the field just changed included', async () => {
    const page = app().page;
    const error = (field: string) => page.getByTestId(`error-${field}`);
    const invalid = (field: string) => page.locator(`#${field}`).getAttribute('aria-invalid');
    // The demo preset's batch size is 4: a micro-batch of 8 (or 3) does not divide it.
    expect(await page.locator('#train_batch_size').inputValue()).toBe('4');
    for (const micro of ['8', '3']) {
      await page.locator('#micro_batch_size').fill(micro);
      const said = `train_batch_size (4) must be a multiple of micro_batch_size (${micro}): each optimizer step accumulates train_batch_size / micro_batch_size micro-batches`;
      await expect.poll(() => error('micro_batch_size').textContent()).toBe(said);
      expect(await error('train_batch_size').textContent()).toBe(said);
      expect(await invalid('micro_batch_size')).toBe('true');
      expect(await invalid('train_batch_size')).toBe('true');
      expect(await page.getByTestId('form-errors').textContent()).toBe('');
    }
    await page.locator('#micro_batch_size').fill('4');
    await expect.poll(() => error('micro_batch_size').textContent()).toBe('');
    expect(await error('train_batch_size').textContent()).toBe('');
    expect(await invalid('train_batch_size')).toBe('false');

    // The same for the other rule between two fields: QLoRA over an unquantized base, said under both.
    await page.locator('#peft_method').selectOption('qlora');
    await page.locator('#quantization').selectOption('none');
    const qlora = 'peft_method qlora needs a quantized base: quantization nf4 or nf4-double (or leave quantization unset)';
    await expect.poll(() => error('quantization').textContent()).toBe(qlora);
    expect(await error('peft_method').textContent()).toBe(qlora);
    await page.locator('#quantization').selectOption('');
    await page.locator('#peft_method').selectOption('lora');
    await expect.poll(() => error('quantization').textContent()).toBe('');
    expect(await error('peft_method').textContent()).toBe('');
  });

  it('names each checkbox once, as its card heading reads, and both its labels still toggle it', async () => {
    const page = app().page;
    const checkboxes: [string, string][] = [
      ['run_validation', 'Run validation'],
      ['pack_sequences', 'Pack sequences'],
      ['wrap_packed_sequences', 'Wrap packed sequences'],
      ['padding_free', 'Padding-free batches'],
      ['eval_on_start', 'Validate before training'],
    ];
    // Every checkbox of the form is in the list (a new one would otherwise go unchecked).
    expect((await page.locator('.hp-form input[type="checkbox"]').evaluateAll((els) => els.map((e) => e.id))).sort()).toEqual(checkboxes.map(([id]) => id).sort());
    for (const [id, label] of checkboxes) {
      // Named "Run validation run_validation", as a text field is named "Micro-batch size micro_batch_size" (checked
      // below): before, both <label>s named it, "Run validation run_validation Run validation".
      const name = `${label} ${id}`;
      expect(await chromiumName(page, id), id).toBe(name);
      expect(await page.getByRole('checkbox', { name, exact: true }).count(), id).toBe(1);
      const box = page.locator(`#${id}`);
      // Focus in the card first: focus leaving another card shrinks that card's help text (.field:focus-within) between
      // the press and the release of a click, which then lands on no label.
      await box.focus();
      const before = await box.isChecked();
      // The inline label beside the box, and the card's heading, each still toggle it.
      await page.locator(`label.check[for="${id}"]`).click();
      expect(await box.isChecked(), `${id} by its inline label`).toBe(!before);
      await page.locator(`#label-${id}`).click();
      expect(await box.isChecked(), `${id} by its heading`).toBe(before);
    }
    expect(await chromiumName(page, 'micro_batch_size')).toBe('Micro-batch size micro_batch_size');
  });
});
