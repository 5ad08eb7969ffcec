// The loaded base weights as a list of named GPU buffers and back: what the weight cache stores. Each part is one
// buffer's bytes exactly as the GPU holds them (NF4 codes and scales as quantised, norms in f32, embeddings and lm_head
// as stored), so a model rebuilt from its parts is bit for bit the model that was loaded, without re-quantising.

import { PROJECTIONS, type Projection, type Quantization } from '../../core/mistral.ts';
import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import type { WeightStorage } from '../kernels/matmul.ts';
import type { Nf4Weight } from '../kernels/nf4.ts';
import type { Dims } from './dims.ts';
import type { BaseLinear, DenseMatrix, LayerWeights, MistralWeights } from './weights.ts';

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

interface PartWithBuffer extends WeightPart {
  buffer: GPUBuffer;
}

function partsOf(w: MistralWeights): PartWithBuffer[] {
  const out: PartWithBuffer[] = [];
  const add = (name: string, buffer: GPUBuffer, info: PartRole): void => void out.push({ name, buffer, bytes: buffer.size, info });
  add('embed', w.embed.buffer, { role: 'embed', storage: w.embed.storage });
  w.layers.forEach((layer, l) => {
    add(`${l}.input_norm`, layer.inputNorm, { role: 'input_norm', layer: l });
    add(`${l}.post_norm`, layer.postAttentionNorm, { role: 'post_norm', layer: l });
    for (const proj of PROJECTIONS) {
      const lin = layer.linears[proj];
      if (lin.kind === 'dense') {
        add(`${l}.${proj}`, lin.buffer, { role: 'dense', layer: l, proj, storage: lin.storage, out: lin.out, in: lin.in });
        continue;
      }
      const q = lin.weight;
      const nf4 = (buffer: Extract<PartRole, { role: 'nf4' }>['buffer'], b: GPUBuffer): void =>
        add(`${l}.${proj}.${buffer}`, b, { role: 'nf4', layer: l, proj, buffer, rows: q.rows, cols: q.cols, doubleQuant: q.doubleQuant });
      nf4('codes', q.codes);
      if (q.dq) {
        nf4('dq.codes', q.dq.codes);
        nf4('dq.scale', q.dq.scale);
        nf4('dq.offset', q.dq.offset);
        nf4('dq.table', q.dq.table);
      } else if (q.absmax) nf4('absmax', q.absmax);
    }
  });
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
    yield { part: { name: p.name, bytes: p.bytes, info: p.info }, bytes: new Uint8Array(await ctx.read(p.buffer)) };
  }
}

/**
 * Rebuilds the weights from a manifest, uploading each part as `read` returns it (in manifest order). On a failure
 * everything uploaded so far is freed.
 */
export async function uploadWeightParts(ctx: GpuContext, m: WeightsManifest, read: (part: WeightPart) => Promise<Uint8Array>, onPart?: (part: WeightPart) => void): Promise<MistralWeights> {
  const uploaded: GPUBuffer[] = [];
  try {
    let embed: DenseMatrix | null = null;
    let lmHead: DenseMatrix | null = null;
    let finalNorm: GPUBuffer | null = null;
    const norms: { input: GPUBuffer[]; post: GPUBuffer[] } = { input: [], post: [] };
    const dense = new Map<string, BaseLinear>();
    type Nf4Part = Extract<PartRole, { role: 'nf4' }>['buffer'];
    const nf4 = new Map<string, { rows: number; cols: number; doubleQuant: boolean; b: Partial<Record<Nf4Part, GPUBuffer>> }>();
    for (const part of m.parts) {
      const bytes = await read(part);
      if (bytes.byteLength !== part.bytes) throw new FinetuneError('internal', `weight part ${part.name}: ${bytes.byteLength} bytes, expected ${part.bytes}`);
      const b = ctx.upload(`${part.name} (cached)`, bytes, 'weights');
      uploaded.push(b);
      const i = part.info;
      switch (i.role) {
        case 'embed':
          embed = { buffer: b, storage: i.storage };
          break;
        case 'lm_head':
          lmHead = { buffer: b, storage: i.storage };
          break;
        case 'final_norm':
          finalNorm = b;
          break;
        case 'input_norm':
          norms.input[i.layer] = b;
          break;
        case 'post_norm':
          norms.post[i.layer] = b;
          break;
        case 'dense':
          dense.set(`${i.layer}.${i.proj}`, { kind: 'dense', out: i.out, in: i.in, buffer: b, storage: i.storage });
          break;
        case 'nf4': {
          const key = `${i.layer}.${i.proj}`;
          const e = nf4.get(key) ?? { rows: i.rows, cols: i.cols, doubleQuant: i.doubleQuant, b: {} };
          e.b[i.buffer] = b;
          nf4.set(key, e);
          break;
        }
      }
      onPart?.(part);
    }
    if (!embed || !finalNorm || (!lmHead && !m.tied)) throw new FinetuneError('internal', 'weight parts: embeddings, final norm or lm_head missing');
    const layers: LayerWeights[] = [];
    for (let l = 0; l < m.dims.L; l++) {
      const linears = {} as Record<Projection, BaseLinear>;
      for (const proj of PROJECTIONS) {
        const key = `${l}.${proj}`;
        const d = dense.get(key);
        const q = nf4.get(key);
        if (d) linears[proj] = d;
        else if (q && q.b.codes) {
          const weight: Nf4Weight = {
            rows: q.rows,
            cols: q.cols,
            blocks: (q.rows * q.cols) / 64,
            codes: q.b.codes,
            doubleQuant: q.doubleQuant,
            absmax: q.doubleQuant ? null : (q.b.absmax ?? null),
            dq: q.doubleQuant && q.b['dq.codes'] && q.b['dq.scale'] && q.b['dq.offset'] && q.b['dq.table'] ? { codes: q.b['dq.codes'], scale: q.b['dq.scale'], offset: q.b['dq.offset'], table: q.b['dq.table'] } : null,
          };
          if (weight.doubleQuant ? !weight.dq : !weight.absmax) throw new FinetuneError('internal', `weight parts: the scales of ${key} are missing`);
          linears[proj] = { kind: 'nf4', out: q.rows, in: q.cols, weight };
        } else throw new FinetuneError('internal', `weight parts: ${key} is missing`);
      }
      if (!norms.input[l] || !norms.post[l]) throw new FinetuneError('internal', `weight parts: the norms of layer ${l} are missing`);
      layers.push({ inputNorm: norms.input[l], postAttentionNorm: norms.post[l], linears });
    }
    return { dims: m.dims, quantization: m.quantization, embed, layers, finalNorm, lmHead: lmHead ?? embed };
  } catch (e) {
    ctx.flush();
    for (const b of uploaded) ctx.destroy(b);
    throw e;
  }
}
