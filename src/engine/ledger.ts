// The GPU memory ledger. WebGPU exposes no memory query, so every buffer the engine makes is created here and
// counted by category; the current and peak bytes per category are what benchmarks and the UI report.

import { FinetuneError, thrownMessage } from '../core/errors.ts';

// 'kv-cache': the keys and values generation keeps per layer (src/engine/mistral/decode.ts), apart from training's
// activations so that the page shows what a generation holds.
export type MemoryCategory = 'weights' | 'lora' | 'optimizer' | 'activations' | 'kv-cache' | 'scratch' | 'io';
export const MEMORY_CATEGORIES: readonly MemoryCategory[] = ['weights', 'lora', 'optimizer', 'activations', 'kv-cache', 'scratch', 'io'];

export interface LedgerSnapshot {
  currentBytes: number;
  peakBytes: number;
  byCategory: Record<MemoryCategory, { currentBytes: number; peakBytes: number; buffers: number }>;
}

interface Entry {
  size: number;
  category: MemoryCategory;
  label: string;
}

function emptyByCategory(): LedgerSnapshot['byCategory'] {
  const out = {} as LedgerSnapshot['byCategory'];
  for (const c of MEMORY_CATEGORIES) out[c] = { currentBytes: 0, peakBytes: 0, buffers: 0 };
  return out;
}

export class MemoryLedger {
  private readonly live = new Map<GPUBuffer, Entry>();
  private current = 0;
  private peak = 0;
  private byCat = emptyByCategory();

  constructor(private readonly device: GPUDevice) {}

  /** Creates a buffer and records it. Sizes are rounded up to 4 bytes (WebGPU requires it for most uses). */
  create(label: string, size: number, usage: GPUBufferUsageFlags, category: MemoryCategory, mappedAtCreation = false): GPUBuffer {
    const bytes = Math.max(4, Math.ceil(size / 4) * 4);
    const limit = this.device.limits.maxBufferSize;
    if (bytes > limit) {
      throw new FinetuneError('out-of-memory', `buffer "${label}" needs ${bytes} bytes, over this GPU's maxBufferSize of ${limit}`, {
        label,
        bytes,
        limit,
      });
    }
    let buffer: GPUBuffer;
    try {
      buffer = this.device.createBuffer({ label, size: bytes, usage, mappedAtCreation });
    } catch (e) {
      throw new FinetuneError('out-of-memory', `could not allocate ${bytes} bytes for "${label}": ${thrownMessage(e)}`, { label, bytes });
    }
    this.live.set(buffer, { size: bytes, category, label });
    this.current += bytes;
    this.peak = Math.max(this.peak, this.current);
    const c = this.byCat[category];
    c.currentBytes += bytes;
    c.buffers += 1;
    c.peakBytes = Math.max(c.peakBytes, c.currentBytes);
    return buffer;
  }

  /** Destroys a buffer made by `create`; destroying one twice or a foreign one is a bug. */
  destroy(buffer: GPUBuffer): void {
    const e = this.live.get(buffer);
    if (!e) throw new FinetuneError('internal', `ledger: buffer "${buffer.label}" is not live`);
    this.live.delete(buffer);
    this.current -= e.size;
    const c = this.byCat[e.category];
    c.currentBytes -= e.size;
    c.buffers -= 1;
    buffer.destroy();
  }

  /** Resets peaks to the current values, so a phase (load, train step, export) can be measured on its own. */
  resetPeaks(): void {
    this.peak = this.current;
    for (const c of MEMORY_CATEGORIES) this.byCat[c].peakBytes = this.byCat[c].currentBytes;
  }

  snapshot(): LedgerSnapshot {
    const byCategory = emptyByCategory();
    for (const c of MEMORY_CATEGORIES) byCategory[c] = { ...this.byCat[c] };
    return { currentBytes: this.current, peakBytes: this.peak, byCategory };
  }

  liveBuffers(): { label: string; bytes: number; category: MemoryCategory }[] {
    return [...this.live.values()].map((e) => ({ label: e.label, bytes: e.size, category: e.category }));
  }
}
