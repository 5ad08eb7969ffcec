// Layer streaming, for GPUs too small for the whole quantised model: the decoder layers' weights live in CPU memory
// (each GPU buffer's bytes exactly as the resident buffer would hold them, so every result is bit for bit the
// resident one), and two GPU slots, each shaped like one layer, take turns holding the layer being computed and the
// next one. Embeddings, lm_head and the final norm stay resident (weights.ts).
//
// Why reusing a slot is safe. `queue.writeBuffer` takes its place on the queue when it is called, while the work the
// context records is ordered only when it is submitted (`ctx.flush()`). A slot is therefore only ever written through
// `ctx.write`, which submits everything recorded so far first: the work that reads the layer the slot held is on the
// queue ahead of the write, and the work recorded after it sees the new layer. No fence and no readback are needed.
//
// Double buffering. When layer l is asked for, the next layer in the current direction (l+1 going forward, l−1 in the
// backward) is written into the other slot right away, ahead of l's work on the queue. The copy of its bytes into
// the browser's (or Dawn's) staging memory happens here on the CPU while the GPU is still busy with the work already
// submitted, and the GPU gets the whole of layer l's work to finish the transfer before l+1 needs it. Whether the
// transfer itself runs beside the compute is the driver's business: WebGPU promises only the order.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { assembleLayer, layerParts } from './layer-parts.ts';
import type { WeightPart } from './weight-parts.ts';
import type { LayerWeights } from './weights.ts';

/**
 * Layer uploads of one training pass: the forward 0..L−1, then the recomputation and backward L−1..0. The two layers
 * in the slots at each turn of direction are reused, so 2·(L − 2).
 */
export const trainingPassUploads = (L: number): number => 2 * Math.max(0, L - 2);

/**
 * Layer uploads of a forward-only pass (validation), at most: every layer (L − 2 right after a training pass, whose
 * backward left layers 0 and 1 in the slots); none when both slots hold the whole model.
 */
export const forwardPassUploads = (L: number): number => (L > 2 ? L : 0);

/** One layer held in CPU memory: its parts in layerParts' order and each one's bytes. */
export interface HostLayer {
  parts: WeightPart[];
  bytes: Uint8Array[];
}

interface Slot {
  buffers: GPUBuffer[];
  weights: LayerWeights;
  /** The layer the slot holds, −1 for none (also while it is being written). */
  holds: number;
}

/** Reads layer l's buffers back into CPU memory (one buffer at a time). The GPU copy is left to the caller. */
export async function downloadLayer(ctx: GpuContext, l: number, layer: LayerWeights): Promise<HostLayer> {
  const parts: WeightPart[] = [];
  const bytes: Uint8Array[] = [];
  for (const p of layerParts(l, layer)) {
    parts.push(p.part);
    bytes.push(new Uint8Array(await ctx.read(p.buffer)));
  }
  return { parts, bytes };
}

/** The layers of a model in CPU memory, brought to the GPU one at a time into two alternating slots. */
export class LayerStream {
  readonly count: number;
  /** GPU bytes of one layer (what one slot holds, and what one upload moves). */
  readonly layerBytes: number;
  /** Layers written into a slot so far, and their bytes: what the planner's "bytes moved" counts. */
  uploads = 0;
  bytesUploaded = 0;
  private readonly slots: Slot[] = [];
  /** The layer asked for last, and the direction the passes are going (+1 forward, −1 backward). */
  private last = -1;
  private direction = 1;

  constructor(
    private readonly ctx: GpuContext,
    private readonly host: readonly HostLayer[],
  ) {
    if (host.length === 0) throw new FinetuneError('internal', 'layer stream: no layers');
    // Every layer must fit the slots' buffers exactly, part for part: Mistral's layers all have one shape.
    const shape = (h: HostLayer): string => JSON.stringify(h.parts.map((p) => ({ ...p.info, layer: 0, bytes: p.bytes })));
    const first = shape(host[0]);
    host.forEach((h, l) => {
      if (shape(h) !== first || h.bytes.length !== h.parts.length || h.parts.some((p, i) => h.bytes[i].byteLength !== p.bytes || ('layer' in p.info && p.info.layer !== l))) {
        throw new FinetuneError('internal', `layer stream: layer ${l} is not shaped like layer 0`);
      }
    });
    this.count = host.length;
    this.layerBytes = host[0].parts.reduce((a, p) => a + p.bytes, 0);
    const made: GPUBuffer[] = [];
    try {
      for (const name of ['A', 'B'].slice(0, Math.min(2, this.count))) {
        const buffers = host[0].parts.map((p) => ctx.createBuffer(`layer slot ${name}: ${p.name.replace(/^\d+\./, '')}`, p.bytes, 'weights'));
        made.push(...buffers);
        // The roles carry the shapes (the same for every layer); the layer index in them only names things.
        const weights = assembleLayer(0, host[0].parts.map((p, i) => ({ info: p.info, buffer: buffers[i] })));
        this.slots.push({ buffers, weights, holds: -1 });
      }
    } catch (e) {
      for (const b of made) ctx.destroy(b);
      throw e;
    }
  }

  /**
   * Layer l's weights on the GPU. Valid until the next call for another layer (its slot may then be rewritten); the
   * work recorded with them before that call still sees them (see the ordering argument above).
   */
  layer(l: number): LayerWeights {
    if (!(Number.isInteger(l) && l >= 0 && l < this.count)) throw new FinetuneError('internal', `layer stream: no layer ${l} of ${this.count}`);
    if (l !== this.last && this.last >= 0) this.direction = l > this.last ? 1 : -1;
    let slot = this.slots.find((s) => s.holds === l);
    if (!slot) {
      // The slot not holding the layer asked for last: with two slots, the one used longest ago.
      slot = this.slots.find((s) => s.holds !== this.last) ?? this.slots[0];
      this.fill(slot, l);
    }
    this.last = l;
    const next = l + this.direction;
    const other = this.slots.find((s) => s !== slot);
    if (other && next >= 0 && next < this.count && other.holds !== next) this.fill(other, next);
    return slot.weights;
  }

  /**
   * Uploads again the layer the spare slot holds (the slot not holding the layer asked for last), or the next layer if
   * it holds none: the traffic of one prefetch, with nothing changed for the work that follows. For timing uploads
   * beside a layer's work (run/calibrate.ts).
   */
  rewriteSpare(): void {
    const spare = this.slots.find((s) => s.holds !== this.last) ?? this.slots[0];
    this.fill(spare, spare.holds >= 0 ? spare.holds : (this.last + 1) % this.count);
  }

  /** Layer l's parts and bytes, as the weight cache stores them. */
  hostLayer(l: number): HostLayer {
    return this.host[l];
  }

  /** CPU bytes the layers take. */
  get hostBytes(): number {
    return this.count * this.layerBytes;
  }

  destroy(): void {
    for (const s of this.slots) for (const b of s.buffers) this.ctx.destroy(b);
    this.slots.length = 0;
  }

  private fill(slot: Slot, l: number): void {
    const h = this.host[l];
    slot.holds = -1;
    // ctx.write submits the recorded work first: whatever reads the slot's old layer is queued before these writes.
    h.bytes.forEach((b, i) => this.ctx.write(slot.buffers[i], b));
    slot.holds = l;
    this.uploads++;
    this.bytesUploaded += this.layerBytes;
  }
}
