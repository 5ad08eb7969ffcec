// The frozen base model on the GPU: embeddings and lm_head kept 16-bit as the checkpoint stores them (bf16 packed),
// norms in f32, and the seven projections per layer either dense (bf16/f32 as stored: exact) or NF4-quantised on the
// GPU as they stream in. With layer streaming (layer-stream.ts) the decoder layers are kept in CPU memory instead and
// brought to the GPU one at a time; every reader asks for a layer through layerWeights(), never w.layers directly.

import { PROJECTIONS, type Projection, type Quantization } from '../../core/mistral.ts';
import type { BaseCheckpoint } from '../../model/checkpoint.ts';
import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import type { WeightStorage } from '../kernels/matmul.ts';
import { nf4_quantize, type Nf4Weight } from '../kernels/nf4.ts';
import { dimsOf, linearShape, nf4Unsupported, type Dims } from './dims.ts';
import { layerParts } from './layer-parts.ts';
import { downloadLayer, LayerStream, type HostLayer } from './layer-stream.ts';


/** A frozen linear layer W (out, in). */
export type BaseLinear =
  | { kind: 'dense'; out: number; in: number; buffer: GPUBuffer; storage: WeightStorage }
  | { kind: 'nf4'; out: number; in: number; weight: Nf4Weight };

export interface DenseMatrix {
  buffer: GPUBuffer;
  storage: WeightStorage;
}

export interface LayerWeights {
  inputNorm: GPUBuffer; // (C) f32
  postAttentionNorm: GPUBuffer; // (C) f32
  linears: Record<Projection, BaseLinear>;
}

export interface MistralWeights {
  dims: Dims;
  quantization: Quantization;
  embed: DenseMatrix; // (V, C)
  /** The resident layers; empty when `stream` holds them. Read a layer with layerWeights(w, l). */
  layers: LayerWeights[];
  finalNorm: GPUBuffer; // (C) f32
  lmHead: DenseMatrix; // (V, C)
  /** Layer streaming: the layers in CPU memory, uploaded into two GPU slots as they are needed. */
  stream?: LayerStream;
}

/**
 * Layer l's weights on the GPU: the resident ones, or layer l brought into a slot by the stream (valid until another
 * layer is asked for: see LayerStream.layer). The one way every reader gets a layer.
 */
export function layerWeights(w: MistralWeights, l: number): LayerWeights {
  if (w.stream) return w.stream.layer(l);
  const layer = w.layers[l];
  if (!layer) throw new FinetuneError('internal', `no layer ${l} of ${w.layers.length}`);
  return layer;
}

/** The weights' layers are streamed from CPU memory. */
export function isStreamed(w: MistralWeights): boolean {
  return w.stream !== undefined;
}

/**
 * What a load is doing: reading bytes (from the network or a disk), quantising them on the GPU, and so on. 'waiting':
 * the new weights are on the GPU, and the load waits for the work still reading the model it replaces (a generation
 * stops at its next token, a validation loss at its next pass, an estimate ends).
 */
export type LoadPhase = 'downloading' | 'quantising' | 'caching' | 'loading from cache' | 'waiting';

export interface LoadProgress {
  tensor: string;
  done: number;
  total: number;
  bytesDone: number;
  bytesTotal: number;
  /** The phase the load is in now (absent from older reporters). */
  phase?: LoadPhase;
  /** Checkpoint bytes per second since the load began. */
  bytesPerSecond?: number;
  /** Seconds left at that rate; null until a rate is known. */
  etaSeconds?: number | null;
  /**
   * A request failed and is about to be made again (retryNoteText): shown until the load reports again. The counts are
   * the last report's (zero before the first).
   */
  retry?: string;
}

export interface LoadOptions {
  quantization: Quantization;
  onProgress?: (p: LoadProgress) => void;
  /**
   * Keep the decoder layers in CPU memory and stream them to the GPU (layer-stream.ts). Each layer is still quantised
   * on the GPU as it arrives, then read back and freed there: the GPU never holds more than one layer while loading.
   */
  streamLayers?: boolean;
}

