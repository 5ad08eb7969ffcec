// What the panels share: small observable cells (a value and the functions to call when it changes). The page has
// one of each; panels read them, subscribe to the ones they show, and set the ones they own.

import type { DataStats, DatasetReport, EngineApi, Layout, LedgerSnapshot, LoadProgress, ModelInfo, ModelSource, Quantization } from '../worker/api.ts';
import type * as Comlink from 'comlink';
import { defaultQuantization, type Hyperparams } from '../config/index.ts';
import { isFinetuneError } from '../core/errors.ts';
import { IDLE_RUN, runReducer, type RunAction, type RunState } from './run-state.ts';

export type Engine = Comlink.Remote<EngineApi>;

export class Cell<T> {
  private readonly listeners = new Set<(value: T) => void>();
  constructor(private current: T) {}

  get value(): T {
    return this.current;
  }

  set(value: T): void {
    this.current = value;
    for (const l of [...this.listeners]) l(value);
  }

  update(patch: Partial<T>): void {
    this.set({ ...this.current, ...patch });
  }

  /** Calls fn now and on every change; returns the unsubscribe function. */
  watch(fn: (value: T) => void): () => void {
    this.listeners.add(fn);
    fn(this.current);
    return () => this.listeners.delete(fn);
  }
}

/** The form: what is typed (strings for numbers, so a half-typed value is kept as typed) and what it parses to. */
export interface FormState {
  raw: Record<string, string | boolean>;
  /** The validated hyperparameters, or null while some field is wrong. */
  hp: Hyperparams | null;
  /** Messages by field name; '' holds those that belong to no single field. */
  errors: Record<string, string[]>;
}

export interface ModelState {
  status: 'none' | 'loading' | 'ready' | 'error';
  /** What was asked for (the Hub token is never kept here). */
  choice: { kind: ModelSource['kind']; label: string } | null;
  quantization: Quantization | null;
  info: ModelInfo | null;
  progress: LoadProgress | null;
  /** Why no model is loaded: a load that failed, or (`lostWithDevice`) a loaded model that went with a lost GPU device. */
  error: { kind: string; message: string; lostWithDevice?: boolean } | null;
  /** A load that failed while the model before it stayed loaded and usable (status stays 'ready'). */
  failure: { label: string; kind: string; message: string } | null;
}

/**
 * The model once the GPU device it was on is lost: the worker drops the device and the session on it (worker.ts dropGpu),
 * the model with them, so the page no longer says it is loaded. Its choice stays, for the line that says which model
 * went, and for "Get the GPU back and resume", which loads it again. A state that is not 'ready' is left as it is.
 */
export function modelLostWithDevice(m: ModelState, message: string): ModelState {
  if (m.status !== 'ready') return m;
  return { ...m, status: 'error', info: null, progress: null, failure: null, error: { kind: 'device-lost', message, lostWithDevice: true } };
}

/**
 * What the page makes of a worker call that failed with `e`: when the GPU device was lost, the worker dropped it and the
 * session on it (worker.ts dropGpu), the model and the adapter with them, whichever call met the loss (a run, Try it,
 * an estimate, an export, an adapter loaded or scored, a GPU check). The model is then no longer shown as loaded, nor the
 * run's adapter as there, so Train, Try it and Export are not offered on what the worker no longer has. True when it
 * was a lost device.
 */
export function afterDeviceLoss(shared: Pick<Shared, 'model' | 'run'>, e: unknown): boolean {
  if (!isFinetuneError(e, 'device-lost')) return false;
  shared.model.set(modelLostWithDevice(shared.model.value, e.message));
  shared.run.dispatch({ type: 'adapter-lost' });
  return true;
}

export interface DataFile {
  file: File;
  report: DatasetReport | null;
  status: 'inspecting' | 'ready' | 'error';
  error: { kind: string; message: string } | null;
}

export interface DataState {
  train: DataFile | null;
  validation: DataFile | null;
}

