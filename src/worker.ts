// The engine behind comlink: this dedicated worker owns the GPU device; the page only holds a proxy.

import * as Comlink from 'comlink';
import type { AdapterReport } from './engine/adapter.ts';
import { FinetuneError } from './engine/errors.ts';
import { GpuContext } from './engine/gpu.ts';
import { checkMatmul, type MatmulCheck } from './engine/selftest.ts';
import { installErrorTransfer } from './worker-protocol.ts';

export type ProbeResult = { ok: true; report: AdapterReport } | { ok: false; reason: string };

let context: Promise<GpuContext> | null = null;

function gpuContext(): Promise<GpuContext> {
  const gpu = (self.navigator as Navigator | undefined)?.gpu;
  if (!gpu) return Promise.reject(new FinetuneError('no-webgpu', 'this browser exposes no WebGPU inside workers (navigator.gpu is missing)'));
  context ??= GpuContext.create(gpu).catch((e: unknown) => {
    context = null;
    throw e;
  });
  return context;
}

const api = {
  async probe(): Promise<ProbeResult> {
    try {
      const ctx = await gpuContext();
      return { ok: true, report: ctx.report };
    } catch (e) {
      return { ok: false, reason: (e as Error).message };
    }
  },

  /** Runs the matmul family against the float64 reference on odd shapes (the page's "Check this GPU"). */
  async selfTestMatmul(): Promise<MatmulCheck[]> {
    const ctx = await gpuContext();
    return [await checkMatmul(ctx, 17, 33, 65, 1), await checkMatmul(ctx, 130, 7, 300, 2)];
  },

  async memory(): Promise<ReturnType<GpuContext['ledger']['snapshot']>> {
    return (await gpuContext()).ledger.snapshot();
  },
};

export type EngineApi = typeof api;

installErrorTransfer();
Comlink.expose(api);
