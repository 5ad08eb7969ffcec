// Token embedding lookup (shaders/embedding.wgsl). The embedding is frozen in QLoRA, so there is no backward.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { grid1d, requireBytes } from './elementwise.ts';
import { halfDefines, type WeightStorage } from './gemm_args.ts';

/** How the (V, C) embedding table is stored: f32, or bf16 or f16 packed two per u32, low half first (Hub safetensors bytes). */
export type EmbeddingStorage = WeightStorage;

export interface EmbeddingOptions {
  storage?: EmbeddingStorage;
  /** Vocabulary size; by default the number of whole rows in the table buffer. */
  V?: number;
  /**
   * A CPU copy of ids: when given, ids ≥ V are rejected with a 'bad-input' error before anything is recorded.
   * (Without it an out-of-range id yields a row of zeros on the GPU: memory-safe, but silent.)
   */
  cpuIds?: ArrayLike<number>;
}

/** Throws 'bad-input' naming the first of the first `count` token ids outside [0, V). */
export function checkTokenIds(ids: ArrayLike<number>, V: number, count = ids.length): void {
  for (let t = 0; t < count; t++) {
    const id = ids[t];
    if (!(Number.isInteger(id) && id >= 0 && id < V)) {
      throw new FinetuneError('bad-input', `token id ${id} at position ${t} is outside the vocabulary of ${V}`, { position: t, id, V });
    }
  }
}

/** out (BT, C) f32 = table (V, C)[ids (BT, u32)]. */
export function embedding_forward(ctx: GpuContext, out: GPUBuffer, ids: GPUBuffer, table: GPUBuffer, BT: number, C: number, o: EmbeddingOptions = {}): void {
  const storage = o.storage ?? 'f32';
  const bytesPer = storage === 'f32' ? 4 : 2;
  const rows = Math.floor(table.size / (C * bytesPer));
  const V = o.V ?? rows;
  if (V > rows) throw new FinetuneError('internal', `embedding_forward: table "${table.label}" holds ${rows} rows of ${C}, not ${V}`);
  if (o.cpuIds) {
    if (o.cpuIds.length < BT) throw new FinetuneError('internal', `embedding_forward: ${o.cpuIds.length} CPU ids for ${BT} tokens`);
    checkTokenIds(o.cpuIds, V, BT);
  }
  const n = BT * C;
  if (n === 0) return;
  requireBytes(out, n * 4, 'embedding_forward out');
  requireBytes(ids, BT * 4, 'embedding_forward ids');
  const u = new ArrayBuffer(16);
  const u32 = new Uint32Array(u);
  u32[0] = n;
  u32[1] = C;
  u32[2] = V;
  ctx.dispatch({ shader: 'embedding', defines: halfDefines('HALF', storage) }, [out, ids, table], u, grid1d(n));
}
