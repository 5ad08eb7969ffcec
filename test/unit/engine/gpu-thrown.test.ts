// What the WebGPU implementation throws is the platform's: a browser or Dawn may reject with a DOMException, a string,
// or an object with no message. The engine's errors said `(e as Error).message` of it, so a readback that failed, a
// buffer that could not be made or a pipeline that did not compile read "…: undefined". Here each is thrown a value
// that is not an Error, and the message must say it in words.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { GpuContext } from '../../../src/engine/gpu.ts';
import { MemoryLedger } from '../../../src/engine/ledger.ts';
import { KernelRegistry } from '../../../src/engine/registry.ts';
import { WEBGPU_MINIMUM_LIMITS } from '../../helpers/minimum-limits.ts';

/** Thrown values that are not Errors, and the words each must be said with. */
const NOT_ERRORS: [string, unknown, string][] = [
  ['a string', 'the mapping was aborted', 'the mapping was aborted'],
  ['a DOMException-like object', { name: 'OperationError', message: 'Device is lost' }, 'Device is lost'],
  ['an object with no prototype', Object.create(null), 'a thrown value that has no text'],
  ['null', null, 'null'],
];

// The flags WebGPU defines as globals in a browser and in Dawn, which Node lacks.
beforeEach(() => {
  vi.stubGlobal('GPUBufferUsage', { MAP_READ: 1, MAP_WRITE: 2, COPY_SRC: 4, COPY_DST: 8, INDEX: 16, VERTEX: 32, UNIFORM: 64, STORAGE: 128, INDIRECT: 256, QUERY_RESOLVE: 512 });
  vi.stubGlobal('GPUMapMode', { READ: 1, WRITE: 2 });
});

afterEach(() => {
  vi.unstubAllGlobals();
});

/** A device whose buffers map by `mapAsync` and whose buffer creation is `createBuffer`; the rest records nothing. */
function fakeDevice(o: { mapAsync?: () => Promise<void>; createBuffer?: (d: GPUBufferDescriptor) => GPUBuffer } = {}): GPUDevice {
  const buffer = (d: GPUBufferDescriptor): GPUBuffer =>
    ({
      label: d.label ?? '',
      size: d.size,
      mapAsync: o.mapAsync ?? (async () => undefined),
      getMappedRange: () => new ArrayBuffer(d.size),
      unmap() {},
      destroy() {},
    }) as unknown as GPUBuffer;
  return {
    features: new Set<string>(),
    limits: WEBGPU_MINIMUM_LIMITS,
    lost: new Promise(() => undefined),
    addEventListener() {},
    createBuffer: o.createBuffer ?? buffer,
    createCommandEncoder: () => ({ copyBufferToBuffer() {}, finish: () => ({}) }),
    queue: { submit() {}, writeBuffer() {} },
    destroy() {},
  } as unknown as GPUDevice;
}

/** A context on `device`, as GpuContext.fromAdapter makes one from an adapter that hands it out. */
function contextOn(device: GPUDevice): Promise<GpuContext> {
  const adapter = {
    info: { vendor: 'fake', architecture: '', device: '', description: '' },
    features: new Set<string>(),
    limits: WEBGPU_MINIMUM_LIMITS,
    requestDevice: async () => device,
  } as unknown as GPUAdapter;
  return GpuContext.fromAdapter(adapter);
}

describe('a GPU readback that fails with a value that is not an Error', () => {
  it.each(NOT_ERRORS)('thrown as %s, is said in words', async (_what, thrown, words) => {
    let failing = false;
    const ctx = await contextOn(fakeDevice({ mapAsync: () => (failing ? Promise.reject(thrown) : Promise.resolve()) }));
    const source = ctx.ledger.create('activations', 16, GPUBufferUsage.COPY_SRC, 'activations');
    failing = true;
    await expect(ctx.read(source)).rejects.toMatchObject({ kind: 'device-lost', message: `reading back from the GPU failed: ${words}` });
    await expect(ctx.sync()).rejects.toMatchObject({ kind: 'device-lost', message: `reading back from the GPU failed: ${words}` });
  });
});

describe('a buffer the device refuses with a value that is not an Error', () => {
  it.each(NOT_ERRORS)('thrown as %s, is an out-of-memory error in words', (_what, thrown, words) => {
    const ledger = new MemoryLedger(
      fakeDevice({
        createBuffer: () => {
          throw thrown;
        },
      }),
    );
    let error: unknown = null;
    try {
      ledger.create('weights', 1024, 0, 'weights');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FinetuneError);
    expect(error).toMatchObject({ kind: 'out-of-memory', message: `could not allocate 1024 bytes for "weights": ${words}` });
    expect(ledger.snapshot().currentBytes).toBe(0);
  });
});

describe('a pipeline the device refuses with a value that is not an Error', () => {
  it.each(NOT_ERRORS)('thrown as %s, is a shader-compile error in words', async (_what, thrown, words) => {
    const device = {
      createShaderModule: () => ({ getCompilationInfo: async () => ({ messages: [] }) }),
      createComputePipelineAsync: () => Promise.reject(thrown),
    } as unknown as GPUDevice;
    const registry = new KernelRegistry(device, { copy: '@compute @workgroup_size(1) fn main() {}' });
    await expect(registry.prepare({ shader: 'copy' })).rejects.toMatchObject({ kind: 'shader-compile', message: `copy.wgsl entry "main": ${words}` });
  });
});
