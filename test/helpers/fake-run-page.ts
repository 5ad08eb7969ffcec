// The page's shared state (src/ui/state.ts Shared) around a fake engine worker, for the run controller's unit tests
// (src/ui/run-controller.ts), which run in Node with no worker and no GPU. Each test fakes only the engine calls it is
// about; those are recorded in `calls`, in order, so a test can say what the page asked the worker for.
import { defaultHyperparams } from '../../src/config/hyperparams.ts';
import { Cell, RunCell, type DataState, type Engine, type FormState, type ModelState, type PlanState, type Shared } from '../../src/ui/state.ts';
import type { EngineApi, LedgerSnapshot, ModelInfo, SavedRun } from '../../src/worker/api.ts';

/** Stand-ins for engine calls, by name. Loosely typed, as a fake need not build every field of what it returns. */
export type EngineFakes = { [K in keyof EngineApi]?: (...args: never[]) => unknown };

/** What the page holds besides the engine; each part left out is the default below. */
export interface FakeRunPageParts {
  model?: ModelState;
  form?: FormState;
  data?: DataState;
  plan?: PlanState;
}

export interface FakeRunPage {
  shared: Shared;
  /** The faked engine calls made, and the page's loadModel, by name in call order. */
  calls: string[];
}

export const DEMO_SOURCE = 'mistral-nano-demo';

/** A run saved at step 4 of 8 on the demo model (ours.jsonl): the one the run-controller and panel tests offer. */
export const SAVED_AT_STEP_4: SavedRun = {
  modelSource: DEMO_SOURCE,
  quantization: 'nf4-double',
  hp: defaultHyperparams(),
  trainName: 'ours.jsonl',
  validationName: null,
  step: 4,
  totalSteps: 8,
  history: [{ step: 4, loss: 1.5 }],
  savedAt: '2025-01-15T09:30:00.000Z',
};

/** The demo model loaded as nf4-double (or with the given info). */
export function demoModel(info: ModelInfo = { source: DEMO_SOURCE, quantization: 'nf4-double' } as ModelInfo): ModelState {
  return { status: 'ready', choice: { kind: 'demo', label: info.source }, quantization: info.quantization, info, progress: null, error: null, failure: null };
}

export const NO_MODEL: ModelState = { status: 'none', choice: null, quantization: 'nf4-double', info: null, progress: null, error: null, failure: null };

// Calls the controller makes on the side of what a test is about (the saved run's files for the dataset panel, the
// other-tab check before a resume, the pause and stop requests): answered, and not recorded, unless a test fakes them.
const quiet: EngineFakes = {
  savedRunFiles: async () => null,
  runElsewhere: async () => false,
  pauseTraining: async () => undefined,
  stopTraining: async () => undefined,
};

/** The page with the demo model loaded, the default form, no data files and no plan, around `fakes`. */
export function fakeRunPage(fakes: EngineFakes = {}, parts: FakeRunPageParts = {}): FakeRunPage {
  const calls: string[] = [];
  const engine: Record<string, unknown> = { ...quiet };
  for (const [name, fake] of Object.entries(fakes)) {
    if (!fake) continue;
    engine[name] = (...args: never[]) => {
      calls.push(name);
      return fake(...args);
    };
  }
  const shared: Shared = {
    engine: engine as unknown as Engine,
    gpuReady: Promise.resolve(true),
    form: new Cell<FormState>(parts.form ?? { raw: {}, hp: defaultHyperparams(), errors: {} }),
    model: new Cell(parts.model ?? demoModel()),
    data: new Cell<DataState>(parts.data ?? { train: null, validation: null }),
    plan: new Cell<PlanState>(parts.plan ?? { status: 'idle', stats: null, error: null }),
    run: new RunCell(),
    memory: new Cell<LedgerSnapshot | null>(null),
    runElsewhere: new Cell(false),
    savedRunOffered: new Cell<{ step: number; totalSteps: number } | null>(null),
    refreshMemory: () => undefined,
    loadModel: async () => (calls.push('loadModel'), null),
  };
  return { shared, calls };
}
