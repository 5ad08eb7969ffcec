// Attention of new query rows against a key/value cache (shaders/decode_attention.wgsl): the inference half of
// attention that generation with a KV cache needs. Training uses attention_forward (kernels/attention.ts), which sees
// one whole sequence at once; here the keys before the new rows come from the cache.

import { FinetuneError } from '../../core/errors.ts';
import type { GpuContext } from '../gpu.ts';
import { requireBytes } from './elementwise.ts';

const MAX_HD = 128;

export interface DecodeAttentionDims {
  /** New query rows in this call. */
  nQ: number;
  /** Positions already in the cache before the first new row. */
  past: number;
  nH: number;
  nKV: number;
  hd: number;
}

/**
 * out (nQ, nH·hd) = causal GQA attention of q (nQ, nH·hd), the rows at positions past .. past+nQ-1, over the cached
 * kCache, vCache (≥ past+nQ rows of nKV·hd; rows past .. past+nQ-1 must already hold the new rows' k and v). Query row
 * i sees positions 0 .. past+i. q and k are rotated by RoPE already.
 */
export function decode_attention(ctx: GpuContext, out: GPUBuffer, q: GPUBuffer, kCache: GPUBuffer, vCache: GPUBuffer, d: DecodeAttentionDims): void {
  const { nQ, past, nH, nKV, hd } = d;
  if (hd % 4 !== 0 || hd < 4 || hd > MAX_HD) throw new FinetuneError('internal', `decode_attention: head_dim ${hd} must be a multiple of 4 in [4, ${MAX_HD}]`);
  if (nKV < 1 || nH % nKV !== 0) throw new FinetuneError('internal', `decode_attention: ${nH} query heads are not a multiple of ${nKV} kv heads`);
  if (!(Number.isInteger(past) && past >= 0)) throw new FinetuneError('internal', `decode_attention: past ${past} must be a whole number ≥ 0`);
  if (nQ === 0) return;
  requireBytes(q, nQ * nH * hd * 4, 'decode_attention q');
  requireBytes(out, nQ * nH * hd * 4, 'decode_attention out');
  requireBytes(kCache, (past + nQ) * nKV * hd * 4, 'decode_attention kCache');
  requireBytes(vCache, (past + nQ) * nKV * hd * 4, 'decode_attention vCache');
  const u = new ArrayBuffer(32);
  const u32 = new Uint32Array(u);
  u32[0] = nQ;
  u32[1] = past;
  u32[2] = nH;
  u32[3] = nKV;
  new Float32Array(u)[4] = Math.LOG2E / Math.sqrt(hd);
  ctx.dispatch({ shader: 'decode_attention', constants: { HD: hd } }, [q, kCache, vCache, out], u, [nQ, nH]);
}
