// Names from outside written into the page (a picked file's or folder's name, a model's, an imported adapter's, a saved
// run's files): the page shows text as text, but a bidirectional control in a name (U+202E, the right-to-left override
// of the "txt.exe" spoof) would reorder the words after it. They go through visibleText (src/core/quote.ts), which
// shows such a control as an escape; a plain name reads exactly as before.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultHyperparams } from '../../../src/config/hyperparams.ts';
import { checkUploadSize } from '../../../src/remote/flow.ts';
import { cachedModelName, cachedModelText } from '../../../src/ui/cache-panel.ts';
import { datasetPanel } from '../../../src/ui/dataset-panel.ts';
import { exportPanel } from '../../../src/ui/export-panel.ts';
import { fileRefText } from '../../../src/ui/hyperparams-panel.ts';
import { localPick, modelFailureText, modelLoadedText, modelLoadingText, modelLostText } from '../../../src/ui/model-panel.ts';
import { costPendingText } from '../../../src/ui/remote-panel.ts';
import { runController } from '../../../src/ui/run-controller.ts';
import { IDLE_RUN, runReducer } from '../../../src/ui/run-state.ts';
import type { DataFile } from '../../../src/ui/state.ts';
import { replacesSavedText, savedSummary } from '../../../src/ui/training-panel.ts';
import type { DataStats, ImportedAdapterInfo, SavedRun } from '../../../src/worker/api.ts';
import { asFake, installFakeDocument } from '../../helpers/fake-dom.ts';
import { adapterZipPicked } from '../../helpers/adapter-zip.ts';
import { fakeRunPage, NO_MODEL } from '../../helpers/fake-run-page.ts';

const RLO = '\u202e';
/** A name with a right-to-left override, and how the page shows it. */
const NAME = `report${RLO}lmth.jsonl`;
const SHOWN = 'report\\u202elmth.jsonl';

/** `text` holds the name as an escape and no bidirectional control. */
function expectShown(text: string | null | undefined, want: string): void {
  expect(text).toBe(want);
  expect(text).not.toContain(RLO);
}

const settled = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
};

/** A File as a folder pick gives it: its path below the picked folder's parent in webkitRelativePath. */
function picked(path: string): File {
  const f = new File([new Uint8Array(4)], path.split('/').pop()!);
  Object.defineProperty(f, 'webkitRelativePath', { value: path.includes('/') ? path : '' });
  return f;
}

const dataFile = (name: string, status: DataFile['status'] = 'inspecting'): DataFile => ({ file: new File(['{"text":"a"}\n'], name), report: null, status, error: null });

describe('the model panel', () => {
  it('names a picked folder, a model loading, loaded, failed beside one loaded, and lost with the device', () => {
    expectShown(localPick([`m${RLO}x/model.safetensors`].map(picked)) as string, 'The folder m\\u202ex holds no config.json: pick the folder that holds it.');
    expectShown(modelLoadingText(`m${RLO}x`, 'nf4'), 'Loading m\\u202ex (NF4)…');
    expectShown(modelLoadedText({ source: `m${RLO}x`, quantization: 'none', seconds: 2, fromCache: false }), 'Loaded m\\u202ex (unquantised) in 2.0 s');
    expectShown(modelFailureText({ label: `o/b${RLO}`, message: 'no config.json' }, `m${RLO}x`), 'Could not load o/b\\u202e: no config.json. m\\u202ex is still loaded and ready.');
    expectShown(modelLostText(`m${RLO}x`, 'reset', false), 'm\\u202ex is no longer loaded: the GPU device it was on was lost (reset). Load it again in this panel.');
    // Plain names as before.
    expect(modelLoadingText('mistralai/Mistral-7B-v0.1', null)).toBe('Loading mistralai/Mistral-7B-v0.1…');
    expect(modelLoadedText({ source: 'mistral-nano-demo', quantization: 'nf4-double', seconds: 1.25, fromCache: true })).toBe(
      'Loaded mistral-nano-demo (NF4, double-quantised) in 1.3 s, from the weight cache in this browser: nothing downloaded',
    );
  });
});

describe("the weight cache's list", () => {
  it('names each cached model escaped, in its row and in the words about it', () => {
    expectShown(cachedModelName({ source: `o/m${RLO}` }), 'o/m\\u202e');
    expectShown(cachedModelText({ source: `o/m${RLO}`, quantization: 'nf4' }), 'o/m\\u202e (NF4)');
    expect(cachedModelText({ source: 'mistral-nano-demo', quantization: 'none' })).toBe('mistral-nano-demo (unquantised)');
  });
});