/** Both files read and without errors (no validation file is fine): what training, here or on Replicate, needs. */
export function dataUsable(d: DataState): boolean {
  return Boolean(d.train?.report?.ok) && (!d.validation || Boolean(d.validation.report?.ok));
}

/** A file is being read (again): its report is not there yet. */
export function dataBeingRead(d: DataState): boolean {
  return d.train?.status === 'inspecting' || d.validation?.status === 'inspecting';
}

/**
 * The data once no file is being read (at once when none is). A setting that changes how rows are cut makes the page
 * read the files again (reread-on-settings.ts); a click that lands in those moments waits for the answer instead of
 * being refused for a dataset that is only being re-read.
 */
export function settledData(data: { watch(fn: (value: DataState) => void): () => void }): Promise<DataState> {
  return new Promise((resolve) => {
    let done = false;
    let stop: (() => void) | null = null;
    stop = data.watch((d) => {
      if (done || dataBeingRead(d)) return;
      done = true;
      // watch calls fn at once, before it has returned the unsubscribe function.
      queueMicrotask(() => stop?.());
      resolve(d);
    });
  });
}

export interface PlanState {
  status: 'idle' | 'planning' | 'ready' | 'error';
  stats: DataStats | null;
  /** messages: each problem on its own (a bad-input error lists them in details.errors). */
  error: { kind: string; message: string; messages: string[] } | null;
}

export { runBusy, runComputing, type RunPhase, type RunState } from './run-state.ts';

/** The training run: read and watched like a Cell, changed only through `dispatch` (run-state.ts's reducer). */
export class RunCell {
  private readonly cell = new Cell<RunState>(IDLE_RUN);

  get value(): RunState {
    return this.cell.value;
  }

  watch(fn: (value: RunState) => void): () => void {
    return this.cell.watch(fn);
  }

  dispatch(action: RunAction): void {
    const next = runReducer(this.cell.value, action);
    if (next !== this.cell.value) this.cell.set(next);
  }
}

export interface Shared {
  engine: Engine;
  /** Resolves true once the worker has a GPU. */
  gpuReady: Promise<boolean>;
  form: Cell<FormState>;
  model: Cell<ModelState>;
  data: Cell<DataState>;
  plan: Cell<PlanState>;
  run: RunCell;
  /** The GPU memory ledger, as last read. */
  memory: Cell<LedgerSnapshot | null>;
  /** Another tab of this page holds the run saved in this browser (the training panel looks; src/worker/run-lock.ts). */
  runElsewhere: Cell<boolean>;
  /** The unfinished run the training panel's saved-run box offers to resume, or null (the header's chip says so). */
  savedRunOffered: Cell<{ step: number; totalSteps: number } | null>;
  refreshMemory(): void;
  /**
   * Loads a model (the model panel's action; the training panel calls it to resume a saved run). `streamLayers` keeps
   * the layers in CPU memory (the plan said only that fits).
   */
  loadModel(source: ModelSource, label: string, quantization: Quantization, options?: { streamLayers?: boolean }): Promise<ModelInfo | null>;
}

/**
 * The layout the form holds, also while another field is invalid (the dataset panel reads the files with it, and Try
 * it lays a prompt out in it): the raw choice when the form does not validate, replicate unless it says instruct.
 */
export function formLayout(form: FormState): Layout {
  return form.hp?.layout ?? (form.raw.layout === 'instruct' ? 'instruct' : 'replicate');
}

/**
 * The form's peft_method and quantization that ask for `q`, as the form writes them: quantization left to follow
 * peft_method where that gives `q` (qlora: NF4 double-quantised; lora: unquantised), set only for plain NF4.
 */
export function formValuesForQuantization(q: Quantization): { peft_method: 'lora' | 'qlora'; quantization: string } {
  const peft_method = q === 'none' ? 'lora' : 'qlora';
  return { peft_method, quantization: q === defaultQuantization(peft_method) ? '' : q };
}

/** The quantization the form asks for, or null while the form is invalid. */
export function wantedQuantization(form: FormState): Quantization | null {
  return form.hp ? form.hp.quantization : null;
}