/** Uploads a 16/32-bit float matrix as it is stored (bf16/f16 packed two per u32): every kernel that reads one decodes both. */
function uploadMatrix(ctx: GpuContext, label: string, dtype: string, bytes: Uint8Array, category: 'weights'): DenseMatrix {
  switch (dtype) {
    case 'BF16':
      return { buffer: ctx.upload(label, bytes, category), storage: 'bf16' };
    case 'F32':
      return { buffer: ctx.upload(label, bytes, category), storage: 'f32' };
    case 'F16':
      return { buffer: ctx.upload(label, bytes, category), storage: 'f16' };
    default:
      throw new FinetuneError('bad-input', `${label}: unsupported weight dtype ${dtype} (expected BF16, F16 or F32)`);
  }
}

export async function loadMistralWeights(ctx: GpuContext, ckpt: BaseCheckpoint, o: LoadOptions): Promise<MistralWeights> {
  const dims = dimsOf(ckpt.config);
  // A sliding window loads: runs and generations are held inside it instead (src/model/attention-span.ts).
  const nf4Why = o.quantization === 'none' ? null : nf4Unsupported(dims);
  if (nf4Why) throw new FinetuneError('bad-input', nf4Why);
  const names = ['model.embed_tokens.weight'];
  for (let l = 0; l < dims.L; l++) {
    names.push(`model.layers.${l}.input_layernorm.weight`, `model.layers.${l}.post_attention_layernorm.weight`);
    for (const m of PROJECTIONS) names.push(moduleName(l, m));
  }
  names.push('model.norm.weight', ckpt.config.tieWordEmbeddings && !ckpt.has('lm_head.weight') ? 'model.embed_tokens.weight' : 'lm_head.weight');
  const bytesTotal = names.reduce((s, n) => s + (ckpt.info(n).end - ckpt.info(n).begin), 0);
  let bytesDone = 0;
  let done = 0;
  const uploaded: GPUBuffer[] = [];
  const t0 = Date.now();
  const report = (tensor: string, phase: LoadPhase): void => {
    if (!o.onProgress) return;
    const seconds = (Date.now() - t0) / 1000;
    const bytesPerSecond = seconds > 0 ? bytesDone / seconds : 0;
    const etaSeconds = bytesPerSecond > 0 ? (bytesTotal - bytesDone) / bytesPerSecond : null;
    o.onProgress({ tensor, done, total: names.length, bytesDone, bytesTotal, phase, bytesPerSecond, etaSeconds });
  };
  const step = (tensor: string): void => {
    bytesDone += ckpt.info(tensor).end - ckpt.info(tensor).begin;
    done++;
    report(tensor, 'downloading');
  };
  try {
    const readMatrix = async (name: string): Promise<DenseMatrix> => {
      const t = await ckpt.read(name);
      const m = uploadMatrix(ctx, name, t.dtype, t.bytes, 'weights');
      uploaded.push(m.buffer);
      step(name);
      return m;
    };
    const readVector = async (name: string): Promise<GPUBuffer> => {
      const b = ctx.upload(name, await ckpt.readFloat32(name), 'weights');
      uploaded.push(b);
      step(name);
      return b;
    };
    const embed = await readMatrix('model.embed_tokens.weight');
    const layers: LayerWeights[] = [];
    const host: HostLayer[] = [];
    for (let l = 0; l < dims.L; l++) {
      const inputNorm = await readVector(`model.layers.${l}.input_layernorm.weight`);
      const postAttentionNorm = await readVector(`model.layers.${l}.post_attention_layernorm.weight`);
      const linears = {} as Record<Projection, BaseLinear>;
      for (const m of PROJECTIONS) {
        const name = moduleName(l, m);
        const shape = linearShape(dims, m);
        if (o.quantization === 'none') {
          const d = await readMatrix(name);
          linears[m] = { kind: 'dense', ...shape, buffer: d.buffer, storage: d.storage };
        } else {
          report(name, 'downloading');
          const t = await ckpt.read(name);
          report(name, 'quantising');
          const srcDtype = t.dtype === 'BF16' ? 'bf16' : t.dtype === 'F16' ? 'f16' : t.dtype === 'F32' ? 'f32' : null;
          if (!srcDtype) throw new FinetuneError('bad-input', `${name}: cannot quantise dtype ${t.dtype}`);
          const src = ctx.upload(`${name} (to quantise)`, t.bytes, 'scratch');
          let weight: Nf4Weight;
          try {
            weight = nf4_quantize(ctx, src, srcDtype, shape.out, shape.in, { doubleQuant: o.quantization === 'nf4-double', label: name });
          } finally {
            // The source goes once the quantisation is submitted (destroy submits first), or failed: only the 4-bit
            // copy stays.
            ctx.destroy(src);
          }
          // Freed with the rest if a later tensor fails: a failed load leaves nothing behind on the GPU.
          uploaded.push(...nf4Buffers(weight));
          linears[m] = { kind: 'nf4', ...shape, weight };
          step(name);
        }
      }
      const layer: LayerWeights = { inputNorm, postAttentionNorm, linears };
      // Bound the queue: a 7B checkpoint streams 14 GB through here.
      await ctx.sync();
      if (o.streamLayers) {
        host.push(await downloadLayer(ctx, l, layer));
        const freed = new Set(layerParts(l, layer).map((p) => p.buffer));
        for (const b of freed) ctx.destroy(b);
        uploaded.splice(0, uploaded.length, ...uploaded.filter((b) => !freed.has(b)));
      } else layers.push(layer);
    }
    const finalNorm = await readVector('model.norm.weight');
    const lmHead = names[names.length - 1] === 'model.embed_tokens.weight' ? embed : await readMatrix('lm_head.weight');
    const stream = o.streamLayers ? new LayerStream(ctx, host) : undefined;
    // The last uploads (the final norm, the lm_head, the stream's slots) checked like every layer's: a browser reports
    // a buffer it could not make some time after the call, and unchecked here it surfaced at the first use instead.
    try {
      await ctx.sync();
    } catch (e) {
      stream?.destroy();
      throw e;
    }
    return { dims, quantization: o.quantization, embed, layers, finalNorm, lmHead, ...(stream ? { stream } : {}) };
  } catch (e) {
    // No flush first: with a GPU error pending it would throw again and free nothing (destroy submits what it must).
    for (const b of uploaded) ctx.destroy(b);
    throw e;
  }
}

