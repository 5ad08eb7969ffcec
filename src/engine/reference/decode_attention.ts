// Float64 reference of shaders/decode_attention.wgsl: new query rows against a key/value cache, plain softmax over
// positions 0 .. past+i for query row i, GQA (query head h reads kv head h / (nH/nKV)).

import type { Vec } from './common.ts';
import type { DecodeAttentionDims } from '../kernels/decode_attention.ts';

/** out (nQ, nH·hd) in float64; kCache, vCache hold ≥ past+nQ rows of nKV·hd. */
export function decodeAttentionRef(q: Vec, kCache: Vec, vCache: Vec, d: DecodeAttentionDims): Float64Array {
  const { nQ, past, nH, nKV, hd } = d;
  const out = new Float64Array(nQ * nH * hd);
  const scale = 1 / Math.sqrt(hd);
  const group = nH / nKV;
  for (let i = 0; i < nQ; i++) {
    const nKeys = past + i + 1;
    for (let h = 0; h < nH; h++) {
      const kvh = Math.floor(h / group);
      const qo = (i * nH + h) * hd;
      const S = new Float64Array(nKeys);
      let m = -Infinity;
      for (let j = 0; j < nKeys; j++) {
        const ko = (j * nKV + kvh) * hd;
        let s = 0;
        for (let c = 0; c < hd; c++) s += q[qo + c] * kCache[ko + c];
        S[j] = s * scale;
        m = Math.max(m, S[j]);
      }
      let sum = 0;
      for (let j = 0; j < nKeys; j++) sum += Math.exp(S[j] - m);
      for (let j = 0; j < nKeys; j++) {
        const pj = Math.exp(S[j] - m) / sum;
        const vo = (j * nKV + kvh) * hd;
        for (let c = 0; c < hd; c++) out[qo + c] += pj * vCache[vo + c];
      }
    }
  }
  return out;
}
