// The adapter panel (src/ui/adapter-import-panel.ts) over the fake DOM (fake-dom.ts), with an adapter zip picked and
// the worker's importAdapter answered: where the tests of what the panel then says start.
import { adapterImportPanel } from '../../src/ui/adapter-import-panel.ts';
import type { Shared } from '../../src/ui/state.ts';
import { asFake, type FakeElement } from './fake-dom.ts';

/** The panel over `shared`, a zip picked in it and its load settled; `view` finds its elements by test id. */
export async function adapterZipPicked(shared: Shared): Promise<{ panel: ReturnType<typeof adapterImportPanel>; view: FakeElement }> {
  const panel = adapterImportPanel(shared);
  const view = asFake(panel.element);
  const zip = view.byTestId('lora-import-zip')!;
  Object.assign(zip, { files: [new File([new Uint8Array(4)], 'adapter.zip')] });
  zip.fire('change');
  // The load's answer, then the panel's render of it.
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
  return { panel, view };
}