export function moduleName(layer: number, m: Projection): string {
  const group = m === 'gate_proj' || m === 'up_proj' || m === 'down_proj' ? 'mlp' : 'self_attn';
  return `model.layers.${layer}.${group}.${m}.weight`;
}

export function destroyMistralWeights(ctx: GpuContext, w: MistralWeights): void {
  // No flush first: destroy() submits the work that may name a buffer, and with a GPU error pending a flush would
  // throw and free nothing.
  const seen = new Set<GPUBuffer>();
  const drop = (b: GPUBuffer | null): void => {
    if (b && !seen.has(b)) {
      seen.add(b);
      ctx.destroy(b);
    }
  };
  drop(w.embed.buffer);
  drop(w.lmHead.buffer);
  drop(w.finalNorm);
  w.stream?.destroy();
  for (const layer of w.layers) {
    drop(layer.inputNorm);
    drop(layer.postAttentionNorm);
    for (const m of PROJECTIONS) {
      const lin = layer.linears[m];
      if (lin.kind === 'dense') drop(lin.buffer);
      else for (const b of nf4Buffers(lin.weight)) drop(b);
    }
  }
}

/**
 * The same model with its layers moved to CPU memory and streamed: each resident layer is read back and freed on the
 * GPU. For benchmarks and tests that want both modes of one set of weights; a load asks for streaming directly.
 */
export async function moveLayersToHost(ctx: GpuContext, w: MistralWeights): Promise<MistralWeights> {
  if (w.stream) return w;
  const host: HostLayer[] = [];
  for (let l = 0; l < w.layers.length; l++) host.push(await downloadLayer(ctx, l, w.layers[l]));
  // The slots first: if they cannot be made, the resident layers are still there.
  const stream = new LayerStream(ctx, host);
  for (const layer of w.layers) for (const p of layerParts(0, layer)) ctx.destroy(p.buffer);
  return { ...w, layers: [], stream };
}

function nf4Buffers(w: Nf4Weight): GPUBuffer[] {
  const out = [w.codes];
  if (w.absmax) out.push(w.absmax);
  if (w.dq) out.push(w.dq.codes, w.dq.scale, w.dq.offset, w.dq.table);
  return out;
}