describe('the dataset and its file', () => {
  let restore: () => void;
  beforeEach(() => (restore = installFakeDocument()));
  afterEach(() => restore());

  it("the dataset panel's file name, the form's file field, the remote panel's cost line", () => {
    const { shared } = fakeRunPage();
    const view = asFake(datasetPanel(shared).element);
    shared.data.set({ train: dataFile(NAME), validation: dataFile('val.jsonl') });
    expectShown(view.byTestId('train-name')?.textContent, SHOWN);
    expect(view.byTestId('validation-name')?.textContent).toBe('val.jsonl');
    expectShown(fileRefText('train_data', dataFile(NAME)), SHOWN);
    expect(fileRefText('validation_data', null)).toBe('none (held out from the training data)');
    expectShown(costPendingText(dataFile(NAME)), `Estimated cost: counting the tokens of ${SHOWN}…`);
    expectShown(costPendingText(dataFile(NAME, 'error')), `Estimated cost: ${SHOWN} has errors (Dataset panel)`);
    expect(() => checkUploadSize(200e6, NAME)).toThrow(`${SHOWN} is 200.0 MB;`);
  });
});

describe('an imported adapter', () => {
  let restore: () => void;
  beforeEach(() => (restore = installFakeDocument()));
  afterEach(() => restore());

  it('is named escaped where it is loaded, forgotten, and offered for export', async () => {
    const info = { name: `my${RLO}.zip`, readFrom: `out${RLO}/adapter_model.safetensors`, r: 8, loraAlpha: 16, useRslora: false, targetModules: ['q_proj'], layers: 2, baseModel: `org/b${RLO}` } as unknown as ImportedAdapterInfo;
    const { shared } = fakeRunPage({ importAdapter: async () => info, forgetImportedAdapter: async () => undefined });
    const { panel, view } = await adapterZipPicked(shared);
    expectShown(
      view.byTestId('lora-import-status')?.textContent,
      'Loaded my\\u202e.zip (out\\u202e/adapter_model.safetensors): r 8, lora_alpha 16, q_proj, 2 layers, trained on org/b\\u202e. Try it and Export use it; a new run starts from it.',
    );
    expectShown(view.byTestId('lora-import-base')?.getAttribute('title'), 'org/b\\u202e');
    const exported = asFake(exportPanel(shared, panel.imported));
    expectShown(exported.byTestId('export-status')?.textContent, 'The imported adapter (my\\u202e.zip), ready to download.');
    view.byTestId('lora-import-forget')!.click();
    await settled();
    expectShown(view.byTestId('lora-import-status')?.textContent, 'New runs start fresh; my\\u202e.zip stays the current adapter until one starts.');
  });
});

describe('a saved run', () => {
  const saved = { modelSource: `o/m${RLO}`, quantization: 'nf4-double', hp: defaultHyperparams(), trainName: NAME, validationName: `v${RLO}.jsonl`, step: 2, totalSteps: 4, history: [{ step: 2, loss: 1 }], savedAt: 'x' } as SavedRun;

  it('is summed up, replaced, resumed and restored with its names escaped', () => {
    expectShown(savedSummary(saved), `${SHOWN} + v\\u202e.jsonl · o/m\\u202e (NF4, double-quantised) · step 2 / 4 · saved x`);
    expectShown(replacesSavedText(saved), `A new run replaces the run saved in this browser (${SHOWN}, step 2 of 4); its checkpoint is kept until the new run saves its first one.`);
    const stats = { totalSteps: 4 } as DataStats;
    const resumed = runReducer(runReducer(IDLE_RUN, { type: 'resume', saved }), { type: 'event', event: { type: 'plan', stats, resumedAt: 2 } });
    expectShown(resumed.note, `Resumed ${SHOWN} from the checkpoint at step 2.`);
    const restored = runReducer(runReducer(IDLE_RUN, { type: 'resume', saved, restoreOnly: true }), { type: 'event', event: { type: 'plan', stats, resumedAt: 2 } });
    expectShown(restored.note, `Restoring the adapter of ${SHOWN} at step 2 (nothing is trained)…`);
  });

  it('whose model is not loaded says which to load', async () => {
    const { shared } = fakeRunPage({ savedRun: async () => saved }, { model: NO_MODEL });
    const control = runController(shared, { restoreForm: () => undefined, showFiles: () => undefined });
    const said: string[] = [];
    expect(await control.resumeSaved(saved, (t) => said.push(t))).toBe(false);
    expectShown(said.at(-1), 'Load o/m\\u202e with quantization nf4-double in the Model panel, then resume.');
  });
});
