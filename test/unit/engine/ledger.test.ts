import { describe, expect, it } from 'vitest';
import { FinetuneError } from '../../../src/core/errors.ts';
import { MemoryLedger } from '../../../src/engine/ledger.ts';

// The ledger only needs createBuffer/destroy and limits; a fake device lets us test the accounting exactly.
function fakeDevice(maxBufferSize = 1 << 20): GPUDevice {
  return {
    limits: { maxBufferSize },
    createBuffer: (d: GPUBufferDescriptor) => ({ label: d.label ?? '', size: d.size, destroyed: false, destroy() {} }),
  } as unknown as GPUDevice;
}

describe('GPU memory ledger', () => {
  it('tracks current and peak bytes per category', () => {
    const l = new MemoryLedger(fakeDevice());
    const a = l.create('a', 1000, 0, 'weights');
    const b = l.create('b', 10, 0, 'activations'); // rounded up to 12
    l.destroy(a);
    const c = l.create('c', 100, 0, 'activations');
    const s = l.snapshot();
    expect(s.currentBytes).toBe(112);
    expect(s.peakBytes).toBe(1012);
    expect(s.byCategory.weights).toEqual({ currentBytes: 0, peakBytes: 1000, buffers: 0 });
    expect(s.byCategory.activations).toEqual({ currentBytes: 112, peakBytes: 112, buffers: 2 });
    l.resetPeaks();
    expect(l.snapshot().peakBytes).toBe(112);
    l.destroy(b);
    l.destroy(c);
    expect(l.liveBuffers()).toEqual([]);
  });

  it('refuses buffers over the device limit with an out-of-memory error', () => {
    const l = new MemoryLedger(fakeDevice(4096));
    try {
      l.create('huge', 8192, 0, 'weights');
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(FinetuneError);
      expect((e as FinetuneError).kind).toBe('out-of-memory');
      expect((e as FinetuneError).message).toContain('huge');
    }
  });

  it('catches double frees', () => {
    const l = new MemoryLedger(fakeDevice());
    const a = l.create('a', 4, 0, 'scratch');
    l.destroy(a);
    expect(() => l.destroy(a)).toThrow(/not live/);
  });
});
