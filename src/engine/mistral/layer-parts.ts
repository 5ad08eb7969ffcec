// One decoder layer's GPU buffers as an ordered list of named parts, and a layer rebuilt from such a list. The weight
// cache (weight-parts.ts) and layer streaming (layer-stream.ts) both move layers around as these parts, so a layer has
// one byte layout wherever it goes: the bytes a part holds are exactly those of the buffer it came from.

import { PROJECTIONS, type Projection } from '../../core/mistral.ts';
import { FinetuneError } from '../../core/errors.ts';
import type { Nf4Weight } from '../kernels/nf4.ts';
import type { PartRole, WeightPart } from './weight-parts.ts';
import type { BaseLinear, LayerWeights } from './weights.ts';

type Nf4Role = Extract<PartRole, { role: 'nf4' }>;

export interface LayerPart {
  part: WeightPart;
  buffer: GPUBuffer;
}

/** Layer l's buffers in a fixed order: the two norms, then per projection its dense matrix or its NF4 codes and scales. */
export function layerParts(l: number, layer: LayerWeights): LayerPart[] {
  const out: LayerPart[] = [];
  const add = (name: string, buffer: GPUBuffer, info: PartRole): void => void out.push({ part: { name, bytes: buffer.size, info }, buffer });
  add(`${l}.input_norm`, layer.inputNorm, { role: 'input_norm', layer: l });
  add(`${l}.post_norm`, layer.postAttentionNorm, { role: 'post_norm', layer: l });
  for (const proj of PROJECTIONS) {
    const lin = layer.linears[proj];
    if (lin.kind === 'dense') {
      add(`${l}.${proj}`, lin.buffer, { role: 'dense', layer: l, proj, storage: lin.storage, out: lin.out, in: lin.in });
      continue;
    }
    const q = lin.weight;
    const nf4 = (buffer: Nf4Role['buffer'], b: GPUBuffer): void =>
      add(`${l}.${proj}.${buffer}`, b, { role: 'nf4', layer: l, proj, buffer, rows: q.rows, cols: q.cols, doubleQuant: q.doubleQuant });
    nf4('codes', q.codes);
    if (q.dq) {
      nf4('dq.codes', q.dq.codes);
      nf4('dq.scale', q.dq.scale);
      nf4('dq.offset', q.dq.offset);
      nf4('dq.table', q.dq.table);
    } else if (q.absmax) nf4('absmax', q.absmax);
  }
  return out;
}

/**
 * Layer l from its parts (any order; each role once). Throws 'internal' naming what is missing. The buffers are used as
 * they are: the caller owns them.
 */
export function assembleLayer(l: number, parts: readonly { info: PartRole; buffer: GPUBuffer }[]): LayerWeights {
  let inputNorm: GPUBuffer | null = null;
  let postAttentionNorm: GPUBuffer | null = null;
  const dense = new Map<Projection, BaseLinear>();
  const nf4 = new Map<Projection, { rows: number; cols: number; doubleQuant: boolean; b: Partial<Record<Nf4Role['buffer'], GPUBuffer>> }>();
  for (const { info: i, buffer } of parts) {
    switch (i.role) {
      case 'input_norm':
        inputNorm = buffer;
        break;
      case 'post_norm':
        postAttentionNorm = buffer;
        break;
      case 'dense':
        dense.set(i.proj, { kind: 'dense', out: i.out, in: i.in, buffer, storage: i.storage });
        break;
      case 'nf4': {
        const e = nf4.get(i.proj) ?? { rows: i.rows, cols: i.cols, doubleQuant: i.doubleQuant, b: {} };
        e.b[i.buffer] = buffer;
        nf4.set(i.proj, e);
        break;
      }
      default:
        throw new FinetuneError('internal', `weight parts: a ${i.role} part among the parts of layer ${l}`);
    }
  }
  const linears = {} as Record<Projection, BaseLinear>;
  for (const proj of PROJECTIONS) {
    const key = `${l}.${proj}`;
    const d = dense.get(proj);
    const q = nf4.get(proj);
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
  if (!inputNorm || !postAttentionNorm) throw new FinetuneError('internal', `weight parts: the norms of layer ${l} are missing`);
  return { inputNorm, postAttentionNorm, linears };
}
