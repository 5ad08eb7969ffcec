// The panels whose worker calls run on the GPU besides training and Try it (src/ui/adapter-import-panel.ts: loading an
// adapter and its validation loss; src/ui/export-panel.ts: the zip): a call that meets a lost GPU device makes the
// worker drop the device and the session on it (worker.ts dropGpu), the model and the adapter with them. The page used
// to go on showing the model loaded and ready, the adapter there, and Export, Try it and Train offered on them.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { adapterImportPanel } from '../../../src/ui/adapter-import-panel.ts';
import { goldenCheckSection } from '../../../src/ui/check-panel.ts';
import { exportPanel } from '../../../src/ui/export-panel.ts';
import { afterDeviceLoss, type DataState, type Shared } from '../../../src/ui/state.ts';
import type { DataStats, ImportedAdapterInfo } from '../../../src/worker/api.ts';
import { asFake, installFakeDocument } from '../../helpers/fake-dom.ts';
import { adapterZipPicked } from '../../helpers/adapter-zip.ts';
import { fakeRunPage } from '../../helpers/fake-run-page.ts';

let restore: () => void;
beforeEach(() => (restore = installFakeDocument()));
afterEach(() => restore());

const lost = (): Promise<never> => Promise.reject(new FinetuneError('device-lost', 'the GPU device was lost (unknown): the driver reset'));
const settled = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
};
const train = { file: new File(['{"text":"a"}\n'], 'train.jsonl'), report: { ok: true }, status: 'ready', error: null } as unknown as DataState['train'];

/** A finished run's adapter at step 4 in the worker. */
function trained(shared: Shared): void {
  shared.run.dispatch({ type: 'start', totalSteps: 4 });
  shared.run.dispatch({ type: 'event', event: { type: 'plan', stats: { totalSteps: 4 } as DataStats, resumedAt: 0 } });
  shared.run.dispatch({ type: 'finished', result: { steps: 4, skipped: 0, stopped: false, finalLoss: 1, finalValLoss: null, seconds: 4 } });
}

/** The model and the run's adapter are shown as gone with the device. */
function expectLost(shared: Shared): void {
  expect(shared.model.value).toMatchObject({ status: 'error', info: null, error: { kind: 'device-lost', lostWithDevice: true } });
  expect(shared.run.value.hasAdapter).toBe(false);
}

describe('a lost GPU device met by', () => {
  it('"Validation loss" of the adapter panel', async () => {
    const { shared } = fakeRunPage({ evaluateAdapter: lost }, { data: { train, validation: null } });
    trained(shared);
    const view = asFake(adapterImportPanel(shared).element);
    view.byTestId('lora-import-evaluate')!.click();
    await settled();
    expect(view.byTestId('lora-import-eval')?.textContent).toBe('Evaluation failed: the GPU device was lost (unknown): the driver reset');
    expectLost(shared);
  });

  it('loading an adapter', async () => {
    const { shared } = fakeRunPage({ importAdapter: lost });
    trained(shared);
    const { view } = await adapterZipPicked(shared);
    expect(view.byTestId('lora-import-status')?.textContent).toBe('Could not load the adapter: the GPU device was lost (unknown): the driver reset');
    expectLost(shared);
  });

  it('the export of the adapter', async () => {
    const { shared } = fakeRunPage({ exportAdapterZip: lost });
    trained(shared);
    const view = asFake(exportPanel(shared));
    view.byTestId('export-download')!.click();
    await settled();
    expect(view.byTestId('export-status')?.textContent).toBe('Export failed: the GPU device was lost (unknown): the driver reset');
    expectLost(shared);
  });

  it('"Check this GPU against PyTorch", which hands its failure to the page (main.ts: afterDeviceLoss)', async () => {
    const { shared } = fakeRunPage({ goldenCheck: lost });
    trained(shared);
    const section = goldenCheckSection(shared.engine, (e) => afterDeviceLoss(shared, e));
    const view = asFake(section.element);
    section.enable();
    view.byTestId('golden-check')!.click();
    await settled();
    expect(view.byTestId('golden-error')?.textContent).toBe('The check could not run: the GPU device was lost (unknown): the driver reset');
    expectLost(shared);
  });

  it('a failure of another kind leaves the model and the adapter', async () => {
    const { shared } = fakeRunPage({ importAdapter: () => Promise.reject(new FinetuneError('bad-input', 'adapter_config.json is missing')) });
    trained(shared);
    await adapterZipPicked(shared);
    expect(shared.model.value.status).toBe('ready');
    expect(shared.run.value.hasAdapter).toBe(true);
  });
});

// An imported adapter is gone with the device as well: the panel says so, not that the model changed.
describe('an imported adapter when the device is lost', () => {
  it('is forgotten, and the panel says it went with the device', async () => {
    const info = { name: 'adapter.zip', readFrom: 'adapter_model.safetensors', r: 8, loraAlpha: 16, targetModules: ['q_proj'], layers: 2 } as unknown as ImportedAdapterInfo;
    const { shared } = fakeRunPage({ importAdapter: async () => info });
    const { panel, view } = await adapterZipPicked(shared);
    expect(panel.imported.value?.current).toBe(true);
    shared.model.set({ ...shared.model.value, status: 'error', info: null, error: { kind: 'device-lost', message: 'the GPU device was lost', lostWithDevice: true } });
    expect(panel.imported.value).toBeNull();
    expect(view.byTestId('lora-import-status')?.textContent).toBe('The GPU device was lost, and the adapter with it: load the model, then the adapter, again.');
  });
});
