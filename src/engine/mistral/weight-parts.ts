// The loaded base weights as a list of named GPU buffers and back: what the weight cache stores. Each part is one
// buffer's bytes exactly as the GPU holds them (NF4 codes and scales as quantised, norms in f32, embeddings and lm_head
// as stored), so a model rebuilt from its parts is bit for bit the model that was loaded, without re-quantising.

import type { Projection, Quantization } from '../../core/mistral.ts';
import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import type { WeightStorage } from '../kernels/matmul.ts';
import type { Dims } from './dims.ts';
import { assembleLayer, layerParts } from './layer-parts.ts';
import { LayerStream, type HostLayer } from './layer-stream.ts';
import type { DenseMatrix, MistralWeights } from './weights.ts';

/** How to put a part back: which buffer of which tensor, and the shape facts the buffers do not carry. */
export type PartRole =
  | { role: 'embed'; storage: WeightStorage }
  | { role: 'lm_head'; storage: WeightStorage }
  | { role: 'final_norm' }
  | { role: 'input_norm'; layer: number }
  | { role: 'post_norm'; layer: number }
  | { role: 'dense'; layer: number; proj: Projection; storage: WeightStorage; out: number; in: number }
  | { role: 'nf4'; layer: number; proj: Projection; buffer: 'codes' | 'absmax' | 'dq.codes' | 'dq.scale' | 'dq.offset' | 'dq.table'; rows: number; cols: number; doubleQuant: boolean };

export interface WeightPart {
  name: string;
  bytes: number;
  info: PartRole;
}

export interface WeightsManifest {
  dims: Dims;
  quantization: Quantization;
  /** lm_head is the embedding buffer itself (a tied checkpoint without its own lm_head.weight). */
  tied: boolean;
  parts: WeightPart[];
}

/** A part and where its bytes are now: a GPU buffer, or CPU memory for a streamed layer. */
interface PartWithSource extends WeightPart {
  source: GPUBuffer | Uint8Array;
}

function partsOf(w: MistralWeights): PartWithSource[] {
  const out: PartWithSource[] = [];
  const add = (name: string, buffer: GPUBuffer, info: PartRole): void => void out.push({ name, source: buffer, bytes: buffer.size, info });
  add('embed', w.embed.buffer, { role: 'embed', storage: w.embed.storage });
  // A streamed layer's parts are the same parts, held in CPU memory: the manifest does not depend on the mode.
  for (let l = 0; l < w.dims.L; l++) {
    if (w.stream) {
      const h = w.stream.hostLayer(l);
      h.parts.forEach((p, i) => out.push({ ...p, source: h.bytes[i] }));
    } else for (const p of layerParts(l, w.layers[l])) out.push({ ...p.part, source: p.buffer });
  }
  add('final_norm', w.finalNorm, { role: 'final_norm' });
  if (w.lmHead.buffer !== w.embed.buffer) add('lm_head', w.lmHead.buffer, { role: 'lm_head', storage: w.lmHead.storage });
  return out;
}

export function weightsManifest(w: MistralWeights): WeightsManifest {
  return { dims: w.dims, quantization: w.quantization, tied: w.lmHead.buffer === w.embed.buffer, parts: partsOf(w).map(({ name, bytes, info }) => ({ name, bytes, info })) };
}

/** Every part's bytes, read back from the GPU one buffer at a time (bounded memory: one part at a time). */
export async function* downloadWeightParts(ctx: GpuContext, w: MistralWeights): AsyncGenerator<{ part: WeightPart; bytes: Uint8Array }> {
  for (const p of partsOf(w)) {
    const bytes = p.source instanceof Uint8Array ? p.source : new Uint8Array(await ctx.read(p.source));
    yield { part: { name: p.name, bytes: p.bytes, info: p.info }, bytes };
  }
}

/**
 * Rebuilds the weights from a manifest, uploading each part as `read` returns it (in manifest order). With
 * `streamLayers` the layers' parts stay in CPU memory and a LayerStream brings them to the GPU as they are needed. On
 * a failure everything uploaded so far is freed.
 */
export async function uploadWeightParts(
  ctx: GpuContext,
  m: WeightsManifest,
  read: (part: WeightPart) => Promise<Uint8Array>,
  onPart?: (part: WeightPart) => void,
  o: { streamLayers?: boolean } = {},
): Promise<MistralWeights> {
  const uploaded: GPUBuffer[] = [];
  try {
    let embed: DenseMatrix | null = null;
    let lmHead: DenseMatrix | null = null;
    let finalNorm: GPUBuffer | null = null;
    const byLayer: { info: PartRole; buffer: GPUBuffer }[][] = Array.from({ length: m.dims.L }, () => []);
    const host: HostLayer[] = Array.from({ length: m.dims.L }, () => ({ parts: [], bytes: [] }));
    for (const part of m.parts) {
      const bytes = await read(part);
      if (bytes.byteLength !== part.bytes) throw new FinetuneError('internal', `weight part ${part.name}: ${bytes.byteLength} bytes, expected ${part.bytes}`);
      const i = part.info;
      const layer = 'layer' in i ? i.layer : null;
      if (layer !== null && !(Number.isInteger(layer) && layer >= 0 && layer < m.dims.L)) throw new FinetuneError('internal', `weight part ${part.name}: no layer ${layer}`);
      if (layer !== null && o.streamLayers) {
        host[layer].parts.push(part);
        host[layer].bytes.push(bytes);
        onPart?.(part);
        continue;
      }
      const b = ctx.upload(`${part.name} (cached)`, bytes, 'weights');
      uploaded.push(b);
      if (layer !== null) byLayer[layer].push({ info: i, buffer: b });
      else if (i.role === 'embed') embed = { buffer: b, storage: i.storage };
      else if (i.role === 'lm_head') lmHead = { buffer: b, storage: i.storage };
      else if (i.role === 'final_norm') finalNorm = b;
      onPart?.(part);
    }
    if (!embed || !finalNorm || (!lmHead && !m.tied)) throw new FinetuneError('internal', 'weight parts: embeddings, final norm or lm_head missing');
    const base = { dims: m.dims, quantization: m.quantization, embed, finalNorm, lmHead: lmHead ?? embed };
    // The stream checks that every layer has layer 0's parts, and assembles its slots from them.
    const weights: MistralWeights = o.streamLayers ? { ...base, layers: [], stream: new LayerStream(ctx, host) } : { ...base, layers: byLayer.map((parts, l) => assembleLayer(l, parts)) };
    // Checked before they are handed over: a browser reports a buffer it could not make some time after the call.
    try {
      await ctx.sync();
    } catch (e) {
      weights.stream?.destroy();
      throw e;
    }
    return weights;
  } catch (e) {
    for (const b of uploaded) ctx.destroy(b);
    throw e;
  }
}
