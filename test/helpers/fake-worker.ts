// The engine worker (src/worker/worker.ts) in a unit test, over fakes: comlink's expose hands the api object to the
// test, GpuContext.create makes fake contexts that the test counts (or is refused), and the worker's globals (WebGPU,
// where the app is served from, fetch) are stubbed. What such a test checks is the worker's wiring, not the GPU.
//
// vi.mock calls are hoisted, so they stay in each test file; their factories come from here, loaded by a dynamic
// import inside the factory (vitest's way for a factory to use an import), and are handed the state the test shares
// with its fakes (made by vi.hoisted). This module keeps no state of its own: vi.resetModules, which gives each test a
// worker of its own, loads it afresh.
import { vi } from 'vitest';
import type * as Comlink from 'comlink';
import type { FinetuneError } from '../../src/core/errors.ts';
import type { GpuAdapterInfo } from '../../src/engine/gpu-adapter.ts';
import type * as Gpu from '../../src/engine/gpu.ts';
import type { LedgerSnapshot } from '../../src/engine/ledger.ts';
import type { EngineApi } from '../../src/worker/api.ts';

/** A GPU context as the worker uses it: its device destroyed or not, lost or not. */
export interface FakeGpuContext {
  destroyed: boolean;
  destroyDevice(): void;
  report: Pick<GpuAdapterInfo, 'vendor' | 'architecture' | 'device' | 'description' | 'software'>;
  kernelNote: string | null;
  ledger: { snapshot(): Pick<LedgerSnapshot, 'currentBytes' | 'peakBytes'> & { byCategory: object } };
  /** GpuContext.lossError: the device's loss once it is lost, else null. */
  lossError(): FinetuneError | null;
  /** The device is lost (its device.lost resolved), and no call has met the loss yet. */
  lose(): void;
}

/** What a worker test shares with the fakes here: the exposed api, and every GPU context the worker asked for. */
export interface WorkerTestState {
  api: EngineApi | null;
  contexts: FakeGpuContext[];
  /** How many times the worker asked for a GPU context (made or refused). */
  gpuRequests: number;
  /** Set: GpuContext.create is refused with this thrown value (a GPU absent, lost for good or refused). */
  refuseGpu: unknown;
}

/** What a test shares with the fakes, empty: `await vi.hoisted(async () => (await import(…)).workerTestState())`. */
export function workerTestState(): WorkerTestState {
  return { api: null, contexts: [], gpuRequests: 0, refuseGpu: null };
}

/** comlink whose expose hands the worker's api object to the test. */
export function fakeComlink(original: typeof Comlink, h: Pick<WorkerTestState, 'api'>): typeof Comlink {
  return {
    ...original,
    expose: (api: EngineApi) => {
      h.api = api;
    },
  };
}

/** engine/gpu.ts whose GpuContext.create counts the requests and makes a fake context, or is refused (h.refuseGpu). */
export function fakeGpuModule(original: typeof Gpu, h: Omit<WorkerTestState, 'api'>): Omit<typeof Gpu, 'GpuContext'> & { GpuContext: { create(): Promise<FakeGpuContext> } } {
  return {
    ...original,
    GpuContext: {
      async create() {
        h.gpuRequests++;
        if (h.refuseGpu !== null) throw h.refuseGpu;
        // The worker's copy of the module (vi.resetModules loads one per test): the worker tells a loss by its class.
        const { FinetuneError } = await import('../../src/core/errors.ts');
        let lost = false;
        const ctx: FakeGpuContext = {
          destroyed: false,
          destroyDevice() {
            ctx.destroyed = true;
          },
          report: { vendor: 'fake', architecture: '', device: '', description: '', software: true },
          kernelNote: null,
          ledger: { snapshot: () => ({ currentBytes: 0, peakBytes: 0, byCategory: {} }) },
          lossError: () => (lost ? new FinetuneError('device-lost', 'the GPU device was lost (unknown): test') : null),
          lose() {
            lost = true;
          },
        };
        h.contexts.push(ctx);
        return ctx;
      },
    },
  };
}

/** Empties what a test shares with the fakes, for the next test's worker. */
export function resetWorkerState(h: WorkerTestState): void {
  h.api = null;
  h.contexts.length = 0;
  h.gpuRequests = 0;
  h.refuseGpu = null;
}

/**
 * A worker of its own for a test (its device, session and model are module state): the worker's globals stubbed
 * (WebGPU, `navigator` (locks, storage) as given, where the app is served from, and fetch (the tokenizer is fetched
 * from the app; `fetched` answers it)), then the worker loaded. Undo the stubs with vi.unstubAllGlobals.
 */
export async function startWorker(h: Pick<WorkerTestState, 'api'>, o: { navigator?: object; fetched?: () => Uint8Array } = {}): Promise<EngineApi> {
  vi.resetModules();
  vi.stubGlobal('self', { navigator: { gpu: {}, ...o.navigator }, location: { origin: 'http://localhost', href: 'http://localhost/' } });
  vi.stubGlobal('fetch', async () => new Response((o.fetched?.() ?? new Uint8Array(1)) as Uint8Array<ArrayBuffer>));
  await import('../../src/worker/worker.ts');
  if (!h.api) throw new Error('the worker exposed no api');
  return h.api;
}
