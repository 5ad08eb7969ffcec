// A GPU adapter that refuses a device: the refusal is said in words whatever the browser threw. A value that was not
// an Error (a string, an object with no message) made "the GPU adapter refused a device: undefined", which the GPU
// panel showed as its reason for "No usable GPU".
import { describe, expect, it } from 'vitest';
import { GpuContext } from '../../../src/engine/gpu.ts';
import { WEBGPU_MINIMUM_LIMITS } from '../../helpers/minimum-limits.ts';

/** An adapter with WebGPU's minimum limits whose requestDevice rejects with `thrown`. */
function refusingAdapter(thrown: unknown): GPUAdapter {
  return {
    info: { vendor: 'fake', architecture: '', device: '', description: '' },
    features: new Set<string>(),
    limits: WEBGPU_MINIMUM_LIMITS,
    requestDevice: () => Promise.reject(thrown),
  } as unknown as GPUAdapter;
}

describe('a device the adapter refuses', () => {
  it.each([
    ['an Error', new Error('too many devices'), 'too many devices'],
    ['a string', 'too many devices', 'too many devices'],
    ['an object with no prototype', Object.create(null), 'a thrown value that has no text'],
  ])('thrown as %s, is a no-webgpu error in words', async (_what, thrown, words) => {
    await expect(GpuContext.fromAdapter(refusingAdapter(thrown))).rejects.toMatchObject({ kind: 'no-webgpu', message: `the GPU adapter refused a device: ${words}` });
  });
});
